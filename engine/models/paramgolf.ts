/**
 * The parameter-golf family: the model of openai/parameter-golf PR #1784 ("GatedAttn + Alpha-Scaled
 * LoRA + Warm-start A", `train_gpt.py` at 447c5e2; shared/research/paramgolf.md §1), as their
 * `GPT.forward_logits` computes it with looping active (their eval and TTT models):
 *
 * - tied embedding; x0 = rms(tok_emb[ids]); weightless RMSNorm everywhere (eps = float32 eps);
 * - the virtual layers: blocks loop_start..loop_end repeat num_loops extra times, and the whole
 *   sequence is cut in half into an encoder and a decoder (U-Net): decoder step k takes the output
 *   of encoder step (last − k) (LIFO) through `lerp(w_k·skip, x, σ(skip_gates[k]))`;
 * - a sequential block: x_in = resid_mix[0]·x + resid_mix[1]·x0, then attention and MLP on
 *   rms(·)·ln_scale_factor (1/√(physical+1)), scaled per channel by attn_scale / mlp_scale;
 * - decoder blocks from parallel_start_layer on are two-lane "parallel" blocks (attention reads
 *   lane0 mixed with x0, the MLP reads lane1; parallel_resid/post_lambdas route the results; the
 *   skip goes into lane0); the final norm reads the lanes' mean;
 * - attention: q, k, v from the block's bank rows; QK RMS-norm, then partial RoPE (half-split over
 *   the first rope_dims dims, with their sign: x1·cos + x2·sin, −x1·sin + x2·cos), then the
 *   per-head q_gain; causal softmax with GQA (head h reads kv head h // (H/Hkv)), scale 1/√hd;
 *   XSA on the last xsa_last_n blocks (y minus its component along the token's own unit value);
 *   GatedAttn: y·σ(n @ attn_gate_w.T) per head and token, before the output projection;
 * - MLP leaky_relu(0.5)²; logits 30·tanh(z/30).
 *
 * Precision follows the fixture (float32 throughout), not the record's bf16 CUDA autocast: RoPE
 * tables stay float32 (under autocast they are cast to bf16 with q), and so does a dequantized
 * `tok_emb` (their CUDA eval model holds it in bf16).
 *
 * Layouts: the banks `qo_bank` [2L,C,C] (Wq of every block, then Wout), `kv_bank` [2L,kv,C] (Wk,
 * then Wv), `mlp_up_bank` [L,4C,C], `mlp_down_bank` [L,C,4C] are declared `linearBank`, so every
 * runtime holds each matrix transposed and a sliced row is a ready [in, out] operand.
 *
 * Each virtual layer is one program step (`VirtualLayer`: its block, part, kind, skip, XSA). The
 * per-virtual-layer LoRA of the record's test-time training (§2.3, `_block_with_lora`) adds its
 * deltas where theirs do (ttt/adapters.ts withAdapter): q, k, v before the QK-norm, o after Wout
 * (reading n), the MLP's after its projection (reading the MLP input); the head's is ttt's.
 */
import type { Family, ModelConfig, ParamgolfConfig } from '../protocol';
import type { HostTensor } from '../io/tensor';
import type { FamilyCheckpoint, RawCheckpoint, RawConfig } from '../io/checkpoint';
import { BadInputError } from '../errors';
import type { Ops } from './ops';
import { type FamilyDef, type ForwardInputs, type HeadSpec, type LayerOut, type ParamSpec, type Program, adaptiveOffOf, interveneHeads } from './family';
import { F32_EPS, applyRope, attention, causalMask, leakyReluSquared, linear, mergeHeads, repeatKv, ropeTables, splitHeads, type RopeTables } from './layers';
import { signalsOf } from './signals';
import { mergeLayers, type ConfigSource, type ConfigSources } from './config';
import { makeRng, normalSampler } from './init';
import { type LayerModule, withAdapter } from '../ttt/adapters';

// ---------------------------------------------------------------------------------------------
// Config: their Hyperparameters field names
// ---------------------------------------------------------------------------------------------

/** Every config value under their `Hyperparameters` names. */
export interface PgHyperparameters extends ParamgolfConfig {
  vocab_size: number;
  num_layers: number;
  model_dim: number;
  num_heads: number;
  train_seq_len: number;
}

/** The record's defaults (train_gpt.py Hyperparameters, with GATED_ATTN_ENABLED=1 as #1784 runs it). */
export const PARAMGOLF_DEFAULTS: PgHyperparameters = {
  vocab_size: 8192,
  num_layers: 11,
  model_dim: 512,
  num_heads: 8,
  num_kv_heads: 4,
  mlp_mult: 4,
  rope_base: 10000,
  rope_dims: 16,
  ln_scale: true,
  num_loops: 2,
  loop_start: 3,
  loop_end: 5,
  parallel_start_layer: 8,
  parallel_final_lane: 'mean',
  xsa_last_n: 11,
  skip_gates_enabled: true,
  tie_embeddings: true,
  logit_softcap: 30,
  gated_attn: true,
  qk_gain_init: 5,
  gated_attn_init_std: 0.005,
  tied_embed_init_std: 0.005,
  train_seq_len: 2048,
};

