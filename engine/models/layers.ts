/**
 * Layers shared by the families, written once against the op interface (ops.ts): linear maps,
 * activations, masks built from positions, rotary embeddings (every layout the seeds use),
 * attention with its probabilities, head splitting and GQA.
 */
import type { Ops } from './ops';

/** float32 machine epsilon: what torch's F.rms_norm uses when eps=None. */
export const F32_EPS = 1.1920928955078125e-7;
export const LN_EPS = 1e-5;

/** y = x W + b over the last axis; `w` is stored transposed, (in, out). */
export function linear<T>(o: Ops<T>, x: T, w: T, b?: T | null): T {
  const y = o.matmul(x, w);
  return b ? o.add(y, b) : y;
}

/** nn.GELU(approximate="tanh") / HF gelu_new. x·x² instead of a power (Pow is slow on WASM). */
export function geluTanh<T>(o: Ops<T>, x: T): T {
  const inner = o.mul(Math.sqrt(2 / Math.PI), o.add(x, o.mul(0.044715, o.mul(o.square(x), x))));
  return o.mul(o.mul(0.5, x), o.add(1, o.tanh(inner)));
}

/** nn.GELU() (exact, erf). */
export function geluErf<T>(o: Ops<T>, x: T): T {
  return o.mul(o.mul(0.5, x), o.add(1, o.erf(o.mul(x, Math.SQRT1_2))));
}

export function reluSquared<T>(o: Ops<T>, x: T): T {
  return o.square(o.relu(x));
}

/** leaky_relu(x, slope)² (parameter-golf's MLP). */
export function leakyReluSquared<T>(o: Ops<T>, x: T, slope: number): T {
  // max(x, slope·x) for 0 < slope < 1: exactly F.leaky_relu, and differentiable (a select on a
  // comparison has no gradient in TensorFlow.js)
  return o.square(o.maximum(x, o.mul(x, slope)));
}

// ---------------------------------------------------------------------------------------------
// Masks from positions
// ---------------------------------------------------------------------------------------------

/**
 * Additive attention mask (T, T): 0 where query t may see key j, −∞ elsewhere. Causal: j ≤ t;
 * with a window w also t − j ≤ w (FlashAttention's inclusive left window: w + 1 keys).
 */
export function causalMask<T>(o: Ops<T>, positions: T, window?: number): T {
  const q = o.unsqueeze(positions, 1); // (T, 1)
  const k = o.unsqueeze(positions, 0); // (1, T)
  let allowed = o.lessEqual(k, q);
  if (window !== undefined && Number.isFinite(window)) allowed = o.and(allowed, o.lessEqual(o.sub(q, k), window));
  return o.where(allowed, 0, -Infinity);
}

/** Which keys each query may see, as 0/1 floats (for linear attention variants, e.g. HYLA). */
export function causalKeep<T>(o: Ops<T>, positions: T): T {
  return o.cast(o.lessEqual(o.unsqueeze(positions, 0), o.unsqueeze(positions, 1)), 'float32');
}

/** |t − k| as floats (T, T): the mean attended distance. */
export function distanceMatrix<T>(o: Ops<T>, positions: T): T {
  return o.cast(o.abs(o.sub(o.unsqueeze(positions, 1), o.unsqueeze(positions, 0))), 'float32');
}

// ---------------------------------------------------------------------------------------------
// Rotary embeddings: host tables + one formula for every layout
// ---------------------------------------------------------------------------------------------

/**
 * - `interleaved` (a-gpt): pairs (2i, 2i+1), out = x·cos + rot(x)·sin with rot(x)[2i] = −x[2i+1];
 * - `half` (autoresearch, parameter-golf): pairs (i, i + d/2) with their sign:
 *   out[i] = x[i]·cos + x[i+d/2]·sin, out[i+d/2] = −x[i]·sin + x[i+d/2]·cos (a rotation by −θ);
 * - `rotaryDims` < head width: only the first dims rotate (parameter-golf's partial RoPE);
 * - `bf16`: cos/sin rounded to bfloat16, as both of those codebases store them.
 */
export interface RopeSpec {
  layout: 'interleaved' | 'half';
  headDim: number;
  rotaryDims?: number;
  base?: number;
  bf16?: boolean;
  /** Table length: the longest sequence the model runs. */
  maxLen: number;
}

export interface RopeTables<T> {
  cos: T; // (T, hd) gathered at the positions
  sin: T;
  rot: T; // (hd, hd) signed permutation
}

/** Round a float32 to bfloat16 (nearest even) and back. */
export function toBf16(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  const bits = u[0];
  if ((bits & 0x7f800000) === 0x7f800000) return x;
  u[0] = ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 0) & 0xffff0000;
  return f[0];
}

