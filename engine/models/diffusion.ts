/**
 * The diffusion a-gpt families: `diffusion` (models/diffusion_gpt.py) and `adaptive_diffusion`
 * (a_diffusion_gpt.py: + per-head dynamic LoRA on V with a *bidirectional* hypernetwork).
 *
 * Block denoising: bidirectional attention (no mask); functional RMSNorm (no weight, eps = float32
 * epsilon) before attention, before the MLP, after the embeddings and at the end; q and k RMS-normed
 * after RoPE; squared-ReLU MLP; no biases anywhere; a learned timestep embedding (T_d + 1 rows,
 * t clamped to [0, T_d]) added to every position, then RMS-normed.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from '../protocol';
import type { BlockContext, BlockOutput } from './model';
import { applyRope, attention, linear, mergeHeads, reluSquared, rmsNorm } from './ops';
import { hyperForward } from './hyper';

export function embedDiffusion(ctx: BlockContext, ids: tf.Tensor2D, t: tf.Tensor1D | undefined, cfg: ModelConfig): tf.Tensor3D {
  const B = ids.shape[0];
  const steps = cfg.num_diffusion_steps ?? 32;
  const tt = t ? tf.clipByValue(t.toInt(), 0, steps) : tf.zeros([B], 'int32');
  const tok = ctx.embed('token_emb.weight', ids); // (B, T, C)
  const time = ctx.embed('time_emb.weight', tt.reshape([B, 1])); // (B, 1, C)
  return rmsNorm(tf.add(tok, time)) as tf.Tensor3D;
}

export function blockDiffusion(ctx: BlockContext, x: tf.Tensor3D, l: number, cfg: ModelConfig, wantInternals: boolean): BlockOutput {
  const P = (n: string) => ctx.param(`blocks.${l}.${n}`);
  const [B, T, C] = x.shape;
  const H = cfg.n_head, hs = C / H;
  const h = rmsNorm(x) as tf.Tensor3D;
  const heads = (w: string) => tf.transpose(linear(h, P(w)).reshape([B, T, H, hs]), [0, 2, 1, 3]); // (B, H, T, hs)
  const q = rmsNorm(applyRope(heads('attn.c_q.weight'), ctx.rope));
  const k = rmsNorm(applyRope(heads('attn.c_k.weight'), ctx.rope));
  const v0 = heads('attn.c_v.weight') as tf.Tensor4D;
  let v = v0;
  const hyper = cfg.hyper ? hyperForward(h, v, ctx.hyperParams(`blocks.${l}.attn`), cfg.hyper, null) : null;
  if (hyper) v = hyper.vNew;
  const g = B * H;
  const att = attention(q.reshape([g, T, hs]) as tf.Tensor3D, k.reshape([g, T, hs]) as tf.Tensor3D, v.reshape([g, T, hs]) as tf.Tensor3D, null);
  const x1 = tf.add(x, linear(mergeHeads(att.out, B, H), P('attn.c_proj.weight')));
  const m = linear(reluSquared(linear(rmsNorm(x1), P('mlp.c_fc.weight'))), P('mlp.c_proj.weight'));
  const out = tf.add(x1, m) as tf.Tensor3D;
  return { x: out, probs: wantInternals ? (att.probs.reshape([B, H, T, T]) as tf.Tensor4D) : null, hyper, v0 };
}

export function finalNormDiffusion(_ctx: BlockContext, x: tf.Tensor3D): tf.Tensor3D {
  return rmsNorm(x) as tf.Tensor3D;
}