type Key = keyof PgHyperparameters;
type Kind = 'positive' | 'count' | 'number' | 'bool' | 'lane';

const KINDS: Record<Key, Kind> = {
  vocab_size: 'positive', num_layers: 'positive', model_dim: 'positive', num_heads: 'positive', num_kv_heads: 'positive', train_seq_len: 'positive',
  num_loops: 'count', loop_start: 'count', loop_end: 'count', parallel_start_layer: 'count', xsa_last_n: 'count', rope_dims: 'count',
  mlp_mult: 'number', rope_base: 'number', logit_softcap: 'number', qk_gain_init: 'number', gated_attn_init_std: 'number', tied_embed_init_std: 'number',
  ln_scale: 'bool', skip_gates_enabled: 'bool', tie_embeddings: 'bool', gated_attn: 'bool',
  parallel_final_lane: 'lane',
};

/** Our ModelConfig's common keys, read as theirs (a config saved by Head Lens reloads). */
const COMMON_ALIASES: Record<string, Key> = { n_layer: 'num_layers', n_embd: 'model_dim', n_head: 'num_heads', n_kv_head: 'num_kv_heads', block_size: 'train_seq_len', vocab_size: 'vocab_size' };

function parseValue(key: Key, v: unknown, where: string): PgHyperparameters[Key] {
  const fail = (want: string): never => {
    throw new BadInputError(`${where}: '${key}' must be ${want}, got ${JSON.stringify(v)}`);
  };
  switch (KINDS[key]) {
    case 'positive':
      return Number.isInteger(v) && (v as number) > 0 ? (v as number) : fail('a positive integer');
    case 'count':
      return Number.isInteger(v) && (v as number) >= 0 ? (v as number) : fail('a non-negative integer');
    case 'number':
      return typeof v === 'number' && Number.isFinite(v) ? v : fail('a number');
    case 'bool': // their env parsing: bool(int(...))
      return typeof v === 'boolean' ? v : v === 0 || v === 1 ? v === 1 : fail('true or false (or 0 / 1)');
    case 'lane':
      return v === 'mean' || v === 'attn' || v === 'mlp' ? v : fail("'mean', 'attn' or 'mlp'");
  }
}

/**
 * The family's keys in one config dict: our common keys, a nested `paramgolf` (our saved
 * ModelConfig), a nested `hyperparameters` (the fixtures' json), then their names at the top level;
 * `gated_attn` may be their `gated_attn_enabled` or the fixtures' `{enabled, init_std}`.
 */
export function paramgolfKeys(raw: RawConfig, where: string): Partial<PgHyperparameters> {
  const out: Record<string, unknown> = {};
  const take = (dict: RawConfig) => {
    for (const [k, v] of Object.entries(dict)) {
      if (v === undefined || v === null) continue;
      if (k in KINDS) out[k] = k === 'gated_attn' && typeof v === 'object' ? (v as RawConfig).enabled : v;
      else if (k === 'gated_attn_enabled') out.gated_attn = v;
    }
    const ga = dict.gated_attn;
    if (ga && typeof ga === 'object' && (ga as RawConfig).init_std !== undefined && dict.gated_attn_init_std === undefined) out.gated_attn_init_std = (ga as RawConfig).init_std;
  };
  for (const [ours, theirs] of Object.entries(COMMON_ALIASES)) if (raw[ours] !== undefined) out[theirs] = raw[ours];
  for (const nested of [raw.paramgolf, raw.hyperparameters]) if (nested && typeof nested === 'object' && !Array.isArray(nested)) take(nested as RawConfig);
  take(raw);
  const parsed: Partial<PgHyperparameters> = {};
  for (const [k, v] of Object.entries(out)) if (v !== undefined) (parsed as Record<string, unknown>)[k] = parseValue(k as Key, v, where);
  return parsed;
}

function checkConfig(h: PgHyperparameters, where: string): void {
  const fail = (m: string): never => {
    throw new BadInputError(`${where}: invalid paramgolf config: ${m}`);
  };
  if (h.model_dim % h.num_heads) fail(`model_dim ${h.model_dim} is not divisible by num_heads ${h.num_heads}`);
  const hd = h.model_dim / h.num_heads;
  if (hd % 2) fail(`head_dim model_dim/num_heads = ${hd} must be even (RoPE)`);
  if (h.num_heads % h.num_kv_heads) fail(`num_heads ${h.num_heads} is not divisible by num_kv_heads ${h.num_kv_heads}`);
  if (h.rope_dims % 2 || h.rope_dims > hd) fail(`rope_dims ${h.rope_dims} must be even and at most head_dim ${hd}`);
  if (h.num_loops > 0 && !(h.loop_start <= h.loop_end && h.loop_end < h.num_layers)) fail(`the loop ${h.loop_start}..${h.loop_end} must lie within the ${h.num_layers} blocks (give num_loops, loop_start and loop_end as trained)`);
  if (!(h.logit_softcap > 0)) fail(`logit_softcap must be positive, got ${h.logit_softcap}`);
  if (!(h.mlp_mult > 0) || Math.trunc(h.mlp_mult * h.model_dim) < 1) fail(`mlp_mult ${h.mlp_mult} gives no MLP hidden units`);
  if (!(h.rope_base > 0)) fail(`rope_base must be positive, got ${h.rope_base}`);
}

