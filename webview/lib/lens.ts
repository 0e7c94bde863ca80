/**
 * The logit lens of an analysis as the webview holds it: per layer l and position t, the rank and
 * probability of the actual next token when the residual stream after layer l is read through the
 * model's final norm and output head, and that layer's top-k. Stitched over the sliding windows
 * with the ownership rule of AnalyzeTokensEvent, like every other per-token quantity (model.ts).
 * Present only when the analysis was asked for it (the `headlens.logitLens` setting).
 */
import type { AnalyzeOutputEvent, ExplorerData } from '../../engine/protocol';
import { decodeArray } from '../../engine/codec';

export interface LensEntry {
  layer: number;
  /** 1-based rank of the actual next token in the layer's distribution; 0 where there is none. */
  rank: number;
  prob: number;
  top: { id: number; p: number }[];
}

export class LensModel {
  /** (L, N) ranks (0: no next token) and probabilities (NaN: none). */
  readonly rank: Int32Array;
  readonly prob: Float32Array;
  /** (L, N, K) the layer's top-k ids and probabilities. */
  readonly topIds: Int32Array;
  readonly topProbs: Float32Array;

  private constructor(readonly L: number, readonly N: number, readonly K: number) {
    this.rank = new Int32Array(L * N);
    this.prob = new Float32Array(L * N).fill(NaN);
    this.topIds = new Int32Array(L * N * K);
    this.topProbs = new Float32Array(L * N * K).fill(NaN);
  }

  /** The lens of an analysis, or null when none of its windows carries one. */
  static from(data: ExplorerData): LensModel | null {
    const N = data.tokens.length;
    const owned = new Map<number, [number, number]>();
    for (const e of data.events) if (e.kind === 'tokens') owned.set(e.window, [e.ownFrom ?? e.tokenStart, e.ownTo ?? e.tokenStart + e.tokens.length]);
    const outputs = data.events.filter((e): e is AnalyzeOutputEvent & { lens: NonNullable<AnalyzeOutputEvent['lens']> } => e.kind === 'output' && !!e.lens);
    if (!outputs.length || !N) return null;
    const [L, , K] = outputs[0].lens.topIds.shape;
    const m = new LensModel(L, N, K);
    for (const e of outputs) m.add(e, owned.get(e.window));
    return m;
  }

  private add(e: AnalyzeOutputEvent & { lens: NonNullable<AnalyzeOutputEvent['lens']> }, own: [number, number] | undefined): void {
    const [L, T, K] = e.lens.topIds.shape;
    if (L !== this.L || K !== this.K) return; // a malformed window: its positions stay unreported
    const s = e.tokenStart, from = Math.max(s, own?.[0] ?? s), to = Math.min(s + T, own?.[1] ?? s + T, this.N);
    const rank = decodeArray(e.lens.rank), prob = decodeArray(e.lens.prob), ids = decodeArray(e.lens.topIds), probs = decodeArray(e.lens.topProbs);
    for (let l = 0; l < L; l++) {
      for (let p = from; p < to; p++) {
        const src = l * T + (p - s), dst = l * this.N + p; // (L, T) → (L, N)
        this.rank[dst] = rank[src];
        this.prob[dst] = prob[src];
        this.topIds.set(ids.subarray(src * K, (src + 1) * K), dst * K);
        this.topProbs.set(probs.subarray(src * K, (src + 1) * K), dst * K);
      }
    }
  }

  at(layer: number, t: number): LensEntry {
    const i = layer * this.N + t, K = this.K;
    const top = [];
    for (let k = 0; k < K; k++) if (Number.isFinite(this.topProbs[i * K + k])) top.push({ id: this.topIds[i * K + k], p: this.topProbs[i * K + k] });
    return { layer, rank: this.rank[i], prob: this.prob[i], top };
  }

  /** The first layer whose top `k` holds the actual next token (−1: none). */
  entryLayer(t: number, k = 5): number {
    for (let l = 0; l < this.L; l++) {
      const r = this.rank[l * this.N + t];
      if (r >= 1 && r <= k) return l;
    }
    return -1;
  }
}
