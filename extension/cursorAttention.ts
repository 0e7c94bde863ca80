/**
 * What Follow Cursor shows, computed from the cached analysis record alone (no engine round trip,
 * no vscode): the attention of one query over every token of the document, or the reverse — how
 * much every query attends to one key — for the focused head, a layer's mean or the max over its
 * heads. Follows the record's sliding-window rule (engine/analysis/windows.ts): a query's row comes
 * from the one window that owns the query; a key's column is gathered from every window that holds
 * the key, each query read from its own window, so every (query, key) pair is counted once.
 */
import type { AnalysisRecord } from '../engine/analysis/record';

/** Attends to: the query's row. Attended by: the key's column (who attends to this token). */
export type FollowMode = 'attendsTo' | 'attendedBy';
export const FOLLOW_MODES: readonly FollowMode[] = ['attendsTo', 'attendedBy'];

/** Which heads combine: the focused head, the mean over a layer's heads, or the max over them. */
export type FollowAggregate = 'head' | 'layerMean' | 'maxHeads';
export const FOLLOW_AGGREGATES: readonly FollowAggregate[] = ['head', 'layerMean', 'maxHeads'];

/** The focus (−1: every layer / every head) and how its heads combine. */
export interface HeadChoice {
  layer: number;
  head: number;
  aggregate: FollowAggregate;
}

/** A token and its weight (a key of the query, or a query of the key). */
export interface Ranked {
  index: number;
  weight: number;
}

/**
 * The layers and heads a choice reads. A focus outside the model falls back to every layer or head
 * (as the metric colours do). `layerMean` and `maxHeads` read all heads of the focused layer.
 */
export function chosenHeads(choice: HeadChoice, L: number, H: number): { layers: number[]; heads: number[]; combine: 'mean' | 'max' } {
  const all = (n: number) => [...Array(n).keys()];
  const layer = choice.layer >= 0 && choice.layer < L ? choice.layer : -1;
  const head = choice.head >= 0 && choice.head < H ? choice.head : -1;
  const layers = layer < 0 ? all(L) : [layer];
  if (choice.aggregate === 'head') return { layers, heads: head < 0 ? all(H) : [head], combine: 'mean' };
  return { layers, heads: all(H), combine: choice.aggregate === 'maxHeads' ? 'max' : 'mean' };
}

/** What the choice reads, in words: "L1.H2", "L1 mean of heads", "all layers max over heads". */
export function describeChoice(choice: HeadChoice, L: number, H: number): string {
  const { layers, heads, combine } = chosenHeads(choice, L, H);
  const where = layers.length === 1 ? `L${layers[0]}` : 'all layers';
  if (combine === 'max') return `${where} max over heads`;
  if (heads.length === 1) return layers.length === 1 ? `L${layers[0]}.H${heads[0]}` : `H${heads[0]} mean of layers`;
  return layers.length === 1 ? `${where} mean of heads` : 'mean of all heads';
}

/** Running mean or max per slot; a slot no map reached stays NaN. */
class Combiner {
  private readonly acc: Float64Array;
  private readonly n: Int32Array;
  constructor(size: number, private readonly combine: 'mean' | 'max') {
    this.acc = new Float64Array(size).fill(combine === 'max' ? -Infinity : 0);
    this.n = new Int32Array(size);
  }
  add(slot: number, v: number): void {
    if (!Number.isFinite(v)) return;
    this.acc[slot] = this.combine === 'max' ? Math.max(this.acc[slot], v) : this.acc[slot] + v;
    this.n[slot]++;
  }
  value(slot: number): number {
    if (!this.n[slot]) return NaN;
    return this.combine === 'max' ? this.acc[slot] : this.acc[slot] / this.n[slot];
  }
}

/**
 * (N) weight of query `t` on every token, from the window that owns `t`; NaN for tokens outside
 * that window (the query never saw them) and where no attention map has arrived yet.
 */
export function attentionFromQuery(r: AnalysisRecord, t: number, choice: HeadChoice): Float32Array {
  const out = new Float32Array(r.N).fill(NaN);
  const w = r.windows[r.windowOf(t)];
  if (!w) return out;
  const { layers, heads, combine } = chosenHeads(choice, r.L, r.H);
  const T = w.length, q = t - w.start;
  const c = new Combiner(T, combine);
  for (const l of layers) {
    const a = w.attn[l]; // (H, T, T)
    if (!a) continue;
    for (const h of heads) {
      const row = (h * T + q) * T;
      for (let k = 0; k < T; k++) c.add(k, a[row + k]);
    }
  }
  for (let k = 0; k < T; k++) out[w.start + k] = c.value(k);
  return out;
}

/**
 * (N) weight every query puts on key `k`: for each window holding the key, the queries that window
 * owns (ownFrom..ownTo) read in it. NaN for queries whose window does not hold the key.
 */
export function attentionToKey(r: AnalysisRecord, k: number, choice: HeadChoice): Float32Array {
  const out = new Float32Array(r.N).fill(NaN);
  const { layers, heads, combine } = chosenHeads(choice, r.L, r.H);
  for (const w of r.windows) {
    if (!w || k < w.start || k >= w.start + w.length) continue;
    const T = w.length, kk = k - w.start;
    const from = Math.max(w.ownFrom, w.start), to = Math.min(w.ownTo, w.start + T);
    const c = new Combiner(to - from, combine);
    for (const l of layers) {
      const a = w.attn[l];
      if (!a) continue;
      for (const h of heads) for (let q = from; q < to; q++) c.add(q - from, a[(h * T + q - w.start) * T + kk]);
    }
    for (let q = from; q < to; q++) {
      const v = c.value(q - from);
      if (Number.isFinite(v)) out[q] = v;
    }
  }
  return out;
}

export function attentionAround(r: AnalysisRecord, t: number, mode: FollowMode, choice: HeadChoice): Float32Array {
  return mode === 'attendsTo' ? attentionFromQuery(r, t, choice) : attentionToKey(r, t, choice);
}

/**
 * The `k` largest positive weights, `exclude` (the token under the cursor) left out; ties go to
 * the earlier token so the order is the same everywhere it is computed.
 */
export function topK(values: ArrayLike<number>, k: number, exclude = -1): Ranked[] {
  const ranked: Ranked[] = [];
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (i !== exclude && Number.isFinite(v) && v > 0) ranked.push({ index: i, weight: v });
  }
  ranked.sort((a, b) => b.weight - a.weight || a.index - b.index);
  return ranked.slice(0, Math.max(0, k));
}

/** Weights under this fraction of the largest one are not tinted (they would only wash the text). */
export const MIN_SHOWN_FRACTION = 0.02;

/**
 * Colour level (0…levels−1) of every token on a linear scale from 0 to the largest weight (the
 * excluded token left out); −1 where nothing is shown. `top` is that largest weight.
 */
export function attentionLevels(values: ArrayLike<number>, levels: number, exclude = -1): { levels: Int8Array; top: number } {
  let top = 0;
  for (let i = 0; i < values.length; i++) if (i !== exclude && values[i] > top) top = values[i];
  const out = new Int8Array(values.length).fill(-1);
  if (!(top > 0)) return { levels: out, top: 0 };
  for (let i = 0; i < values.length; i++) {
    const frac = values[i] / top;
    if (i === exclude || !(frac >= MIN_SHOWN_FRACTION)) continue;
    out[i] = Math.min(levels - 1, Math.floor(frac * levels));
  }
  return { levels: out, top };
}
