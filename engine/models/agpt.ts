/**
 * The a-gpt families (REDDITARUN/a-gpt models/*.py, commit 4ebdae6), exactly as the authors wrote them:
 *
 * - `base` (base_gpt.py), `matched` (base_gpt_matched.py: more layers), `adaptive` (a_gpt.py:
 *   GPT_Custom with a HyperConfig). Pre-LN block x + attn(LN1(x)), x + MLP(LN2(x)); LayerNorm eps
 *   1e-5; RoPE on q and k (interleaved pairs, base 10000); causal softmax attention; tanh-GELU MLP
 *   (4C); untied lm_head without bias.
 * - `diffusion` (diffusion_gpt.py), `adaptive_diffusion` (a_diffusion_gpt.py): bidirectional
 *   denoiser; weightless RMSNorm (eps = float32 eps) before attention, before the MLP, after the
 *   embeddings and at the end; q and k RMS-normed after RoPE; squared-ReLU MLP; no biases; a learned
 *   timestep embedding (T_d + 1 rows, t clamped to [0, T_d]) added to every position.
 * - The adaptive families' hypernetwork (`hyper_v`): per layer and head a TinyHeadTransformer —
 *   n_layers stacked nn.MultiheadAttention(D, n_heads) with in/out projection biases, no residual,
 *   no norm, causal in `adaptive` and bidirectional in `adaptive_diffusion` — mean-pooled over the
 *   window, then to_A / to_B give A (D×r), B (r×D) and the head's values become v + (α/r)·v A B.
 *   Mean pooling covers the whole window, so in the causal model a token's update depends on later
 *   tokens: the causality audit measures it.
 *
 * Every head (and inner head) of a layer runs in one batched product: the reference loops in Python.
 */
import type { ModelConfig, HyperConfig } from '../protocol';
import type { HostTensor } from '../io/tensor';
import type { Ops } from './ops';
import { type FamilyDef, type ForwardInputs, type LayerOut, type ParamSpec, type Program, adaptiveOffOf, interveneHeads } from './family';
import { type LayerModule, withAdapter } from '../ttt/adapters';
import { F32_EPS, LN_EPS, applyRope, attention, causalMask, geluTanh, linear, mergeHeads, reluSquared, ropeTables, splitHeads } from './layers';
import { signalsOf } from './signals';
import { isDiffusion, headDim, agptKeys, inferConfig, mergeLayers, defaultConfig } from './config';
import type { RawCheckpoint, RawConfig, FamilyCheckpoint } from '../io/checkpoint';
import { BadInputError } from '../errors';
import { agptInitialWeights } from './init';

/** Ordered parameters (PyTorch `model.parameters()` order). */
export function agptParameters(c: ModelConfig): ParamSpec[] {
  const C = c.n_embd, V = c.vocab_size, D = headDim(c);
  const out: ParamSpec[] = [];
  const lin = (name: string, shape: number[]) => out.push({ name, shape, linear: true });
  const vec = (name: string, shape: number[]) => out.push({ name, shape });
  const hyper = (prefix: string) => {
    if (!c.hyper) return;
    const r = c.hyper.rank;
    for (let h = 0; h < c.n_head; h++) {
      const p = `${prefix}.hyper_v.${h}`;
      for (let j = 0; j < c.hyper.n_layers; j++) {
        lin(`${p}.layers.${j}.in_proj_weight`, [3 * D, D]);
        vec(`${p}.layers.${j}.in_proj_bias`, [3 * D]);
        lin(`${p}.layers.${j}.out_proj.weight`, [D, D]);
        vec(`${p}.layers.${j}.out_proj.bias`, [D]);
      }
      lin(`${p}.to_A.weight`, [D * r, D]);
      lin(`${p}.to_B.weight`, [r * D, D]);
    }
  };
  if (isDiffusion(c.family)) {
    vec('token_emb.weight', [V, C]);
    vec('time_emb.weight', [(c.num_diffusion_steps ?? 32) + 1, C]);
    for (let l = 0; l < c.n_layer; l++) {
      const a = `blocks.${l}.attn`;
      for (const n of ['c_q', 'c_k', 'c_v', 'c_proj']) lin(`${a}.${n}.weight`, [C, C]);
      hyper(a);
      lin(`blocks.${l}.mlp.c_fc.weight`, [4 * C, C]);
      lin(`blocks.${l}.mlp.c_proj.weight`, [C, 4 * C]);
    }
    lin('lm_head.weight', [V, C]);
    return out;
  }
  vec('transformer.wte.weight', [V, C]);
  for (let l = 0; l < c.n_layer; l++) {
    const b = `transformer.h.${l}`;
    vec(`${b}.ln_1.weight`, [C]);
    vec(`${b}.ln_1.bias`, [C]);
    lin(`${b}.attn.c_attn.weight`, [3 * C, C]);
    vec(`${b}.attn.c_attn.bias`, [3 * C]);
    lin(`${b}.attn.c_proj.weight`, [C, C]);
    vec(`${b}.attn.c_proj.bias`, [C]);
    hyper(`${b}.attn`);
    vec(`${b}.ln_2.weight`, [C]);
    vec(`${b}.ln_2.bias`, [C]);
    lin(`${b}.mlp.c_fc.weight`, [4 * C, C]);
    vec(`${b}.mlp.c_fc.bias`, [4 * C]);
    lin(`${b}.mlp.c_proj.weight`, [C, 4 * C]);
    vec(`${b}.mlp.c_proj.bias`, [C]);
  }
  vec('transformer.ln_f.weight', [C]);
  vec('transformer.ln_f.bias', [C]);
  lin('lm_head.weight', [V, C]);
  return out;
}

