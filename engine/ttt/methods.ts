/**
 * `ttt/run` over the protocol: LoRA test-time training of a text on the loaded model, one progress
 * message per chunk (loss before / after / base, ‖ΔW‖ per module and layer), `$/cancel` between
 * chunks (every tensor freed). The TensorFlow.js model it trains on is kept for the next request
 * and freed when another model is loaded. A is warm-started from the model's previous run, as the
 * record carries A from one document to the next (`warmStart: false` draws a fresh one).
 */
import type { EngineServer } from '../server/server';
import type { TttRunParams } from '../protocol';
import { BadInputError } from '../errors';
import type { LoadedModel } from '../runtime/loaded';
import type { TfModel } from '../runtime/tfjs/model';
import { familyDef } from '../models/registry';
import { byteCounterFor } from './bytes';
import { resolveSettings, runTtt, runnerScorer, type AdapterValues, type TttSettings } from './lora';
import { chunkEvent, documentOf, encodeTtt, trainingModelOf } from './session';

interface Trained {
  model: LoadedModel;
  tf: TfModel;
  owned: boolean;
  /** The A of every adapter after the last run, and what they fit. */
  warm: { key: string; values: AdapterValues } | null;
}

/** The params the engine's settings take (each checked there). */
function givenSettings(p: TttRunParams): Partial<TttSettings> {
  return { chunk: p.chunk, evalLen: p.evalLen, rank: p.rank, alpha: p.alpha, lr: p.lr, betas: p.betas, eps: p.eps, weightDecay: p.weightDecay, modules: p.modules };
}

/** Warm starts fit only adapters of the same rank on the same modules. */
const warmKey = (s: TttSettings) => JSON.stringify([s.rank, [...s.modules].sort()]);

/** Only A carries over (the record resets B to zero at every document). */
function onlyA(values: AdapterValues): AdapterValues {
  return new Map([...values].filter(([k]) => k.endsWith('.A')));
}

export function registerTttMethods(server: EngineServer, model: () => LoadedModel): void {
  let held: Trained | null = null;

  async function trainedFor(lm: LoadedModel): Promise<Trained> {
    if (held?.model === lm) return held;
    if (held?.owned) held.tf.dispose();
    const { model: tf, owned } = await trainingModelOf(lm);
    held = { model: lm, tf, owned, warm: null };
    return held;
  }

  server.on('ttt/run', async (p, ctx) => {
    const lm = model();
    if (typeof p.text !== 'string' || !p.text) throw new BadInputError('ttt/run needs a non-empty `text`');
    if (!lm.info.causal) throw new BadInputError(`${lm.info.path}: test-time training needs a causal model (this one is ${lm.config.family})`);
    const settings = resolveSettings(givenSettings(p), lm.config);
    const doc = documentOf(lm.tokenizer, p.text);
    const t = await trainedFor(lm);
    const def = familyDef(lm.config.family);
    const key = warmKey(settings);
    const start = p.warmStart !== false && t.warm?.key === key ? t.warm.values : undefined;
    const layers = def.layerCount(lm.config);
    const r = await runTtt({
      def,
      model: t.tf,
      score: runnerScorer(lm.runner),
      doc: doc.ids,
      settings,
      start,
      bytes: byteCounterFor(lm.tokenizer, lm.config.vocab_size),
      token: ctx.token,
      onChunk: (c, of, specs) => ctx.progress(chunkEvent(c, of, specs, layers)),
    });
    t.warm = { key, values: onlyA(r.final) };
    return encodeTtt(r, doc, lm.config, layers, lm.runner.name);
  });
}