/** The ModelConfig: common keys plus `paramgolf` (everything else, under their names). */
function toModelConfig(h: PgHyperparameters, where: string): ModelConfig {
  checkConfig(h, where);
  const { vocab_size, num_layers, model_dim, num_heads, train_seq_len, ...rest } = h;
  return { family: 'paramgolf', vocab_size, block_size: train_seq_len, n_layer: num_layers, n_head: num_heads, n_embd: model_dim, n_kv_head: h.num_kv_heads, paramgolf: rest };
}

function pgOf(c: ModelConfig): ParamgolfConfig {
  if (!c.paramgolf) throw new Error('a paramgolf model config without its `paramgolf` fields');
  return c.paramgolf;
}

function hiddenDim(c: ModelConfig): number {
  // their int(mlp_mult * model_dim); the tolerance keeps a ratio read off the shapes exact
  return Math.trunc(pgOf(c).mlp_mult * c.n_embd + 1e-9);
}

// ---------------------------------------------------------------------------------------------
// The layer schedule
// ---------------------------------------------------------------------------------------------

export interface VirtualLayer {
  virtual: number;
  physical: number;
  part: 'encoder' | 'decoder';
  kind: 'sequential' | 'parallel';
  /** The U-Net skip this step takes (its skip_weights / skip_gates row), or null. */
  skipIn: number | null;
  /** The encoder step whose output that skip carries. */
  skipFromVirtual: number | null;
  xsa: boolean;
  lnScaleFactor: number;
}

/** Their encoder/decoder indices with looping active (GPT.__init__), as one table of virtual layers. */
export function paramgolfSchedule(c: ModelConfig): VirtualLayer[] {
  const pg = pgOf(c), L = c.n_layer;
  const range = (a: number, b: number) => Array.from({ length: Math.max(0, b - a) }, (_, i) => a + i);
  let encoder: number[], decoder: number[];
  if (pg.num_loops > 0) {
    const loop = range(pg.loop_start, pg.loop_end + 1);
    const all = [...range(0, pg.loop_start), ...Array.from({ length: pg.num_loops + 1 }, () => loop).flat(), ...range(pg.loop_end + 1, L)];
    encoder = all.slice(0, all.length >> 1);
    decoder = all.slice(all.length >> 1);
  } else {
    encoder = range(0, L >> 1);
    decoder = range(L >> 1, L);
  }
  const skips = Math.min(encoder.length, decoder.length);
  const layer = (virtual: number, physical: number, part: VirtualLayer['part'], skipIn: number | null): VirtualLayer => ({
    virtual,
    physical,
    part,
    kind: part === 'decoder' && pg.parallel_start_layer > 0 && physical >= pg.parallel_start_layer ? 'parallel' : 'sequential',
    skipIn,
    skipFromVirtual: skipIn === null ? null : encoder.length - 1 - skipIn,
    xsa: pg.xsa_last_n > 0 && physical >= L - pg.xsa_last_n,
    lnScaleFactor: pg.ln_scale ? 1 / Math.sqrt(physical + 1) : 1,
  });
  return [
    ...encoder.map((p, v) => layer(v, p, 'encoder', null)),
    // step k pops a skip while there is one (LIFO: the k-th from the encoder's end)
    ...decoder.map((p, k) => layer(encoder.length + k, p, 'decoder', k < skips && k < encoder.length ? k : null)),
  ];
}

/** Rows of skip_weights / skip_gates: min(encoder steps, decoder steps). */
function skipCount(c: ModelConfig): number {
  const s = paramgolfSchedule(c);
  return Math.min(s.filter((l) => l.part === 'encoder').length, s.filter((l) => l.part === 'decoder').length);
}

// ---------------------------------------------------------------------------------------------
// Parameters (their state_dict order: GPT's own, then tok_emb, the blocks, lm_head)
// ---------------------------------------------------------------------------------------------

export function paramgolfParameters(c: ModelConfig): ParamSpec[] {
  const pg = pgOf(c), L = c.n_layer, C = c.n_embd, H = c.n_head;
  const kvDim = pg.num_kv_heads * (C / H), hidden = hiddenDim(c), S = skipCount(c);
  const out: ParamSpec[] = [
    { name: 'qo_bank', shape: [2 * L, C, C], linearBank: true },
    { name: 'kv_bank', shape: [2 * L, kvDim, C], linearBank: true },
    { name: 'mlp_up_bank', shape: [L, hidden, C], linearBank: true },
    { name: 'mlp_down_bank', shape: [L, C, hidden], linearBank: true },
    { name: 'skip_weights', shape: [S, C] },
  ];
  if (pg.skip_gates_enabled) out.push({ name: 'skip_gates', shape: [S, C] });
  out.push({ name: 'parallel_post_lambdas', shape: [L, 2, 2] }, { name: 'parallel_resid_lambdas', shape: [L, 2] }, { name: 'tok_emb.weight', shape: [c.vocab_size, C] });
  for (let i = 0; i < L; i++) {
    out.push({ name: `blocks.${i}.attn_scale`, shape: [C] }, { name: `blocks.${i}.mlp_scale`, shape: [C] }, { name: `blocks.${i}.resid_mix`, shape: [2, C] });
    out.push({ name: `blocks.${i}.attn.q_gain`, shape: [H] });
    // used as F.linear(n, attn_gate_w): an nn.Linear-shaped weight [H, C]
    if (pg.gated_attn) out.push({ name: `blocks.${i}.attn.attn_gate_w`, shape: [H, C], linear: true });
  }
  if (!pg.tie_embeddings) out.push({ name: 'lm_head.weight', shape: [c.vocab_size, C], linear: true });
  return out;
}

