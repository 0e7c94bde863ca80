/**
 * Building blocks shared by every family, written for the WASM backend's traps (TFJS.md):
 * - only an untransposed 2-D matMul reaches XNNPACK: weights are held pre-transposed ([in, out]),
 *   backward passes transpose explicitly, batched products are split into 2-D calls;
 * - `split` on the last axis and `Exp` on big tensors are slow: RoPE is a multiply by a fixed
 *   signed permutation, cross-entropy is built on `softmax` with a hand-written gradient;
 * - `UnsortedSegmentSum` is missing: the embedding gradient goes through `scatterND`;
 * - `oneHot(…, 'float32')` is wrong: cast an int32 oneHot instead.
 * On other backends the same maths runs with their native kernels.
 */
import * as tf from '@tensorflow/tfjs-core';

/** float32 machine epsilon: what torch's F.rms_norm uses when eps=None. */
export const F32_EPS = 1.1920928955078125e-7;
export const LN_EPS = 1e-5;

const splitBackends = new Set(['wasm', 'cpu']);
/** True where batched/transposed matMuls fall off the fast path and must be split into 2-D calls. */
export function wantsSplitMatmul(): boolean {
  return splitBackends.has(tf.getBackend());
}

/** (M, K) @ (K, N) with a gradient that transposes explicitly (fast on WASM). */
/** tf.customGrad with a typed signature (its own typing cannot express the trailing `save`). */
function customGrad<F>(f: (...args: never[]) => { value: tf.Tensor; gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor | tf.Tensor[] }): F {
  return tf.customGrad(f as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as F;
}

export const mm = customGrad<(a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor2D>((a: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
  save([a, b]);
  return {
    value: tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sa, sb] = saved as tf.Tensor2D[];
      return [tf.matMul(dy as tf.Tensor2D, tf.transpose(sb)), tf.matMul(tf.transpose(sa), dy as tf.Tensor2D)];
    },
  };
});

/** y = x W + b over the last axis; `wT` is the PyTorch weight transposed, shape (in, out). */
export function linear(x: tf.Tensor, wT: tf.Tensor, b?: tf.Tensor): tf.Tensor {
  const shape = x.shape;
  const inDim = shape[shape.length - 1];
  const outDim = wT.shape[1] as number;
  const x2 = x.reshape([-1, inDim]) as tf.Tensor2D; // (N, in)
  let y: tf.Tensor = mm(x2, wT as tf.Tensor2D); // (N, out)
  if (b) y = tf.add(y, b);
  return y.reshape([...shape.slice(0, -1), outDim]);
}

/** Batched (G, M, K) @ (G, K, N). Split into G 2-D products where the backend needs it. */
export function bmm(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D {
  const g = a.shape[0];
  if (!wantsSplitMatmul()) return tf.matMul(a, b);
  if (g === 1) return mm(a.reshape([a.shape[1], a.shape[2]]), b.reshape([b.shape[1], b.shape[2]])).expandDims(0) as tf.Tensor3D;
  const outs: tf.Tensor2D[] = [];
  for (let i = 0; i < g; i++) {
    const ai = a.slice([i, 0, 0], [1, -1, -1]).reshape([a.shape[1], a.shape[2]]) as tf.Tensor2D;
    const bi = b.slice([i, 0, 0], [1, -1, -1]).reshape([b.shape[1], b.shape[2]]) as tf.Tensor2D;
    outs.push(mm(ai, bi));
  }
  return tf.stack(outs) as tf.Tensor3D;
}

/** Swap the last two axes explicitly (a real copy, so the following matMul stays untransposed). */
export function transposeLast2(x: tf.Tensor): tf.Tensor {
  const r = x.rank;
  const perm = [...Array(r).keys()];
  [perm[r - 2], perm[r - 1]] = [perm[r - 1], perm[r - 2]];
  return tf.transpose(x, perm);
}

/** nn.LayerNorm over the last axis (biased variance, eps 1e-5, as PyTorch). */
export function layerNorm(x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor, eps = LN_EPS): tf.Tensor {
  const { mean, variance } = tf.moments(x, -1, true);
  return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps))), weight), bias);
}

