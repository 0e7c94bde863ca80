/**
 * Temporal LoRA losses: the same text scored with the router's mixture, with uniform weights, with
 * each adapter alone, with no adapter (their forward, ln_f still skipped) and with the GPT-2 base
 * alone (its own forward, with ln_f), every token with the context the sliding-window rule gives it
 * (eval/score.ts, on whatever runtime the model runs on); per token the router's weights and the
 * dominant adapter. The router reads the token id only, so its weights are computed here from the
 * Time Mixer's parameters on the host (TimeMixer.forward: softmax(W2·relu(W0·embed[id] + b0) + b2)),
 * the same numbers the model's own forward reports as the `router` signal.
 */
import type { TloraLossRow, TloraLossesResult, TloraRoute } from '../protocol';
import { BadInputError, type CancelToken } from '../errors';
import type { HostTensor } from '../io/tensor';
import { encodeArray } from '../codec';
import { MIXER_PREFIX } from '../io/tlora';
import { familyDef } from '../models/registry';
import { BASE_PREFIX, baseConfigOf, tloraOf } from '../models/tlora';
import type { LoadedModel } from '../runtime/loaded';
import { createRunner, type RuntimeState } from '../runtime/select';
import { contextAndStride } from './ppl';
import { scoreIds } from './score';

/** Router weights (N, K) of each token id: the Time Mixer on the host, in float64. */
export function hostRouterWeights(weights: Map<string, HostTensor>, ids: Int32Array, K: number): Float32Array {
  const P = (n: string) => weights.get(MIXER_PREFIX + n)!;
  const embed = P('domain_embed.weight'), w0 = P('domain_classifier.0.weight'), b0 = P('domain_classifier.0.bias');
  const w2 = P('domain_classifier.2.weight'), b2 = P('domain_classifier.2.bias');
  const E = embed.shape[1], Hm = w0.shape[0];
  const out = new Float32Array(ids.length * K), h = new Float64Array(Hm), z = new Float64Array(K);
  ids.forEach((id, t) => {
    for (let j = 0; j < Hm; j++) {
      let s = b0.values[j];
      for (let e = 0; e < E; e++) s += w0.values[j * E + e] * embed.values[id * E + e];
      h[j] = Math.max(0, s);
    }
    let max = -Infinity;
    for (let k = 0; k < K; k++) {
      let s = b2.values[k];
      for (let j = 0; j < Hm; j++) s += w2.values[k * Hm + j] * h[j];
      z[k] = s;
      max = Math.max(max, s);
    }
    let sum = 0;
    for (let k = 0; k < K; k++) sum += (z[k] = Math.exp(z[k] - max));
    for (let k = 0; k < K; k++) out[t * K + k] = z[k] / sum;
  });
  return out;
}

/** The argmax adapter of each token's weights (the first on ties). */
export function dominantAdapters(weights: Float32Array, K: number): number[] {
  return Array.from({ length: weights.length / K }, (_, t) => {
    let best = 0;
    for (let k = 1; k < K; k++) if (weights[t * K + k] > weights[t * K + best]) best = k;
    return best;
  });
}

/** The ways of mixing the adapters that are compared, in report order. */
export function lossRows(names: string[]): { name: string; route: TloraRoute | 'base' }[] {
  return [
    { name: 'mixture', route: { kind: 'mixer' } },
    ...(names.length > 1 ? [{ name: 'uniform', route: { kind: 'uniform' } as TloraRoute }] : []),
    ...names.map((n) => ({ name: `adapter:${n}`, route: { kind: 'adapter', name: n } as TloraRoute })),
    { name: 'no adapter', route: { kind: 'none' } },
    { name: 'base', route: 'base' },
  ];
}

/** The model for one row: the tlora model on that route, or its base as a gpt2 (weights without `base.`). */
async function rowModel(lm: LoadedModel, route: TloraRoute | 'base', state: RuntimeState): Promise<LoadedModel> {
  const config = route === 'base' ? baseConfigOf(lm.config) : { ...lm.config, tlora: { ...tloraOf(lm.config), route } };
  const weights = route === 'base' ? new Map([...lm.weights].filter(([k]) => k.startsWith(BASE_PREFIX)).map(([k, v]) => [k.slice(BASE_PREFIX.length), v])) : lm.weights;
  const runner = await createRunner(familyDef(config.family), config, weights, state);
  return { ...lm, config, weights, runner, dispose: () => runner.dispose() };
}

function summary(name: string, route: TloraRoute | 'base', nll: Float32Array): TloraLossRow {
  let sum = 0, n = 0;
  for (const v of nll) if (Number.isFinite(v)) (sum += v), n++;
  const mean = n ? sum / n : null;
  return { name, route, nll_mean: mean, ppl: mean === null ? null : Math.exp(mean), tokens: n };
}

/** Every row scored on the text; progress counts tokens over all rows. */
export async function tloraLosses(lm: LoadedModel, text: string, opts: { context?: number; stride?: number }, state: RuntimeState, token?: CancelToken, progress?: (done: number, total: number) => void): Promise<TloraLossesResult> {
  const t = tloraOf(lm.config), K = t.adapter_names.length;
  const { context, stride } = contextAndStride(lm, opts.context, opts.stride);
  const tokens = lm.tokenizer.tokenize(text);
  const ids = Int32Array.from(tokens, (x) => x.id);
  const bad = tokens.find((x) => x.id >= lm.config.vocab_size);
  if (bad) throw new BadInputError(`token ${JSON.stringify(bad.text)} has id ${bad.id} in the ${lm.tokenizer.info.kind} tokenizer but the model's vocabulary has only ${lm.config.vocab_size} entries (was it trained with another tokenizer?)`);
  if (ids.length < 2) throw new BadInputError('tlora losses need a text of at least two tokens (the first has nothing to predict it)');
  const rows = lossRows(t.adapter_names);
  const nll = new Float32Array(rows.length * ids.length);
  const out: TloraLossRow[] = [];
  for (const [i, row] of rows.entries()) {
    const m = await rowModel(lm, row.route, state);
    try {
      const scored = await scoreIds(m, ids, context, stride, token, (done) => progress?.(i * ids.length + done, rows.length * ids.length));
      nll.set(scored.nll, i * ids.length);
      out.push(summary(row.name, row.route, scored.nll));
    } finally {
      await m.dispose();
    }
  }
  const weights = hostRouterWeights(lm.weights, ids, K);
  return {
    adapters: [...t.adapter_names],
    rows: out,
    tokens,
    dominant: dominantAdapters(weights, K),
    weights: encodeArray(weights, [ids.length, K]),
    nll: encodeArray(nll, [rows.length, ids.length]),
    context,
    stride,
  };
}
