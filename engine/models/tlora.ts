/**
 * The `tlora` family: Temporal LoRA as stability-first-ai `02-temporal-lora-gpt2/temporal_lora.py`
 * (c85243c) applies it to a GPT-2 (`TemporalLoRAModel.forward`, lines 286-333):
 *
 *   h = wte[ids] + wpe[positions]                       (transformer.drop bypassed)
 *   w = softmax(classifier(domain_embed[ids]))           (B, T, K): the Time Mixer reads token ids only
 *   for every block l:  h ← Block_l(h + Σ_k w_k · (α/r)·(h A_kᵀ) B_kᵀ)
 *   logits = h · wteᵀ                                    ln_f is NEVER applied (their quirk, copied)
 *
 * One adapter per name is shared by all blocks; the router's weights are the same at every layer.
 * With a single adapter their forward skips the mixer and adds the adapter's whole delta. The blocks
 * are the gpt2 family's own (models/gpt2.ts), run on the base's parameters under `base.`; the adapters
 * are `adapters.<name>.lora_A` [r, C] / `.lora_B` [C, r] and the router `time_mixer.domain_embed.weight`,
 * `time_mixer.domain_classifier.{0,2}.*` (`time_mixer.gate.*`, their hidden-state gate, is loaded and
 * saved but never used: input_ids are always given). Routes (config `tlora.route`) reproduce their
 * other paths: uniform Δ/K, fixed weights, one adapter alone, none. `adaptiveOff` (interventions):
 * the router of that layer → uniform. Checkpoints: their `.pt` (io/tlora.ts) or safetensors under
 * these names, with the GPT-2 base beside them (`base.*` tensors in the same file, or a path from
 * --config/--base or a sidecar's "base"); every adapter tensor is checked against the base's width.
 */
import * as path from 'node:path';
import type { Family, ModelConfig, SignalSpec, TloraConfig, TloraRoute } from '../protocol';
import type { HostTensor } from '../io/tensor';
import type { FamilyCheckpoint, RawCheckpoint, RawConfig } from '../io/checkpoint';
import { readRaw } from '../io/checkpoint';
import { ADAPTER_PREFIX, MIXER_PREFIX } from '../io/tlora';
import { BadInputError } from '../errors';
import type { Ops } from './ops';
import type { Controls, FamilyDef, ForwardInputs, HeadSpec, LayerOut, ParamSpec, Program } from './family';
import { GPT2, block, gpt2Init, gpt2Parameters, settingsOf } from './gpt2';
import { causalMask, linear } from './layers';
import { SIGNALS } from './signals';
import { mergeLayers, type ConfigSource, type ConfigSources } from './config';
import { makeRng, normalSampler } from './init';

/** Where the base's parameters live among the model's. */
export const BASE_PREFIX = 'base.';
/** Their defaults (temporal_lora.py main and LoRAAdapter / TimeMixer): rank 8, alpha 16, mixer 64 → 32. */
export const TLORA_DEFAULTS = { rank: 8, alpha: 16, mixer_embed: 64, mixer_hidden: 32 };
/** lora_A ~ randn·0.02 (LoRAAdapter); the Time Mixer's reset: embedding N(0, 0.02). */
const LORA_A_STD = 0.02, MIXER_RESET_EMBED_STD = 0.02;

export function tloraOf(c: ModelConfig): TloraConfig {
  if (!c.tlora) throw new BadInputError('a tlora model needs its `tlora` config (adapter names, rank, alpha)');
  return c.tlora;
}

export function loraScaling(t: TloraConfig): number {
  return t.alpha / t.rank;
}

// ---------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------

/** The gpt2 config of the base (the same keys, family gpt2). */
export function baseConfigOf(c: ModelConfig): ModelConfig {
  const { tlora: _t, ...rest } = c;
  return { ...rest, family: 'gpt2' };
}

