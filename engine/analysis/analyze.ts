/**
 * Token-by-token analysis (DESIGN.md, "What the analysis reports"), streamed: per window a
 * `tokens` event, then one `layer` event per layer as soon as it is computed, then an `output`
 * event (NLL, top-k, causality leak). Everything is reduced on the backend; only small arrays
 * (and the attention maps the views ask for, in f16) are read back — never the full logits.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { AnalyzeEvent, AnalyzeLayerEvent, AnalyzeOutputEvent, AnalyzeParams, AnalyzeResult, ModelInfo, TokenInfo } from '../protocol';
import { encodeArray } from '../codec';
import { tokenize, tokenText } from '../tokenizers/gpt2';
import { BadInputError, type CancelToken, throwIfCancelled } from '../errors';
import type { Model } from '../models/model';
import { loraMetrics } from '../models/hyper';
import { crossEntropyRows, headChunkRows } from '../models/ops';
import { currentBackend } from '../runtime/tfjs/backend';

export interface LoadedModel {
  model: Model;
  info: ModelInfo;
}

/** Default number of prefix positions audited per window (each costs one extra forward). */
export const DEFAULT_AUDIT_POSITIONS = 4;

export interface AnalyzeOptions extends AnalyzeParams {
  /** Causality audit: how many prefix positions per window (0 = off). */
  auditPositions?: number;
}

/** Split [0, n) into windows of at most `w` tokens. */
export function windowsOf(n: number, w: number): [number, number][] {
  const out: [number, number][] = [];
  for (let s = 0; s < n; s += w) out.push([s, Math.min(n, s + w)]);
  return out;
}

/** Evenly spaced audit positions in [0, T−1), always including 0 (the last position has no leak). */
export function auditPositionsFor(T: number, count: number): number[] {
  if (count <= 0 || T < 2) return [];
  if (count >= T - 1) return [...Array(T - 1).keys()];
  const out = new Set<number>();
  for (let i = 0; i < count; i++) out.add(Math.round((i * (T - 2)) / Math.max(1, count - 1)));
  return [...out].sort((a, b) => a - b);
}

export async function* analyzeText(lm: LoadedModel, params: AnalyzeOptions, token?: CancelToken): AsyncGenerator<AnalyzeEvent, AnalyzeResult> {
  const started = Date.now();
  const { model, info } = lm;
  const text = typeof params.text === 'string' ? params.text : bad('analyze: `text` must be a string');
  const { start, end } = clampRange(params.range, text.length);
  const tokens = tokenize(text.slice(start, end), start + (params.baseOffset ?? 0));
  if (!tokens.length) throw new BadInputError('nothing to analyse: the text (or the selected range) is empty');
  checkVocab(tokens, info);
  const W = windowSize(params.window, info.config.block_size);
  const windows = windowsOf(tokens.length, W);
  const audit = info.causal && info.adaptive ? params.auditPositions ?? (params.causalityAudit === false ? 0 : DEFAULT_AUDIT_POSITIONS) : 0;
  const vocabText: Record<number, string> = {};
  let nllSum = 0, nllCount = 0, maxLeak: number | null = null;
  for (let w = 0; w < windows.length; w++) {
    throwIfCancelled(token);
    const [s, e] = windows[w];
    const winTokens = tokens.slice(s, e);
    yield { kind: 'tokens', window: w, windowCount: windows.length, tokenStart: s, tokens: winTokens };
    const nextId = e < tokens.length ? tokens[e].id : -1;
    const run = runWindow(model, info, winTokens, nextId, params, audit, w, s);
    for (;;) {
      await throwIfCancelledAndClose(token, run);
      const step = await run.next();
      if (step.done) {
        const out = step.value;
        for (const id of out.topIdList) vocabText[id] ??= tokenText(id);
        for (const v of out.nllValues) if (Number.isFinite(v)) (nllSum += v), nllCount++;
        if (out.maxLeak !== null) maxLeak = Math.max(maxLeak ?? 0, out.maxLeak);
        yield out.event;
        break;
      }
      yield step.value;
      await new Promise((r) => setImmediate(r)); // let the transport flush and `$/cancel` arrive
    }
  }
  return {
    tokenCount: tokens.length,
    windowCount: windows.length,
    layers: info.config.n_layer,
    heads: info.config.n_head,
    meanNll: nllCount ? nllSum / nllCount : null,
    maxLeak,
    elapsedMs: Date.now() - started,
    backend: currentBackend()?.info.name ?? 'cpu',
    vocabText,
  };
}

function bad(m: string): never {
  throw new BadInputError(m);
}

async function throwIfCancelledAndClose(token: CancelToken | undefined, run: AsyncGenerator<unknown, unknown>): Promise<void> {
  if (token?.cancelled) {
    await run.return(undefined); // runs the generator's finally: frees the window's tensors
    throwIfCancelled(token);
  }
}