/** Functional F.rms_norm(x, (C,)) without weight; eps = float32 epsilon as torch uses for eps=None. */
export function rmsNorm(x: tf.Tensor, eps = F32_EPS): tf.Tensor {
  return tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), eps)));
}

/** nn.GELU(approximate="tanh"). */
export function geluTanh(x: tf.Tensor): tf.Tensor {
  const c = Math.sqrt(2 / Math.PI);
  const inner = tf.mul(c, tf.add(x, tf.mul(0.044715, tf.mul(tf.square(x), x)))); // x·x² (Pow is slow on WASM)
  return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)));
}

/** Squared ReLU of the diffusion MLP. */
export function reluSquared(x: tf.Tensor): tf.Tensor {
  return tf.square(tf.relu(x));
}

// ---------------------------------------------------------------------------------------------
// RoPE (a-gpt build_rope_cache + apply_rotary_emb: interleaved even/odd pairs, base 10000)
// ---------------------------------------------------------------------------------------------

export interface RopeTables {
  cos: tf.Tensor2D; // (T, hs): cos θ_i(t) at both 2i and 2i+1
  sin: tf.Tensor2D; // (T, hs)
  rot: tf.Tensor2D; // (hs, hs): (x·rot)[2i] = −x[2i+1], (x·rot)[2i+1] = x[2i]
}

/** Tables for positions [0, T). Angles in float32 like torch.outer on float32 positions. */
export function ropeTables(T: number, headDim: number, base = 10000): RopeTables {
  if (headDim % 2 !== 0) throw new Error(`RoPE needs an even head width, got ${headDim}`);
  const half = headDim / 2;
  const cos = new Float32Array(T * headDim);
  const sin = new Float32Array(T * headDim);
  const f = new Float32Array(1);
  for (let i = 0; i < half; i++) {
    f[0] = (2 * i) / headDim;
    const expo = f[0];
    f[0] = 1 / Math.fround(Math.pow(base, expo));
    const invFreq = f[0];
    for (let t = 0; t < T; t++) {
      const angle = Math.fround(t * invFreq);
      const c = Math.cos(angle), s = Math.sin(angle);
      cos[t * headDim + 2 * i] = c;
      cos[t * headDim + 2 * i + 1] = c;
      sin[t * headDim + 2 * i] = s;
      sin[t * headDim + 2 * i + 1] = s;
    }
  }
  const rot = new Float32Array(headDim * headDim);
  for (let i = 0; i < half; i++) {
    rot[(2 * i + 1) * headDim + 2 * i] = -1; // out[2i] gets −x[2i+1]
    rot[2 * i * headDim + 2 * i + 1] = 1; // out[2i+1] gets x[2i]
  }
  return {
    cos: tf.tensor2d(cos, [T, headDim]),
    sin: tf.tensor2d(sin, [T, headDim]),
    rot: tf.tensor2d(rot, [headDim, headDim]),
  };
}

/** x (..., T, hs) rotated: x·cos + (x·rot)·sin. */
export function applyRope(x: tf.Tensor, rope: RopeTables): tf.Tensor {
  const s = x.shape;
  const T = s[s.length - 2], hs = s[s.length - 1];
  const cos = rope.cos.slice([0, 0], [T, hs]);
  const sin = rope.sin.slice([0, 0], [T, hs]);
  const swapped = mm(x.reshape([-1, hs]) as tf.Tensor2D, rope.rot).reshape(s);
  return tf.add(tf.mul(x, cos), tf.mul(swapped, sin));
}

// ---------------------------------------------------------------------------------------------
// Attention
// ---------------------------------------------------------------------------------------------

/** (T, T) additive mask: 0 on and below the diagonal, −∞ above (PyTorch's causal masks). */
export function causalMask(T: number): tf.Tensor2D {
  const m = new Float32Array(T * T);
  for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) m[i * T + j] = -Infinity;
  return tf.tensor2d(m, [T, T]);
}

/**
 * Scaled dot-product attention. q, k, v: (G, T, d) with G = batch × heads.
 * Returns the output (G, T, d) and the probabilities (G, T, T).
 */