// ---------------------------------------------------------------------------------------------
// The hypernetwork
// ---------------------------------------------------------------------------------------------

export interface HyperOut<T> {
  vNew: T; // (B, H, T, D)
  A: T; // (B, H, D, r)
  B: T; // (B, H, r, D)
  delta: T; // (B, H, T, D) = v A B, unscaled
  scale: number;
}

/**
 * x: (B, T, H·D) the attention input; v: (B, H, T, D). Inner attention groups are ordered
 * (inner head i, head h) → i·H + h, so the groups of inner head i are one contiguous block.
 */
export function hyperForward<T>(o: Ops<T>, x: T, v: T, prefix: string, H: number, hc: HyperConfig, causal: T | null, off: T | null): HyperOut<T> {
  const D = (o.shape(v)[3] as number), nh = hc.n_heads, d = D / nh, r = hc.rank;
  const P = (h: number, n: string) => o.param(`${prefix}.hyper_v.${h}.${n}`);
  const heads = [...Array(H).keys()], inner = [...Array(nh).keys()];
  let hs = splitHeads(o, x, H); // (B, H, T, D)
  for (let j = 0; j < hc.n_layers; j++) {
    // per (inner head, head) the in_proj columns of its q / k / v part, stacked (G, D, d)
    const w = (part: number) => o.concat(inner.flatMap((i) => heads.map((h) => o.unsqueeze(o.slice(P(h, `layers.${j}.in_proj_weight`), 1, part * D + i * d, part * D + (i + 1) * d), 0))), 0);
    const b = (part: number) => o.concat(inner.flatMap((i) => heads.map((h) => o.reshape(o.slice(P(h, `layers.${j}.in_proj_bias`), 0, part * D + i * d, part * D + (i + 1) * d), [1, 1, d]))), 0);
    const xg = o.concat(inner.map(() => hs), 1); // (B, G, T, D)
    const [q, k, vv] = [0, 1, 2].map((part) => o.add(o.matmul(xg, w(part)), b(part))); // (B, G, T, d)
    const att = attention(o, q, k, vv, causal, 1 / Math.sqrt(d)).out; // (B, G, T, d)
    // out_proj: Σ_i out_i @ W_o[rows of inner head i] per head, + bias
    const wo = o.concat(inner.flatMap((i) => heads.map((h) => o.unsqueeze(o.slice(P(h, `layers.${j}.out_proj.weight`), 0, i * d, (i + 1) * d), 0))), 0); // (G, d, D)
    const proj = o.matmul(att, wo); // (B, G, T, D)
    let sum = o.slice(proj, 1, 0, H);
    for (let i = 1; i < nh; i++) sum = o.add(sum, o.slice(proj, 1, i * H, (i + 1) * H));
    const bo = o.concat(heads.map((h) => o.reshape(P(h, `layers.${j}.out_proj.bias`), [1, 1, D])), 0); // (H, 1, D)
    hs = o.add(sum, bo); // (B, H, T, D)
  }
  const ctx = o.mean(hs, 2, true); // (B, H, 1, D): pooled over the whole window
  const stack = (n: string) => o.concat(heads.map((h) => o.unsqueeze(P(h, n), 0)), 0); // (H, D, ·)
  const A = o.reshape(o.matmul(ctx, stack('to_A.weight')), [0, 0, D, r]); // to_A(ctx).view(B, D, r)
  const Bm = o.reshape(o.matmul(ctx, stack('to_B.weight')), [0, 0, r, D]); // to_B(ctx).view(B, r, D)
  const scale = hc.alpha / Math.max(1, r);
  const delta = o.matmul(o.matmul(v, A), Bm); // (B, H, T, D)
  const gain = off ? o.mul(o.sub(1, off), scale) : scale; // adaptive-off: ΔW → 0
  return { vNew: o.add(v, o.mul(delta, gain)), A, B: Bm, delta, scale };
}