// ---------------------------------------------------------------------------------------------
// The forward pass
// ---------------------------------------------------------------------------------------------

interface StepCtx<T> {
  c: ModelConfig;
  pg: ParamgolfConfig;
  inputs: ForwardInputs<T>;
  rope: RopeTables<T>;
  mask: T;
}

/** One block's matrices, stored [in, out]: rows of the banks. */
interface BlockWeights<T> {
  q: T;
  k: T;
  v: T;
  o: T;
  up: T;
  down: T;
}

function blockWeights<T>(o: Ops<T>, c: ModelConfig, i: number): BlockWeights<T> {
  const L = c.n_layer;
  const row = (bank: string, r: number) => o.squeeze(o.slice(o.param(bank), 0, r, r + 1), 0); // (in, out)
  return { q: row('qo_bank', i), o: row('qo_bank', L + i), k: row('kv_bank', i), v: row('kv_bank', L + i), up: row('mlp_up_bank', i), down: row('mlp_down_bank', i) };
}

/** A projection of one virtual layer (its test-time adapter, when there is one, is added by the caller: withAdapter). */
function project<T>(o: Ops<T>, x: T, w: T): T {
  return linear(o, x, w);
}

/** A vector parameter row as (C): `t[row]`. */
function rowOf<T>(o: Ops<T>, t: T, row: number): T {
  return o.reshape(o.slice(t, 0, row, row + 1), [-1]);
}

/** One scalar of a parameter, `t[i, j(, k)]`, as a (1) tensor that broadcasts. */
function scalarOf<T>(o: Ops<T>, t: T, index: number[]): T {
  let x = t;
  index.forEach((at, axis) => (x = o.slice(x, axis, at, at + 1)));
  return o.reshape(x, [1]);
}

function normed<T>(o: Ops<T>, x: T, lnScaleFactor: number): T {
  const n = o.rmsNorm(x, F32_EPS);
  return lnScaleFactor === 1 ? n : o.mul(n, lnScaleFactor);
}

interface AttnOut<T> {
  out: T; // (B, T, C) after Wout, before attn_scale
  probs: T; // (B, H, T, T)
  gate: T | null; // (B, T, H)
}

/** CausalSelfAttention.forward on n (B, T, C), the normed, ln-scaled block input. */
function attend<T>(o: Ops<T>, ctx: StepCtx<T>, n: T, w: BlockWeights<T>, layer: VirtualLayer): AttnOut<T> {
  const { c, pg } = ctx, H = c.n_head, Hkv = pg.num_kv_heads, hd = c.n_embd / H, i = layer.physical;
  // a test-time adapter reads n and adds before the QK-norm (and feeds XSA through v)
  const adapt = (m: LayerModule, y: T) => withAdapter(o, ctx.inputs.adapters, layer.virtual, m, n, y);
  const q = splitHeads(o, adapt('q', project(o, n, w.q)), H); // (B, H, T, hd)
  const k = splitHeads(o, adapt('k', project(o, n, w.k)), Hkv); // (B, Hkv, T, hd)
  const v = repeatKv(o, splitHeads(o, adapt('v', project(o, n, w.v)), Hkv), H, Hkv); // (B, H, T, hd)
  // QK-norm before RoPE, then the per-head gain on q
  const qGain = o.reshape(o.param(`blocks.${i}.attn.q_gain`), [1, -1, 1, 1]);
  const qr = o.mul(applyRope(o, o.rmsNorm(q, F32_EPS), ctx.rope), qGain);
  const kr = repeatKv(o, applyRope(o, o.rmsNorm(k, F32_EPS), ctx.rope), H, Hkv);
  const att = attention(o, qr, kr, v, ctx.mask, 1 / Math.sqrt(hd));
  let y = layer.xsa ? withoutSelfValue(o, att.out, v) : att.out; // (B, H, T, hd)
  let gate: T | null = null;
  if (pg.gated_attn) {
    gate = o.sigmoid(linear(o, n, o.param(`blocks.${i}.attn.attn_gate_w`))); // (B, T, H)
    const g = o.unsqueeze(o.transpose(gate, [0, 2, 1]), -1); // (B, H, T, 1)
    const off = adaptiveOffOf(o, ctx.inputs.controls, layer.virtual); // adaptive off: gate 1
    y = o.mul(y, off ? o.add(o.mul(g, o.sub(1, off)), off) : g);
  }
  y = interveneHeads(o, y, ctx.inputs.controls, layer.virtual);
  return { out: adapt('o', project(o, mergeHeads(o, y), w.o)), probs: att.probs, gate }; // o's adapter reads n, not y
}

