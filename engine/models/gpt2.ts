/**
 * The `gpt2` family: GPT-2 as karpathy/nanoGPT `model.py` (commit 3adf61e) defines it and as
 * Hugging Face transformers stores it (`GPT2LMHeadModel`), one model written once:
 *
 *   h = wte[ids] + wpe[positions]; per block h += attn(ln_1(h)), h += mlp(ln_2(h));
 *   logits = ln_f(h) · wteᵀ (tied head: the softmax runs over every wte row, nanoGPT's padded
 *   50304 included).
 *   attn: c_attn → q | k | v (C wide each, head-major), causal softmax with scale 1/√hd (HF
 *   `scale_attn_weights`, and 1/(l+1) more with `scale_attn_by_inverse_layer_idx`), heads merged,
 *   c_proj. mlp: c_proj(act(c_fc(x))), 4C wide, act = tanh GELU (`gelu_new`, HF's default) or exact
 *   erf GELU (`gelu`: nanoGPT's nn.GELU()). LayerNorm eps `layer_norm_epsilon` (1e-5).
 *   `bias: false` (nanoGPT) removes every Linear AND LayerNorm bias.
 *   Knob `gate` (knobs.ts GatedAttn): σ(ln_1(h) · W_gᵀ) per head and token on the attention output.
 *
 * Parameter names are nanoGPT's; nn.Linear weights [out, in]. Checkpoints read: HF folders and
 * files (Conv1D weights [in, out] transposed here; keys with or without `transformer.`; old
 * exports' `attn.bias` / `attn.masked_bias` mask buffers skipped; an explicit `lm_head.weight`
 * dropped when it equals wte, kept as an untied head when it does not), nanoGPT `ckpt.pt`
 * (`model_args`) and Head Lens's own files. Config keys: HF config.json's, nanoGPT's model_args
 * and ModelConfig's.
 */
import type { Family, ModelConfig } from '../protocol';
import type { HostTensor } from '../io/tensor';
import type { FamilyCheckpoint, RawCheckpoint, RawConfig } from '../io/checkpoint';
import { BadInputError } from '../errors';
import { hfFolderOf, requireFolderConfig } from '../io/hf';
import type { Ops } from './ops';
import { type FamilyDef, type ForwardInputs, type HeadSpec, type LayerOut, type ParamSpec, type Program, adaptiveOffOf, interveneHeads } from './family';
import { type LayerModule, withAdapter } from '../ttt/adapters';
import { LN_EPS, attention, causalMask, geluErf, geluTanh, linear, mergeHeads, splitHeads } from './layers';
import { attentionGate } from './knobs';
import { signalsOf } from './signals';
import { mergeLayers, type ConfigSource, type ConfigSources } from './config';
import { makeRng, normalSampler } from './init';

type Activation = NonNullable<ModelConfig['activation']>;

/** GPT-2 small (124M), nanoGPT's GPTConfig except the vocabulary (GPT-2's own 50257, not the padded 50304). */
export const GPT2_DEFAULTS = { vocab_size: 50257, block_size: 1024, n_layer: 12, n_head: 12, n_embd: 768 };
/** Every released GPT-2 size has heads 64 wide: the number of heads when nothing says it. */
const GPT2_HEAD_WIDTH = 64;
/** nanoGPT's init: N(0, 0.02) weights; parameter-golf #1784's N(0, 0.005) gate. */
const INIT_STD = 0.02, GATE_INIT_STD = 0.005;

/** A config's gpt2 settings with their defaults (absent = GPT-2 as HF stores it). */
export interface Settings {
  bias: boolean;
  activation: Activation;
  eps: number;
  scale: number; // 1/√hd or 1
  inverseLayerIdx: boolean;
  tied: boolean;
  gate: boolean;
}

