/**
 * The TTT-Linear layer's configuration, as deveworld/ponderTTT `models/ttt_layer_nnx.py` names it
 * (`TTTConfig`, commit d77657d), and its parameters under the NNX attribute paths of
 * `TTTTransformerLM` (`fast_norm.*`, `fast_layer.*`), so their checkpoints map 1:1.
 *
 * Architecture facts come from the tensors (hidden width from the base or `fast_norm.scale`, heads
 * and head width from `fast_layer.W1`, mini-batch size from `learnable_token_idx`, convolution
 * width from `conv_q.kernel`); the scalars from the file's own config, a sidecar, or the caller,
 * else their `TTTConfig.for_gpt2` defaults.
 */
import { BadInputError } from '../errors';
import type { HostTensor } from '../io/tensor';
import type { ParamSpec } from '../models/family';

export interface TttConfig {
  /** Width of the residual stream the layer reads (the base model's n_embd). */
  hidden_dim: number;
  num_heads: number;
  head_dim: number;
  /** Tokens per inner-loop gradient step (their configs: 16). */
  mini_batch_size: number;
  /** η's base learning rate (1.0). */
  ttt_base_lr: number;
  /** γ of η's exp(γ·(j − M + 1)) position weighting: 0 for GPT-2 small, 0.3 for the larger sizes. */
  eta_decay_rate: number;
  rope_theta: number;
  /** Depthwise causal convolution width of conv_q / conv_k (4). */
  conv_width: number;
  /** Diagonal of the dual form's causal mask: 0 includes it (their default), −1 excludes it. */
  causal_k: number;
  /** Inner-loop gradient clipping by Frobenius norm per head and mini-batch; null: none (their default). */
  max_grad_norm: number | null;
}

/** Epsilon of every LayerNorm in the branch (fast_norm, ttt_norm, post_norm): 1e-5 in their code. */
export const TTT_LN_EPS = 1e-5;
/** η is scaled by 768 / hidden_dim (ttt_layer_nnx.py:494): their GPT-2 small width. */
export const ETA_REFERENCE_WIDTH = 768;

const SCALAR_KEYS = ['ttt_base_lr', 'eta_decay_rate', 'rope_theta', 'causal_k'] as const;
const SHAPE_KEYS = ['hidden_dim', 'num_heads', 'head_dim', 'mini_batch_size', 'conv_width'] as const;

/** The parameters in the order of the fixture's model table; Flax kernels are already [in, out]. */
export function tttParameters(c: TttConfig): ParamSpec[] {
  const C = c.hidden_dim, H = c.num_heads, d = c.head_dim, F = H * d;
  const out: ParamSpec[] = [
    { name: 'fast_norm.scale', shape: [C] },
    { name: 'fast_norm.bias', shape: [C] },
    { name: 'fast_layer.wq.kernel', shape: [C, F] },
    { name: 'fast_layer.wv.kernel', shape: [C, F] },
    { name: 'fast_layer.wg.kernel', shape: [C, F] },
    { name: 'fast_layer.wo.kernel', shape: [F, C] },
  ];
  for (const conv of ['conv_q', 'conv_k']) out.push({ name: `fast_layer.${conv}.kernel`, shape: [c.conv_width, 1, F] }, { name: `fast_layer.${conv}.bias`, shape: [F] });
  out.push({ name: 'fast_layer.learnable_token_idx', shape: [c.mini_batch_size] });
  for (let h = 0; h < H; h++) out.push({ name: `fast_layer.learnable_ttt_lr_layers.${h}.kernel`, shape: [C, 1] }, { name: `fast_layer.learnable_ttt_lr_layers.${h}.bias`, shape: [1] });
  out.push(
    { name: 'fast_layer.ttt_norm.scale', shape: [H, 1, d] },
    { name: 'fast_layer.ttt_norm.bias', shape: [H, 1, d] },
    { name: 'fast_layer.post_norm.scale', shape: [F] },
    { name: 'fast_layer.post_norm.bias', shape: [F] },
    { name: 'fast_layer.W1', shape: [H, d, d] },
    { name: 'fast_layer.b1', shape: [H, 1, d] },
  );
  return out;
}

