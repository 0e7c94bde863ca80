/**
 * a-gpt model configs: the authors' defaults, validation, and inference of the architecture from a
 * checkpoint's tensor names and shapes.
 */
import type { Family, HyperConfig, ModelConfig } from '../protocol';
import { FAMILIES } from '../protocol';
import { BadInputError } from '../errors';

/** a-gpt defaults (models/*.py configs, train/config.py): what shapes cannot tell comes from here. */
export const AGPT_DEFAULTS = {
  block_size: 256,
  vocab_size: 50257,
  n_layer: 4,
  n_head: 4,
  n_embd: 256,
  matched_n_layer: 6,
  num_diffusion_steps: 32,
  hyper: { rank: 8, n_heads: 2, n_layers: 2, alpha: 1.0 } as HyperConfig,
};

export function isDiffusion(f: Family): boolean {
  return f === 'diffusion' || f === 'adaptive_diffusion';
}
/** The a-gpt hypernetwork families. */
export function isAdaptive(f: Family): boolean {
  return f === 'adaptive' || f === 'adaptive_diffusion';
}
export function headDim(c: ModelConfig): number {
  return c.n_embd / c.n_head;
}

/** A complete config for `family` from partial values and a-gpt's defaults. */
export function defaultConfig(family: Family, partial: Partial<ModelConfig> = {}): ModelConfig {
  const c: ModelConfig = {
    family,
    vocab_size: partial.vocab_size ?? AGPT_DEFAULTS.vocab_size,
    block_size: partial.block_size ?? AGPT_DEFAULTS.block_size,
    n_layer: partial.n_layer ?? (family === 'matched' ? AGPT_DEFAULTS.matched_n_layer : AGPT_DEFAULTS.n_layer),
    n_head: partial.n_head ?? AGPT_DEFAULTS.n_head,
    n_embd: partial.n_embd ?? AGPT_DEFAULTS.n_embd,
  };
  if (isDiffusion(family)) {
    c.num_diffusion_steps = partial.num_diffusion_steps ?? AGPT_DEFAULTS.num_diffusion_steps;
    c.mask_token_id = partial.mask_token_id ?? c.vocab_size - 1;
  }
  if (isAdaptive(family)) c.hyper = { ...AGPT_DEFAULTS.hyper, ...(partial.hyper ?? {}) };
  validateConfig(c);
  return c;
}

export function validateConfig(c: ModelConfig): void {
  const fail = (m: string) => {
    throw new BadInputError(`invalid model config: ${m}`);
  };
  if (!FAMILIES.includes(c.family)) fail(`family '${c.family}' is not one of ${FAMILIES.join(', ')}`);
  for (const k of ['vocab_size', 'block_size', 'n_layer', 'n_head', 'n_embd'] as const) {
    if (!Number.isInteger(c[k]) || c[k] <= 0) fail(`${k} must be a positive integer, got ${c[k]}`);
  }
  if (c.n_embd % c.n_head !== 0) fail(`n_embd ${c.n_embd} is not divisible by n_head ${c.n_head}`);
  if (headDim(c) % 2 !== 0) fail(`head width n_embd/n_head = ${headDim(c)} must be even (RoPE)`);
  if (c.hyper) {
    const h = c.hyper;
    if (!(h.rank >= 1 && h.n_heads >= 1 && h.n_layers >= 1)) fail('hyper.rank, hyper.n_heads and hyper.n_layers must be ≥ 1');
    if (headDim(c) % h.n_heads !== 0) fail(`head width ${headDim(c)} is not divisible by hyper.n_heads ${h.n_heads}`);
  }
}

export type ConfigSource = 'shapes' | 'config' | 'checkpoint' | 'sidecar' | 'default';
export type ConfigSources = Record<string, ConfigSource>;

/**
 * Infer the architecture from tensor names and shapes; `given` (from --config or the checkpoint's
 * own config) fills what shapes cannot tell: n_head of non-adaptive models, block_size, the
 * hypernetwork's inner heads and alpha, base vs matched.
 */