export function settingsOf(c: ModelConfig): Settings {
  const hd = c.n_embd / c.n_head;
  return {
    bias: c.bias ?? true,
    activation: c.activation ?? 'gelu_new',
    eps: c.layer_norm_epsilon ?? LN_EPS,
    scale: c.scale_attn_weights === false ? 1 : 1 / Math.sqrt(hd),
    inverseLayerIdx: c.scale_attn_by_inverse_layer_idx === true,
    tied: c.tie_word_embeddings !== false,
    gate: c.gate === true,
  };
}

// ---------------------------------------------------------------------------------------------
// Parameters and maths
// ---------------------------------------------------------------------------------------------

/** nanoGPT's `model.parameters()` order (a module's own parameters before its children's). */
export function gpt2Parameters(c: ModelConfig): ParamSpec[] {
  const s = settingsOf(c);
  const C = c.n_embd, out: ParamSpec[] = [];
  const lin = (name: string, shape: number[]) => out.push({ name, shape, linear: true });
  const vec = (name: string, shape: number[]) => out.push({ name, shape });
  const bias = (name: string, n: number) => s.bias && vec(name, [n]);
  vec('transformer.wte.weight', [c.vocab_size, C]);
  vec('transformer.wpe.weight', [c.block_size, C]);
  for (let l = 0; l < c.n_layer; l++) {
    const b = `transformer.h.${l}`;
    vec(`${b}.ln_1.weight`, [C]);
    bias(`${b}.ln_1.bias`, C);
    if (s.gate) lin(`${b}.attn.attn_gate_w`, [c.n_head, C]); // an nn.Parameter of the attention module itself
    lin(`${b}.attn.c_attn.weight`, [3 * C, C]);
    bias(`${b}.attn.c_attn.bias`, 3 * C);
    lin(`${b}.attn.c_proj.weight`, [C, C]);
    bias(`${b}.attn.c_proj.bias`, C);
    vec(`${b}.ln_2.weight`, [C]);
    bias(`${b}.ln_2.bias`, C);
    lin(`${b}.mlp.c_fc.weight`, [4 * C, C]);
    bias(`${b}.mlp.c_fc.bias`, 4 * C);
    lin(`${b}.mlp.c_proj.weight`, [C, 4 * C]);
    bias(`${b}.mlp.c_proj.bias`, C);
  }
  vec('transformer.ln_f.weight', [C]);
  bias('transformer.ln_f.bias', C);
  if (!s.tied) lin('lm_head.weight', [c.vocab_size, C]);
  return out;
}

export function block<T>(o: Ops<T>, c: ModelConfig, s: Settings, x: T, l: number, mask: T, inputs: ForwardInputs<T>): { x: T; out: LayerOut<T> } {
  const P = (n: string) => o.param(`transformer.h.${l}.${n}`);
  const Pb = (n: string) => (s.bias ? P(n) : null);
  const C = c.n_embd, H = c.n_head;
  const n = o.layerNorm(x, P('ln_1.weight'), Pb('ln_1.bias'), s.eps);
  const qkv = linear(o, n, P('attn.c_attn.weight'), Pb('attn.c_attn.bias')); // (B, T, 3C): [q | k | v]
  const adapt = (m: LayerModule, input: T, y: T) => withAdapter(o, inputs.adapters, l, m, input, y); // test-time adapters
  const part = (i: number, m: LayerModule) => splitHeads(o, adapt(m, n, o.slice(qkv, -1, i * C, (i + 1) * C)), H); // (B, H, T, hd)
  const att = attention(o, part(0, 'q'), part(1, 'k'), part(2, 'v'), mask, s.inverseLayerIdx ? s.scale / (l + 1) : s.scale);
  let y = interveneHeads(o, att.out, inputs.controls, l);
  const signals: Record<string, T> = {}, extras: Record<string, T> = {};
  if (s.gate) {
    const g = attentionGate(o, y, n, P('attn.attn_gate_w'), adaptiveOffOf(o, inputs.controls, l));
    y = g.out;
    signals.gate = g.gate;
    extras[`gate.${l}`] = g.gateByToken;
  }
  const x1 = o.add(x, adapt('o', n, linear(o, mergeHeads(o, y), P('attn.c_proj.weight'), Pb('attn.c_proj.bias'))));
  const mlpIn = o.layerNorm(x1, P('ln_2.weight'), Pb('ln_2.bias'), s.eps);
  const fc = linear(o, mlpIn, P('mlp.c_fc.weight'), Pb('mlp.c_fc.bias'));
  const act = s.activation === 'gelu' ? geluErf(o, fc) : geluTanh(o, fc);
  const hidden = o.add(x1, adapt('mlp', mlpIn, linear(o, act, P('mlp.c_proj.weight'), Pb('mlp.c_proj.bias'))));
  return { x: hidden, out: { attn: att.probs, hidden, signals, ...(s.gate ? { extras } : {}) } };
}

