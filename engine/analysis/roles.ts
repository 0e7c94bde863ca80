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

/** A layer's attention maps (H, T, T) as the device gave them: float16 bits or float32. */
export function attentionOf(layer: WindowLayer): Float32Array | Uint16Array | null {
  if (!layer.attn) return null;
  return 'float' in layer.attn ? layer.attn.float : layer.attn.half;
}

/** A layer's attention maps as floats (decoded from float16 when the device sent those). */
export function attentionFloatsOf(layer: WindowLayer): Float32Array | null {
  const a = attentionOf(layer);
  if (!(a instanceof Uint16Array)) return a;
  const lut = halves(), out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = lut[a[i]];
  return out;
}

let halfTable: Float32Array | null = null;
/** Every float16 bit pattern's value (decoding by lookup). */
function halves(): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) halfTable[i] = halfToFloat(i);
  }
  return halfTable;
}

/** The pairs (flat q·T + k, ascending) where a role's detection pattern is 1: the same as detectionPattern, sparse. */
export function detectionPairs(role: Role, ids: ArrayLike<number>): Int32Array {
  const T = ids.length;
  if (role === 'previous') return Int32Array.from({ length: Math.max(0, T - 1) }, (_, i) => (i + 1) * T + i);
  const out: number[] = [];
  const seen = new Map<number, number[]>(); // id → its earlier positions, ascending
  for (let q = 0; q < T; q++) {
    const earlier = seen.get(ids[q]);
    if (earlier) for (const j of earlier) out.push(q * T + (role === 'duplicate' ? j : j + 1));
    if (earlier) earlier.push(q);
    else seen.set(ids[q], [q]);
  }
  return Int32Array.from(out);
}

/**
 * Scores of every role for every head of one layer: role → (H). The same sums in the same order as
 * patternScore over detectionPattern, without the dense patterns: one pass over the lower triangle
 * for the total (shared by the roles), the pattern's pairs for the hits.
 */
export function layerRoleScores(attn: Float32Array | Uint16Array, ids: ArrayLike<number>, H: number, opts: ScoreOptions = {}): Record<Role, Float32Array> {
  const T = ids.length, TT = T * T;
  const lut = attn instanceof Uint16Array ? halves() : null;
  const at = (i: number) => (lut ? lut[attn[i]] : attn[i]);
  const pairs = ROLES.map((role) => detectionPairs(role, ids));
  const out = Object.fromEntries(ROLES.map((r) => [r, new Float32Array(H)])) as Record<Role, Float32Array>;
  const k0 = opts.excludeBos ? 1 : 0;
  for (let h = 0; h < H; h++) {
    const base = h * TT;
    let total = 0;
    for (let q = 0; q < T; q++) {
      const row = base + q * T, last = opts.excludeCurrentToken ? q - 1 : q;
      if (lut) for (let k = k0; k <= last; k++) total += lut[attn[row + k]];
      else for (let k = k0; k <= last; k++) total += attn[row + k];
    }
    ROLES.forEach((role, r) => {
      let hit = 0;
      for (const i of pairs[r]) {
        const q = (i / T) | 0, k = i - q * T;
        if ((opts.excludeBos && k === 0) || (opts.excludeCurrentToken && k === q)) continue;
        hit += at(base + i);
      }
      out[role][h] = total > 0 ? hit / total : 0;
    });
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
