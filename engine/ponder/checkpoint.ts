/**
 * TTT-layer files: safetensors whose tensors carry the NNX names of `TTTTransformerLM`
 * (`fast_norm.*`, `fast_layer.*`: the fixture's, and what converting their Orbax state gives).
 * Our own files add metadata:
 *   format      "headlens-ponder-ttt-1"
 *   ttt_config  the TTTConfig keys (JSON)
 *   base        the frozen base it was trained on: {path, family, n_embd, vocab_size, n_layer} (JSON)
 *   state       for training checkpoints: step, options, data (JSON), with the AdamW moments as
 *               `optim.exp_avg.<name>` / `optim.exp_avg_sq.<name>` tensors beside the weights.
 * The base is never copied into the file: it is loaded from wherever --model names it.
 * Also the layer's own initialisation as their code draws it (flax lecun_normal, zero W_o, …).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ModelConfig } from '../protocol';
import { BadInputError } from '../errors';
import type { HostTensor } from '../io/tensor';
import { readSafetensors, writeSafetensors } from '../io/safetensors';
import { readJsonConfig, type RawConfig } from '../io/checkpoint';
import { makeRng, normalSampler } from '../models/init';
import { tttConfigOf, tttParameters, type TttConfig } from './config';

export const TTT_FORMAT = 'headlens-ponder-ttt-1';
export const OPTIM_PREFIX = 'optim.';

/** The base a TTT layer was trained on, as its file records it. */
export interface BaseRecord {
  path: string;
  family: string;
  n_embd: number;
  vocab_size: number;
  n_layer: number;
}

export interface TttCheckpoint {
  file: string;
  config: TttConfig;
  /** The layer's parameters only (no optimizer moments). */
  weights: Map<string, HostTensor>;
  base: BaseRecord | null;
  /** Training state and AdamW moments of a training checkpoint. */
  state: Record<string, unknown> | null;
  moments: { m: Map<string, HostTensor>; v: Map<string, HostTensor> } | null;
  /** What the user should know (e.g. the file names another base than the one loaded). */
  note?: string;
}