function gpt2Program<T>(o: Ops<T>, c: ModelConfig, inputs: ForwardInputs<T>): Program<T> {
  const s = settingsOf(c);
  const mask = causalMask(o, inputs.positions);
  // learned positions gathered at the run's positions: (B, T, C) + (T, C)
  let x = o.add(o.gather(o.param('transformer.wte.weight'), inputs.ids), o.gather(o.param('transformer.wpe.weight'), inputs.positions));
  return {
    layers: c.n_layer,
    step(l) {
      const r = block(o, c, s, x, l, mask, inputs);
      x = r.x;
      return r.out;
    },
    final: () => o.layerNorm(x, o.param('transformer.ln_f.weight'), s.bias ? o.param('transformer.ln_f.bias') : null, s.eps),
    state: () => [x, mask],
  };
}

function gpt2Head(c: ModelConfig): HeadSpec {
  return settingsOf(c).tied ? { weight: 'transformer.wte.weight', tied: true } : { weight: 'lm_head.weight', tied: false };
}

/** nanoGPT's `_init_weights` (N(0, 0.02), c_proj weights N(0, 0.02/√(2·n_layer)), biases 0, LayerNorm 1/0), seeded; the gate N(0, 0.005). */
export function gpt2Init(c: ModelConfig, seed: number): Map<string, HostTensor> {
  const normal = normalSampler(makeRng(seed));
  const projStd = INIT_STD / Math.sqrt(2 * c.n_layer);
  const out = new Map<string, HostTensor>();
  for (const { name, shape } of gpt2Parameters(c)) {
    const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (/\.ln_(1|2|f)\.weight$/.test(name)) values.fill(1);
    else if (!name.endsWith('.bias')) {
      const std = name.endsWith('attn_gate_w') ? GATE_INIT_STD : /\.c_proj\.weight$/.test(name) ? projStd : INIT_STD;
      for (let i = 0; i < values.length; i++) values[i] = normal() * std;
    }
    out.set(name, { shape, dtype: 'float32', values });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Config: the family's own key names
// ---------------------------------------------------------------------------------------------

/** A gpt2 config as read from one dict, plus HF's `n_inner` (checked against the width). */
type Gpt2Keys = Partial<ModelConfig> & { n_inner?: number };

const INT_KEYS = ['vocab_size', 'block_size', 'n_layer', 'n_head', 'n_embd'] as const;
const BOOL_KEYS = ['bias', 'gate', 'scale_attn_weights', 'scale_attn_by_inverse_layer_idx', 'tie_word_embeddings'] as const;
/** HF `activation_function` values with the maths of ours. */
const ACTIVATIONS: Record<string, Activation> = { gelu_new: 'gelu_new', gelu_pytorch_tanh: 'gelu_new', gelu: 'gelu' };

/**
 * gpt2 config keys from a dict: ours (ModelConfig), HF config.json's (n_positions or n_ctx,
 * activation_function, n_inner, model_type, …) and nanoGPT's model_args. Unknown keys are ignored
 * (dropouts, token ids, training settings); values that would change the maths are checked.
 */
function gpt2Keys(raw: RawConfig, where: string): Gpt2Keys {
  const out: Gpt2Keys = {};
  const fail = (m: string): never => {
    throw new BadInputError(`${where}: ${m}`);
  };
  if (raw.model_type !== undefined && raw.model_type !== 'gpt2') fail(`model_type is ${JSON.stringify(raw.model_type)}, not "gpt2": Head Lens reads this folder as a GPT-2 model only when config.json says model_type "gpt2"`);
  const positions = raw.block_size ?? raw.n_positions ?? raw.n_ctx;
  const ints: Record<string, unknown> = { ...Object.fromEntries(INT_KEYS.map((k) => [k, raw[k]])), block_size: positions };
  for (const k of INT_KEYS) {
    const v = ints[k];
    if (v === undefined || v === null) continue;
    if (!Number.isInteger(v) || (v as number) <= 0) fail(`'${k === 'block_size' && raw.block_size === undefined ? (raw.n_positions !== undefined ? 'n_positions' : 'n_ctx') : k}' must be a positive integer, got ${JSON.stringify(v)}`);
    out[k] = v as number;
  }
  for (const k of BOOL_KEYS) {
    const v = raw[k];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'boolean') fail(`'${k}' must be true or false, got ${JSON.stringify(v)}`);
    out[k] = v as boolean;
  }
  const act = raw.activation ?? raw.activation_function;
  if (act !== undefined && act !== null) {
    const key = raw.activation !== undefined ? 'activation' : 'activation_function';
    if (typeof act !== 'string' || !ACTIVATIONS[act]) fail(`${key} ${JSON.stringify(act)} is not supported (gpt2 supports "gelu_new" / "gelu_pytorch_tanh", the tanh GELU, and "gelu", the exact one)`);
    out.activation = ACTIVATIONS[act as string];
  }
  const eps = raw.layer_norm_epsilon;
  if (eps !== undefined && eps !== null) {
    if (typeof eps !== 'number' || !(eps > 0)) fail(`'layer_norm_epsilon' must be a positive number, got ${JSON.stringify(eps)}`);
    out.layer_norm_epsilon = eps as number;
  }
  if (raw.n_inner !== undefined && raw.n_inner !== null) {
    if (!Number.isInteger(raw.n_inner) || (raw.n_inner as number) <= 0) fail(`'n_inner' must be null or a positive integer, got ${JSON.stringify(raw.n_inner)}`);
    out.n_inner = raw.n_inner as number;
  }
  if (raw.family === 'gpt2') out.family = 'gpt2';
  return out;
}

/** n_inner other than 4·n_embd (HF's default when null) would be another MLP width. */
function checkInner(k: Gpt2Keys, nEmbd: number, where: string): void {
  if (k.n_inner !== undefined && k.n_inner !== 4 * nEmbd) {
    throw new BadInputError(`${where}: n_inner ${k.n_inner} is not supported: gpt2 models here have an MLP 4·n_embd = ${4 * nEmbd} wide (n_inner null)`);
  }
}

function validate(c: ModelConfig, where: string): ModelConfig {
  const fail = (m: string): never => {
    throw new BadInputError(`${where}: invalid gpt2 config: ${m}`);
  };
  for (const k of INT_KEYS) if (!Number.isInteger(c[k]) || c[k] <= 0) fail(`${k} must be a positive integer, got ${c[k]}`);
  if (c.n_embd % c.n_head !== 0) fail(`n_embd ${c.n_embd} is not divisible by n_head ${c.n_head} (set n_head in --config)`);
  return c;
}

/** A new gpt2 (training from scratch): GPT-2 small's shape with nanoGPT's choices (bias, exact GELU). */
function gpt2Defaults(_family: Family, partial: RawConfig): ModelConfig {
  const k = gpt2Keys(partial, '--config');
  const c: ModelConfig = {
    family: 'gpt2',
    vocab_size: k.vocab_size ?? GPT2_DEFAULTS.vocab_size,
    block_size: k.block_size ?? GPT2_DEFAULTS.block_size,
    n_layer: k.n_layer ?? GPT2_DEFAULTS.n_layer,
    n_head: k.n_head ?? GPT2_DEFAULTS.n_head,
    n_embd: k.n_embd ?? GPT2_DEFAULTS.n_embd,
    bias: k.bias ?? true,
    activation: k.activation ?? 'gelu',
    layer_norm_epsilon: k.layer_norm_epsilon ?? LN_EPS,
    scale_attn_weights: k.scale_attn_weights ?? true,
    scale_attn_by_inverse_layer_idx: k.scale_attn_by_inverse_layer_idx ?? false,
    tie_word_embeddings: k.tie_word_embeddings ?? true,
    gate: k.gate ?? false,
  };
  checkInner(k, c.n_embd, '--config');
  return validate(c, '--config');
}

// ---------------------------------------------------------------------------------------------
// Checkpoints
// ---------------------------------------------------------------------------------------------

/** Conv1D weights ([in, out] in HF files), transposed to nn.Linear's [out, in]. */
const CONV1D_WEIGHT = /\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$/;
/** Causal-mask buffers of old exports and torch < 2 nanoGPT runs: `h.{i}.attn.bias` / `attn.masked_bias`. */
const MASK_BUFFER = /(^|\.)attn\.(bias|masked_bias)$/;

/** GPT-2 tensors: token and learned position embeddings, with or without `transformer.`. */
function recognise(raw: RawCheckpoint): boolean {
  const has = (n: string) => raw.tensors.has(`transformer.${n}`) || raw.tensors.has(n);
  return has('wte.weight') && has('wpe.weight');
}

/** The file's tensors under nanoGPT's names, Linear layout, without mask buffers; `lm_head` as found. */
function canonicalTensors(raw: RawCheckpoint): { tensors: Map<string, HostTensor>; conv1d: boolean } {
  const bare = !raw.tensors.has('transformer.wte.weight');
  const tensors = new Map<string, HostTensor>();
  for (const [k, v] of raw.tensors) {
    if (MASK_BUFFER.test(k)) continue;
    tensors.set(bare && k !== 'lm_head.weight' ? `transformer.${k}` : k, v);
  }
  const wte = tensors.get('transformer.wte.weight')!;
  const cAttn = tensors.get('transformer.h.0.attn.c_attn.weight');
  const C = wte.shape[1];
  // c_attn is [C, 3C] as a Conv1D and [3C, C] as a Linear: it tells the layout of the whole file
  const conv1d = !!cAttn && cAttn.shape.length === 2 && cAttn.shape[0] === C && cAttn.shape[1] === 3 * C;
  for (const [k, v] of tensors) {
    if (v.dtype !== 'float32') throw new BadInputError(`${raw.name}: tensor '${k}' is ${v.dtype}, expected a float tensor`);
    if (conv1d && CONV1D_WEIGHT.test(k) && v.shape.length === 2) tensors.set(k, transpose2d(v));
  }
  return { tensors, conv1d };
}

function transpose2d(t: HostTensor): HostTensor {
  const [rows, cols] = t.shape;
  const src = t.values, dst = new Float32Array(src.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) dst[c * rows + r] = src[r * cols + c];
  return { shape: [cols, rows], dtype: 'float32', values: dst };
}

function sameTensor(a: HostTensor, b: HostTensor): boolean {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) return false;
  for (let i = 0; i < a.values.length; i++) if (a.values[i] !== b.values[i] && !(Number.isNaN(a.values[i]) && Number.isNaN(b.values[i]))) return false;
  return true;
}

