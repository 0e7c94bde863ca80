/**
 * Loading a model from a local path. The file formats are read here — `.safetensors` (+ its
 * metadata and a sidecar config), PyTorch `.pt`/`.pth`/`.bin` (the restricted unpickler), a
 * Hugging Face model folder or hub cache entry (io/hf.ts: config.json + one of those files) — into a
 * raw checkpoint: tensors by name (a `torch.compile` `_orig_mod.` or DDP `module.` prefix removed)
 * and the config dicts found with them. Each family then recognises its own checkpoints and maps
 * names, layouts and config (models/<family>.ts, `fromCheckpoint`); what neither the tensors nor
 * the checkpoint's config tell comes from `--config` or the family's defaults. With no path, the
 * embedded starter model.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Family, ModelConfig } from '../protocol';
import { FAMILIES } from '../protocol';
import { BadInputError } from '../errors';
import type { HostTensor } from './tensor';
import { readSafetensors } from './safetensors';
import { readPtzArtifact } from './ptz';
import { loadTorchCheckpoint, type TorchCheckpoint } from './torch';
import { readHfFolder } from './hf';
import type { ConfigSources } from '../models/config';
import { checkShapes, familyDef, recogniseFamily } from '../models/registry';

export const STARTER_MODEL_FILE = 'starter-adaptive.safetensors';

/** Where the embedded starter model lives: media/models beside the bundle or the sources. */
export function starterModelPath(): string | null {
  const candidates = [
    process.env.HEADLENS_STARTER_MODEL,
    path.join(__dirname, '..', 'media', 'models', STARTER_MODEL_FILE),
    path.join(__dirname, '..', '..', 'media', 'models', STARTER_MODEL_FILE),
    path.join(process.cwd(), 'media', 'models', STARTER_MODEL_FILE),
  ];
  return candidates.find((p): p is string => !!p && fs.existsSync(p)) ?? null;
}

/** The config used when no starter model file exists: small, adaptive, seeded random weights. */
export const RANDOM_STARTER_CONFIG: Partial<ModelConfig> = { vocab_size: 50257, block_size: 128, n_layer: 2, n_head: 4, n_embd: 64 };

export interface LoadRequest {
  path?: string;
  /** A JSON config file, or the config object: the family's own field names plus `family`. */
  config?: string | Record<string, unknown>;
}

/** A config dict as found: its values and where they came from. */
export type RawConfig = Record<string, unknown>;

/** A checkpoint as its file holds it, before any family reads it. */
export interface RawCheckpoint {
  /** The path given (file or folder). */
  path: string;
  /** The weights file read, for messages. */
  name: string;
  format: 'safetensors' | 'torch' | 'ptz';
  tensors: Map<string, HostTensor>;
  /** The checkpoint's own config (a torch dict's `config`, with nanoGPT's `model_args` over it; safetensors metadata). */
  fileConfig: RawConfig;
  /** A config file beside the weights (config.json, <name>.json). */
  sidecar: RawConfig;
  /** The whole torch checkpoint dict's other entries (step, iter_num, model_args, best_val_loss), and `hf` for a folder (io/hf.ts). */
  extra: Record<string, unknown>;
}

/** What a family makes of a checkpoint. */
export interface FamilyCheckpoint {
  config: ModelConfig;
  sources: ConfigSources;
  /** PyTorch layout, float32, the family's parameter names. */
  weights: Map<string, HostTensor>;
  /** What the user should know about how the checkpoint was read (e.g. an untied head). */
  note?: string;
}

/** A checkpoint read from disk: the architecture, where each config value came from, the weights. */
export interface CheckpointRead extends FamilyCheckpoint {
  /** The file or folder given, or a description of the starter model. */
  path: string;
  note?: string;
}

export async function readCheckpoint(req: LoadRequest): Promise<CheckpointRead> {
  const given = readGivenConfig(req.config);
  if (!req.path) {
    const starter = starterModelPath();
    if (starter) return interpret(readRaw(starter), given, 'embedded starter model');
    const config = familyDef('adaptive').defaults('adaptive', { ...RANDOM_STARTER_CONFIG, ...given });
    return { path: '(random-init adaptive model)', config, sources: {}, weights: familyDef('adaptive').init(config, 0), note: 'no trained starter model is installed: seeded random-init weights, untrained' };
  }
  return interpret(readRaw(req.path), given);
}

/** The family that recognises the checkpoint (or the one `--config` names) maps it. */
export function interpret(raw: RawCheckpoint, given: RawConfig, note?: string): CheckpointRead {
  const forced = familyOf(given, '--config') ?? familyOf(raw.sidecar, raw.name) ?? familyOf(raw.fileConfig, raw.name);
  const def = forced ? familyDef(forced) : recogniseFamily(raw);
  if (!def) {
    const names = [...raw.tensors.keys()];
    throw new BadInputError(`${raw.name}: not a model architecture Head Lens knows (tensors ${names.slice(0, 4).join(', ')}${names.length > 4 ? `, … ${names.length} in all` : ''}); known: ${FAMILIES.join(', ')}`);
  }
  const ck = def.fromCheckpoint(raw, given);
  checkShapes(ck.config, new Map([...ck.weights].map(([k, v]) => [k, v.shape])), raw.name);
  return { path: raw.path, ...ck, note: [note, ck.note].filter(Boolean).join('; ') || undefined };
}

