/**
 * The causal a-gpt families: `base` (models/base_gpt.py), `matched` (base_gpt_matched.py: the same
 * maths with more layers, parameter-matched to adaptive) and `adaptive` (a_gpt.py: GPT_Custom with a
 * HyperConfig — per-head dynamic LoRA on V). With no hypernetwork GPT_Custom *is* the base model, so
 * one block function serves all three.
 *
 * Pre-LN block: x + attn(LN1(x)), then x + MLP(LN2(x)); LayerNorm eps 1e-5; RoPE on q and k
 * (interleaved even/odd pairs, base 10000); causal softmax attention; tanh-GELU MLP (4C);
 * untied lm_head without bias.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from '../protocol';
import type { BlockContext, BlockOutput } from './model';
import { applyRope, attention, geluTanh, layerNorm, linear, mergeHeads } from './ops';
import { hyperForward } from './hyper';

/** Token embedding (B, T) → (B, T, C). */
export function embedCausal(ctx: BlockContext, ids: tf.Tensor2D): tf.Tensor3D {
  return ctx.embed('transformer.wte.weight', ids) as tf.Tensor3D;
}

export function blockCausal(ctx: BlockContext, x: tf.Tensor3D, l: number, cfg: ModelConfig, wantInternals: boolean): BlockOutput {
  const P = (n: string) => ctx.param(`transformer.h.${l}.${n}`);
  const [B, T, C] = x.shape;
  const H = cfg.n_head, hs = C / H;
  const h = layerNorm(x, P('ln_1.weight'), P('ln_1.bias')) as tf.Tensor3D;
  const qkv = linear(h, P('attn.c_attn.weight'), P('attn.c_attn.bias')); // (B, T, 3C)
  // (3, B·H, T, hs); slices stay rank 4 (the WebGPU Pad kernel behind a rank-5 slice's gradient emits invalid WGSL)
  const parts = tf.transpose(qkv.reshape([B, T, 3, H, hs]), [2, 0, 3, 1, 4]).reshape([3, B * H, T, hs]);
  const [q0, k0, v0] = [0, 1, 2].map((i) => parts.slice([i, 0, 0, 0], [1, -1, -1, -1]).reshape([B, H, T, hs]));
  const q = applyRope(q0, ctx.rope), k = applyRope(k0, ctx.rope);
  let v = v0 as tf.Tensor4D;
  const hyper = cfg.hyper ? hyperForward(h, v, ctx.hyperParams(`transformer.h.${l}.attn`), cfg.hyper, ctx.mask(T)) : null;
  if (hyper) v = hyper.vNew;
  const g = B * H;
  const att = attention(q.reshape([g, T, hs]) as tf.Tensor3D, k.reshape([g, T, hs]) as tf.Tensor3D, v.reshape([g, T, hs]) as tf.Tensor3D, ctx.mask(T));
  const y = linear(mergeHeads(att.out, B, H), P('attn.c_proj.weight'), P('attn.c_proj.bias'));
  const x1 = tf.add(x, y);
  const m = linear(geluTanh(linear(layerNorm(x1, P('ln_2.weight'), P('ln_2.bias')), P('mlp.c_fc.weight'), P('mlp.c_fc.bias'))), P('mlp.c_proj.weight'), P('mlp.c_proj.bias'));
  const out = tf.add(x1, m) as tf.Tensor3D;
  return { x: out, probs: wantInternals ? (att.probs.reshape([B, H, T, T]) as tf.Tensor4D) : null, hyper, v0: v0 as tf.Tensor4D };
}

/** Final LayerNorm before the output head. */
export function finalNormCausal(ctx: BlockContext, x: tf.Tensor3D): tf.Tensor3D {
  return layerNorm(x, ctx.param('transformer.ln_f.weight'), ctx.param('transformer.ln_f.bias')) as tf.Tensor3D;
}