function adapterParameters(t: TloraConfig, C: number): ParamSpec[] {
  return t.adapter_names.flatMap((n) => [
    { name: `${ADAPTER_PREFIX}${n}.lora_A`, shape: [t.rank, C], linear: true }, // x @ Aᵀ
    { name: `${ADAPTER_PREFIX}${n}.lora_B`, shape: [C, t.rank], linear: true }, // (·) @ Bᵀ
  ]);
}

function mixerParameters(t: TloraConfig, c: ModelConfig): ParamSpec[] {
  const K = t.adapter_names.length, m = MIXER_PREFIX;
  const out: ParamSpec[] = [
    { name: `${m}domain_embed.weight`, shape: [c.vocab_size, t.mixer_embed] },
    { name: `${m}domain_classifier.0.weight`, shape: [t.mixer_hidden, t.mixer_embed], linear: true },
    { name: `${m}domain_classifier.0.bias`, shape: [t.mixer_hidden] },
    { name: `${m}domain_classifier.2.weight`, shape: [K, t.mixer_hidden], linear: true },
    { name: `${m}domain_classifier.2.bias`, shape: [K] },
  ];
  if (t.gate_hidden > 0) {
    out.push(
      { name: `${m}gate.0.weight`, shape: [t.gate_hidden, c.n_embd], linear: true },
      { name: `${m}gate.0.bias`, shape: [t.gate_hidden] },
      { name: `${m}gate.2.weight`, shape: [K, t.gate_hidden], linear: true },
      { name: `${m}gate.2.bias`, shape: [K] },
    );
  }
  return out;
}

/** Their `model.parameters()` order: the backbone, the adapters (in adapter order), the Time Mixer. */
export function tloraParameters(c: ModelConfig): ParamSpec[] {
  const t = tloraOf(c);
  const base = gpt2Parameters(baseConfigOf(c)).map((p) => ({ ...p, name: BASE_PREFIX + p.name }));
  return [...base, ...adapterParameters(t, c.n_embd), ...mixerParameters(t, c)];
}

/** Which parameters belong to the base, an adapter or the router (what each training phase trains). */
export function parameterGroup(name: string): { kind: 'base' } | { kind: 'adapter'; adapter: string } | { kind: 'mixer' } {
  if (name.startsWith(MIXER_PREFIX)) return { kind: 'mixer' };
  if (name.startsWith(ADAPTER_PREFIX)) return { kind: 'adapter', adapter: name.slice(ADAPTER_PREFIX.length).replace(/\.lora_[AB]$/, '') };
  return { kind: 'base' };
}

// ---------------------------------------------------------------------------------------------
// The forward pass
// ---------------------------------------------------------------------------------------------

