/**
 * Training checkpoints: ONE safetensors file per checkpoint (`last.safetensors`, `best.safetensors`)
 * holding the weights (PyTorch names and layout), the AdamW moments (`optim.exp_avg.<name>`,
 * `optim.exp_avg_sq.<name>`) and, in its metadata, the config, step, optimizer settings, sampler
 * state, seed, tokenizer and metrics — so one atomic rename makes it consistent. A readable
 * `<name>.json` sidecar is written after it. Also resumes from a-gpt `.pt` checkpoints.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from '../protocol';
import { BadInputError } from '../errors';
import type { HostTensor } from '../io/tensor';
import { readSafetensors, writeSafetensors, atomicWriteFile } from '../io/safetensors';
import { loadTorchCheckpoint } from '../io/torch';
import type { TfModel as Model } from '../runtime/tfjs/model';
import { storedPermutation } from '../models/family';
import type { AdamW } from './adamw';

export const OPTIM_PREFIX = 'optim.';

export interface TrainState {
  config: ModelConfig;
  step: number; // steps completed
  seed: number;
  rngState: number;
  bestValLoss: number | null;
  lastLoss: number | null;
  tokenizer: 'gpt2';
  options: Record<string, unknown>;
  adamStep: number;
  /** The run's data (absolute paths), so that `--resume` needs no `--data`. */
  data?: { data: string[]; overfitBatch?: string; valRatio?: number };
}

export async function saveCheckpoint(file: string, model: Model, adam: AdamW | null, state: TrainState, opts: { dtype?: 'F32' | 'F16' } = {}): Promise<void> {
  const tensors = await model.toStateDict();
  if (adam) {
    for (const spec of model.specs) {
      const { name, shape } = spec, perm = storedPermutation(spec);
      for (const [kind, store] of [['exp_avg', adam.m], ['exp_avg_sq', adam.v]] as const) {
        const t = store.get(name)!;
        const pt = perm ? tf.transpose(t, perm) : t;
        tensors.set(`${OPTIM_PREFIX}${kind}.${name}`, { shape, dtype: 'float32', values: new Float32Array((await pt.data()) as Float32Array) });
        if (pt !== t) pt.dispose();
      }
    }
  }
  const metadata = { format: 'headlens-checkpoint-1', config: JSON.stringify(state.config), state: JSON.stringify(state) };
  writeSafetensors(file, tensors, { metadata, dtype: opts.dtype });
  atomicWriteFile(file.replace(/\.safetensors$/, '.json'), JSON.stringify({ ...state, weights: path.basename(file) }, null, 2));
}

export interface ResumePoint {
  weights: Map<string, HostTensor>;
  optimizer: { m: Map<string, HostTensor>; v: Map<string, HostTensor>; step: number } | null;
  state: Partial<TrainState> & { step: number };
  config?: Partial<ModelConfig>;
  source: 'headlens' | 'agpt';
}

/** Read a checkpoint to resume from: ours (.safetensors) or a-gpt's (.pt with AdamW state). */
export function readResumePoint(file: string): ResumePoint {
  if (!fs.existsSync(file)) throw new BadInputError(`--resume ${file}: no such file`);
  if (file.endsWith('.pt') || file.endsWith('.pth')) return fromAgpt(file);
  const { tensors, metadata } = readSafetensors(file);
  if (metadata.format !== 'headlens-checkpoint-1' || !metadata.state) {
    throw new BadInputError(`--resume ${file}: not a Head Lens training checkpoint (no training state in it); use --init to start from its weights`);
  }
  const state = JSON.parse(metadata.state) as TrainState;
  const weights = new Map<string, HostTensor>(), m = new Map<string, HostTensor>(), v = new Map<string, HostTensor>();
  for (const [k, t] of tensors) {
    if (k.startsWith(`${OPTIM_PREFIX}exp_avg_sq.`)) v.set(k.slice(`${OPTIM_PREFIX}exp_avg_sq.`.length), t);
    else if (k.startsWith(`${OPTIM_PREFIX}exp_avg.`)) m.set(k.slice(`${OPTIM_PREFIX}exp_avg.`.length), t);
    else weights.set(k, t);
  }
  return { weights, optimizer: m.size ? { m, v, step: state.adamStep } : null, state, config: state.config, source: 'headlens' };
}