/** XSA: y − (y·v̂)v̂ per head and token, v̂ = v / max(‖v‖, 1e-12) (F.normalize). */
function withoutSelfValue<T>(o: Ops<T>, y: T, v: T): T {
  const vn = o.div(v, o.maximum(o.sqrt(o.sum(o.square(v), -1, true)), 1e-12));
  return o.sub(y, o.mul(o.sum(o.mul(y, vn), -1, true), vn));
}

/** MLP.forward: leaky_relu(n Wfc, 0.5)² Wproj, plus the layer's mlp adapter on n (before mlp_scale). */
function mlp<T>(o: Ops<T>, ctx: StepCtx<T>, n: T, w: BlockWeights<T>, layer: VirtualLayer): T {
  return withAdapter(o, ctx.inputs.adapters, layer.virtual, 'mlp', n, project(o, leakyReluSquared(o, project(o, n, w.up), 0.5), w.down));
}

interface BlockResult<T> {
  attn: AttnOut<T>;
  mlpOut: T;
}

/** Block.forward: returns the new stream. */
function sequentialBlock<T>(o: Ops<T>, ctx: StepCtx<T>, x: T, x0: T, layer: VirtualLayer): BlockResult<T> & { x: T } {
  const P = (n: string) => o.param(`blocks.${layer.physical}.${n}`), w = blockWeights(o, ctx.c, layer.physical);
  const mix = P('resid_mix');
  const xIn = o.add(o.mul(rowOf(o, mix, 0), x), o.mul(rowOf(o, mix, 1), x0));
  const a = attend(o, ctx, normed(o, xIn, layer.lnScaleFactor), w, layer);
  const x1 = o.add(xIn, o.mul(P('attn_scale'), a.out)); // the residual base is the mixed stream
  const m = mlp(o, ctx, normed(o, x1, layer.lnScaleFactor), w, layer);
  return { x: o.add(x1, o.mul(P('mlp_scale'), m)), attn: a, mlpOut: m };
}

/** GPT._parallel_block: attention reads lane0 (mixed with x0), the MLP reads lane1. */
function parallelBlock<T>(o: Ops<T>, ctx: StepCtx<T>, lane0: T, lane1: T, x0: T, layer: VirtualLayer): BlockResult<T> & { lane0: T; lane1: T } {
  const i = layer.physical, P = (n: string) => o.param(`blocks.${i}.${n}`), w = blockWeights(o, ctx.c, i);
  const mix = P('resid_mix');
  const attnRead = o.add(o.mul(rowOf(o, mix, 0), lane0), o.mul(rowOf(o, mix, 1), x0));
  const a = attend(o, ctx, normed(o, attnRead, layer.lnScaleFactor), w, layer);
  const m = mlp(o, ctx, normed(o, lane1, layer.lnScaleFactor), w, layer);
  const A = o.mul(P('attn_scale'), a.out), M = o.mul(P('mlp_scale'), m);
  const resid = o.param('parallel_resid_lambdas'), post = o.param('parallel_post_lambdas'); // (L, 2), (L, 2, 2)
  // post[i, 0] routes the attention output, post[i, 1] the MLP's; [·, j] feeds lane j
  const route = (lane: T, j: number) => o.add(o.add(o.mul(scalarOf(o, resid, [i, j]), lane), o.mul(scalarOf(o, post, [i, 0, j]), A)), o.mul(scalarOf(o, post, [i, 1, j]), M));
  return { lane0: route(lane0, 0), lane1: route(lane1, 1), attn: a, mlpOut: m };
}

/**
 * The U-Net skip into the stream: lerp(w·s, x, g) = w·s + g·(x − w·s) with g = σ(skip_gates[k]),
 * or x + w·s without gates. `keep` (B, T) is the running stream's share of the mixed input per
 * token, ‖g⊙x‖ / (‖g⊙x‖ + ‖(1−g)⊙w⊙s‖): the skipGate signal.
 */
function skipInto<T>(o: Ops<T>, ctx: StepCtx<T>, x: T, skip: T, k: number): { x: T; keep: T } {
  const ws = o.mul(rowOf(o, o.param('skip_weights'), k), skip);
  const norm = (t: T) => o.sqrt(o.sum(o.square(t), -1));
  if (!ctx.pg.skip_gates_enabled) {
    const kept = norm(x);
    return { x: o.add(x, ws), keep: o.div(kept, o.maximum(o.add(kept, norm(ws)), 1e-12)) };
  }
  const g = o.sigmoid(rowOf(o, o.param('skip_gates'), k));
  const kept = norm(o.mul(g, x));
  const keep = o.div(kept, o.maximum(o.add(kept, norm(o.mul(o.sub(1, g), ws))), 1e-12));
  return { x: o.add(ws, o.mul(g, o.sub(x, ws))), keep };
}