/** Host tables (maxLen, hd) for cos, sin and the (hd, hd) rotation matrix (x @ rot). */
export function ropeHostTables(spec: RopeSpec): { cos: Float32Array; sin: Float32Array; rot: Float32Array } {
  const hd = spec.headDim, rd = spec.rotaryDims ?? hd, half = rd / 2, base = spec.base ?? 10000;
  if (rd % 2 !== 0 || rd > hd) throw new Error(`rotary dims ${rd} must be even and ≤ head width ${hd}`);
  const cos = new Float32Array(spec.maxLen * hd).fill(1);
  const sin = new Float32Array(spec.maxLen * hd);
  const round = spec.bf16 ? toBf16 : (v: number) => v;
  for (let i = 0; i < half; i++) {
    const invFreq = Math.fround(1 / Math.fround(Math.pow(base, Math.fround((2 * i) / rd))));
    for (let t = 0; t < spec.maxLen; t++) {
      const angle = Math.fround(t * invFreq);
      const c = round(Math.fround(Math.cos(angle))), s = round(Math.fround(Math.sin(angle)));
      const [a, b] = spec.layout === 'interleaved' ? [2 * i, 2 * i + 1] : [i, i + half];
      cos[t * hd + a] = c;
      cos[t * hd + b] = c;
      sin[t * hd + a] = s;
      sin[t * hd + b] = s;
    }
  }
  const rot = new Float32Array(hd * hd); // (x @ rot)[col] = Σ_row x[row]·rot[row, col]
  for (let i = 0; i < half; i++) {
    const [a, b] = spec.layout === 'interleaved' ? [2 * i, 2 * i + 1] : [i, i + half];
    if (spec.layout === 'interleaved') {
      rot[b * hd + a] = -1; // out[a] gets −x[b]
      rot[a * hd + b] = 1; // out[b] gets x[a]
    } else {
      rot[b * hd + a] = 1; // out[a] gets +x[b]·sin
      rot[a * hd + b] = -1; // out[b] gets −x[a]·sin
    }
  }
  return { cos, sin, rot };
}

/** Tables for the run's positions: gathered once per forward, shared by every layer. */
export function ropeTables<T>(o: Ops<T>, spec: RopeSpec, positions: T): RopeTables<T> {
  const host = ropeHostTables(spec);
  const hd = spec.headDim;
  return {
    cos: o.gather(o.constant(host.cos, [spec.maxLen, hd]), positions),
    sin: o.gather(o.constant(host.sin, [spec.maxLen, hd]), positions),
    rot: o.constant(host.rot, [hd, hd]),
  };
}

/** x (…, T, hd) rotated: x·cos + (x @ rot)·sin. */
export function applyRope<T>(o: Ops<T>, x: T, rope: RopeTables<T>): T {
  return o.add(o.mul(x, rope.cos), o.mul(o.matmul(x, rope.rot), rope.sin));
}

// ---------------------------------------------------------------------------------------------
// Heads and attention
// ---------------------------------------------------------------------------------------------

/** (B, T, H·d) → (B, H, T, d) */
export function splitHeads<T>(o: Ops<T>, x: T, heads: number): T {
  return o.transpose(o.reshape(x, [0, 0, heads, -1]), [0, 2, 1, 3]);
}

/** (B, H, T, d) → (B, T, H·d) */
export function mergeHeads<T>(o: Ops<T>, x: T): T {
  return o.reshape(o.transpose(x, [0, 2, 1, 3]), [0, 0, -1]);
}

/** GQA: (B, Hkv, T, d) → (B, H, T, d), query head h reading kv head h // (H / Hkv). */
export function repeatKv<T>(o: Ops<T>, x: T, heads: number, kvHeads: number): T {
  if (heads === kvHeads) return x;
  const g = heads / kvHeads;
  const parts: T[] = [];
  for (let j = 0; j < kvHeads; j++) {
    const one = o.slice(x, 1, j, j + 1);
    for (let r = 0; r < g; r++) parts.push(one);
  }
  return o.concat(parts, 1);
}

/** The kv head each query head reads. */
export function kvHeadOf(heads: number, kvHeads: number): number[] {
  return [...Array(heads).keys()].map((h) => Math.floor(h / (heads / kvHeads)));
}

/**
 * Softmax attention. q (…, Tq, d), k and v (…, Tk, d); mask additive (Tq, Tk) or null.
 * Returns the output (…, Tq, d) and the probabilities (…, Tq, Tk).
 */
export function attention<T>(o: Ops<T>, q: T, k: T, v: T, mask: T | null, scale: number): { out: T; probs: T } {
  const rank = o.shape(k).length;
  const perm = [...Array(rank).keys()];
  [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1], perm[rank - 2]];
  let scores = o.mul(o.matmul(q, o.transpose(k, perm)), scale);
  if (mask) scores = o.add(scores, mask);
  const probs = o.softmax(scores);
  return { out: o.matmul(probs, v), probs };
}