/** loraFro (B, H), loraTok and loraRel (B, H, T), and the fixture tensors of one layer. */
function loraSignals<T>(o: Ops<T>, hy: HyperOut<T>, v: T): Record<string, T> {
  const AB = o.matmul(hy.A, hy.B); // (B, H, D, D)
  const loraFro = o.mul(o.sqrt(o.sum(o.square(AB), [2, 3])), hy.scale);
  const loraTok = o.mul(o.sqrt(o.sum(o.square(hy.delta), -1)), hy.scale);
  const vNorm = o.sqrt(o.sum(o.square(v), -1));
  return { loraFro, loraTok, loraRel: o.div(loraTok, o.maximum(vNorm, 1e-12)) };
}

// ---------------------------------------------------------------------------------------------
// Blocks
// ---------------------------------------------------------------------------------------------

function causalBlock<T>(o: Ops<T>, c: ModelConfig, x: T, l: number, ctx: BlockCtx<T>): { x: T; out: LayerOut<T> } {
  const P = (n: string) => o.param(`transformer.h.${l}.${n}`);
  const C = c.n_embd, H = c.n_head, hs = headDim(c);
  const h = o.layerNorm(x, P('ln_1.weight'), P('ln_1.bias'), LN_EPS);
  const qkv = linear(o, h, P('attn.c_attn.weight'), P('attn.c_attn.bias')); // (B, T, 3C): [q | k | v]
  const adapt = (m: LayerModule, input: T, y: T) => withAdapter(o, ctx.inputs.adapters, l, m, input, y); // test-time adapters
  const part = (i: number, m: LayerModule) => splitHeads(o, adapt(m, h, o.slice(qkv, -1, i * C, (i + 1) * C)), H); // (B, H, T, hs)
  const q = applyRope(o, part(0, 'q'), ctx.rope), k = applyRope(o, part(1, 'k'), ctx.rope), v0 = part(2, 'v');
  const hy = c.hyper ? hyperForward(o, h, v0, `transformer.h.${l}.attn`, H, c.hyper, ctx.mask, adaptiveOffOf(o, ctx.inputs.controls, l)) : null;
  const att = attention(o, q, k, hy ? hy.vNew : v0, ctx.mask, 1 / Math.sqrt(hs));
  const y = adapt('o', h, linear(o, mergeHeads(o, interveneHeads(o, att.out, ctx.inputs.controls, l)), P('attn.c_proj.weight'), P('attn.c_proj.bias')));
  const x1 = o.add(x, y);
  const mlpIn = o.layerNorm(x1, P('ln_2.weight'), P('ln_2.bias'), LN_EPS);
  const m = adapt('mlp', mlpIn, linear(o, geluTanh(o, linear(o, mlpIn, P('mlp.c_fc.weight'), P('mlp.c_fc.bias'))), P('mlp.c_proj.weight'), P('mlp.c_proj.bias')));
  const out = o.add(x1, m);
  return { x: out, out: layerOut(o, l, out, att.probs, hy, v0) };
}

function diffusionBlock<T>(o: Ops<T>, c: ModelConfig, x: T, l: number, ctx: BlockCtx<T>): { x: T; out: LayerOut<T> } {
  const P = (n: string) => o.param(`blocks.${l}.${n}`);
  const H = c.n_head, hs = headDim(c);
  const h = o.rmsNorm(x, F32_EPS);
  const heads = (w: string) => splitHeads(o, linear(o, h, P(w)), H);
  const q = o.rmsNorm(applyRope(o, heads('attn.c_q.weight'), ctx.rope), F32_EPS);
  const k = o.rmsNorm(applyRope(o, heads('attn.c_k.weight'), ctx.rope), F32_EPS);
  const v0 = heads('attn.c_v.weight');
  const hy = c.hyper ? hyperForward(o, h, v0, `blocks.${l}.attn`, H, c.hyper, null, adaptiveOffOf(o, ctx.inputs.controls, l)) : null;
  const att = attention(o, q, k, hy ? hy.vNew : v0, null, 1 / Math.sqrt(hs));
  const x1 = o.add(x, linear(o, mergeHeads(o, interveneHeads(o, att.out, ctx.inputs.controls, l)), P('attn.c_proj.weight')));
  const out = o.add(x1, linear(o, reluSquared(o, linear(o, o.rmsNorm(x1, F32_EPS), P('mlp.c_fc.weight'))), P('mlp.c_proj.weight')));
  return { x: out, out: layerOut(o, l, out, att.probs, hy, v0) };
}