function paramgolfProgram<T>(o: Ops<T>, c: ModelConfig, inputs: ForwardInputs<T>): Program<T> {
  const pg = pgOf(c), hd = c.n_embd / c.n_head, schedule = paramgolfSchedule(c);
  const ctx: StepCtx<T> = {
    c,
    pg,
    inputs,
    rope: ropeTables(o, { layout: 'half', headDim: hd, rotaryDims: pg.rope_dims > 0 ? pg.rope_dims : hd, base: pg.rope_base, maxLen: c.block_size }, inputs.positions),
    mask: causalMask(o, inputs.positions),
  };
  const x0 = o.rmsNorm(o.gather(o.param('tok_emb.weight'), inputs.ids), F32_EPS); // (B, T, C)
  let x = x0;
  let lanes: [T, T] | null = null;
  const skips: T[] = []; // encoder outputs, popped LIFO by the decoder
  const finalHidden = (): T => {
    if (!lanes) return x;
    if (pg.parallel_final_lane === 'attn') return lanes[0];
    if (pg.parallel_final_lane === 'mlp') return lanes[1];
    return o.mul(o.add(lanes[0], lanes[1]), 0.5);
  };
  const step = (v: number): LayerOut<T> => {
    const layer = schedule[v];
    const signals: Record<string, T> = {}, extras: Record<string, T> = {};
    if (v === 0) extras.x0 = x0;
    let r: BlockResult<T>, hidden: T;
    if (layer.kind === 'sequential') {
      if (layer.skipIn !== null) {
        const s = skipInto(o, ctx, x, skips.pop()!, layer.skipIn);
        x = s.x;
        signals.skipGate = s.keep;
      }
      const b = sequentialBlock(o, ctx, x, x0, layer);
      x = hidden = b.x;
      r = b;
      if (layer.part === 'encoder') skips.push(x);
    } else {
      const [start0, lane1]: [T, T] = lanes ?? [x, x];
      let lane0 = start0;
      if (layer.skipIn !== null) {
        const s = skipInto(o, ctx, lane0, skips.pop()!, layer.skipIn); // the skip feeds lane0 only
        lane0 = s.x;
        signals.skipGate = s.keep;
      }
      const b = parallelBlock(o, ctx, lane0, lane1, x0, layer);
      lanes = [b.lane0, b.lane1];
      hidden = o.mul(o.add(b.lane0, b.lane1), 0.5);
      extras[`lane0.${v}`] = b.lane0;
      extras[`lane1.${v}`] = b.lane1;
      r = b;
    }
    if (r.attn.gate) {
      signals.gate = o.transpose(r.attn.gate, [0, 2, 1]); // (B, H, T)
      extras[`gate.${v}`] = r.attn.gate;
    }
    extras[`attn_out.${v}`] = r.attn.out;
    extras[`mlp_out.${v}`] = r.mlpOut;
    if (v === schedule.length - 1) extras.final_hidden = finalHidden();
    return { attn: r.attn.probs, hidden, signals, extras, ...(layer.kind === 'parallel' ? { notForwarded: ['hidden'] as const } : {}) };
  };
  return {
    layers: schedule.length,
    step,
    final: () => o.rmsNorm(finalHidden(), F32_EPS),
    state: () => [x0, x, ...(lanes ?? []), ...skips, ctx.rope.cos, ctx.rope.sin, ctx.rope.rot, ctx.mask],
  };
}

function paramgolfHead(c: ModelConfig): HeadSpec {
  const pg = pgOf(c);
  return pg.tie_embeddings ? { weight: 'tok_emb.weight', tied: true, softcap: pg.logit_softcap } : { weight: 'lm_head.weight', tied: false, softcap: pg.logit_softcap };
}

// ---------------------------------------------------------------------------------------------
// Checkpoints: the float state_dict (.pt / .safetensors) and the quantized artifact (.ptz)
// ---------------------------------------------------------------------------------------------

/** The banks are what no other family has. */
function recognise(raw: RawCheckpoint): boolean {
  return raw.tensors.has('qo_bank');
}

