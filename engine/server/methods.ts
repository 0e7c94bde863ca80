/**
 * The evaluation, compare, intervention and timeline methods of the protocol, on the loaded model:
 * each validates its input, streams progress, honours `$/cancel` between windows, and frees what it
 * loaded (compare's model B, a timeline's checkpoints) when it ends.
 */
import type { EngineServer } from './server';
import type { EncodedArray, SweepCellEvent, TokenInfo } from '../protocol';
import { BadInputError } from '../errors';
import { encodeArray } from '../codec';
import type { LoadedModel } from '../runtime/loaded';
import { loadModel } from '../runtime/loaded';
import { currentRuntime, initRuntime } from '../runtime/select';
import { evalPpl, readPplDocuments } from '../eval/ppl';
import { evalMc, readMcFile } from '../eval/mc';
import { compareModels } from '../eval/compare';
import { checkAblation, controlsFor, documentNll, sweep } from '../analysis/interventions';
import { analyseTimeline, listCheckpoints } from '../analysis/timeline';
import { registerPonderMethods } from '../ponder/methods';
import { registerRunMethods } from './runs';
import { registerTloraMethods } from './tlora';
import { registerTttMethods } from '../ttt/methods';

function text(p: { text?: unknown }): string {
  if (typeof p.text !== 'string' || !p.text) throw new BadInputError('the request needs a non-empty `text`');
  return p.text;
}

const f32 = (a: Float32Array): EncodedArray => encodeArray(a, [a.length]);

export function registerMethods(server: EngineServer, model: () => LoadedModel): void {
  server.on('eval/ppl', async (p, ctx) => {
    const lm = model();
    const docs = p.texts?.length ? p.texts.map((t) => ({ source: t.name, name: t.name, text: t.text })) : readPplDocuments(undefined, p.data ?? []);
    return evalPpl(lm, docs, { context: p.context, stride: p.stride }, ctx.token, (_d, _n, done, total) => ctx.progress({ done, total }));
  });

  server.on('eval/mc', async (p, ctx) => {
    const lm = model();
    return evalMc(lm, readMcFile(p.file, p.limit), ctx.token, (done, total) => ctx.progress({ done, total }));
  });

  server.on('compare', async (p, ctx) => {
    const a = model();
    if (!p.modelB?.path) throw new BadInputError('compare needs modelB.path');
    const b = await loadModel({ path: p.modelB.path, config: p.modelB.config }, currentRuntime() ?? (await initRuntime()));
    try {
      return await compareModels(a, b, text(p), { context: p.context, stride: p.stride, heads: p.heads === true }, ctx.token, (m, done, total) => ctx.progress({ model: m, done, total }));
    } finally {
      await b.dispose();
    }
  });

  server.on('ablate/run', async (p, ctx) => {
    const lm = model();
    if (!Array.isArray(p.ablations) || !p.ablations.length) throw new BadInputError('ablate/run needs at least one ablation');
    for (const a of p.ablations) checkAblation(a, lm.info);
    const tokens = lm.tokenizer.tokenize(text(p));
    const ids = Int32Array.from(tokens, (t) => t.id);
    const nll = await documentNll(lm, ids, controlsFor(p.ablations, lm.info.layers, lm.info.heads), ctx.token);
    const base = await documentNll(lm, ids, undefined, ctx.token);
    return { tokens, nll: f32(nll), base: f32(base) };
  });

  server.on('ablate/sweep', async (p, ctx) => {
    const lm = model();
    const tokens: TokenInfo[] = lm.tokenizer.tokenize(text(p));
    const ids = Int32Array.from(tokens, (t) => t.id);
    const unit = p.unit ?? 'head';
    const cells: Omit<SweepCellEvent, 'dnll'>[] = [];
    const gen = sweep(lm, ids, p.mode, unit, ctx.token);
    for (;;) {
      const s = await gen.next();
      if (s.done) break;
      const { dnll, ...cell } = s.value;
      cells.push(cell);
      ctx.progress({ ...cell, dnll: f32(dnll) } satisfies SweepCellEvent);
    }
    return { mode: p.mode, unit, cells, tokens };
  });

  server.on('checkpoints/list', async (p) => listCheckpoints(p.folder));

  server.on('checkpoints/analyze', async (p, ctx) => {
    const lm = model(); // the tokenizer and runtime of the loaded model serve its run's checkpoints
    const t = text(p);
    const gen = analyseTimeline(p.paths, t, p.config, currentRuntime() ?? (await initRuntime()), lm.tokenizer, ctx.token);
    let count = 0;
    for (;;) {
      const s = await gen.next();
      if (s.done) {
        count = s.value;
        break;
      }
      ctx.progress(s.value);
    }
    return { tokens: lm.tokenizer.tokenize(t), count };
  });

  registerPonderMethods(server, model);

  registerRunMethods(server);
  registerTloraMethods(server, model);
  registerTttMethods(server, model);
}