/** The `family` a config dict names (also a-gpt's `kind` / `model_name`), checked. */
function familyOf(cfg: RawConfig, where: string): Family | undefined {
  const fam = cfg.family ?? cfg.kind;
  if (fam === undefined) return undefined;
  if (!FAMILIES.includes(fam as Family)) throw new BadInputError(`${where}: family '${String(fam)}' is not one of ${FAMILIES.join(', ')}`);
  return fam as Family;
}

/** Reads the weights and the config found with them. */
export function readRaw(file: string): RawCheckpoint {
  if (!fs.existsSync(file)) throw new BadInputError(`no such file: ${file} (check the model path)`);
  if (fs.statSync(file).isDirectory()) return readHfFolder(file, readRaw);
  const ext = path.extname(file).toLowerCase();
  const name = path.basename(file);
  if (ext === '.safetensors') {
    const st = readSafetensors(file);
    // training checkpoints carry the optimizer moments beside the weights
    const tensors = new Map([...st.tensors].filter(([k]) => !k.startsWith('optim.')));
    return { path: file, name, format: 'safetensors', tensors: stripPrefixes(tensors), fileConfig: metadataConfig(st.metadata), sidecar: sidecarConfig(file), extra: {} };
  }
  if (ext === '.pt' || ext === '.pth' || ext === '.bin') {
    const ck = loadTorchCheckpoint(file);
    return { path: file, name, format: 'torch', tensors: stripPrefixes(ck.stateDict), fileConfig: torchFileConfig(ck), sidecar: sidecarConfig(file), extra: torchExtra(ck) };
  }
  if (ext === '.ptz') {
    // parameter-golf's quantized artifact: dequantized, rebanked float weights; it holds no config
    return { path: file, name, format: 'ptz', tensors: readPtzArtifact(file).stateDict, fileConfig: {}, sidecar: sidecarConfig(file), extra: {} };
  }
  throw new BadInputError(`${file}: unknown checkpoint type '${ext || '(none)'}': use .safetensors, .pt, .pth, .bin or .ptz`);
}

/** A torch dict's `config`; nanoGPT's `model_args` (what the model was built with) over its training config. */
function torchFileConfig(ck: TorchCheckpoint): RawConfig {
  return ck.modelArgs ? { ...(ck.config ?? {}), ...ck.modelArgs } : ck.config ?? {};
}

function torchExtra(ck: TorchCheckpoint): Record<string, unknown> {
  const extra = { step: ck.step, iter_num: ck.iterNum, model_args: ck.modelArgs, best_val_loss: ck.bestValLoss };
  return Object.fromEntries(Object.entries(extra).filter(([k, v]) => v !== undefined || k === 'step'));
}

/** `_orig_mod.` (torch.compile) and `module.` (DDP) prefixes on every key. */
export function stripPrefixes(t: Map<string, HostTensor>): Map<string, HostTensor> {
  for (const prefix of ['_orig_mod.', 'module.']) {
    const keys = [...t.keys()];
    if (keys.length && keys.every((k) => k.startsWith(prefix))) t = new Map([...t].map(([k, v]) => [k.slice(prefix.length), v]));
  }
  return t;
}

/** --config: a JSON file path or an object. The fixtures' layout ({kind, config:{…}, hyper}) is flattened. */
export function readGivenConfig(cfg: LoadRequest['config']): RawConfig {
  if (cfg === undefined || cfg === '') return {};
  if (typeof cfg === 'object') return flatten(cfg);
  return readJsonConfig(cfg);
}

export function readJsonConfig(file: string): RawConfig {
  if (!fs.existsSync(file)) throw new BadInputError(`no such config file: ${file}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new BadInputError(`${file}: not valid JSON (${(e as Error).message.split('\n')[0]})`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new BadInputError(`${file}: expected a JSON object with model config keys`);
  return flatten(parsed as RawConfig);
}

/** `{config: {…}, …}` → the inner keys, with the outer ones (family, hyper) kept. */
function flatten(raw: RawConfig): RawConfig {
  const inner = raw.config && typeof raw.config === 'object' && !Array.isArray(raw.config) ? (raw.config as RawConfig) : {};
  const { config: _, ...outer } = raw;
  return { ...inner, ...outer };
}

/** Our own writer stores the config as JSON in the safetensors metadata under "config". */
function metadataConfig(meta: Record<string, string>): RawConfig {
  if (!meta.config) return {};
  try {
    const parsed = JSON.parse(meta.config);
    return parsed && typeof parsed === 'object' ? flatten(parsed) : {};
  } catch {
    return {};
  }
}

/** `<name>.json` or `config.json` beside the weights. */
function sidecarConfig(file: string): RawConfig {
  const candidates = [file.replace(/\.(safetensors|pt|pth|bin|ptz)$/i, '.json'), path.join(path.dirname(file), 'config.json')];
  const found = candidates.find((p) => p !== file && fs.existsSync(p));
  return found ? readJsonConfig(found) : {};
}