export function attention(q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D, mask: tf.Tensor2D | null): { out: tf.Tensor3D; probs: tf.Tensor3D } {
  const d = q.shape[2];
  let scores: tf.Tensor = tf.mul(bmm(q, transposeLast2(k) as tf.Tensor3D), 1 / Math.sqrt(d)); // (G, T, T)
  if (mask) scores = tf.add(scores, mask);
  const probs = tf.softmax(scores) as tf.Tensor3D;
  return { out: bmm(probs, v), probs };
}

/** (B, T, H·d) → (B·H, T, d) */
export function splitHeads(x: tf.Tensor, heads: number): tf.Tensor3D {
  const [B, T, C] = x.shape;
  const d = C / heads;
  return tf.transpose(x.reshape([B, T, heads, d]), [0, 2, 1, 3]).reshape([B * heads, T, d]) as tf.Tensor3D;
}

/** (B·H, T, d) → (B, T, H·d) */
export function mergeHeads(x: tf.Tensor, B: number, heads: number): tf.Tensor3D {
  const [, T, d] = x.shape;
  return tf.transpose(x.reshape([B, heads, T, d]), [0, 2, 1, 3]).reshape([B, T, heads * d]) as tf.Tensor3D;
}

/** Block-diagonal matrix from H blocks (rows_h, cols_h): one 2-D matMul serves every head at once. */
export function blockDiag(blocks: tf.Tensor2D[]): tf.Tensor2D {
  if (blocks.length === 1) return blocks[0];
  const totalCols = blocks.reduce((s, b) => s + b.shape[1], 0);
  let col = 0;
  const rows = blocks.map((b) => {
    const left = col, right = totalCols - col - b.shape[1];
    col += b.shape[1];
    const parts: tf.Tensor2D[] = [];
    if (left) parts.push(tf.zeros([b.shape[0], left]));
    parts.push(b);
    if (right) parts.push(tf.zeros([b.shape[0], right]));
    return tf.concat(parts, 1);
  });
  return tf.concat(rows, 0) as tf.Tensor2D;
}

// ---------------------------------------------------------------------------------------------
// Embedding and the chunked output head + cross-entropy
// ---------------------------------------------------------------------------------------------

/** table[ids] with a gradient through scatterND (sums duplicate ids; WASM lacks UnsortedSegmentSum). */
export const embed = customGrad<(table: tf.Tensor2D, ids: tf.Tensor) => tf.Tensor>((table: tf.Tensor, ids: tf.Tensor, save: tf.GradSaveFunc) => {
  const [V, C] = table.shape as [number, number];
  const flat = ids.flatten() as tf.Tensor1D;
  save([flat]);
  const value = tf.gather(table, flat).reshape([...ids.shape, C]);
  return {
    value,
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const idx = (saved[0] as tf.Tensor1D).expandDims(1) as tf.Tensor2D;
      const g = tf.scatterND(idx, dy.reshape([-1, C]), [V, C]);
      return [g, tf.zerosLike(ids)];
    },
  };
});

/**
 * Rows per chunk of the output head: a (rows, V) block of ≈ 128 MB. Fewer, larger chunks are
 * faster on WASM — every matMul against the (V, C) weight re-packs all of it (measured: 166-row
 * chunks spent 0.86 s of a 3.5 s training micro-batch in dH products alone).
 */
export function headChunkRows(vocab: number): number {
  return Math.max(16, Math.floor((32 * 1024 * 1024) / vocab));
}

/**
 * Per-row cross-entropy from logits (R, V) without `exp` over the block: with p = softmax(l),
 * m = max l and p_max = max p = 1/Σexp(l−m):  −log p_t = m − l_t − log p_max (exact, no underflow).
 */
export function crossEntropyRows(logits: tf.Tensor2D, targets: tf.Tensor1D): { ce: tf.Tensor1D; probs: tf.Tensor2D } {
  const probs = tf.softmax(logits) as tf.Tensor2D;
  const m = tf.max(logits, 1);
  const pMax = tf.max(probs, 1);
  const lt = gatherRows(logits, targets);
  return { ce: tf.sub(tf.sub(m, lt), tf.log(pMax)) as tf.Tensor1D, probs };
}