function parseMeta(meta: Record<string, string>, key: string, file: string): Record<string, unknown> | null {
  if (meta[key] === undefined) return null;
  try {
    const v = JSON.parse(meta[key]);
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw new BadInputError(`${file}: metadata '${key}' is not a JSON object (re-save the TTT layer)`);
}

/** `<name>.json` beside the file (the fixtures' `{config: {…}}` layout is flattened). */
function sidecar(file: string): RawConfig {
  const side = file.replace(/\.safetensors$/i, '.json');
  return side !== file && fs.existsSync(side) ? readJsonConfig(side) : {};
}

/**
 * Reads a TTT-layer file; `base` (the loaded base model) fixes the width every tensor must fit,
 * named in the error when one does not. `given` is the caller's config (TTTConfig keys).
 */
export function readTttCheckpoint(file: string, opts: { given?: RawConfig; base?: { config: ModelConfig; path: string } } = {}): TttCheckpoint {
  if (!file) throw new BadInputError('no TTT layer given: pass --ttt FILE.safetensors (a PonderTTT TTT-layer checkpoint)');
  if (!/\.safetensors$/i.test(file)) throw new BadInputError(`${file}: a TTT layer is read from a .safetensors file (fast_norm.* and fast_layer.* tensors)`);
  const name = path.basename(file);
  const st = readSafetensors(file);
  const weights = new Map<string, HostTensor>(), m = new Map<string, HostTensor>(), v = new Map<string, HostTensor>();
  for (const [k, t] of st.tensors) {
    if (k.startsWith(`${OPTIM_PREFIX}exp_avg_sq.`)) v.set(k.slice(`${OPTIM_PREFIX}exp_avg_sq.`.length), t);
    else if (k.startsWith(`${OPTIM_PREFIX}exp_avg.`)) m.set(k.slice(`${OPTIM_PREFIX}exp_avg.`.length), t);
    else weights.set(k, t);
  }
  const own = parseMeta(st.metadata, 'ttt_config', name) ?? parseMeta(st.metadata, 'config', name) ?? {};
  const layers: [Record<string, unknown>, string][] = [[own, `${name} (its own config)`], [sidecar(file), `${name.replace(/\.safetensors$/i, '.json')}`], [opts.given ?? {}, '--ttt-config']];
  const baseWidth = opts.base ? { n_embd: opts.base.config.n_embd, what: `(${path.basename(opts.base.path) || opts.base.config.family})` } : undefined;
  const config = tttConfigOf(weights, { layers }, name, baseWidth);
  const base = parseMeta(st.metadata, 'base', name) as BaseRecord | null;
  const state = parseMeta(st.metadata, 'state', name);
  let note: string | undefined;
  if (base && opts.base && base.vocab_size !== opts.base.config.vocab_size) note = `${name} was trained on ${base.path} (vocabulary ${base.vocab_size}); the loaded base has ${opts.base.config.vocab_size}`;
  else if (base && opts.base && path.resolve(base.path) !== path.resolve(opts.base.path)) note = `${name} was trained on ${base.path}; running it on ${opts.base.path}`;
  return { file, config, weights, base, state, moments: m.size ? { m, v } : null, note };
}

/** The metadata record of a base model. */
export function baseRecord(basePath: string, c: ModelConfig): BaseRecord {
  return { path: basePath ? path.resolve(basePath) : '', family: c.family, n_embd: c.n_embd, vocab_size: c.vocab_size, n_layer: c.n_layer };
}

/** Writes a TTT layer (our format): parameters in the layer's order, config and base in the metadata. */
export function writeTttCheckpoint(file: string, c: TttConfig, weights: Map<string, HostTensor>, base: BaseRecord, extra: { state?: Record<string, unknown>; moments?: { m: Map<string, HostTensor>; v: Map<string, HostTensor> } } = {}): void {
  const tensors = new Map<string, HostTensor>();
  for (const p of tttParameters(c)) tensors.set(p.name, weights.get(p.name)!);
  if (extra.moments) {
    for (const [k, t] of extra.moments.m) tensors.set(`${OPTIM_PREFIX}exp_avg.${k}`, t);
    for (const [k, t] of extra.moments.v) tensors.set(`${OPTIM_PREFIX}exp_avg_sq.${k}`, t);
  }
  const metadata: Record<string, string> = { format: TTT_FORMAT, ttt_config: JSON.stringify(c), base: JSON.stringify(base) };
  if (extra.state) metadata.state = JSON.stringify(extra.state);
  writeSafetensors(file, tensors, { metadata });
}

/**
 * Their initialisation (ttt_layer_nnx.py:288-404, base_model_nnx.py fast_norm), seeded: flax
 * lecun_normal (truncated normal, variance 1/fan_in) for W_q, W_v, W_g, the convolutions (fan_in =
 * width for a depthwise kernel) and the η heads; W_o zero (the layer starts as the identity);
 * W1 ~ N(0, 0.02); norms 1 / 0; biases, b1 and learnable_token_idx 0.
 */
export function tttInit(c: TttConfig, seed: number): Map<string, HostTensor> {
  const normal = normalSampler(makeRng(seed));
  // jax's truncated normal on (−2, 2), rescaled to unit variance (variance_scaling's constant)
  const truncated = () => {
    for (;;) {
      const z = normal();
      if (z > -2 && z < 2) return z / 0.87962566103423978;
    }
  };
  const out = new Map<string, HostTensor>();
  for (const { name, shape } of tttParameters(c)) {
    const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
    const fill = (f: () => number) => values.forEach((_, i) => (values[i] = f()));
    if (/(fast_norm|post_norm|ttt_norm)\.scale$/.test(name)) values.fill(1);
    else if (name.endsWith('.kernel') && !name.endsWith('wo.kernel')) {
      const fanIn = name.includes('.conv_') ? shape[0] * shape[1] : shape[0];
      const std = Math.sqrt(1 / fanIn);
      fill(() => truncated() * std);
    } else if (name.endsWith('fast_layer.W1')) fill(() => normal() * 0.02);
    out.set(name, { shape, dtype: 'float32', values });
  }
  return out;
}
