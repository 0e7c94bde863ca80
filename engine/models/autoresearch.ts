/**
 * The autoresearch family: the GPT of karpathy/autoresearch `train.py` (commit 228791f, model code
 * unchanged since b11d6f2), exactly as the authors wrote it (see shared/research/autoresearch.md):
 *
 * - x = norm(wte[ids]), x0 = x; before every block x = λr[i]·x + λ0[i]·x0 (train.py:273-277);
 *   norm = weightless RMSNorm, eps = float32 eps (torch's default, train.py:43-44);
 * - block: x + attn(norm(x)), x + MLP(norm(x)); MLP c_fc (4C) → relu² → c_proj (train.py:99-121);
 * - attention (train.py:77-96): q/k/v projections (GQA: n_kv_head, query head h reads kv head
 *   h // (H/Hkv)); on value-embedding layers v += 2σ(W_g · x[..., :32]) · value_embeds[i][ids] per kv
 *   head; half-split RoPE with their sign (a rotation by −θ), base 10000, bf16-rounded tables;
 *   QK-norm AFTER the rotary; causal attention with an inclusive left window (FlashAttention-3
 *   `window_size=(w, 0)`: query t sees keys t − w … t), w = sequence_len for L layers and
 *   sequence_len // 2 for S, the pattern cycled and the last layer forced to L (train.py:195-206);
 *   scale 1/√head_dim; no biases anywhere;
 * - value embeddings on layers with i % 2 == (n_layer − 1) % 2 (train.py:47-49);
 * - final norm, untied lm_head, logits capped 15·tanh(z/15) (train.py:280-285).
 *
 * Knobs (the experiment table): `n_kv_head`, `window_pattern`, `value_embeds` ('alternate' theirs,
 * 'all', 'none'), `ve_gate` ('learned', or 'fixed' = gate 1 and no ve_gate weight), `softcap`
 * (15, 30, null), `gate` (GatedAttn, knobs.ts), and HYLA's `attention` ('softmax' | 'rms_head')
 * and `value_net` ('linear' | 'relu') in place of FlashAttention's softmax (knobs.ts).
 */
import type { Family, ModelConfig, SignalSpec } from '../protocol';
import type { HostTensor } from '../io/tensor';
import type { FamilyCheckpoint, RawCheckpoint, RawConfig } from '../io/checkpoint';
import { BadInputError } from '../errors';
import type { Ops } from './ops';
import { type FamilyDef, type ForwardInputs, type LayerOut, type ParamSpec, type Program, adaptiveOffOf, interveneHeads } from './family';
import { type LayerModule, withAdapter } from '../ttt/adapters';
import { F32_EPS, applyRope, causalMask, linear, mergeHeads, reluSquared, repeatKv, ropeTables, splitHeads, toBf16 } from './layers';
import { attentionGate, mixHeads } from './knobs';
import { signalsOf } from './signals';
import { mergeLayers, type ConfigSource, type ConfigSources } from './config';
import { makeRng, normalSampler } from './init';

/** The value-embedding gate reads this many leading channels of the attention input (train.py:74). */
export const VE_GATE_CHANNELS = 32;
/** Their run's head width: n_head = n_embd / 128 when a config does not say (train.py:434, 472). */
const HEAD_DIM = 128;

/** Their default run (train.py:433-479, prepare.py:30,45): what a new model gets unless told. */
export const AUTORESEARCH_DEFAULTS = {
  sequence_len: 2048,
  vocab_size: 8192,
  n_layer: 8,
  n_embd: 512,
  window_pattern: 'SSSL',
  softcap: 15,
} as const;

// ---------------------------------------------------------------------------------------------
// Layer facts
// ---------------------------------------------------------------------------------------------

const kvHeadsOf = (c: ModelConfig) => c.n_kv_head ?? c.n_head;
const headDimOf = (c: ModelConfig) => c.n_embd / c.n_head;
const sequenceLenOf = (c: ModelConfig) => c.sequence_len ?? c.block_size;

/** has_ve (train.py:47-49) under the `value_embeds` knob. */
export function hasValueEmbedding(c: ModelConfig, layer: number): boolean {
  const mode = c.value_embeds ?? 'alternate';
  if (mode === 'none') return false;
  return mode === 'all' || layer % 2 === (c.n_layer - 1) % 2;
}

const learnedVeGate = (c: ModelConfig, layer: number) => hasValueEmbedding(c, layer) && (c.ve_gate ?? 'learned') === 'learned';