/** `TTTConfig.for_gpt2`: γ = 0 for small (768), 0.3 for medium, large and XL; TTTConfig's 0 otherwise. */
function defaultDecay(hidden: number): number {
  return hidden === 1024 || hidden === 1280 || hidden === 1600 ? 0.3 : 0;
}

type Said = Partial<Record<keyof TttConfig, unknown>>;

/** The keys one config dict gives, checked (unknown keys are ignored: their configs carry many). */
function keysOf(raw: Record<string, unknown>, where: string): Partial<TttConfig> {
  const out: Partial<TttConfig> = {};
  const fail = (k: string, m: string): never => {
    throw new BadInputError(`${where}: '${k}' ${m}`);
  };
  for (const k of SHAPE_KEYS) {
    const v = raw[k];
    if (v === undefined || v === null) continue;
    if (!Number.isInteger(v) || (v as number) <= 0) fail(k, `must be a positive integer, got ${JSON.stringify(v)}`);
    out[k] = v as number;
  }
  for (const k of SCALAR_KEYS) {
    const v = raw[k];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'number' || !Number.isFinite(v)) fail(k, `must be a number, got ${JSON.stringify(v)}`);
    out[k] = v as number;
  }
  if (out.causal_k !== undefined && out.causal_k !== 0 && out.causal_k !== -1) fail('causal_k', `must be 0 (diagonal included) or −1, got ${out.causal_k}`);
  if (out.rope_theta !== undefined && !(out.rope_theta > 0)) fail('rope_theta', `must be > 0, got ${out.rope_theta}`);
  const g = raw.max_grad_norm;
  if (g !== undefined) {
    if (g !== null && !(typeof g === 'number' && g > 0)) fail('max_grad_norm', `must be null or a positive number, got ${JSON.stringify(g)}`);
    out.max_grad_norm = g as number | null;
  }
  return out;
}

/** Architecture facts the tensors state, with the tensor that states each. */
function shapeFacts(t: Map<string, HostTensor>, file: string): Record<(typeof SHAPE_KEYS)[number], { value: number; tensor: string }> {
  const need = (name: string, rank: number): number[] => {
    const s = t.get(name)?.shape;
    if (!s) throw new BadInputError(`${file}: missing tensor '${name}': not a PonderTTT TTT-layer checkpoint (it needs fast_norm.* and fast_layer.* under their NNX names)`);
    if (s.length !== rank) throw new BadInputError(`${file}: tensor '${name}' has shape [${s}], expected ${rank} dimensions`);
    return s;
  };
  const w1 = need('fast_layer.W1', 3), conv = need('fast_layer.conv_q.kernel', 3);
  if (w1[1] !== w1[2]) throw new BadInputError(`${file}: tensor 'fast_layer.W1' has shape [${w1}]: the fast weights must be square per head [heads, head_dim, head_dim]`);
  return {
    hidden_dim: { value: need('fast_norm.scale', 1)[0], tensor: 'fast_norm.scale' },
    num_heads: { value: w1[0], tensor: 'fast_layer.W1' },
    head_dim: { value: w1[1], tensor: 'fast_layer.W1' },
    mini_batch_size: { value: need('fast_layer.learnable_token_idx', 1)[0], tensor: 'fast_layer.learnable_token_idx' },
    conv_width: { value: conv[0], tensor: 'fast_layer.conv_q.kernel' },
  };
}

export interface TttConfigSources {
  /** The file's own config (safetensors metadata), a sidecar beside it, the caller's (later wins). */
  layers: [Record<string, unknown>, string][];
}

/**
 * The layer's config from its tensors and config dicts; every tensor is then checked against it.
 * `baseWidth`: the base model's n_embd, which every C-wide tensor must match (named when not).
 */
