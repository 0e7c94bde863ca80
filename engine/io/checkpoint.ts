/**
 * Loading a model from a local path: `.safetensors` (+ a sidecar config) or a PyTorch `.pt`/`.pth`
 * (a-gpt's `save_checkpoint` dict or a bare state_dict, read by the restricted unpickler). The
 * architecture comes from tensor names and shapes; what shapes cannot tell from `--config`, the
 * checkpoint's own config, or a-gpt's defaults. With no path, the embedded starter model.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Family, ModelConfig } from '../protocol';
import { FAMILIES } from '../protocol';
import { BadInputError } from '../errors';
import type { HostTensor } from './tensor';
import { readSafetensors } from './safetensors';
import { loadTorchCheckpoint } from './torch';
import { defaultConfig, inferConfig, type ConfigSources } from '../models/config';
import { checkShapes, familyDef } from '../models/registry';

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
  config?: string | Partial<ModelConfig>;
}

/** A checkpoint read from disk: the architecture, where each config value came from, the weights. */
export interface CheckpointRead {
  /** The file or folder given, or a description of the starter model. */
  path: string;
  config: ModelConfig;
  sources: ConfigSources;
  /** PyTorch layout, float32, in the family's parameter names. */
  weights: Map<string, HostTensor>;
  note?: string;
}

export async function readCheckpoint(req: LoadRequest): Promise<CheckpointRead> {
  const given = readGivenConfig(req.config);
  if (!req.path) {
    const starter = starterModelPath();
    if (starter) return readFile(starter, given, 'embedded starter model');
    const config = defaultConfig('adaptive', { ...RANDOM_STARTER_CONFIG, ...given });
    return { path: '(random-init adaptive model)', config, sources: {}, weights: familyDef('adaptive').init(config, 0), note: 'no trained starter model is installed: seeded random-init weights, untrained' };
  }
  return readFile(req.path, given);
}

async function readFile(file: string, given: Partial<ModelConfig>, note?: string): Promise<CheckpointRead> {
  if (!fs.existsSync(file)) throw new BadInputError(`no such file: ${file} (check the model path)`);
  if (fs.statSync(file).isDirectory()) throw new BadInputError(`${file} is a folder: point to a .safetensors, .pt or .pth file`);
  const ext = path.extname(file).toLowerCase();
  let weights: Map<string, HostTensor>;
  let fileConfig: Partial<ModelConfig> = {};
  if (ext === '.safetensors') {
    const st = readSafetensors(file);
    // training checkpoints carry the optimizer moments beside the weights
    weights = new Map([...st.tensors].filter(([k]) => !k.startsWith('optim.')));
    fileConfig = { ...configFromMetadata(st.metadata), ...sidecarConfig(file) };
  } else if (ext === '.pt' || ext === '.pth' || ext === '.bin') {
    const ck = loadTorchCheckpoint(file);
    weights = ck.stateDict;
    fileConfig = agptRunConfig(ck.config ?? {});
  } else {
    throw new BadInputError(`${file}: unknown checkpoint type '${ext || '(none)'}': use .safetensors, .pt or .pth`);
  }
  const merged = { ...fileConfig, ...given, hyper: { ...(fileConfig.hyper ?? {}), ...(given.hyper ?? {}) } } as Partial<ModelConfig>;
  if (merged.hyper && !Object.keys(merged.hyper).length) delete merged.hyper;
  const shapes = new Map([...weights].map(([k, v]) => [k, v.shape]));
  const { config, sources } = inferConfig(shapes, merged, path.basename(file));
  checkShapes(config, shapes, path.basename(file));
  return { path: file, config, sources, weights, note };
}

/** --config: a JSON file path or an object, keys as in the fixtures (vocab_size, …, family, hyper{…}). */
export function readGivenConfig(cfg: LoadRequest['config']): Partial<ModelConfig> {
  if (cfg === undefined || cfg === '') return {};
  if (typeof cfg === 'object') return normaliseConfig(cfg, 'config');
  if (!fs.existsSync(cfg)) throw new BadInputError(`no such config file: ${cfg}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(cfg, 'utf8'));
  } catch (e) {
    throw new BadInputError(`${cfg}: not valid JSON (${(e as Error).message.split('\n')[0]})`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new BadInputError(`${cfg}: expected a JSON object with model config keys`);
  return normaliseConfig(parsed as Record<string, unknown>, cfg);
}

/** Accepts our keys, the fixtures' layout ({kind, config:{…}, hyper}) and a-gpt run configs. */
function normaliseConfig(raw: Record<string, unknown>, where: string): Partial<ModelConfig> {
  const inner = (raw.config && typeof raw.config === 'object' ? raw.config : raw) as Record<string, unknown>;
  const out: Partial<ModelConfig> = {};
  const ints = ['vocab_size', 'block_size', 'n_layer', 'n_head', 'n_embd', 'num_diffusion_steps', 'mask_token_id'] as const;
  for (const k of ints) {
    const v = inner[k] ?? raw[k];
    if (v === undefined) continue;
    if (!Number.isInteger(v) || (v as number) < 0) throw new BadInputError(`${where}: '${k}' must be a non-negative integer, got ${JSON.stringify(v)}`);
    (out as Record<string, number>)[k] = v as number;
  }
  const fam = (raw.family ?? inner.family ?? raw.kind ?? raw.model_name) as string | undefined;
  if (fam !== undefined) {
    if (!FAMILIES.includes(fam as Family)) throw new BadInputError(`${where}: family '${fam}' is not one of ${FAMILIES.join(', ')}`);
    out.family = fam as Family;
  }
  const hyper = (raw.hyper ?? inner.hyper) as Record<string, unknown> | undefined;
  if (hyper && typeof hyper === 'object') {
    const h: Record<string, number> = {};
    for (const k of ['rank', 'n_heads', 'n_layers', 'alpha']) {
      if (hyper[k] === undefined) continue;
      if (typeof hyper[k] !== 'number' || !((hyper[k] as number) > 0)) throw new BadInputError(`${where}: 'hyper.${k}' must be a positive number, got ${JSON.stringify(hyper[k])}`);
      h[k] = hyper[k] as number;
    }
    out.hyper = h as unknown as ModelConfig['hyper'];
  }
  return out;
}

/** Our own writer stores the config as JSON in the safetensors metadata under "config". */
function configFromMetadata(meta: Record<string, string>): Partial<ModelConfig> {
  if (!meta.config) return {};
  try {
    return normaliseConfig(JSON.parse(meta.config), 'safetensors metadata');
  } catch {
    return {};
  }
}

/** `model.json` or `config.json` beside `model.safetensors`. */
function sidecarConfig(file: string): Partial<ModelConfig> {
  const candidates = [file.replace(/\.safetensors$/i, '.json'), path.join(path.dirname(file), 'config.json')];
  const found = candidates.find((p) => fs.existsSync(p));
  return found ? readGivenConfig(found) : {};
}

/** a-gpt's TrainConfig as saved in its checkpoints: model_name, diffusion settings. */
function agptRunConfig(cfg: Record<string, unknown>): Partial<ModelConfig> {
  const out: Partial<ModelConfig> = {};
  if (typeof cfg.model_name === 'string' && FAMILIES.includes(cfg.model_name as Family)) out.family = cfg.model_name as Family;
  if (typeof cfg.diffusion_mask_token_id === 'number') out.mask_token_id = cfg.diffusion_mask_token_id;
  for (const k of ['block_size', 'n_head', 'vocab_size', 'n_embd', 'n_layer'] as const) {
    if (typeof cfg[k] === 'number') out[k] = cfg[k] as number;
  }
  return out;
}