/** What each config source is called in messages. */
function sourceName(raw: RawCheckpoint, source: ConfigSource): string {
  if (source === 'config') return '--config';
  if (source === 'checkpoint') return raw.extra.model_args ? `${raw.name} model_args` : `${raw.name} (its own config)`;
  const hf = hfFolderOf(raw);
  return hf?.config ?? 'the config beside the weights';
}

/** Architecture facts the tensors state, with the tensor that states each. */
function shapeFacts(t: Map<string, HostTensor>): Record<'vocab_size' | 'n_embd' | 'block_size' | 'n_layer' | 'bias' | 'gate', { value: number | boolean; tensor: string; says: string }> {
  const wte = t.get('transformer.wte.weight')!.shape, wpe = t.get('transformer.wpe.weight')!.shape;
  const blocks = [...t.keys()].map((n) => /^transformer\.h\.(\d+)\./.exec(n)).filter((m): m is RegExpExecArray => !!m).map((m) => +m[1]);
  const nLayer = blocks.length ? Math.max(...blocks) + 1 : 0;
  const bias = t.has('transformer.ln_f.bias') || t.has('transformer.h.0.attn.c_attn.bias');
  const gate = t.has('transformer.h.0.attn.attn_gate_w');
  return {
    vocab_size: { value: wte[0], tensor: 'transformer.wte.weight', says: `has ${wte[0]} rows` },
    n_embd: { value: wte[1], tensor: 'transformer.wte.weight', says: `is ${wte[1]} wide` },
    block_size: { value: wpe[0], tensor: 'transformer.wpe.weight', says: `has ${wpe[0]} positions` },
    n_layer: { value: nLayer, tensor: [...t.keys()].find((n) => n.startsWith(`transformer.h.${nLayer - 1}.`)) ?? 'transformer.h.0', says: `is in the last block (${nLayer} in all)` },
    bias: { value: bias, tensor: 'transformer.ln_f.bias', says: bias ? 'is present' : 'is absent' },
    gate: { value: gate, tensor: 'transformer.h.0.attn.attn_gate_w', says: gate ? 'is present' : 'is absent' },
  };
}