export function inferConfig(
  shapes: Map<string, number[]>,
  given: Partial<ModelConfig> & { family?: Family },
  file: string,
  givenSource: ConfigSource | ((key: string) => ConfigSource) = 'config',
): { config: ModelConfig; sources: ConfigSources } {
  const src = (k: string): ConfigSource => (typeof givenSource === 'function' ? givenSource(k) : givenSource);
  const sources: ConfigSources = {};
  const names = [...shapes.keys()];
  const diffusion = shapes.has('token_emb.weight');
  const causal = shapes.has('transformer.wte.weight');
  if (!diffusion && !causal) {
    throw new BadInputError(`${file}: not an a-gpt model: no 'transformer.wte.weight' or 'token_emb.weight' tensor (found ${names.slice(0, 3).join(', ')}${names.length > 3 ? ', …' : ''})`);
  }
  const adaptive = names.some((n) => n.includes('.hyper_v.'));
  const emb = shapes.get(diffusion ? 'token_emb.weight' : 'transformer.wte.weight')!;
  const layerIdx = names.map((n) => /^(?:transformer\.h|blocks)\.(\d+)\./.exec(n)).filter(Boolean).map((m) => +m![1]);
  const nLayer = layerIdx.length ? Math.max(...layerIdx) + 1 : 0;
  let family: Family;
  if (diffusion) family = adaptive ? 'adaptive_diffusion' : 'diffusion';
  else if (adaptive) family = 'adaptive';
  else family = given.family === 'matched' ? 'matched' : 'base';
  if (given.family && given.family !== family && !(family === 'base' && given.family === 'matched')) {
    throw new BadInputError(`${file}: the config says family '${given.family}' but the tensors are a '${family}' model`);
  }
  sources.family = given.family ? src('family') : 'shapes';
  const partial: Partial<ModelConfig> = { vocab_size: emb[0], n_embd: emb[1], n_layer: nLayer };
  sources.vocab_size = sources.n_embd = sources.n_layer = 'shapes';
  const pick = <K extends keyof ModelConfig>(k: K, fromShapes?: ModelConfig[K]) => {
    if (fromShapes !== undefined) {
      (partial as Record<string, unknown>)[k] = fromShapes;
      sources[k] = 'shapes';
    } else if (given[k] !== undefined) {
      (partial as Record<string, unknown>)[k] = given[k];
      sources[k] = src(k);
    } else sources[k] = 'default';
  };
  let hyper: HyperConfig | undefined;
  if (adaptive) {
    const prefix = diffusion ? 'blocks.0.attn.hyper_v' : 'transformer.h.0.attn.hyper_v';
    const heads = new Set(names.filter((n) => n.startsWith(prefix + '.')).map((n) => n.slice(prefix.length + 1).split('.')[0])).size;
    const inProj = shapes.get(`${prefix}.0.layers.0.in_proj_weight`);
    const toA = shapes.get(`${prefix}.0.to_A.weight`);
    if (!inProj || !toA) throw new BadInputError(`${file}: adaptive model without '${prefix}.0.layers.0.in_proj_weight' or '${prefix}.0.to_A.weight'`);
    const D = inProj[1];
    const innerLayers = new Set(names.filter((n) => n.startsWith(`${prefix}.0.layers.`)).map((n) => n.split('.layers.')[1].split('.')[0])).size;
    pick('n_head', heads);
    hyper = {
      rank: toA[0] / D,
      n_layers: innerLayers,
      n_heads: given.hyper?.n_heads ?? AGPT_DEFAULTS.hyper.n_heads,
      alpha: given.hyper?.alpha ?? AGPT_DEFAULTS.hyper.alpha,
    };
    sources['hyper.rank'] = sources['hyper.n_layers'] = 'shapes';
    sources['hyper.n_heads'] = given.hyper?.n_heads !== undefined ? src('hyper.n_heads') : 'default';
    sources['hyper.alpha'] = given.hyper?.alpha !== undefined ? src('hyper.alpha') : 'default';
    if (D * heads !== emb[1]) throw new BadInputError(`${file}: hypernetwork head width ${D} × ${heads} heads ≠ n_embd ${emb[1]}`);
  } else pick('n_head');
  pick('block_size');
  if (diffusion) {
    const te = shapes.get('time_emb.weight');
    if (!te) throw new BadInputError(`${file}: diffusion model without 'time_emb.weight'`);
    pick('num_diffusion_steps', te[0] - 1);
    pick('mask_token_id');
  }
  const config = defaultConfig(family, { ...partial, hyper });
  if (config.hyper && given.hyper?.rank !== undefined && given.hyper.rank !== config.hyper.rank) {
    throw new BadInputError(`${file}: the config says hyper.rank ${given.hyper.rank} but to_A has rank ${config.hyper.rank}`);
  }
  return { config, sources };
}

/**
 * a-gpt's config keys from a raw dict: ours / the fixtures' (vocab_size, …, family or kind,
 * hyper{…}) and a-gpt's saved TrainConfig (model_name, diffusion_mask_token_id).
 */
export function agptKeys(raw: Record<string, unknown>, where: string): Partial<ModelConfig> {
  const out: Partial<ModelConfig> = {};
  const ints = ['vocab_size', 'block_size', 'n_layer', 'n_head', 'n_embd', 'num_diffusion_steps', 'mask_token_id'] as const;
  for (const k of ints) {
    const v = raw[k];
    if (v === undefined) continue;
    if (!Number.isInteger(v) || (v as number) < 0) throw new BadInputError(`${where}: '${k}' must be a non-negative integer, got ${JSON.stringify(v)}`);
    (out as Record<string, number>)[k] = v as number;
  }
  if (typeof raw.diffusion_mask_token_id === 'number' && out.mask_token_id === undefined) out.mask_token_id = raw.diffusion_mask_token_id;
  const fam = raw.family ?? raw.kind ?? raw.model_name;
  if (typeof fam === 'string' && FAMILIES.includes(fam as Family)) out.family = fam as Family;
  const hyper = raw.hyper as Record<string, unknown> | undefined;
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

/**
 * Layers of config dicts, lowest precedence first, merged key by key (hyper merged field by
 * field), remembering where each key came from.
 */
export function mergeLayers<C extends Record<string, unknown>>(layers: [C, ConfigSource][]): { merged: C; sourceOf: (key: string) => ConfigSource } {
  const merged = {} as Record<string, unknown>;
  const from = new Map<string, ConfigSource>();
  for (const [layer, source] of layers) {
    for (const [k, v] of Object.entries(layer)) {
      if (v === undefined) continue;
      if (v && typeof v === 'object' && !Array.isArray(v) && merged[k] && typeof merged[k] === 'object') {
        merged[k] = { ...(merged[k] as object), ...(v as object) };
        for (const kk of Object.keys(v as object)) from.set(`${k}.${kk}`, source);
      } else {
        merged[k] = v;
        if (v && typeof v === 'object' && !Array.isArray(v)) for (const kk of Object.keys(v as object)) from.set(`${k}.${kk}`, source);
      }
      from.set(k, source);
    }
  }
  return { merged: merged as C, sourceOf: (k) => from.get(k) ?? 'config' };
}