/** What the tensors say about the config, each with the tensor that says it. */
function shapeFacts(shapes: Map<string, number[]>, file: string): { values: Partial<PgHyperparameters>; tensorOf: Partial<Record<Key, string>> } {
  const need = (name: string, rank: number): number[] => {
    const s = shapes.get(name);
    if (!s) throw new BadInputError(`${file}: a parameter-golf model needs the tensor '${name}', which this checkpoint lacks`);
    if (s.length !== rank) throw new BadInputError(`${file}: tensor '${name}' has shape [${s}], expected ${rank} dimensions`);
    return s;
  };
  const [V, C] = need('tok_emb.weight', 2);
  const qo = need('qo_bank', 3), kv = need('kv_bank', 3), up = need('mlp_up_bank', 3);
  const [H] = need('blocks.0.attn.q_gain', 1);
  if (qo[0] % 2 || qo[1] !== C || qo[2] !== C) throw new BadInputError(`${file}: tensor 'qo_bank' has shape [${qo}], expected [2·num_layers, ${C}, ${C}] (Wq of every block, then Wout)`);
  if (C % H) throw new BadInputError(`${file}: tensor 'blocks.0.attn.q_gain' has ${H} heads, which do not divide the width ${C} of 'tok_emb.weight'`);
  const hd = C / H;
  if (kv[1] % hd) throw new BadInputError(`${file}: tensor 'kv_bank' has rows of ${kv[1]}, not a multiple of head_dim ${hd} (model_dim ${C} / ${H} heads)`);
  return {
    values: {
      vocab_size: V, model_dim: C, num_layers: qo[0] / 2, num_heads: H, num_kv_heads: kv[1] / hd, mlp_mult: up[1] / C,
      skip_gates_enabled: shapes.has('skip_gates'), tie_embeddings: !shapes.has('lm_head.weight'), gated_attn: shapes.has('blocks.0.attn.attn_gate_w'),
    },
    tensorOf: {
      vocab_size: 'tok_emb.weight', model_dim: 'tok_emb.weight', num_layers: 'qo_bank', num_heads: 'blocks.0.attn.q_gain', num_kv_heads: 'kv_bank', mlp_mult: 'mlp_up_bank',
      skip_gates_enabled: 'skip_gates', tie_embeddings: 'lm_head.weight', gated_attn: 'blocks.0.attn.attn_gate_w',
    },
  };
}

/** A given value agrees with the shapes (mlp_mult through their int(mlp_mult · model_dim)). */
function agrees(key: Key, given: unknown, fromShapes: unknown, h: PgHyperparameters): boolean {
  if (key === 'mlp_mult') return Math.trunc((given as number) * h.model_dim) === Math.round((fromShapes as number) * h.model_dim);
  return given === fromShapes;
}

function fromCheckpoint(raw: RawCheckpoint, given: RawConfig): FamilyCheckpoint {
  const { merged, sourceOf } = mergeLayers<Partial<PgHyperparameters>>([
    [paramgolfKeys(raw.fileConfig, raw.name), 'checkpoint'],
    [paramgolfKeys(raw.sidecar, `${raw.name} (sidecar config)`), 'sidecar'],
    [paramgolfKeys(given, '--config'), 'config'],
  ]);
  const shapes = new Map([...raw.tensors].map(([k, v]) => [k, v.shape]));
  const facts = shapeFacts(shapes, raw.name);
  const h: PgHyperparameters = { ...PARAMGOLF_DEFAULTS, ...merged, ...facts.values };
  for (const [k, fromShapes] of Object.entries(facts.values) as [Key, unknown][]) {
    const g = merged[k];
    if (g !== undefined && !agrees(k, g, fromShapes, h)) {
      const tensor = facts.tensorOf[k]!, shape = shapes.get(tensor);
      const what = shape ? `has shape [${shape}], which means ${k} = ${fromShapes}` : `is absent, which means ${k} = ${fromShapes}`;
      throw new BadInputError(`${raw.name}: tensor '${tensor}' ${what}, but the ${sourceName(sourceOf(k))} says ${k} = ${JSON.stringify(g)} (fix or drop that value)`);
    }
  }
  const config = toModelConfig(h, raw.name);
  checkSkipRows(config, shapes, raw.name);
  for (const [k, v] of raw.tensors) if (v.dtype !== 'float32') throw new BadInputError(`${raw.name}: tensor '${k}' is ${v.dtype}, expected a float tensor`);
  return { config, sources: sourcesOf(merged, facts.values, sourceOf), weights: raw.tensors };
}

/** skip_weights has one row per U-Net skip: the loop settings decide how many. */
function checkSkipRows(c: ModelConfig, shapes: Map<string, number[]>, file: string): void {
  const rows = shapes.get('skip_weights')?.[0], want = skipCount(c), pg = pgOf(c);
  if (rows !== undefined && rows !== want) {
    throw new BadInputError(`${file}: tensor 'skip_weights' has ${rows} rows but num_loops ${pg.num_loops}, loop_start ${pg.loop_start}, loop_end ${pg.loop_end} give ${want} U-Net skips: give the loop settings the model was trained with (--config)`);
  }
}

function sourceName(s: ConfigSource): string {
  return s === 'config' ? '--config' : s === 'sidecar' ? 'sidecar config' : s === 'checkpoint' ? "checkpoint's config" : s;
}