function layerOut<T>(o: Ops<T>, l: number, hidden: T, probs: T, hy: HyperOut<T> | null, v0: T): LayerOut<T> {
  if (!hy) return { attn: probs, hidden, signals: {} };
  const signals = loraSignals(o, hy, v0);
  const extras: Record<string, T> = { [`lora_fro.${l}`]: signals.loraFro, [`lora_tok.${l}`]: signals.loraTok };
  const H = o.shape(hy.A)[1] as number;
  for (let h = 0; h < H; h++) {
    extras[`lora_A.${l}.${h}`] = o.squeeze(o.slice(hy.A, 1, h, h + 1), 1);
    extras[`lora_B.${l}.${h}`] = o.squeeze(o.slice(hy.B, 1, h, h + 1), 1);
  }
  return { attn: probs, hidden, signals, extras };
}

interface BlockCtx<T> {
  inputs: ForwardInputs<T>;
  rope: ReturnType<typeof ropeTables<T>>;
  mask: T | null;
}

function agptProgram<T>(o: Ops<T>, c: ModelConfig, inputs: ForwardInputs<T>): Program<T> {
  const diffusion = isDiffusion(c.family);
  const ctx: BlockCtx<T> = {
    inputs,
    rope: ropeTables(o, { layout: 'interleaved', headDim: headDim(c), maxLen: c.block_size }, inputs.positions),
    mask: diffusion ? null : causalMask(o, inputs.positions),
  };
  let x: T;
  if (diffusion) {
    const steps = c.num_diffusion_steps ?? 32;
    const t = inputs.t ?? o.constant(new Int32Array([0]), [1]);
    const time = o.unsqueeze(o.gather(o.param('time_emb.weight'), o.minimum(o.maximum(t, 0), steps)), 1); // (B, 1, C)
    x = o.rmsNorm(o.add(o.gather(o.param('token_emb.weight'), inputs.ids), time), F32_EPS);
  } else {
    x = o.gather(o.param('transformer.wte.weight'), inputs.ids);
  }
  const block = diffusion ? diffusionBlock : causalBlock;
  return {
    layers: c.n_layer,
    step(l) {
      const r = block(o, c, x, l, ctx);
      x = r.x;
      return r.out;
    },
    final() {
      return diffusion ? o.rmsNorm(x, F32_EPS) : o.layerNorm(x, o.param('transformer.ln_f.weight'), o.param('transformer.ln_f.bias'), LN_EPS);
    },
    state: () => [x, ctx.rope.cos, ctx.rope.sin, ctx.rope.rot, ...(ctx.mask ? [ctx.mask] : [])],
  };
}

/** a-gpt's checkpoints: `transformer.wte.weight` without learned positions, or `token_emb.weight`. */
function recognise(raw: RawCheckpoint): boolean {
  const t = raw.tensors;
  return (t.has('transformer.wte.weight') && !t.has('transformer.wpe.weight') && !t.has('resid_lambdas')) || t.has('token_emb.weight');
}

function fromCheckpoint(raw: RawCheckpoint, given: RawConfig): FamilyCheckpoint {
  const { merged, sourceOf } = mergeLayers<Partial<ModelConfig>>([
    [agptKeys(raw.fileConfig, raw.name), 'checkpoint'],
    [agptKeys(raw.sidecar, raw.name), 'sidecar'],
    [agptKeys(given, '--config'), 'config'],
  ]);
  const shapes = new Map([...raw.tensors].map(([k, v]) => [k, v.shape]));
  const { config, sources } = inferConfig(shapes, merged, raw.name, sourceOf);
  for (const [k, v] of raw.tensors) if (v.dtype !== 'float32' && !/rope_(cos|sin)$/.test(k)) throw new BadInputError(`${raw.name}: tensor '${k}' is ${v.dtype}, expected a float tensor`);
  return { config, sources, weights: raw.tensors };
}

export const AGPT: FamilyDef = {
  families: ['base', 'matched', 'adaptive', 'diffusion', 'adaptive_diffusion'],
  recognise,
  fromCheckpoint,
  defaults: (family, partial) => defaultConfig(family, agptKeys(partial, 'config')),
  objective: (c) => (isDiffusion(c.family) ? 'diffusion' : 'causal'),
  parameters: agptParameters,
  program: agptProgram,
  head: () => ({ weight: 'lm_head.weight', tied: false }),
  lensNorm: (o, c, x) => (isDiffusion(c.family) ? o.rmsNorm(x, F32_EPS) : o.layerNorm(x, o.param('transformer.ln_f.weight'), o.param('transformer.ln_f.bias'), LN_EPS)),
  signals: (c) => (c.hyper ? signalsOf('loraRel', 'loraTok', 'loraFro') : []),
  layerCount: (c) => c.n_layer,
  kvHeads: (c) => c.n_head,
  attentionWindows: (c) => Array(c.n_layer).fill(isDiffusion(c.family) ? 'bidirectional' : null),
  init: (c: ModelConfig, seed: number): Map<string, HostTensor> => agptInitialWeights(c, seed, agptParameters(c)),
  adaptive: (c) => !!c.hyper,
  futureLeak: (c) => !!c.hyper && !isDiffusion(c.family),
};