function clampRange(range: AnalyzeParams['range'], n: number): { start: number; end: number } {
  if (!range) return { start: 0, end: n };
  const { start, end } = range;
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end < start || end > n) {
    throw new BadInputError(`analyze: range [${start}, ${end}) is outside the text (length ${n})`);
  }
  return { start, end };
}

function windowSize(requested: number | undefined, block: number): number {
  if (requested === undefined || requested === 0) return block;
  if (!Number.isInteger(requested) || requested < 1) throw new BadInputError(`analyze: window must be a positive integer, got ${requested}`);
  return Math.min(requested, block);
}

function checkVocab(tokens: TokenInfo[], info: ModelInfo): void {
  const V = info.config.vocab_size;
  const badTok = tokens.find((t) => t.id >= V);
  if (badTok) {
    throw new BadInputError(`token ${JSON.stringify(badTok.text)} has GPT-2 id ${badTok.id} but the model's vocabulary has only ${V} entries (the model was not trained with the GPT-2 tokenizer)`);
  }
}

interface WindowOutput {
  event: AnalyzeOutputEvent;
  topIdList: number[];
  nllValues: Float32Array;
  maxLeak: number | null;
}

/** One window: layer events one by one, then the output. Tensors kept across awaits are disposed in `finally`. */
async function* runWindow(
  model: Model,
  info: ModelInfo,
  winTokens: TokenInfo[],
  nextId: number,
  params: AnalyzeOptions,
  audit: number,
  w: number,
  tokenStart: number,
): AsyncGenerator<AnalyzeLayerEvent, WindowOutput> {
  const T = winTokens.length;
  const ids = tf.tensor2d(winTokens.map((t) => t.id), [1, T], 'int32');
  const tDiff = info.config.num_diffusion_steps !== undefined ? tf.tensor1d([params.t ?? 0], 'int32') : undefined;
  const dist = distanceMatrix(T);
  let x: tf.Tensor3D = tf.tidy(() => model.embedInput(ids, tDiff));
  try {
    const wantAttn = (l: number) => params.includeAttention !== false && (!params.attentionLayers || params.attentionLayers.includes(l));
    for (let l = 0; l < info.config.n_layer; l++) {
      const { next, reads } = tf.tidy(() => {
        const out = model.block(x, l, true);
        return { next: out.x, reads: layerReductions(out, dist, wantAttn(l)) };
      });
      x.dispose();
      x = next;
      let event: AnalyzeLayerEvent;
      try {
        event = await layerEvent(w, l, tokenStart, reads);
      } finally {
        disposeAll(reads);
      }
      yield event;
    }
    const hidden = tf.tidy(() => model.finalNorm(x).reshape([T, -1]) as tf.Tensor2D);
    try {
      return await outputOf(model, info, winTokens, nextId, hidden, ids, tDiff, params, audit, w, tokenStart);
    } finally {
      hidden.dispose();
    }
  } finally {
    x.dispose();
    ids.dispose();
    tDiff?.dispose();
    dist.dispose();
  }
}

/** (T, T) |t − k|, for the mean attended distance. */
function distanceMatrix(T: number): tf.Tensor2D {
  const d = new Float32Array(T * T);
  for (let i = 0; i < T; i++) for (let k = 0; k < T; k++) d[i * T + k] = Math.abs(i - k);
  return tf.tensor2d(d, [T, T]);
}

type Reads = Record<string, tf.Tensor>;

/** Everything a layer event carries, reduced on the backend. probs: (1, H, T, T). */
function layerReductions(out: ReturnType<Model['block']>, dist: tf.Tensor2D, withAttn: boolean): Reads {
  const p = out.probs!.squeeze([0]) as tf.Tensor3D; // (H, T, T)
  const H = p.shape[0], T = p.shape[1];
  const reads: Reads = {
    headMax: tf.max(p, -1),
    headArgmax: tf.argMax(p, -1),
    headEntropy: tf.neg(tf.sum(tf.mul(p, tf.log(tf.maximum(p, 1e-30))), -1)),
    headDistance: tf.sum(tf.mul(p, dist), -1),
  };
  const meanP = tf.mean(p, 0); // (T, T)
  const kStar = tf.argMax(meanP, -1) as tf.Tensor1D; // (T)
  reads.latentKey = kStar;
  const onehot = tf.cast(tf.oneHot(kStar, T), 'float32'); // (T, T) — int oneHot, then cast (WASM)
  reads.latentCode = tf.transpose(tf.sum(tf.mul(p, onehot.expandDims(0)), -1)); // (T, H)
  if (withAttn) reads.attn = p.clone();
  if (out.hyper) {
    const m = loraMetrics(out.hyper, out.v0);
    reads.loraFro = m.loraFro.reshape([H]);
    reads.loraTok = m.loraTok.reshape([H, T]);
    reads.loraRel = tf.div(m.loraTok, tf.maximum(m.vNorm, 1e-12)).reshape([H, T]);
  }
  return Object.fromEntries(Object.entries(reads).map(([k, v]) => [k, tf.keep(v)]));
}