function fromAgpt(file: string): ResumePoint {
  const ck = loadTorchCheckpoint(file);
  let optimizer: ResumePoint['optimizer'] = null;
  if (ck.optimizer && ck.optimizer.state.size) {
    const m = new Map<string, HostTensor>(), v = new Map<string, HostTensor>();
    let step = 0;
    // PyTorch keys optimizer state by the parameter's index in model.parameters() (the reader
    // matches indices to names past buffers and tied weights)
    const order = ck.optimizerParamOrder;
    if (!order) throw new BadInputError(`--resume ${file}: its optimizer state cannot be matched to the weights (parameter groups in another order?); use --init ${file} to start from the weights with a fresh optimizer`);
    order.forEach((name, i) => {
      const s = ck.optimizer!.state.get(i);
      if (!s) return;
      m.set(name, s.exp_avg as HostTensor);
      v.set(name, s.exp_avg_sq as HostTensor);
      const st = s.step;
      step = typeof st === 'number' ? st : (st as HostTensor).values[0];
    });
    optimizer = { m, v, step };
  }
  const cfg = ck.config ?? {};
  const family = typeof cfg.model_name === 'string' ? (cfg.model_name as ModelConfig['family']) : undefined;
  const config: Partial<ModelConfig> = {};
  if (family) config.family = family;
  if (typeof cfg.num_diffusion_steps === 'number') config.num_diffusion_steps = cfg.num_diffusion_steps;
  if (typeof cfg.diffusion_mask_token_id === 'number') config.mask_token_id = cfg.diffusion_mask_token_id;
  return {
    weights: ck.stateDict,
    optimizer,
    // a-gpt saves the 0-based index of the step just taken (step + 1 updates are done); the
    // optimizer's own step count is exact, so it wins when present
    state: { step: optimizer?.step ?? (ck.step !== undefined ? ck.step + 1 : 0), bestValLoss: ck.bestValLoss ?? null, options: agptOptions(cfg, ck.optimizer?.paramGroups[0]) },
    config: Object.keys(config).length ? config : undefined,
    source: 'agpt',
  };
}

/** a-gpt's TrainConfig (and the optimizer's param group) → our option names, for a resumed run's defaults. */
export function agptOptions(cfg: Record<string, unknown>, group?: Record<string, unknown>): Record<string, unknown> {
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
  const out: Record<string, unknown> = {
    lr: num(cfg.base_lr),
    minLr: num(cfg.min_lr),
    warmup: num(cfg.warmup_steps),
    batchSize: num(cfg.batch_size),
    gradAccum: num(cfg.grad_accum_steps),
    weightDecay: num(cfg.weight_decay) ?? num(group?.weight_decay),
    eps: num(group?.eps),
    clip: num(cfg.clip_grad),
    evalInterval: num(cfg.eval_interval),
    evalIters: num(cfg.eval_iters),
    minMaskRatio: num(cfg.min_mask_ratio),
  };
  const b1 = num(cfg.beta1), b2 = num(cfg.beta2);
  const gb = Array.isArray(group?.betas) ? (group!.betas as unknown[]).map(num) : [];
  if (b1 !== undefined && b2 !== undefined) out.betas = [b1, b2];
  else if (gb.length === 2 && gb.every((b) => b !== undefined)) out.betas = gb;
  return Object.fromEntries(Object.entries(out).filter(([, v]) => v !== undefined));
}

/** Load saved moments into the optimizer (PyTorch layout → ours). */
export function restoreOptimizer(adam: AdamW, model: Model, saved: NonNullable<ResumePoint['optimizer']>): void {
  for (const spec of model.specs) {
    const { name, shape } = spec, perm = storedPermutation(spec);
    const m = saved.m.get(name), v = saved.v.get(name);
    if (!m || !v) throw new BadInputError(`the checkpoint's optimizer state has no moments for '${name}'`);
    if (m.values.length !== v.values.length || m.values.length !== shape.reduce((a, b) => a * b, 1)) {
      throw new BadInputError(`the checkpoint's optimizer moments for '${name}' have shape [${m.shape}], the parameter [${shape}]`);
    }
    for (const [src, dst] of [[m, adam.m.get(name)!], [v, adam.v.get(name)!]] as const) {
      tf.tidy(() => {
        const t = tf.tensor(src.values, shape, 'float32');
        dst.assign(perm ? tf.transpose(t, perm) : t);
      });
    }
  }
  adam.step = saved.step;
}
