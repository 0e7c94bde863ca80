/**
 * Head roles as TransformerLens's head detector defines them (transformer_lens/head_detector.py):
 * a detection pattern per role over the (query, key) pairs of a window —
 *   previous-token: key = query − 1;
 *   duplicate-token: an earlier key with the query's token (the diagonal excluded);
 *   induction: the key right after an earlier occurrence of the query's token;
 * all lower-triangular — and the "mul" score Σ(A ⊙ P) / Σ A of a head's attention A (optionally with
 * attention to the first key and/or the diagonal zeroed first: exclude_bos, exclude_current_token).
 * Plus the standard induction test: a seeded random token sequence repeated twice, scored by the
 * mean attention from each token of the second half to the token after its first occurrence.
 */
import { halfToFloat } from '../codec';
import type { WindowLayer } from '../runtime/runner';

export const ROLES = ['previous', 'duplicate', 'induction'] as const;
export type Role = (typeof ROLES)[number];

/** Detection pattern (T × T, row = query) of a role for the window's token ids. */
export function detectionPattern(role: Role, ids: ArrayLike<number>): Uint8Array {
  const T = ids.length;
  const p = new Uint8Array(T * T);
  for (let q = 0; q < T; q++) {
    if (role === 'previous') {
      if (q > 0) p[q * T + q - 1] = 1;
      continue;
    }
    for (let j = 0; j < q; j++) {
      if (ids[j] !== ids[q]) continue;
      if (role === 'duplicate') p[q * T + j] = 1;
      else p[q * T + j + 1] = 1; // the key after the earlier occurrence (j + 1 ≤ q: lower-triangular)
    }
  }
  return p;
}

export interface ScoreOptions {
  excludeBos?: boolean;
  excludeCurrentToken?: boolean;
}

/** The "mul" score of one head: attention on the pattern's pairs over all its attention. */
export function patternScore(attn: ArrayLike<number>, pattern: Uint8Array, T: number, opts: ScoreOptions = {}): number {
  let hit = 0, total = 0;
  for (let q = 0; q < T; q++) {
    for (let k = 0; k <= q; k++) {
      if ((opts.excludeBos && k === 0) || (opts.excludeCurrentToken && k === q)) continue;
      const a = attn[q * T + k];
      total += a;
      if (pattern[q * T + k]) hit += a;
    }
  }
  return total > 0 ? hit / total : 0;
}

/** A layer's attention maps (H, T, T) as floats, from the device's float16 or float32. */
export function attentionOf(layer: WindowLayer): Float32Array | null {
  if (!layer.attn) return null;
  if ('float' in layer.attn) return layer.attn.float;
  const h = layer.attn.half, out = new Float32Array(h.length);
  for (let i = 0; i < h.length; i++) out[i] = halfToFloat(h[i]);
  return out;
}

/** Scores of every role for every head of one layer: role → (H). */
export function layerRoleScores(attn: Float32Array, ids: ArrayLike<number>, H: number, opts: ScoreOptions = {}): Record<Role, Float32Array> {
  const T = ids.length;
  const out = {} as Record<Role, Float32Array>;
  for (const role of ROLES) {
    const pattern = detectionPattern(role, ids);
    out[role] = Float32Array.from({ length: H }, (_, h) => patternScore(attn.subarray(h * T * T, (h + 1) * T * T), pattern, T, opts));
  }
  return out;
}

/** Accumulates role scores over windows (TransformerLens averages over sequences): (L·H) each. */
export class RoleAccumulator {
  private readonly sums: Record<Role, Float64Array>;
  private readonly counts: Uint32Array;

  constructor(readonly L: number, readonly H: number) {
    this.sums = Object.fromEntries(ROLES.map((r) => [r, new Float64Array(L * H)])) as Record<Role, Float64Array>;
    this.counts = new Uint32Array(L);
  }

  add(layer: number, scores: Record<Role, Float32Array>): void {
    for (const r of ROLES) for (let h = 0; h < this.H; h++) this.sums[r][layer * this.H + h] += scores[r][h];
    this.counts[layer]++;
  }

  result(): Record<Role, number[]> | null {
    if (!this.counts.some((c) => c > 0)) return null;
    return Object.fromEntries(ROLES.map((r) => [r, Array.from(this.sums[r], (s, i) => (this.counts[Math.floor(i / this.H)] ? s / this.counts[Math.floor(i / this.H)] : NaN))])) as Record<Role, number[]>;
  }
}

/** The induction test's sequence: n seeded random ids in [lo, hi), then the same n again. */
export function repeatedRandomTokens(n: number, lo: number, hi: number, seed = 42): Int32Array {
  let s = seed >>> 0;
  const rnd = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const half = Int32Array.from({ length: n }, () => lo + Math.floor(rnd() * (hi - lo)));
  return Int32Array.from([...half, ...half]);
}

/** Induction score of each head: mean attention from query i ≥ n to key i − n + 1. */
export function inductionScores(attn: Float32Array, n: number, H: number): Float32Array {
  const T = 2 * n;
  return Float32Array.from({ length: H }, (_, h) => {
    let s = 0;
    for (let i = n; i < T; i++) s += attn[h * T * T + i * T + (i - n + 1)];
    return s / n;
  });
}