/** Each layer's left window (train.py:195-206): L = sequence_len, S = sequence_len // 2, last layer L. */
export function layerWindows(c: ModelConfig): number[] {
  const long = sequenceLenOf(c), short = Math.floor(long / 2);
  const pattern = (c.window_pattern ?? AUTORESEARCH_DEFAULTS.window_pattern).toUpperCase();
  const out = Array.from({ length: c.n_layer }, (_, i) => (pattern[i % pattern.length] === 'L' ? long : short));
  out[c.n_layer - 1] = long;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Parameters (state_dict order: a module's own parameters, then its children in registration order)
// ---------------------------------------------------------------------------------------------

export function autoresearchParameters(c: ModelConfig): ParamSpec[] {
  const C = c.n_embd, V = c.vocab_size, L = c.n_layer, H = c.n_head, D = headDimOf(c), kvDim = kvHeadsOf(c) * D;
  const out: ParamSpec[] = [];
  const lin = (name: string, shape: number[]) => out.push({ name, shape, linear: true });
  const vec = (name: string, shape: number[]) => out.push({ name, shape });
  vec('resid_lambdas', [L]);
  vec('x0_lambdas', [L]);
  vec('transformer.wte.weight', [V, C]);
  for (let i = 0; i < L; i++) {
    const a = `transformer.h.${i}.attn`;
    if (c.gate) lin(`${a}.attn_gate_w`, [H, C]); // a Parameter of the attention module itself: first
    lin(`${a}.c_q.weight`, [H * D, C]);
    lin(`${a}.c_k.weight`, [kvDim, C]);
    lin(`${a}.c_v.weight`, [kvDim, C]);
    lin(`${a}.c_proj.weight`, [C, C]);
    if (learnedVeGate(c, i)) lin(`${a}.ve_gate.weight`, [kvHeadsOf(c), VE_GATE_CHANNELS]);
    lin(`transformer.h.${i}.mlp.c_fc.weight`, [4 * C, C]);
    lin(`transformer.h.${i}.mlp.c_proj.weight`, [C, 4 * C]);
  }
  lin('lm_head.weight', [V, C]);
  for (let i = 0; i < L; i++) if (hasValueEmbedding(c, i)) vec(`value_embeds.${i}.weight`, [V, kvDim]);
  return out;
}

// ---------------------------------------------------------------------------------------------
// The forward pass
// ---------------------------------------------------------------------------------------------

interface Ctx<T> {
  inputs: ForwardInputs<T>;
  rope: ReturnType<typeof ropeTables<T>>;
  /** Additive causal masks by window. */
  masks: Map<number, T>;
  windows: number[];
  x0: T;
}

const norm = <T>(o: Ops<T>, x: T) => o.rmsNorm(x, F32_EPS);

/** The value-embedding term of a layer (B, Hkv, T, D) and its gate (B, T, Hkv) (train.py:84-87). */
function valueEmbedding<T>(o: Ops<T>, c: ModelConfig, n: T, l: number, ids: T): { term: T; gate: T | null } {
  const ve = splitHeads(o, o.gather(o.param(`value_embeds.${l}.weight`), ids), kvHeadsOf(c)); // (B, Hkv, T, D)
  if (!learnedVeGate(c, l)) return { term: ve, gate: null }; // 'fixed': gate 1
  const gate = o.mul(o.sigmoid(linear(o, o.slice(n, -1, 0, VE_GATE_CHANNELS), o.param(`transformer.h.${l}.attn.ve_gate.weight`))), 2); // (B, T, Hkv)
  return { term: o.mul(ve, o.unsqueeze(o.transpose(gate, [0, 2, 1]), -1)), gate };
}

function block<T>(o: Ops<T>, c: ModelConfig, xIn: T, l: number, ctx: Ctx<T>): { x: T; out: LayerOut<T> } {
  const P = (name: string) => o.param(`transformer.h.${l}.${name}`);
  const H = c.n_head, Hkv = kvHeadsOf(c), D = headDimOf(c);
  const lambda = (name: string) => o.slice(o.param(name), 0, l, l + 1); // (1)
  const x = o.add(o.mul(xIn, lambda('resid_lambdas')), o.mul(ctx.x0, lambda('x0_lambdas')));
  const n = norm(o, x);
  const off = adaptiveOffOf(o, ctx.inputs.controls, l); // (1, H, 1, 1)
  const adapt = (m: LayerModule, input: T, y: T) => withAdapter(o, ctx.inputs.adapters, l, m, input, y); // test-time adapters
  const q = norm(o, applyRope(o, splitHeads(o, adapt('q', n, linear(o, n, P('attn.c_q.weight'))), H), ctx.rope)); // (B, H, T, D)
  const k = norm(o, applyRope(o, splitHeads(o, adapt('k', n, linear(o, n, P('attn.c_k.weight'))), Hkv), ctx.rope)); // (B, Hkv, T, D)
  let v = repeatKv(o, splitHeads(o, adapt('v', n, linear(o, n, P('attn.c_v.weight'))), Hkv), H, Hkv); // (B, H, T, D)
  const ve = hasValueEmbedding(c, l) ? valueEmbedding(o, c, n, l, ctx.inputs.ids) : null;
  if (ve) {
    // added after the GQA repeat, so that switching the path off acts per query head
    const term = repeatKv(o, ve.term, H, Hkv);
    v = o.add(v, off ? o.mul(term, o.sub(1, off)) : term);
  }
  const window = ctx.windows[l];
  const mix = mixHeads(o, q, repeatKv(o, k, H, Hkv), v, { additive: ctx.masks.get(window)! }, {
    attention: c.attention ?? 'softmax',
    valueNet: c.value_net ?? 'linear',
    scale: 1 / Math.sqrt(D),
    maxLen: c.block_size,
    causalWindow: window,
    wantActive: c.value_net === 'relu',
  });
  let y = interveneHeads(o, mix.out, ctx.inputs.controls, l); // (B, H, T, D)
  const gated = c.gate ? attentionGate(o, y, n, P('attn.attn_gate_w'), off) : null;
  if (gated) y = gated.out;
  const x1 = o.add(x, adapt('o', n, linear(o, mergeHeads(o, y), P('attn.c_proj.weight'))));
  const mlpIn = norm(o, x1);
  const x2 = o.add(x1, adapt('mlp', mlpIn, linear(o, reluSquared(o, linear(o, mlpIn, P('mlp.c_fc.weight'))), P('mlp.c_proj.weight'))));
  const signals: Record<string, T> = {}, extras: Record<string, T> = {};
  if (ve?.gate) {
    signals.veGate = o.transpose(ve.gate, [0, 2, 1]); // (B, Hkv, T)
    extras[`ve_gate.${l}`] = ve.gate; // (B, T, Hkv), the fixtures' layout
  }
  if (gated) {
    signals.gate = gated.gate; // (B, H, T)
    extras[`gate.${l}`] = gated.gateByToken; // (B, T, H)
  }
  if (mix.active) signals.hylaActive = mix.active; // (B, H, T)
  return { x: x2, out: { attn: mix.attn, hidden: x2, signals, extras } };
}

function autoresearchProgram<T>(o: Ops<T>, c: ModelConfig, inputs: ForwardInputs<T>): Program<T> {
  const windows = layerWindows(c);
  const masks = new Map<number, T>();
  for (const w of new Set(windows)) masks.set(w, causalMask(o, inputs.positions, w));
  // their table covers 10 × sequence_len; ours the longest sequence this config runs
  const rope = ropeTables(o, { layout: 'half', headDim: headDimOf(c), base: 10000, bf16: true, maxLen: Math.max(c.block_size, sequenceLenOf(c)) }, inputs.positions);
  let x = norm(o, o.gather(o.param('transformer.wte.weight'), inputs.ids)); // (B, T, C)
  const ctx: Ctx<T> = { inputs, rope, masks, windows, x0: x };
  return {
    layers: c.n_layer,
    step(l) {
      const r = block(o, c, x, l, ctx);
      x = r.x;
      return r.out;
    },
    final: () => norm(o, x),
    state: () => [x, ctx.x0, rope.cos, rope.sin, rope.rot, ...masks.values()],
  };
}

// ---------------------------------------------------------------------------------------------
// Config: their field names (GPTConfig) and ours
// ---------------------------------------------------------------------------------------------

type Partial_ = Partial<ModelConfig>;
const INT_KEYS = ['sequence_len', 'block_size', 'vocab_size', 'n_layer', 'n_head', 'n_kv_head', 'n_embd'] as const;
const ENUMS = {
  value_embeds: ['alternate', 'all', 'none'],
  ve_gate: ['learned', 'fixed'],
  attention: ['softmax', 'rms_head'],
  value_net: ['linear', 'relu'],
} as const;

/** autoresearch's config keys from a raw dict (their GPTConfig fields, our ModelConfig keys, the knobs). */
export function autoresearchKeys(raw: RawConfig, where: string): Partial_ {
  const out: Record<string, unknown> = {};
  const fail = (k: string, want: string) => {
    throw new BadInputError(`${where}: '${k}' must be ${want}, got ${JSON.stringify(raw[k])}`);
  };
  for (const k of INT_KEYS) {
    if (raw[k] === undefined) continue;
    if (!Number.isInteger(raw[k]) || (raw[k] as number) <= 0) fail(k, 'a positive integer');
    out[k] = raw[k];
  }
  if (raw.window_pattern !== undefined) {
    if (typeof raw.window_pattern !== 'string' || !/^[SLsl]+$/.test(raw.window_pattern)) fail('window_pattern', "a string of S and L, e.g. 'SSSL'");
    out.window_pattern = (raw.window_pattern as string).toUpperCase();
  }
  for (const [k, allowed] of Object.entries(ENUMS)) {
    if (raw[k] === undefined) continue;
    if (!(allowed as readonly unknown[]).includes(raw[k])) fail(k, `one of ${allowed.join(', ')}`);
    out[k] = raw[k];
  }
  if (raw.softcap !== undefined) {
    if (raw.softcap !== null && !(typeof raw.softcap === 'number' && raw.softcap >= 0)) fail('softcap', 'a positive number, or null for none');
    out.softcap = raw.softcap === 0 ? null : raw.softcap;
  }
  if (raw.gate !== undefined) {
    if (typeof raw.gate !== 'boolean') fail('gate', 'true or false');
    out.gate = raw.gate;
  }
  if (raw.family === 'autoresearch') out.family = 'autoresearch';
  return out as Partial_;
}

/** A complete config from partial values and their default run. */
function completeConfig(p: Partial_): ModelConfig {
  const n_embd = p.n_embd ?? AUTORESEARCH_DEFAULTS.n_embd;
  const n_head = p.n_head ?? Math.max(1, Math.round(n_embd / HEAD_DIM));
  const sequence_len = p.sequence_len ?? p.block_size ?? AUTORESEARCH_DEFAULTS.sequence_len;
  const c: ModelConfig = {
    family: 'autoresearch',
    vocab_size: p.vocab_size ?? AUTORESEARCH_DEFAULTS.vocab_size,
    block_size: p.block_size ?? sequence_len,
    sequence_len,
    n_layer: p.n_layer ?? AUTORESEARCH_DEFAULTS.n_layer,
    n_head,
    n_kv_head: p.n_kv_head ?? n_head,
    n_embd,
    window_pattern: p.window_pattern ?? AUTORESEARCH_DEFAULTS.window_pattern,
    value_embeds: p.value_embeds ?? 'alternate',
    ve_gate: p.ve_gate ?? 'learned',
    softcap: p.softcap === undefined ? AUTORESEARCH_DEFAULTS.softcap : p.softcap,
    gate: p.gate ?? false,
    attention: p.attention ?? 'softmax',
    value_net: p.value_net ?? 'linear',
  };
  validate(c);
  return c;
}

function validate(c: ModelConfig): void {
  const fail = (m: string) => {
    throw new BadInputError(`invalid autoresearch config: ${m}`);
  };
  for (const k of INT_KEYS) if (!Number.isInteger(c[k]) || (c[k] as number) <= 0) fail(`${k} must be a positive integer, got ${c[k]}`);
  const H = c.n_head, Hkv = kvHeadsOf(c);
  if (c.n_embd % H !== 0) fail(`n_embd ${c.n_embd} is not divisible by n_head ${H}`);
  if (headDimOf(c) % 2 !== 0) fail(`head width n_embd/n_head = ${headDimOf(c)} must be even (RoPE)`);
  if (Hkv > H || H % Hkv !== 0) fail(`n_head ${H} must be a multiple of n_kv_head ${Hkv} (train.py:69)`);
  if ((c.ve_gate ?? 'learned') === 'learned' && c.value_embeds !== 'none' && c.n_embd < VE_GATE_CHANNELS) {
    fail(`the value-embedding gate reads the first ${VE_GATE_CHANNELS} channels: n_embd ${c.n_embd} is too small (use ve_gate 'fixed')`);
  }
}

// ---------------------------------------------------------------------------------------------
// Checkpoints
// ---------------------------------------------------------------------------------------------

/** Their state_dict (any format): the residual and x0 lambdas are theirs alone. */
function recognise(raw: RawCheckpoint): boolean {
  return raw.tensors.has('resid_lambdas') && raw.tensors.has('x0_lambdas');
}

/** What the tensor names and shapes say: sizes, kv heads (given n_head), and the knobs with weights. */
function fromShapes(raw: RawCheckpoint, given: Partial_): Partial_ {
  const t = raw.tensors, file = raw.name;
  const shape = (name: string) => {
    const s = t.get(name)?.shape;
    if (!s) throw new BadInputError(`${file}: not an autoresearch model: no '${name}' tensor`);
    return s;
  };
  const [V, C] = shape('transformer.wte.weight');
  const L = shape('resid_lambdas')[0];
  const ck = 'transformer.h.0.attn.c_k.weight';
  const kvRows = shape(ck)[0];
  // a ve_gate weight has one row per kv head, which pins the head width; else their 128-wide heads
  const veGate = [...t.keys()].find((k) => /^transformer\.h\.\d+\.attn\.ve_gate\.weight$/.test(k));
  const headsFromGate = veGate && given.n_head === undefined ? C / (kvRows / (t.get(veGate)!.shape[0] || 1)) : undefined;
  const H = given.n_head ?? (headsFromGate !== undefined && Number.isInteger(headsFromGate) ? headsFromGate : Math.max(1, Math.round(C / HEAD_DIM)));
  const D = C / H;
  if (!Number.isInteger(D) || kvRows % D !== 0) throw new BadInputError(`${file}: tensor '${ck}' has ${kvRows} rows, not a whole number of kv heads of width ${C}/${H} (check n_head)`);
  const Hkv = kvRows / D;
  if (given.n_kv_head !== undefined && given.n_kv_head !== Hkv) {
    throw new BadInputError(`${file}: tensor '${ck}' has shape [${shape(ck)}], i.e. ${Hkv} kv heads of width ${D}, but the config says n_kv_head ${given.n_kv_head}`);
  }
  const layers = [...Array(L).keys()];
  const veLayers = layers.filter((i) => t.has(`value_embeds.${i}.weight`));
  const value_embeds = valueEmbedMode(veLayers, L, given.value_embeds, file);
  const gated = layers.filter((i) => t.has(`transformer.h.${i}.attn.ve_gate.weight`));
  const ve_gate = veLayers.length === 0 ? given.ve_gate ?? 'learned' : gated.length ? 'learned' : 'fixed';
  if (veLayers.length && given.ve_gate !== undefined && given.ve_gate !== ve_gate) {
    throw new BadInputError(`${file}: the config says ve_gate '${given.ve_gate}' but the checkpoint ${ve_gate === 'learned' ? 'has' : 'has no'} 'transformer.h.${veLayers[0]}.attn.ve_gate.weight'`);
  }
  const gate = t.has('transformer.h.0.attn.attn_gate_w');
  if (given.gate !== undefined && given.gate !== gate) {
    throw new BadInputError(`${file}: the config says gate ${given.gate} but the checkpoint ${gate ? 'has' : 'has no'} 'transformer.h.0.attn.attn_gate_w'`);
  }
  return { vocab_size: V, n_embd: C, n_layer: L, ...(given.n_head === undefined && headsFromGate === H ? { n_head: H } : {}), n_kv_head: Hkv, value_embeds, ve_gate, gate };
}

/** The `value_embeds` knob from the layers that have a table; checked against the config's. */
function valueEmbedMode(layers: number[], L: number, given: ModelConfig['value_embeds'], file: string): ModelConfig['value_embeds'] {
  const modes = (['alternate', 'all', 'none'] as const).filter((m) => {
    const want = [...Array(L).keys()].filter((i) => hasValueEmbedding({ n_layer: L, value_embeds: m } as ModelConfig, i));
    return want.length === layers.length && want.every((i, j) => i === layers[j]);
  });
  if (!modes.length) throw new BadInputError(`${file}: value embeddings on layers [${layers}] match none of the value_embeds layouts (alternate, all, none) for ${L} layers`);
  if (given && !modes.includes(given)) {
    throw new BadInputError(`${file}: the config says value_embeds '${given}' but the checkpoint has value-embedding tables on layers [${layers}] (${modes[0]})`);
  }
  return given ?? modes[0];
}

function fromCheckpoint(raw: RawCheckpoint, given: RawConfig): FamilyCheckpoint {
  const { merged, sourceOf } = mergeLayers<Partial_>([
    [autoresearchKeys(raw.fileConfig, raw.name), 'checkpoint'],
    [autoresearchKeys(raw.sidecar, raw.name), 'sidecar'],
    [autoresearchKeys(given, '--config'), 'config'],
  ]);
  const shapes = fromShapes(raw, merged);
  const config = completeConfig({ ...merged, ...shapes });
  const sources: ConfigSources = {};
  for (const k of Object.keys(config)) {
    const fromFile = (merged as Record<string, unknown>)[k] !== undefined;
    sources[k] = k in shapes ? 'shapes' : fromFile ? sourceOf(k) : ('default' as ConfigSource);
  }
  if (merged.block_size === undefined && merged.sequence_len !== undefined) sources.block_size = sourceOf('sequence_len');
  if (merged.family === undefined) sources.family = 'shapes'; // recognised by its tensors
  for (const [k, v] of raw.tensors) if (v.dtype !== 'float32') throw new BadInputError(`${raw.name}: tensor '${k}' is ${v.dtype}, expected a float tensor`);
  return { config, sources, weights: raw.tensors };
}

// ---------------------------------------------------------------------------------------------
// Initialisation (train.py:150-181), seeded with our generator
// ---------------------------------------------------------------------------------------------

type Init = { kind: 'normal'; std: number } | { kind: 'uniform'; bound: number } | { kind: 'const'; value: number };

function initOf(name: string, C: number): Init {
  const s = Math.sqrt(3) / Math.sqrt(C); // train.py:156
  if (name === 'resid_lambdas') return { kind: 'const', value: 1 };
  if (name === 'x0_lambdas') return { kind: 'const', value: 0.1 };
  if (name === 'transformer.wte.weight') return { kind: 'normal', std: 1 };
  if (name === 'lm_head.weight') return { kind: 'normal', std: 0.001 };
  if (/attn_gate_w$/.test(name)) return { kind: 'normal', std: 0.005 }; // GatedAttn (parameter-golf #1784)
  if (/\.(c_proj|ve_gate)\.weight$/.test(name)) return { kind: 'const', value: 0 };
  return { kind: 'uniform', bound: s }; // c_q, c_k, c_v, c_fc, value_embeds
}

export function autoresearchInit(c: ModelConfig, seed: number): Map<string, HostTensor> {
  const rng = makeRng(seed), normal = normalSampler(rng);
  const out = new Map<string, HostTensor>();
  for (const { name, shape } of autoresearchParameters(c)) {
    const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
    const init = initOf(name, c.n_embd);
    for (let i = 0; i < values.length; i++) {
      values[i] = init.kind === 'normal' ? normal() * init.std : init.kind === 'uniform' ? (rng() * 2 - 1) * init.bound : init.value;
    }
    // their embedding tables are cast to bf16 after init (train.py:179-181)
    if (name === 'transformer.wte.weight' || name.startsWith('value_embeds.')) for (let i = 0; i < values.length; i++) values[i] = toBf16(values[i]);
    out.set(name, { shape, dtype: 'float32', values });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The definition
// ---------------------------------------------------------------------------------------------

function signals(c: ModelConfig): SignalSpec[] {
  const layers = [...Array(c.n_layer).keys()];
  return [
    ...(layers.some((l) => learnedVeGate(c, l)) ? signalsOf('veGate') : []),
    ...(c.gate ? signalsOf('gate') : []),
    ...(c.value_net === 'relu' ? signalsOf('hylaActive') : []),
  ];
}

/** A window reaches back `w` keys; it only cuts a sequence the model runs when w < block_size − 1. */
function attentionWindows(c: ModelConfig): (number | null)[] {
  return layerWindows(c).map((w) => (w < c.block_size - 1 ? w : null));
}

export const AUTORESEARCH: FamilyDef = {
  families: ['autoresearch'],
  recognise,
  fromCheckpoint,
  defaults: (_family: Family, partial: RawConfig) => completeConfig(autoresearchKeys(partial, 'config')),
  objective: () => 'causal',
  parameters: autoresearchParameters,
  program: autoresearchProgram,
  head: (c) => ({ weight: 'lm_head.weight', tied: false, softcap: c.softcap ?? undefined }),
  lensNorm: (o, _c, x) => norm(o, x),
  signals,
  layerCount: (c) => c.n_layer,
  kvHeads: kvHeadsOf,
  attentionWindows,
  init: autoresearchInit,
  adaptive: (c) => !!c.gate || [...Array(c.n_layer).keys()].some((l) => hasValueEmbedding(c, l)),
  futureLeak: () => false,
};