function fromCheckpoint(raw: RawCheckpoint, given: RawConfig): FamilyCheckpoint {
  requireFolderConfig(raw, given);
  const layers: [Gpt2Keys, ConfigSource][] = [
    [gpt2Keys(raw.fileConfig, sourceName(raw, 'checkpoint')), 'checkpoint'],
    [gpt2Keys(raw.sidecar, sourceName(raw, 'sidecar')), 'sidecar'],
    [gpt2Keys(given, '--config'), 'config'],
  ];
  const { merged, sourceOf } = mergeLayers<Gpt2Keys>(layers);
  const { tensors, conv1d } = canonicalTensors(raw);
  const facts = shapeFacts(tensors);
  const sources: ConfigSources = { family: merged.family ? sourceOf('family') : 'shapes' };
  const fromShapes: Partial<ModelConfig> = {};
  for (const [k, f] of Object.entries(facts) as [keyof typeof facts, (typeof facts)[keyof typeof facts]][]) {
    const said = merged[k];
    if (said !== undefined && said !== f.value) {
      throw new BadInputError(`${raw.name}: ${sourceName(raw, sourceOf(k))} says ${k} ${said} but tensor '${f.tensor}' ${f.says}: the config does not belong to these weights (fix it or pass --config)`);
    }
    (fromShapes as Record<string, unknown>)[k] = f.value;
    sources[k] = 'shapes';
  }
  checkInner(merged, facts.n_embd.value as number, sourceName(raw, sourceOf('n_inner')));
  const head = resolveHead(raw, tensors, merged, sourceOf);
  sources.tie_word_embeddings = head.source;
  const pick = <K extends 'n_head' | 'activation' | 'layer_norm_epsilon' | 'scale_attn_weights' | 'scale_attn_by_inverse_layer_idx'>(k: K, fallback: NonNullable<ModelConfig[K]>): NonNullable<ModelConfig[K]> => {
    sources[k] = merged[k] !== undefined ? sourceOf(k) : 'default';
    return (merged[k] ?? fallback) as NonNullable<ModelConfig[K]>;
  };
  const C = facts.n_embd.value as number;
  const config: ModelConfig = {
    family: 'gpt2',
    vocab_size: fromShapes.vocab_size!,
    block_size: fromShapes.block_size!,
    n_layer: fromShapes.n_layer!,
    n_head: pick('n_head', C % GPT2_HEAD_WIDTH === 0 ? C / GPT2_HEAD_WIDTH : GPT2_DEFAULTS.n_head),
    n_embd: C,
    bias: fromShapes.bias!,
    // HF's default is the tanh GELU; a Linear-layout file (nanoGPT) was trained with nn.GELU()
    activation: pick('activation', conv1d || raw.sidecar.model_type === 'gpt2' ? 'gelu_new' : 'gelu'),
    layer_norm_epsilon: pick('layer_norm_epsilon', LN_EPS),
    scale_attn_weights: pick('scale_attn_weights', true),
    scale_attn_by_inverse_layer_idx: pick('scale_attn_by_inverse_layer_idx', false),
    tie_word_embeddings: head.tied,
    gate: fromShapes.gate!,
  };
  return { config: validate(config, raw.name), sources, weights: tensors, note: head.note };
}