/** Where each value came from, under the ModelConfig key it lands in. */
function sourcesOf(merged: Partial<PgHyperparameters>, fromShapes: Partial<PgHyperparameters>, sourceOf: (k: string) => ConfigSource): ConfigSources {
  const common: Partial<Record<Key, string>> = { vocab_size: 'vocab_size', num_layers: 'n_layer', model_dim: 'n_embd', num_heads: 'n_head', train_seq_len: 'block_size' };
  const out: ConfigSources = { family: 'shapes' };
  for (const k of Object.keys(PARAMGOLF_DEFAULTS) as Key[]) {
    const src: ConfigSource = k in fromShapes ? 'shapes' : merged[k] !== undefined ? sourceOf(k) : 'default';
    out[common[k] ?? `paramgolf.${k}`] = src;
    if (k === 'num_kv_heads') out.n_kv_head = src;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Initialisation (their _init_weights, seeded; not torch's generator)
// ---------------------------------------------------------------------------------------------

/**
 * nn.init.orthogonal_: a (rows, cols) normal matrix orthonormalised (columns when rows ≥ cols,
 * else rows) — modified Gram-Schmidt, which gives QR's Q with R's diagonal positive.
 */
function orthogonal(rows: number, cols: number, normal: () => number, out: Float32Array, offset: number): void {
  const m = Math.max(rows, cols), n = Math.min(rows, cols);
  const q = new Float64Array(m * n); // column j at [j·m, (j+1)·m)
  for (let i = 0; i < q.length; i++) q[i] = normal();
  for (let j = 0; j < n; j++) {
    const cj = j * m;
    for (let p = 0; p < j; p++) {
      const cp = p * m;
      const dot = dotAt(q, cp, cj, m);
      for (let r = 0; r < m; r++) q[cj + r] -= dot * q[cp + r];
    }
    const norm = Math.sqrt(dotAt(q, cj, cj, m)) || 1;
    for (let r = 0; r < m; r++) q[cj + r] /= norm;
  }
  // rows ≥ cols: W[r, j] = Q[r, j]; rows < cols: W = Qᵀ, W[j, r] = Q[r, j]
  for (let j = 0; j < n; j++) for (let r = 0; r < m; r++) out[offset + (rows >= cols ? r * cols + j : j * cols + r)] = q[j * m + r];
}

/** Σ q[a + r]·q[b + r] over r < m, four partial sums (this loop is the whole cost of the init). */
function dotAt(q: Float64Array, a: number, b: number, m: number): number {
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0, r = 0;
  for (; r + 3 < m; r += 4) {
    s0 += q[a + r] * q[b + r];
    s1 += q[a + r + 1] * q[b + r + 1];
    s2 += q[a + r + 2] * q[b + r + 2];
    s3 += q[a + r + 3] * q[b + r + 3];
  }
  for (; r < m; r++) s0 += q[a + r] * q[b + r];
  return s0 + s1 + s2 + s3;
}

function paramgolfInit(c: ModelConfig, seed: number): Map<string, HostTensor> {
  const pg = pgOf(c), L = c.n_layer, rng = makeRng(seed), normal = normalSampler(rng);
  const out = new Map<string, HostTensor>();
  for (const spec of paramgolfParameters(c)) {
    const values = new Float32Array(spec.shape.reduce((a, b) => a * b, 1));
    const [rows, cols] = spec.shape.slice(-2), size = rows * cols;
    const name = spec.name;
    const fill = (v: number) => values.fill(v);
    const normals = (std: number) => values.forEach((_, i) => (values[i] = normal() * std));
    // a bank's matrices: orthogonal, except the zero-initialised output projections
    const bank = (orthogonalRow: (r: number) => boolean) => {
      for (let r = 0; r < spec.shape[0]; r++) if (orthogonalRow(r)) orthogonal(rows, cols, normal, values, r * size);
    };
    if (name === 'qo_bank') bank((r) => r < L);
    else if (name === 'kv_bank' || name === 'mlp_up_bank') bank(() => true);
    else if (name === 'mlp_down_bank' || name === 'skip_gates' || name === 'lm_head.weight') fill(0);
    else if (name === 'tok_emb.weight') normals(pg.tie_embeddings ? pg.tied_embed_init_std : 1);
    else if (name === 'parallel_resid_lambdas') fill(1.1);
    else if (name.endsWith('.q_gain')) fill(pg.qk_gain_init);
    else if (name.endsWith('.attn_gate_w')) normals(pg.gated_attn_init_std);
    else if (name.endsWith('.resid_mix')) values.fill(1, 0, c.n_embd); // [ones; zeros]
    else fill(1); // attn_scale, mlp_scale, skip_weights, parallel_post_lambdas
    out.set(name, { shape: spec.shape, dtype: 'float32', values });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

export const PARAMGOLF: FamilyDef = {
  families: ['paramgolf'],
  recognise,
  fromCheckpoint,
  defaults: (_family: Family, partial: RawConfig) => toModelConfig({ ...PARAMGOLF_DEFAULTS, ...paramgolfKeys(partial, 'config') }, 'config'),
  objective: () => 'causal',
  parameters: paramgolfParameters,
  program: paramgolfProgram,
  head: paramgolfHead,
  lensNorm: (o, _c, x) => o.rmsNorm(x, F32_EPS),
  signals: (c) => {
    const names: ('gate' | 'skipGate')[] = [];
    if (pgOf(c).gated_attn) names.push('gate');
    if (paramgolfSchedule(c).some((l) => l.skipIn !== null)) names.push('skipGate');
    return signalsOf(...names);
  },
  layerCount: (c) => paramgolfSchedule(c).length,
  kvHeads: (c) => pgOf(c).num_kv_heads,
  attentionWindows: (c) => paramgolfSchedule(c).map(() => null),
  init: paramgolfInit,
  adaptive: (c) => pgOf(c).gated_attn,
  futureLeak: () => false,
};
