/**
 * a-gpt's TinyHeadTransformer (models/a_gpt.py, a_diffusion_gpt.py), batched over the heads of a
 * layer. Per head h: n_layers stacked nn.MultiheadAttention(D, n_heads) with in_proj/out_proj
 * biases, no residual and no norm, causal mask in `adaptive` and none in `adaptive_diffusion`;
 * mean-pool over T; to_A / to_B → A (D×r), B (r×D); the head's values become v + (alpha/r)·v A B.
 *
 * The reference loops over heads in Python. Here every head of a layer runs in one computation:
 * the per-head weights form block-diagonal matrices, so the residual slice x (B·T, H·D) goes
 * through one 2-D matMul per projection (the fast path on WASM, one dispatch on a GPU).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { HyperConfig } from '../protocol';
import { attention, bmm, blockDiag, mm } from './ops';

export interface HyperParams {
  /** [layer j][head h] transposed in_proj (D, 3D), in_proj bias (3D), out_proj (D, D), bias (D). */
  inProj: tf.Tensor2D[][];
  inBias: tf.Tensor1D[][];
  outProj: tf.Tensor2D[][];
  outBias: tf.Tensor1D[][];
  /** [head h] transposed to_A (D, D·r) and to_B (D, r·D). */
  toA: tf.Tensor2D[];
  toB: tf.Tensor2D[];
}

/**
 * Block-diagonal in_proj for all heads with its columns grouped by part: [q_0 … q_H | k_0 … | v_0 …]
 * (each head's transposed in_proj is (D, 3D) with columns [q | k | v]).
 */
function partsBlockDiag(inProj: tf.Tensor2D[], D: number): tf.Tensor2D {
  return tf.concat([0, 1, 2].map((part) => blockDiag(inProj.map((w) => w.slice([0, part * D], [-1, D]) as tf.Tensor2D))), 1) as tf.Tensor2D;
}

/** The in_proj biases in the same column order as `partsBlockDiag`. */
function partsConcat(inBias: tf.Tensor1D[], D: number): tf.Tensor1D {
  return tf.concat([0, 1, 2].flatMap((part) => inBias.map((b) => b.slice([part * D], [D])))) as tf.Tensor1D;
}

export interface HyperResult {
  vNew: tf.Tensor4D; // (B, H, T, D)
  A: tf.Tensor4D; // (B, H, D, r)
  B: tf.Tensor4D; // (B, H, r, D)
  delta: tf.Tensor4D; // (B, H, T, D) = v A B (before scaling)
  scale: number;
}

/**
 * x: (B, T, H·D) the attention input (x_heads is its per-head view); v: (B, H, T, D) values.
 * mask: (T, T) additive causal mask or null (bidirectional).
 */
export function hyperForward(
  x: tf.Tensor3D,
  v: tf.Tensor4D,
  p: HyperParams,
  hc: HyperConfig,
  mask: tf.Tensor2D | null,
): HyperResult {
  const [B, T, C] = x.shape;
  const H = p.toA.length, D = C / H, nh = hc.n_heads, d = D / nh, r = hc.rank;
  let out: tf.Tensor = x.reshape([B * T, C]); // (B·T, H·D)
  const G = H * nh; // inner attention groups per sequence
  for (let j = 0; j < p.inProj.length; j++) {
    // columns ordered [q of every head | k of every head | v of every head], each (head, inner head, d)
    const qkv = tf.add(mm(out as tf.Tensor2D, partsBlockDiag(p.inProj[j], D)), partsConcat(p.inBias[j], D)); // (B·T, 3·G·d)
    // rank-4 transpose (rank 6 is ~20× slower on WASM): (B, T, 3G, d) → (3G, B, T, d); groups are (part, head, inner, batch)
    const parts = tf.transpose(qkv.reshape([B, T, 3 * G, d]), [2, 0, 1, 3]).reshape([3, G * B, T, d]);
    const [q, k, vv] = [0, 1, 2].map((i) => parts.slice([i, 0, 0, 0], [1, -1, -1, -1]).reshape([G * B, T, d]) as tf.Tensor3D);
    const o = attention(q, k, vv, mask).out; // (G·B, T, d)
    const merged = tf.transpose(o.reshape([G, B, T, d]), [1, 2, 0, 3]).reshape([B * T, C]); // (B·T, H·D), features (head, inner, d)
    out = tf.add(mm(merged as tf.Tensor2D, blockDiag(p.outProj[j])), tf.concat(p.outBias[j]));
  }
  // (B, H, D, 1): a-gpt mean-pools over the whole window (so in the causal model a token's value
  // update depends on later tokens: the causality audit measures it)
  const ctx = tf.mean(out.reshape([B, T, C]), 1).reshape([B, H, D, 1]);
  // to_A / to_B per head on one pooled vector: a broadcast multiply-and-sum (a (1, D)·(D, D·r) matMul
  // per head would spend its time packing the weights).
  const A = tf.sum(tf.mul(ctx, tf.stack(p.toA)), 2).reshape([B, H, D, r]) as tf.Tensor4D; // to_A(ctx).view(B, D, r)
  const Bm = tf.sum(tf.mul(ctx, tf.stack(p.toB)), 2).reshape([B, H, r, D]) as tf.Tensor4D; // to_B(ctx).view(B, r, D)
  const scale = hc.alpha / Math.max(1, r);
  const v3 = v.reshape([B * H, T, D]) as tf.Tensor3D;
  const delta = bmm(bmm(v3, A.reshape([B * H, D, r]) as tf.Tensor3D), Bm.reshape([B * H, r, D]) as tf.Tensor3D).reshape([B, H, T, D]) as tf.Tensor4D;
  const vNew = tf.add(v, tf.mul(delta, scale)) as tf.Tensor4D;
  return { vNew, A, B: Bm, delta, scale };
}

/** (alpha/r)·‖A B‖_F per (batch, head), (alpha/r)·‖v_t A B‖₂ and ‖v_t‖₂ per token. */
export function loraMetrics(res: HyperResult, v: tf.Tensor4D): { loraFro: tf.Tensor2D; loraTok: tf.Tensor3D; vNorm: tf.Tensor3D } {
  const [B, H, D, r] = res.A.shape;
  const AB = bmm(res.A.reshape([B * H, D, r]) as tf.Tensor3D, res.B.reshape([B * H, r, D]) as tf.Tensor3D); // (B·H, D, D)
  const loraFro = tf.mul(tf.sqrt(tf.sum(tf.square(AB), [1, 2])), res.scale).reshape([B, H]) as tf.Tensor2D;
  const loraTok = tf.mul(tf.norm(res.delta, 'euclidean', -1), res.scale) as tf.Tensor3D;
  const vNorm = tf.norm(v, 'euclidean', -1) as tf.Tensor3D;
  return { loraFro, loraTok, vNorm };
}