/**
 * The output head: tied to wte unless the file carries an `lm_head.weight` that differs from it
 * (an untied fine-tune) — or a config says so. An explicit `tie_word_embeddings: true` wins over a
 * differing lm_head, as transformers ties them at load time.
 */
function resolveHead(raw: RawCheckpoint, t: Map<string, HostTensor>, merged: Gpt2Keys, sourceOf: (k: string) => ConfigSource): { tied: boolean; source: ConfigSource; note?: string } {
  const head = t.get('lm_head.weight');
  const said = merged.tie_word_embeddings;
  if (!head) {
    if (said === false) throw new BadInputError(`${raw.name}: ${sourceName(raw, sourceOf('tie_word_embeddings'))} says tie_word_embeddings false but tensor 'lm_head.weight' is absent (an untied model needs its head)`);
    return { tied: true, source: said === undefined ? 'shapes' : sourceOf('tie_word_embeddings') };
  }
  const equal = sameTensor(head, t.get('transformer.wte.weight')!);
  if (said === true || (said === undefined && equal)) {
    t.delete('lm_head.weight');
    const note = equal ? undefined : `lm_head.weight differs from transformer.wte.weight but ${sourceName(raw, sourceOf('tie_word_embeddings'))} says tie_word_embeddings true: the head is tied to wte and lm_head.weight is ignored`;
    return { tied: true, source: said === undefined ? 'shapes' : sourceOf('tie_word_embeddings'), note };
  }
  const note = equal ? undefined : 'untied output head: lm_head.weight differs from transformer.wte.weight (a fine-tune that untied them), so logits use lm_head.weight';
  return { tied: false, source: said === undefined ? 'shapes' : sourceOf('tie_word_embeddings'), note };
}

export const GPT2: FamilyDef = {
  families: ['gpt2'],
  recognise,
  fromCheckpoint,
  defaults: gpt2Defaults,
  objective: () => 'causal',
  parameters: gpt2Parameters,
  program: gpt2Program,
  head: gpt2Head,
  lensNorm: (o, c, x) => o.layerNorm(x, o.param('transformer.ln_f.weight'), settingsOf(c).bias ? o.param('transformer.ln_f.bias') : null, settingsOf(c).eps),
  signals: (c) => (c.gate ? signalsOf('gate') : []),
  layerCount: (c) => c.n_layer,
  kvHeads: (c) => c.n_head,
  attentionWindows: (c) => Array(c.n_layer).fill(null),
  init: gpt2Init,
  adaptive: (c) => c.gate === true,
  futureLeak: () => false,
};