/** The same ops with every parameter name under `prefix`: the gpt2 code runs unchanged on the base. */
function prefixedOps<T>(o: Ops<T>, prefix: string): Ops<T> {
  return new Proxy(o, {
    get(target, prop) {
      if (prop === 'param') return (name: string) => target.param(prefix + name);
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/** Time Mixer (TimeMixer.forward with input_ids): logits = classifier(domain_embed[ids]), (B, T, K). */
export function routerLogits<T>(o: Ops<T>, ids: T): T {
  const P = (n: string) => o.param(MIXER_PREFIX + n);
  const e = o.gather(P('domain_embed.weight'), ids); // (B, T, E)
  const h = o.relu(linear(o, e, P('domain_classifier.0.weight'), P('domain_classifier.0.bias'))); // (B, T, hidden)
  return linear(o, h, P('domain_classifier.2.weight'), P('domain_classifier.2.bias')); // (B, T, K)
}

/** The fixed per-adapter weights of a route (K), or null when the router decides. */
function routeVector(t: TloraConfig): Float32Array | null {
  const K = t.adapter_names.length, route: TloraRoute = t.route ?? { kind: 'mixer' };
  const v = new Float32Array(K);
  switch (route.kind) {
    case 'mixer':
      return K > 1 ? null : v.fill(1); // one adapter: their forward skips the mixer and adds Δ/1
    case 'uniform':
      return v.fill(1 / K);
    case 'none':
      return v;
    case 'adapter':
      v[t.adapter_names.indexOf(route.name)] = 1;
      return v;
    case 'weights':
      t.adapter_names.forEach((n, k) => (v[k] = route.weights[n] ?? 0));
      return v;
  }
}

/** The weights applied at layer l (B, T, K): the route's, moved to uniform by `adaptiveOff` (any head of the layer). */
function layerWeights<T>(o: Ops<T>, K: number, routed: T, controls: Controls<T> | undefined, l: number): T {
  if (!controls) return routed;
  const off = o.max(o.slice(controls.adaptiveOff, 0, l, l + 1), [0, 1]); // scalar
  return o.add(o.mul(routed, o.sub(1, off)), o.mul(off, 1 / K));
}

interface AdapterOut<T> {
  mixed: T;
  deltas: T[];
}

/** Δ_k = (α/r)·(x A_kᵀ) B_kᵀ for every adapter, and Σ_k w_k Δ_k (LoRAAdapter.forward, TimeMixer.forward). */
function adapterDeltas<T>(o: Ops<T>, t: TloraConfig, x: T, w: T): AdapterOut<T> {
  const scale = loraScaling(t);
  const deltas = t.adapter_names.map((n) => o.mul(o.matmul(o.matmul(x, o.param(`${ADAPTER_PREFIX}${n}.lora_A`)), o.param(`${ADAPTER_PREFIX}${n}.lora_B`)), scale));
  let mixed = o.mul(o.slice(w, -1, 0, 1), deltas[0]);
  for (let k = 1; k < deltas.length; k++) mixed = o.add(mixed, o.mul(o.slice(w, -1, k, k + 1), deltas[k]));
  return { mixed, deltas };
}

function tloraProgram<T>(o: Ops<T>, c: ModelConfig, inputs: ForwardInputs<T>): Program<T> {
  const t = tloraOf(c), K = t.adapter_names.length;
  const bc = baseConfigOf(c), s = settingsOf(bc), b = prefixedOps(o, BASE_PREFIX);
  const mask = causalMask(o, inputs.positions);
  let x = o.add(b.gather(b.param('transformer.wte.weight'), inputs.ids), b.gather(b.param('transformer.wpe.weight'), inputs.positions));
  const logits = routerLogits(o, inputs.ids); // (B, T, K)
  const mixer = o.softmax(logits);
  const fixed = routeVector(t);
  // a fixed route still needs (B, T, K) for the signal: the mixer's shape, its values replaced
  const routed = fixed ? o.add(o.mul(mixer, 0), o.constant(fixed, [K])) : mixer;
  const adapters = (t.route?.kind ?? 'mixer') !== 'none';
  return {
    layers: c.n_layer,
    step(l) {
      const w = adapters ? layerWeights(o, K, routed, inputs.controls, l) : routed;
      const extras: Record<string, T> = { [`hidden_in.${l}`]: x };
      if (l === 0) Object.assign(extras, { router_logits: logits, router_weights: mixer });
      let xin = x;
      if (adapters) {
        const d = adapterDeltas(o, t, x, w);
        d.deltas.forEach((delta, k) => (extras[`delta.${t.adapter_names[k]}.${l}`] = delta));
        extras[`mixed_delta.${l}`] = d.mixed;
        xin = o.add(x, d.mixed);
      }
      const r = block(b, bc, s, xin, l, mask, inputs);
      x = r.x;
      if (l === c.n_layer - 1) extras.hidden_final = x;
      const out: LayerOut<T> = { ...r.out, signals: { ...r.out.signals, router: o.transpose(w, [0, 2, 1]) }, extras: { ...(r.out.extras ?? {}), ...extras } };
      return out;
    },
    final: () => x, // no ln_f: their forward feeds the last block's output straight to lm_head
    state: () => [x, mask, logits, mixer, routed],
  };
}

function tloraHead(c: ModelConfig): HeadSpec {
  const h = GPT2.head(baseConfigOf(c));
  return { ...h, weight: BASE_PREFIX + h.weight };
}

// ---------------------------------------------------------------------------------------------
// Initialisation
// ---------------------------------------------------------------------------------------------

function fill(shape: number[], f: () => number): HostTensor {
  const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < values.length; i++) values[i] = f();
  return { shape, dtype: 'float32', values };
}

/** A new adapter as LoRAAdapter.__init__ makes it: A ~ N(0, 0.02²), B = 0 (the adapter starts as a no-op). */
export function adapterInit(t: TloraConfig, C: number, name: string, seed: number): Map<string, HostTensor> {
  const normal = normalSampler(makeRng(seed));
  return new Map([
    [`${ADAPTER_PREFIX}${name}.lora_A`, fill([t.rank, C], () => normal() * LORA_A_STD)],
    [`${ADAPTER_PREFIX}${name}.lora_B`, fill([C, t.rank], () => 0)],
  ]);
}

/**
 * The Time Mixer: `reset` = TimeMixer.reset_weights (phase 3: Xavier-uniform Linear weights, zero
 * biases, embedding N(0, 0.02)); otherwise PyTorch's module defaults (Embedding N(0, 1), Linear
 * weight and bias U(±1/√fan_in)).
 */
export function mixerInit(c: ModelConfig, seed: number, reset: boolean): Map<string, HostTensor> {
  const rng = makeRng(seed), normal = normalSampler(rng);
  const out = new Map<string, HostTensor>();
  const specs = mixerParameters(tloraOf(c), c);
  for (const { name, shape } of specs) {
    if (name.endsWith('domain_embed.weight')) out.set(name, fill(shape, () => normal() * (reset ? MIXER_RESET_EMBED_STD : 1)));
    else if (name.endsWith('.weight')) {
      const bound = reset ? Math.sqrt(6 / (shape[0] + shape[1])) : 1 / Math.sqrt(shape[1]);
      out.set(name, fill(shape, () => (rng() * 2 - 1) * bound));
    } else {
      const fanIn = specs.find((p) => p.name === name.replace(/\.bias$/, '.weight'))!.shape[1];
      out.set(name, fill(shape, () => (reset ? 0 : (rng() * 2 - 1) / Math.sqrt(fanIn))));
    }
  }
  return out;
}

function tloraInit(c: ModelConfig, seed: number): Map<string, HostTensor> {
  const t = tloraOf(c);
  const out = new Map<string, HostTensor>();
  for (const [k, v] of gpt2Init(baseConfigOf(c), seed)) out.set(BASE_PREFIX + k, v);
  t.adapter_names.forEach((n, i) => adapterInit(t, c.n_embd, n, seed + 1 + i).forEach((v, k) => out.set(k, v)));
  mixerInit(c, seed + 1 + t.adapter_names.length, false).forEach((v, k) => out.set(k, v));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------------

/** tlora keys as read from one dict: theirs (adapter_names, lora_rank, lora_alpha), ours (`tlora: {…}`), `base`. */
type TloraKeys = Partial<TloraConfig>;

/**
 * The gpt2 keys of a tlora config that the base's tensors cannot tell. Its shape keys (n_embd,
 * vocab_size, …) are left out: the base's own tensors decide those, and the adapters are checked
 * against them tensor by tensor (so a mismatch names the adapter tensor that does not fit).
 */
const GPT2_KEYS = ['n_head', 'activation', 'activation_function', 'layer_norm_epsilon', 'scale_attn_weights', 'scale_attn_by_inverse_layer_idx'];

/** The gpt2 keys of a tlora config dict that describe its base. */
function gpt2KeysOf(raw: RawConfig): RawConfig {
  return Object.fromEntries(GPT2_KEYS.filter((k) => raw[k] !== undefined && raw[k] !== null).map((k) => [k, raw[k]]));
}

function parseRoute(v: unknown, where: string): TloraRoute {
  const fail = (): never => {
    throw new BadInputError(`${where}: tlora route must be "mixer", "uniform", "none", {"kind":"adapter","name":…} or {"kind":"weights","weights":{name: w}}, got ${JSON.stringify(v)}`);
  };
  if (typeof v === 'string') return v.startsWith('adapter:') ? { kind: 'adapter', name: v.slice(8) } : ['mixer', 'uniform', 'none'].includes(v) ? ({ kind: v } as TloraRoute) : fail();
  if (!v || typeof v !== 'object') return fail();
  const r = v as Record<string, unknown>;
  if (r.kind === 'adapter' && typeof r.name === 'string') return { kind: 'adapter', name: r.name };
  if (r.kind === 'weights' && r.weights && typeof r.weights === 'object' && Object.values(r.weights).every((x) => typeof x === 'number')) return { kind: 'weights', weights: r.weights as Record<string, number> };
  if (r.kind === 'mixer' || r.kind === 'uniform' || r.kind === 'none') return { kind: r.kind };
  return fail();
}

function tloraKeys(raw: RawConfig, where: string): TloraKeys {
  const own = raw.tlora && typeof raw.tlora === 'object' ? (raw.tlora as Record<string, unknown>) : {};
  const pick = (...ks: string[]) => ks.map((k) => own[k] ?? raw[k]).find((v) => v !== undefined && v !== null);
  const out: TloraKeys = {};
  const num = (k: keyof TloraKeys, v: unknown, positive: boolean) => {
    if (v === undefined) return;
    if (typeof v !== 'number' || !Number.isFinite(v) || (positive ? !(v > 0) : v < 0)) throw new BadInputError(`${where}: '${k}' must be a ${positive ? 'positive' : 'non-negative'} number, got ${JSON.stringify(v)}`);
    (out as Record<string, number>)[k] = v;
  };
  const names = pick('adapter_names');
  if (names !== undefined) {
    if (!Array.isArray(names) || !names.length || !names.every((n) => typeof n === 'string' && n.length > 0)) throw new BadInputError(`${where}: 'adapter_names' must be a non-empty list of names, got ${JSON.stringify(names)}`);
    out.adapter_names = names as string[];
  }
  num('rank', pick('rank', 'lora_rank'), true);
  num('alpha', pick('alpha', 'lora_alpha'), true);
  num('mixer_embed', pick('mixer_embed', 'mixer_embed_dim'), true);
  num('mixer_hidden', pick('mixer_hidden'), true);
  num('gate_hidden', pick('gate_hidden'), false);
  const base = pick('base');
  if (base !== undefined) {
    if (typeof base !== 'string' || !base) throw new BadInputError(`${where}: 'base' must be the path of the GPT-2 base, got ${JSON.stringify(base)}`);
    out.base = base;
  }
  const route = pick('route');
  if (route !== undefined) out.route = parseRoute(route, where);
  return out;
}

function validateTlora(t: TloraConfig, where: string): TloraConfig {
  const fail = (m: string): never => {
    throw new BadInputError(`${where}: invalid tlora config: ${m}`);
  };
  if (new Set(t.adapter_names).size !== t.adapter_names.length) fail(`adapter names repeat (${t.adapter_names.join(', ')})`);
  for (const k of ['rank', 'mixer_embed', 'mixer_hidden'] as const) if (!Number.isInteger(t[k]) || t[k] <= 0) fail(`${k} must be a positive integer, got ${t[k]}`);
  const r = t.route;
  if (r?.kind === 'adapter' && !t.adapter_names.includes(r.name)) fail(`route adapter '${r.name}' is not one of ${t.adapter_names.join(', ')}`);
  if (r?.kind === 'weights') {
    const unknown = Object.keys(r.weights).find((n) => !t.adapter_names.includes(n));
    if (unknown !== undefined) fail(`route weight for '${unknown}', which is not one of ${t.adapter_names.join(', ')}`);
  }
  return t;
}

/** A new tlora model's config: a gpt2 base (its defaults and the given keys) and their adapter settings. */
function tloraDefaults(_family: Family, partial: RawConfig): ModelConfig {
  const base = GPT2.defaults('gpt2', partial); // gpt2 reads its own keys and ignores the rest
  const k = tloraKeys(partial, '--config');
  const t: TloraConfig = {
    adapter_names: k.adapter_names ?? ['adapter'],
    rank: k.rank ?? TLORA_DEFAULTS.rank,
    alpha: k.alpha ?? TLORA_DEFAULTS.alpha,
    mixer_embed: k.mixer_embed ?? TLORA_DEFAULTS.mixer_embed,
    mixer_hidden: k.mixer_hidden ?? TLORA_DEFAULTS.mixer_hidden,
    gate_hidden: k.gate_hidden ?? Math.floor(base.n_embd / 2),
    ...(k.base ? { base: k.base } : {}),
    ...(k.route ? { route: k.route } : {}),
  };
  return { ...base, family: 'tlora', tlora: validateTlora(t, '--config') };
}

// ---------------------------------------------------------------------------------------------
// Checkpoints
// ---------------------------------------------------------------------------------------------

/** Adapters and a Time Mixer: their checkpoint, or ours with or without the `base.*` tensors. */
function recognise(raw: RawCheckpoint): boolean {
  const names = [...raw.tensors.keys()];
  return raw.tensors.has(`${MIXER_PREFIX}domain_embed.weight`) && names.some((n) => n.startsWith(ADAPTER_PREFIX) && n.endsWith('.lora_A'));
}

/** Where the base comes from: the file itself (`base.*`), or a path named by --config/--base, a sidecar or the file's config. */
function baseCheckpoint(raw: RawCheckpoint, layers: [TloraKeys, ConfigSource][], baseGiven: RawConfig): { base: FamilyCheckpoint; label: string; path?: string } {
  const own = new Map([...raw.tensors].filter(([k]) => k.startsWith(BASE_PREFIX)).map(([k, v]) => [k.slice(BASE_PREFIX.length), v]));
  if (own.size) {
    const baseRaw: RawCheckpoint = { path: raw.path, name: raw.name, format: raw.format, tensors: own, fileConfig: {}, sidecar: {}, extra: {} };
    return { base: GPT2.fromCheckpoint(baseRaw, baseGiven), label: `the base in ${raw.name}` };
  }
  // --config / --base paths are the user's (from the working folder); a file's own are relative to the file
  const named = layers.find(([, s]) => s === 'config')?.[0].base;
  const fromFile = layers.filter(([, s]) => s !== 'config').map(([k]) => k.base).filter((b): b is string => !!b).pop();
  const basePath = named ? path.resolve(named) : fromFile ? path.resolve(path.dirname(raw.path), fromFile) : null;
  if (!basePath) {
    const sidecar = raw.path.replace(/\.(safetensors|pt|pth|bin)$/i, '.json');
    throw new BadInputError(`${raw.name}: a Temporal LoRA checkpoint holds only the adapters and the router: name its GPT-2 base with --base PATH (or "base" in --config or in ${path.basename(sidecar)})`);
  }
  const baseRaw = readRaw(basePath);
  if (!GPT2.recognise(baseRaw)) throw new BadInputError(`${raw.name}: the base ${basePath} is not a GPT-2 model (no transformer.wte / wpe weights): Temporal LoRA adapters sit on a GPT-2`);
  return { base: GPT2.fromCheckpoint(baseRaw, baseGiven), label: `the base ${basePath}`, path: basePath };
}

/** The adapters' and the router's tensors checked against the base; the first that does not fit is named. */
function checkFit(raw: RawCheckpoint, names: string[], base: ModelConfig, label: string): { rank: number; mixer_embed: number; mixer_hidden: number; gate_hidden: number } {
  const C = base.n_embd, V = base.vocab_size, K = names.length;
  const get = (n: string, why: string): HostTensor => {
    const t = raw.tensors.get(n);
    if (!t) throw new BadInputError(`${raw.name}: missing tensor '${n}' (${why})`);
    if (t.dtype !== 'float32') throw new BadInputError(`${raw.name}: tensor '${n}' is ${t.dtype}, expected a float tensor`);
    return t;
  };
  const expect = (n: string, t: HostTensor, want: number[], why: string) => {
    if (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i])) {
      throw new BadInputError(`${raw.name}: tensor '${n}' has shape [${t.shape}] but ${label} needs [${want}] (${why}): the adapters do not fit this GPT-2 (give the base they were trained on)`);
    }
  };
  const a0 = get(`${ADAPTER_PREFIX}${names[0]}.lora_A`, `adapter '${names[0]}'`);
  const rank = a0.shape[0];
  for (const n of names) {
    const A = `${ADAPTER_PREFIX}${n}.lora_A`, B = `${ADAPTER_PREFIX}${n}.lora_B`;
    expect(A, get(A, `adapter '${n}'`), [rank, C], `lora_A is [rank, n_embd] and the base is ${C} wide`);
    expect(B, get(B, `adapter '${n}'`), [C, rank], `lora_B is [n_embd, rank] with the rank of lora_A`);
  }
  const m = (n: string) => `${MIXER_PREFIX}${n}`;
  const embed = get(m('domain_embed.weight'), 'the Time Mixer');
  expect(m('domain_embed.weight'), embed, [V, embed.shape[1] ?? 0], `one row per token id of the base's ${V}-token vocabulary`);
  const E = embed.shape[1];
  const c0 = get(m('domain_classifier.0.weight'), 'the Time Mixer');
  const Hm = c0.shape[0];
  expect(m('domain_classifier.0.weight'), c0, [Hm, E], `Linear(embed ${E} → hidden)`);
  expect(m('domain_classifier.0.bias'), get(m('domain_classifier.0.bias'), 'the Time Mixer'), [Hm], 'the hidden layer’s bias');
  expect(m('domain_classifier.2.weight'), get(m('domain_classifier.2.weight'), 'the Time Mixer'), [K, Hm], `one router output per adapter (${K}: ${names.join(', ')})`);
  expect(m('domain_classifier.2.bias'), get(m('domain_classifier.2.bias'), 'the Time Mixer'), [K], `one router output per adapter (${K})`);
  let gateHidden = 0;
  const g0 = raw.tensors.get(m('gate.0.weight'));
  if (g0) {
    gateHidden = g0.shape[0];
    expect(m('gate.0.weight'), get(m('gate.0.weight'), 'the hidden-state gate'), [gateHidden, C], `the gate reads the ${C}-wide hidden state`);
    expect(m('gate.0.bias'), get(m('gate.0.bias'), 'the hidden-state gate'), [gateHidden], 'the gate’s hidden bias');
    expect(m('gate.2.weight'), get(m('gate.2.weight'), 'the hidden-state gate'), [K, gateHidden], `one gate output per adapter (${K})`);
    expect(m('gate.2.bias'), get(m('gate.2.bias'), 'the hidden-state gate'), [K], `one gate output per adapter (${K})`);
  }
  const stray = [...raw.tensors.keys()].find((k) => !k.startsWith(BASE_PREFIX) && !k.startsWith(MIXER_PREFIX) && !names.some((n) => k === `${ADAPTER_PREFIX}${n}.lora_A` || k === `${ADAPTER_PREFIX}${n}.lora_B`));
  if (stray) throw new BadInputError(`${raw.name}: unexpected tensor '${stray}' for a Temporal LoRA checkpoint (adapters ${names.join(', ')}: lora_A and lora_B each)`);
  return { rank, mixer_embed: E, mixer_hidden: Hm, gate_hidden: gateHidden };
}

/** Adapter names in file order (`adapters.<name>.lora_A`). */
function adapterNamesOf(raw: RawCheckpoint): string[] {
  return [...raw.tensors.keys()].filter((k) => k.startsWith(ADAPTER_PREFIX) && k.endsWith('.lora_A')).map((k) => k.slice(ADAPTER_PREFIX.length, -'.lora_A'.length));
}

function fromCheckpoint(raw: RawCheckpoint, given: RawConfig): FamilyCheckpoint {
  const layers: [TloraKeys, ConfigSource][] = [
    [tloraKeys(raw.fileConfig, raw.name), 'checkpoint'],
    [tloraKeys(raw.sidecar, raw.name), 'sidecar'],
    [tloraKeys(given, '--config'), 'config'],
  ];
  const { merged, sourceOf } = mergeLayers<TloraKeys>(layers);
  const baseGiven = { ...gpt2KeysOf(raw.fileConfig), ...gpt2KeysOf(raw.sidecar), ...gpt2KeysOf(given) };
  const { base, label, path: basePath } = baseCheckpoint(raw, layers, baseGiven);
  const inFile = adapterNamesOf(raw);
  const names = merged.adapter_names ?? inFile;
  const unnamed = inFile.find((n) => !names.includes(n));
  if (unnamed !== undefined) throw new BadInputError(`${raw.name}: tensor '${ADAPTER_PREFIX}${unnamed}.lora_A' belongs to an adapter that adapter_names (${names.join(', ')}) does not list`);
  const shapes = checkFit(raw, names, base.config, label);
  if (merged.rank !== undefined && merged.rank !== shapes.rank) throw new BadInputError(`${raw.name}: the config says lora_rank ${merged.rank} but tensor '${ADAPTER_PREFIX}${names[0]}.lora_A' has rank ${shapes.rank}`);
  const alpha = merged.alpha ?? TLORA_DEFAULTS.alpha;
  const t = validateTlora({ adapter_names: names, ...shapes, alpha, ...(basePath ? { base: basePath } : {}), ...(merged.route ? { route: merged.route } : {}) }, raw.name);
  const weights = new Map<string, HostTensor>();
  for (const [k, v] of base.weights) weights.set(BASE_PREFIX + k, v);
  for (const [k, v] of raw.tensors) if (!k.startsWith(BASE_PREFIX)) weights.set(k, v);
  const sources: ConfigSources = { ...base.sources, family: 'shapes', 'tlora.adapter_names': merged.adapter_names ? sourceOf('adapter_names') : 'shapes', 'tlora.rank': 'shapes', 'tlora.alpha': merged.alpha !== undefined ? sourceOf('alpha') : 'default' };
  const alphaNote = merged.alpha === undefined ? `lora_alpha is not stored in the checkpoint: their default ${TLORA_DEFAULTS.alpha} is used (scaling ${alpha}/${shapes.rank} = ${+(alpha / shapes.rank).toFixed(4)}); set lora_alpha in --config or a sidecar if the adapters were trained with another` : undefined;
  const note = [base.note, `Temporal LoRA on ${label}: ${names.length} adapter${names.length > 1 ? 's' : ''} (${names.join(', ')}), rank ${shapes.rank}; the router reads token ids only, the same weights at every layer; ln_f is skipped as their forward skips it`, alphaNote].filter(Boolean).join('; ');
  return { config: { ...base.config, family: 'tlora', tlora: t }, sources, weights, note };
}

function routerSignal(c: ModelConfig): SignalSpec[] {
  return [{ ...SIGNALS.router, range: [0, 1], channels: [...tloraOf(c).adapter_names] }];
}

export const TLORA: FamilyDef = {
  families: ['tlora'],
  recognise,
  fromCheckpoint,
  defaults: tloraDefaults,
  objective: () => 'causal',
  parameters: tloraParameters,
  program: tloraProgram,
  head: tloraHead,
  lensNorm: (_o, _c, x) => x, // the head reads the residual stream as it is (no ln_f)
  signals: routerSignal,
  layerCount: (c) => c.n_layer,
  kvHeads: (c) => c.n_head,
  attentionWindows: (c) => Array(c.n_layer).fill(null),
  init: tloraInit,
  adaptive: () => true,
  futureLeak: () => false,
};