/** Read back (await: `dataSync` throws on WebGPU) and encode for the wire. */
async function layerEvent(w: number, l: number, tokenStart: number, r: Reads): Promise<AnalyzeLayerEvent> {
  const f = async (t: tf.Tensor, dtype: 'f32' | 'f16' = 'f32') => encodeArray((await t.data()) as Float32Array, t.shape, dtype);
  const i = async (t: tf.Tensor) => encodeArray(Int32Array.from(await t.data()), t.shape, 'i32');
  const ev: AnalyzeLayerEvent = {
    kind: 'layer',
    window: w,
    layer: l,
    tokenStart,
    headMax: await f(r.headMax),
    headArgmax: await i(r.headArgmax),
    headEntropy: await f(r.headEntropy),
    headDistance: await f(r.headDistance),
    latentKey: await i(r.latentKey),
    latentCode: await f(r.latentCode),
  };
  if (r.attn) ev.attn = await f(r.attn, 'f16');
  if (r.loraFro) Object.assign(ev, { loraFro: await f(r.loraFro), loraTok: await f(r.loraTok), loraRel: await f(r.loraRel) });
  return ev;
}

function disposeAll(r: Reads): void {
  for (const t of Object.values(r)) t.dispose();
}

/** NLL of each token's target, top-k, and the causality audit, for one window. */
async function outputOf(
  model: Model,
  info: ModelInfo,
  winTokens: TokenInfo[],
  nextId: number,
  hidden: tf.Tensor2D,
  ids: tf.Tensor2D,
  tDiff: tf.Tensor1D | undefined,
  params: AnalyzeOptions,
  audit: number,
  w: number,
  tokenStart: number,
): Promise<WindowOutput> {
  const T = winTokens.length;
  const K = Math.max(1, Math.min(params.topK ?? 5, 20));
  // causal: the target of position t is the next token (across windows); diffusion: the token itself
  const targets = info.causal ? [...winTokens.slice(1).map((t) => t.id), nextId] : winTokens.map((t) => t.id);
  const nll = new Float32Array(T);
  const topIds = new Int32Array(T * K);
  const topProbs = new Float32Array(T * K);
  const rows = headChunkRows(info.config.vocab_size);
  for (let r0 = 0; r0 < T; r0 += rows) {
    const n = Math.min(rows, T - r0);
    const [ce, vals, idx] = tf.tidy(() => {
      const logits = model.head(hidden.slice([r0, 0], [n, -1])) as tf.Tensor2D;
      const tgt = tf.tensor1d(targets.slice(r0, r0 + n).map((t) => Math.max(0, t)), 'int32');
      const { ce, probs } = crossEntropyRows(logits, tgt);
      const top = tf.topk(probs, K);
      return [ce, top.values, top.indices];
    });
    try {
      nll.set((await ce.data()) as Float32Array, r0);
      topProbs.set((await vals.data()) as Float32Array, r0 * K);
      topIds.set((await idx.data()) as Int32Array, r0 * K);
    } finally {
      tf.dispose([ce, vals, idx]);
    }
  }
  targets.forEach((t, i) => {
    if (t < 0) nll[i] = NaN;
  });
  const event: AnalyzeOutputEvent = {
    kind: 'output',
    window: w,
    tokenStart,
    nll: encodeArray(nll, [T]),
    topIds: encodeArray(topIds, [T, K], 'i32'),
    topProbs: encodeArray(topProbs, [T, K]),
  };
  let maxLeak: number | null = null;
  if (audit > 0) {
    const leak = await causalityLeak(model, ids, hidden, tDiff, audit);
    event.leak = encodeArray(leak, [T]);
    for (const v of leak) if (Number.isFinite(v)) maxLeak = Math.max(maxLeak ?? 0, v);
  }
  return { event, topIdList: [...new Set(topIds)], nllValues: nll, maxLeak };
}

/**
 * leak[t] = max_v |logits_t(full window) − logits_t(prefix ending at t)| at sampled positions t:
 * the prefix is run as its own sequence (a-gpt's hypernetwork then pools over the prefix only),
 * so each audited position costs one forward of t + 1 tokens. Unaudited positions are NaN; the
 * last position is the full window itself (leak 0).
 */
export async function causalityLeak(model: Model, ids: tf.Tensor2D, hidden: tf.Tensor2D, tDiff: tf.Tensor1D | undefined, count: number): Promise<Float32Array> {
  const T = ids.shape[1];
  const leak = new Float32Array(T).fill(NaN);
  leak[T - 1] = 0;
  for (const t of auditPositionsFor(T, count)) {
    const diff = tf.tidy(() => {
      const h = model.finalHidden(ids.slice([0, 0], [1, t + 1]) as tf.Tensor2D, tDiff); // (1, t+1, C)
      const prefixRow = h.slice([0, t, 0], [1, 1, -1]).reshape([1, -1]);
      const fullRow = hidden.slice([t, 0], [1, -1]);
      return tf.max(tf.abs(tf.sub(model.head(fullRow), model.head(prefixRow))));
    });
    leak[t] = (await diff.data())[0];
    diff.dispose();
  }
  return leak;
}
