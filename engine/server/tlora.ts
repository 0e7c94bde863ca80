/**
 * Temporal LoRA over the protocol: `tlora/losses` (the loaded tlora model's NLL with the router's
 * mixture vs uniform, each adapter alone, no adapter and the base alone; per token the dominant
 * adapter) and `tlora/train` (the adapter phases then the router, streamed as the normal training
 * records; `$/cancel` stops after the current step and still writes what was trained). One
 * Temporal LoRA run at a time.
 */
import type { EngineServer } from './server';
import type { TloraTrainParams } from '../protocol';
import { BadInputError } from '../errors';
import type { LoadedModel } from '../runtime/loaded';
import { currentRuntime, initRuntime } from '../runtime/select';
import { currentBackend, initBackend } from '../runtime/tfjs/backend';
import { trackRun } from '../train/session';
import { tloraLosses } from '../eval/tlora';
import { buildTloraRun, prepareTloraInputs, type TloraRunSpec } from '../train/tlora';

let running: string | null = null;
let counter = 0;

function specOf(p: TloraTrainParams): TloraRunSpec {
  if (!p || typeof p.base !== 'string' || !p.base) throw new BadInputError('tlora/train needs `base`: the path of the GPT-2 the adapters sit on');
  if (!Array.isArray(p.adapters) || !p.adapters.length) throw new BadInputError('tlora/train needs `adapters`: [{name, data: [paths]}], one per domain');
  return {
    base: p.base,
    adapters: p.adapters.map((a) => ({ name: String(a?.name ?? ''), data: Array.isArray(a?.data) ? a.data.map(String) : [] })),
    rank: p.rank,
    alpha: p.alpha,
    options: {
      steps: p.steps, routerSteps: p.routerSteps, lr: p.lr, routerLr: p.routerLr, batchSize: p.batchSize, routerBatchSize: p.routerBatchSize,
      seqLen: p.seqLen, routerSeqLen: p.routerSeqLen, seed: p.seed, evalInterval: p.evalInterval, out: p.out ?? null,
    },
  };
}

export function registerTloraMethods(server: EngineServer, model: () => LoadedModel): void {
  server.on('tlora/losses', async (p, ctx) => {
    const lm = model();
    if (lm.config.family !== 'tlora') throw new BadInputError(`tlora/losses needs a Temporal LoRA model; the loaded model is a ${lm.config.family} model`);
    if (typeof p.text !== 'string' || !p.text) throw new BadInputError('the request needs a non-empty `text`');
    const state = currentRuntime() ?? (await initRuntime());
    return tloraLosses(lm, p.text, { context: p.context, stride: p.stride }, state, ctx.token, (done, total) => ctx.progress({ done, total }));
  });

  server.on('tlora/train', async (p, ctx) => {
    if (running) throw new BadInputError(`a Temporal LoRA run (${running}) is already active: cancel it first`);
    const runId = `tlora-${Date.now().toString(36)}-${++counter}`;
    running = runId;
    try {
      ctx.progress({ kind: 'status', runId, state: 'starting', family: 'tlora' });
      const inputs = await prepareTloraInputs(specOf(p));
      if (!currentBackend()) await initBackend('auto');
      const run = buildTloraRun(inputs, runId, (e) => ctx.progress(e));
      const stopOnCancel = setInterval(() => {
        if (ctx.token.cancelled) run.trainer.control.stopRequested = true;
      }, 50);
      const untrack = trackRun(runId, run.trainer.control); // train/stop, pause and resume reach it
      try {
        const r = await run.trainer.run();
        ctx.progress({ kind: 'status', runId, state: r.stopped ? 'stopped' : 'finished', checkpoint: r.files?.pt, step: run.trainer.step, totalSteps: run.trainer.totalSteps, family: 'tlora' });
        return run.trainer.result(r);
      } finally {
        clearInterval(stopOnCancel);
        untrack();
        run.dispose();
      }
    } catch (e) {
      ctx.progress({ kind: 'status', runId, state: 'failed', message: (e as Error).message, family: 'tlora' });
      throw e;
    } finally {
      running = null;
    }
  });
}