/** x[i, idx[i]] for each row. */
export function gatherRows(x: tf.Tensor2D, idx: tf.Tensor1D): tf.Tensor1D {
  const R = x.shape[0];
  const rows = tf.range(0, R, 1, 'int32');
  const pairs = tf.stack([rows, idx.toInt()], 1) as tf.Tensor2D;
  return tf.gatherND(x, pairs) as tf.Tensor1D;
}

/** oneHot as float32, via int32 (the float32 oneHot kernel is wrong on WASM). */
export function oneHotF32(idx: tf.Tensor1D, depth: number): tf.Tensor2D {
  return tf.cast(tf.oneHot(idx.toInt(), depth), 'float32') as tf.Tensor2D;
}

/**
 * Weighted mean cross-entropy of `hidden @ wT` against `targets`: Σ w_i·CE_i with weights `w`
 * (1/N for a plain mean; mask/Σmask for diffusion). The (N, V) logits are never held at once:
 * forward walks row chunks and computes the gradient at the same time (the loss is a scalar,
 * so dL/dlogits = w_i·(p − onehot) is known in the forward), stashing dh and dW for backward.
 */
export const chunkedHeadLoss = customGrad<(hidden: tf.Tensor2D, wT: tf.Tensor2D, targets: tf.Tensor1D, weights: tf.Tensor1D) => tf.Scalar>((hidden: tf.Tensor, wT: tf.Tensor, targets: tf.Tensor, weights: tf.Tensor, save: tf.GradSaveFunc) => {
  const h = hidden as tf.Tensor2D, w = wT as tf.Tensor2D;
  const N = h.shape[0], V = w.shape[1];
  const rows = headChunkRows(V);
  let loss = tf.scalar(0);
  let dW = tf.zerosLike(w) as tf.Tensor2D;
  const dhParts: tf.Tensor[] = [];
  const wVC = tf.transpose(w) as tf.Tensor2D; // (V, C), once for every chunk
  for (let r0 = 0; r0 < N; r0 += rows) {
    const n = Math.min(rows, N - r0);
    const [l2, dW2, dh] = tf.tidy(() => {
      const hc = h.slice([r0, 0], [n, -1]) as tf.Tensor2D;
      const tc = (targets as tf.Tensor1D).slice([r0], [n]);
      const wc = (weights as tf.Tensor1D).slice([r0], [n]);
      const logits = tf.matMul(hc, w) as tf.Tensor2D;
      const { ce, probs } = crossEntropyRows(logits, tc);
      const g = tf.mul(tf.sub(probs, oneHotF32(tc, V)), wc.expandDims(1)) as tf.Tensor2D; // dL/dlogits
      return [tf.add(loss, tf.sum(tf.mul(ce, wc))), tf.add(dW, tf.matMul(tf.transpose(hc), g)), tf.matMul(g, wVC)];
    });
    loss.dispose();
    dW.dispose();
    loss = l2 as tf.Scalar;
    dW = dW2 as tf.Tensor2D;
    dhParts.push(dh);
  }
  wVC.dispose();
  const dH = dhParts.length === 1 ? dhParts[0] : tf.concat(dhParts, 0);
  // The forward runs inside a tidy: `save` keeps dH and dW alive until backprop (only when taping).
  save([dH, dW]);
  return {
    value: loss,
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [tf.mul(saved[0], dy), tf.mul(saved[1], dy), tf.zerosLike(targets), tf.zerosLike(weights)],
  };
});

/** The same loss without gradients (evaluation): chunked, nothing stashed. */
export function chunkedHeadLossNoGrad(h: tf.Tensor2D, w: tf.Tensor2D, targets: tf.Tensor1D, weights: tf.Tensor1D): tf.Scalar {
  const N = h.shape[0], V = w.shape[1];
  const rows = headChunkRows(V);
  let loss = tf.scalar(0);
  for (let r0 = 0; r0 < N; r0 += rows) {
    const n = Math.min(rows, N - r0);
    const next = tf.tidy(() => {
      const { ce } = crossEntropyRows(tf.matMul(h.slice([r0, 0], [n, -1]) as tf.Tensor2D, w), targets.slice([r0], [n]));
      return tf.add(loss, tf.sum(tf.mul(ce, weights.slice([r0], [n]))));
    });
    loss.dispose();
    loss = next as tf.Scalar;
  }
  return loss;
}
