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
export function hyperForward(x: tf.Tensor3D, v: tf.Tensor4D, p: HyperParams, hc: HyperConfig, mask: tf.Tensor2D | null): HyperResult {
  const [B, T, C] = x.shape;
  const H = p.toA.length, D = C / H, nh = hc.n_heads, d = D / nh, r = hc.rank;
  let out: tf.Tensor = x.reshape([B * T, C]); // (B·T, H·D)
  for (let j = 0; j < p.inProj.length; j++) {
    const qkv = tf.add(mm(out as tf.Tensor2D, blockDiag(p.inProj[j])), tf.concat(p.inBias[j])); // (B·T, H·3D)
    // per head the 3D features are [q | k | v], each split into nh inner heads of width d
    const parts = tf.transpose(qkv.reshape([B, T, H, 3, nh, d]), [3, 0, 2, 4, 1, 5]).reshape([3, B * H * nh, T, d]);
    const [q, k, vv] = [0, 1, 2].map((i) => parts.slice([i, 0, 0, 0], [1, -1, -1, -1]).reshape([B * H * nh, T, d]) as tf.Tensor3D);
    const o = attention(q, k, vv, mask).out; // (B·H·nh, T, d)
    const merged = tf.transpose(o.reshape([B, H, nh, T, d]), [0, 3, 1, 2, 4]).reshape([B * T, C]); // (B·T, H·D)
    out = tf.add(mm(merged as tf.Tensor2D, blockDiag(p.outProj[j])), tf.concat(p.outBias[j]));
  }
  const ctx = tf.mean(out.reshape([B, T, C]), 1) as tf.Tensor2D; // (B, H·D) mean-pool over the whole window
  const A = mm(ctx, blockDiag(p.toA)).reshape([B, H, D, r]) as tf.Tensor4D; // to_A(ctx).view(B, D, r)
  const Bm = mm(ctx, blockDiag(p.toB)).reshape([B, H, r, D]) as tf.Tensor4D; // to_B(ctx).view(B, r, D)
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