export function tttConfigOf(tensors: Map<string, HostTensor>, sources: TttConfigSources, file: string, baseWidth?: { n_embd: number; what: string }): TttConfig {
  const facts = shapeFacts(tensors, file);
  const said: Said = {};
  const where: Partial<Record<keyof TttConfig, string>> = {};
  for (const [raw, name] of sources.layers) {
    for (const [k, v] of Object.entries(keysOf(raw, name))) {
      said[k as keyof TttConfig] = v;
      where[k as keyof TttConfig] = name;
    }
  }
  for (const k of SHAPE_KEYS) {
    if (said[k] !== undefined && said[k] !== facts[k].value) {
      throw new BadInputError(`${file}: ${where[k]} says ${k} ${said[k]} but tensor '${facts[k].tensor}' has shape [${tensors.get(facts[k].tensor)!.shape}]: the config does not belong to these weights`);
    }
  }
  const hidden = facts.hidden_dim.value;
  const c: TttConfig = {
    hidden_dim: hidden,
    num_heads: facts.num_heads.value,
    head_dim: facts.head_dim.value,
    mini_batch_size: facts.mini_batch_size.value,
    conv_width: facts.conv_width.value,
    ttt_base_lr: (said.ttt_base_lr as number | undefined) ?? 1.0,
    eta_decay_rate: (said.eta_decay_rate as number | undefined) ?? defaultDecay(hidden),
    rope_theta: (said.rope_theta as number | undefined) ?? 10000,
    causal_k: (said.causal_k as number | undefined) ?? 0,
    max_grad_norm: said.max_grad_norm === undefined ? null : (said.max_grad_norm as number | null),
  };
  if (c.head_dim % 2 !== 0) throw new BadInputError(`${file}: tensor 'fast_layer.W1' says head_dim ${c.head_dim}: RoPE needs an even head width`);
  if (baseWidth && baseWidth.n_embd !== hidden) {
    const bad = tttParameters({ ...c, hidden_dim: baseWidth.n_embd }).find((p) => !sameShape(tensors.get(p.name)?.shape, p.shape))!;
    throw new BadInputError(`${file}: tensor '${bad.name}' has shape [${tensors.get(bad.name)!.shape}] but the base model ${baseWidth.what} is ${baseWidth.n_embd} wide, which needs [${bad.shape}]: this TTT layer was trained on another base (pass that base with --model)`);
  }
  checkTttTensors(tensors, c, file);
  return c;
}

function sameShape(a: readonly number[] | undefined, b: readonly number[]): boolean {
  return !!a && a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Every parameter present with its shape and float, nothing unexpected. */
export function checkTttTensors(tensors: Map<string, HostTensor>, c: TttConfig, file: string): void {
  const expected = tttParameters(c);
  for (const p of expected) {
    const t = tensors.get(p.name);
    if (!t) throw new BadInputError(`${file}: missing tensor '${p.name}' (expected shape [${p.shape}]) of a TTT layer with ${c.num_heads} heads of ${c.head_dim}`);
    if (!sameShape(t.shape, p.shape)) throw new BadInputError(`${file}: tensor '${p.name}' has shape [${t.shape}] but a TTT layer ${c.hidden_dim} wide with ${c.num_heads} heads of ${c.head_dim}, mini-batch ${c.mini_batch_size}, needs [${p.shape}]`);
    if (t.dtype !== 'float32') throw new BadInputError(`${file}: tensor '${p.name}' is ${t.dtype}, expected a float tensor`);
  }
  const known = new Set(expected.map((p) => p.name));
  const extra = [...tensors.keys()].filter((n) => !known.has(n));
  if (extra.length) throw new BadInputError(`${file}: unexpected tensor '${extra[0]}'${extra.length > 1 ? ` (+${extra.length - 1} more)` : ''} in a TTT-layer checkpoint (expected only fast_norm.* and fast_layer.*)`);
}
