/**
 * The training loop, shared by `headlens train` and the server's `train/start`: a-gpt's objective
 * (next-token cross-entropy; diffusion: masked denoising), PyTorch AdamW, global grad-norm
 * clipping, a-gpt's cosine schedule, gradient accumulation, seeded sampling, periodic validation,
 * best/last checkpoints, per-head probe metrics, and prompt pause/stop.
 *
 * Memory: a batch is split into micro-batches of at most `microTokens` tokens whose gradients
 * are accumulated (tfjs holds every activation until backprop ends; the WASM heap is 4 GiB), and
 * the output head + loss run in chunks (models/ops.ts chunkedHeadLoss).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig, TrainEvent } from '../protocol';
import { BadInputError, CancelledError, DeviceError } from '../errors';
import { takeDeviceErrors } from '../runtime/tfjs/webgpu';
import type { Batch, TfModel as Model } from '../runtime/tfjs/model';
import { isDiffusion } from '../models/config';
import { AdamW, clipGrads, globalNorm } from './adamw';
import { cosineLr } from './schedule';
import { Rng } from './rng';
import { causalBatch, diffusionBatch, pickSource, type HostBatch, type Source } from './data';
import { saveCheckpoint, type TrainState } from './checkpoint';

export interface TrainOptions {
  steps: number;
  lr: number;
  minLr: number;
  warmup: number;
  batchSize: number;
  seqLen: number;
  gradAccum: number;
  weightDecay: number;
  betas: [number, number];
  eps: number;
  clip: number;
  evalInterval: number;
  evalIters: number;
  seed: number;
  out: string | null;
  checkpointInterval: number;
  probeInterval: number;
  microTokens: number;
  minMaskRatio: number;
}

export const DEFAULT_OPTIONS: TrainOptions = {
  steps: 100,
  lr: 3e-4,
  minLr: 3e-5,
  warmup: 100,
  batchSize: 8,
  seqLen: 256,
  gradAccum: 1,
  weightDecay: 0.1,
  betas: [0.9, 0.95],
  eps: 1e-8,
  clip: 1.0,
  evalInterval: 100,
  evalIters: 5,
  seed: 1337,
  out: null,
  checkpointInterval: 50,
  probeInterval: 10,
  microTokens: 0, // 0: from the model width (microTokensFor)
  minMaskRatio: 0.05,
};

/**
 * Tokens per micro-batch when none is given: 65536 / width, in [256, 2048]. Measured on WASM:
 * the full-size adaptive model (width 256) aborts the 4 GiB heap with 1024-token micro-batches
 * and trains with 256; small models run faster with larger ones.
 */
export function microTokensFor(nEmbd: number): number {
  return Math.max(256, Math.min(2048, Math.floor(65536 / nEmbd)));
}

/**
 * What the optimizer trains when it is not the whole model: trained variables over a frozen base
 * (PonderTTT's TTT layer). `loss` is the objective on a micro-batch (its weights sum to the
 * micro-batch's share of the batch), `save` writes a checkpoint of the trained part.
 */
export interface TrainTarget {
  params: Map<string, tf.Variable>;
  loss(batch: Batch): tf.Scalar;
  save(file: string, adam: AdamW, state: TrainState): Promise<void>;
}

export type BatchSource =
  | { kind: 'corpus'; sources: Source[] }
  | { kind: 'fixed'; batch: HostBatch };

export interface TrainerControl {
  paused: boolean;
  stopRequested: boolean;
}

export class Trainer {
  readonly adam: AdamW;
  readonly rng: Rng;
  step: number;
  bestValLoss: number | null = null;
  lastLoss: number | null = null;
  readonly control: TrainerControl = { paused: false, stopRequested: false };
  /** Stop (as if interrupted) once this many steps are done. */
  stopAfter: number | null = null;
  /** Where the data came from, saved in checkpoints so that `--resume` can find it again. */
  dataSpec: { data: string[]; overfitBatch?: string; valRatio?: number } = { data: [] };
  private probe: HostBatch | null = null;

  constructor(
    readonly model: Model,
    readonly data: BatchSource,
    public opts: TrainOptions,
    readonly runId: string,
    private readonly emit: (e: TrainEvent) => void,
    start: { step?: number; rngState?: number; bestValLoss?: number | null } = {},
    readonly target: TrainTarget | null = null,
  ) {
    this.adam = new AdamW(target?.params ?? model.params, { betas: opts.betas, eps: opts.eps, weightDecay: opts.weightDecay });
    this.rng = new Rng(start.rngState ?? opts.seed + 1);
    if (!opts.microTokens) this.opts = { ...opts, microTokens: microTokensFor(model.config.n_embd) };
    this.step = start.step ?? 0;
    this.bestValLoss = start.bestValLoss ?? null;
    if (opts.seqLen > model.config.block_size) throw new BadInputError(`--seq-len ${opts.seqLen} is longer than the model's block size ${model.config.block_size}`);
  }

  private get diffusion(): boolean {
    return isDiffusion(this.model.config.family);
  }

  /** One batch from the corpus (one source per batch, as a-gpt samples one per micro-step). */
  private sample(split: 'train' | 'val', rng: Rng): HostBatch {
    if (this.data.kind === 'fixed') return this.data.batch;
    return this.sampleFrom(pickSource(this.data.sources, rng), split, rng);
  }

  private sampleFrom(src: Source, split: 'train' | 'val', rng: Rng): HostBatch {
    const tokens = split === 'train' ? src.train : src.val;
    const { batchSize: B, seqLen: T } = this.opts;
    if (!this.diffusion) return causalBatch(tokens, B, T, rng);
    const c = this.model.config;
    return diffusionBatch(tokens, B, T, rng, { steps: c.num_diffusion_steps ?? 32, maskTokenId: c.mask_token_id ?? c.vocab_size - 1, minMaskRatio: this.opts.minMaskRatio });
  }

  /** Loss-weighted micro-batches of one batch: Σ over micro-batches = the batch's loss. */
  private microBatches(b: HostBatch): { rows: [number, number]; weights: Float32Array }[] {
    const per = Math.max(1, Math.floor(this.opts.microTokens / b.T));
    const total = b.mask ? b.mask.reduce((s, x) => s + x, 0) : b.B * b.T;
    const out: { rows: [number, number]; weights: Float32Array }[] = [];
    for (let r0 = 0; r0 < b.B; r0 += per) {
      const r1 = Math.min(b.B, r0 + per);
      const w = new Float32Array((r1 - r0) * b.T);
      for (let i = 0; i < w.length; i++) w[i] = (b.mask ? b.mask[r0 * b.T + i] : 1) / Math.max(total, 1);
      out.push({ rows: [r0, r1], weights: w });
    }
    return out;
  }

  private tensorsOf(b: HostBatch, rows: [number, number], weights: Float32Array) {
    const [r0, r1] = rows, n = r1 - r0, T = b.T;
    return {
      inputIds: tf.tensor2d(b.inputIds.subarray(r0 * T, r1 * T), [n, T], 'int32'),
      targets: tf.tensor2d(b.targets.subarray(r0 * T, r1 * T), [n, T], 'int32'),
      t: b.t ? tf.tensor1d(b.t.subarray(r0, r1), 'int32') : undefined,
      weights: tf.tensor1d(weights, 'float32'),
    };
  }

  /** Gradients of one batch (summed over its micro-batches) and its loss. The caller disposes them. */
  async batchGradients(b: HostBatch): Promise<{ loss: number; grads: Map<string, tf.Tensor> }> {
    const grads = new Map<string, tf.Tensor>();
    try {
      return { loss: await this.accumulate(b, grads, 1), grads };
    } catch (e) {
      tf.dispose([...grads.values()]);
      throw e;
    }
  }

  /** Gradients of one batch, accumulated over its micro-batches and scaled by 1/gradAccum. */
  private async accumulate(b: HostBatch, acc: Map<string, tf.Tensor>, scale: number): Promise<number> {
    let loss = 0;
    const trained = this.target?.params ?? this.model.params;
    const vars = [...trained.values()];
    const names = new Map([...trained].map(([n, v]) => [v.name, n]));
    for (const mb of this.microBatches(b)) {
      if (this.control.stopRequested) throw new CancelledError('training stopped');
      const batch = this.tensorsOf(b, mb.rows, mb.weights);
      const { value, grads } = tf.variableGrads(() => tf.mul((this.target ?? this.model).loss(batch), scale) as tf.Scalar, vars);
      loss += (await value.data())[0];
      for (const [vname, g] of Object.entries(grads)) {
        const name = names.get(vname)!;
        const prev = acc.get(name);
        if (prev) {
          acc.set(name, tf.add(prev, g));
          prev.dispose();
          g.dispose();
        } else acc.set(name, g);
      }
      tf.dispose([value, batch.inputIds, batch.targets, batch.weights, ...(batch.t ? [batch.t] : [])]);
      await new Promise((r) => setImmediate(r)); // let stop/pause requests in
    }
    return loss;
  }

  /** One optimizer step. Returns null when stopped before it completed (nothing applied). */
  async trainStep(): Promise<{ loss: number; gradNorm: number; lr: number; seconds: number } | null> {
    const t0 = performance.now();
    const acc = new Map<string, tf.Tensor>();
    // a step abandoned half-way must not consume samples: a resumed run then sees the same batches
    const rngBefore = this.rng.state;
    let loss = 0;
    try {
      // a-gpt: loss / grad_accum_steps per micro-step, one source sampled per micro-step
      for (let a = 0; a < this.opts.gradAccum; a++) loss += await this.accumulate(this.sample('train', this.rng), acc, 1 / this.opts.gradAccum);
    } catch (e) {
      tf.dispose([...acc.values()]);
      if (e instanceof CancelledError) {
        this.rng.state = rngBefore;
        return null;
      }
      throw e;
    }
    const gradNorm = await globalNorm(acc);
    if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
      tf.dispose([...acc.values()]);
      throw new Error(`training diverged at step ${this.step}: loss ${loss}, grad norm ${gradNorm} (lower --lr)`);
    }
    clipGrads(acc, gradNorm, this.opts.clip);
    const lr = cosineLr(this.step, this.opts.steps, this.opts.warmup, this.opts.lr, this.opts.minLr);
    this.adam.update(acc, lr);
    tf.dispose([...acc.values()]);
    // a GPU that reported an error during the step computed nothing we may keep training on
    const deviceErrors = takeDeviceErrors();
    if (deviceErrors.length) throw new DeviceError(`the GPU reported an error at step ${this.step}: ${deviceErrors[0]} (train on --backend wasm, or resume from the last checkpoint)`);
    this.step++;
    this.lastLoss = loss;
    return { loss, gradNorm, lr, seconds: (performance.now() - t0) / 1000 };
  }

  /**
   * Validation loss as a-gpt's estimate_mixed_loss: per source the mean over `evalIters` batches,
   * then the mean of those weighted by the normalised source weights. Unlike a-gpt the batches come
   * from a fixed seed, so successive evaluations are comparable. Stopping interrupts it.
   */
  async evaluate(): Promise<{ valLoss: number; bySource: Record<string, number> | null }> {
    if (this.data.kind === 'fixed') return { valLoss: await this.batchLoss(this.data.batch), bySource: null };
    const rng = new Rng(this.opts.seed + 7);
    const sources = this.data.sources;
    const totalWeight = sources.reduce((s, x) => s + x.weight, 0);
    const bySource: Record<string, number> = {};
    let mixed = 0;
    for (const src of sources) {
      let sum = 0;
      for (let i = 0; i < this.opts.evalIters; i++) sum += await this.batchLoss(this.sampleFrom(src, 'val', rng));
      bySource[src.spec] = sum / this.opts.evalIters;
      mixed += (src.weight / totalWeight) * bySource[src.spec];
    }
    return { valLoss: mixed, bySource: sources.length > 1 ? bySource : null };
  }

  /** Loss of one batch without gradients (micro-batched like training). */
  private async batchLoss(b: HostBatch): Promise<number> {
    let sum = 0;
    for (const mb of this.microBatches(b)) {
      if (this.control.stopRequested) throw new CancelledError('training stopped');
      const batch = this.tensorsOf(b, mb.rows, mb.weights);
      const l = this.target ? this.target.loss(batch) : this.model.loss(batch, { withGrad: false });
      sum += (await l.data())[0];
      tf.dispose([l, batch.inputIds, batch.targets, batch.weights, ...(batch.t ? [batch.t] : [])]);
    }
    return sum;
  }

  /** Per layer and head on a fixed probe window: mean loraFro, loraRel and attention entropy. */
  async probeMetrics(): Promise<TrainEvent | null> {
    if (!this.probe) this.probe = this.data.kind === 'fixed' ? this.data.batch : this.sample('val', new Rng(this.opts.seed + 11));
    const b = this.probe;
    const T = Math.min(b.T, this.model.config.block_size);
    const ids = tf.tensor2d(b.inputIds.subarray(0, T), [1, T], 'int32');
    const t = b.t ? tf.tensor1d(b.t.subarray(0, 1), 'int32') : undefined;
    const { logits, layers } = this.model.forwardWithInternals(ids, t);
    const L = layers.length, H = this.model.config.n_head;
    const ent: number[] = [];
    const signals: Record<string, number[]> = {};
    for (const li of layers) {
      const e = tf.tidy(() => tf.mean(tf.neg(tf.sum(tf.mul(li.attn, tf.log(tf.maximum(li.attn, 1e-30))), -1)), [0, 2]));
      ent.push(...((await e.data()) as Float32Array));
      e.dispose();
      // per-head signals (head or head×token scope): their mean over the batch and the tokens
      for (const [name, x] of Object.entries(li.signals)) {
        if (x.shape[1] !== H) continue;
        const m = tf.tidy(() => (x.rank === 2 ? tf.mean(x, 0) : tf.mean(x, [0, 2])));
        (signals[name] ??= []).push(...((await m.data()) as Float32Array));
        m.dispose();
      }
    }
    tf.dispose([ids, ...(t ? [t] : []), logits, ...layers.flatMap((li) => [li.attn, li.hidden, ...Object.values(li.signals), ...Object.values(li.extras ?? {})])]);
    return { kind: 'probe', runId: this.runId, step: this.step, layers: L, heads: H, loraFro: signals.loraFro ?? null, loraRel: signals.loraRel ?? null, attnEntropy: ent, signals };
  }

  state(): TrainState {
    return {
      config: this.model.config,
      step: this.step,
      seed: this.opts.seed,
      rngState: this.rng.state,
      bestValLoss: this.bestValLoss,
      lastLoss: this.lastLoss,
      tokenizer: 'gpt2',
      options: { ...this.opts },
      adamStep: this.adam.step,
      data: this.dataSpec,
    };
  }

  async checkpoint(name: 'last' | 'best'): Promise<string | null> {
    if (!this.opts.out) return null;
    const file = path.join(this.opts.out, `${name}.safetensors`);
    if (this.target) await this.target.save(file, this.adam, this.state());
    else await saveCheckpoint(file, this.model, this.adam, this.state());
    return file;
  }

  /** Run to `opts.steps`, emitting step/eval/probe/status records. */
  async run(): Promise<{ stopped: boolean; checkpoint: string | null }> {
    const { steps, evalInterval, checkpointInterval, probeInterval } = this.opts;
    let lastCkpt: string | null = null;
    let savedStep = this.step;
    if (this.opts.out) fs.mkdirSync(this.opts.out, { recursive: true });
    this.status('running');
    if (probeInterval > 0 && this.step === 0) this.emitProbe(await this.probeMetrics());
    while (this.step < steps) {
      if (this.control.paused) {
        this.status('paused');
        while (this.control.paused && !this.control.stopRequested) await new Promise((r) => setTimeout(r, 50));
        if (!this.control.stopRequested) this.status('running');
      }
      if (this.control.stopRequested) break;
      const done = this.step;
      const r = await this.trainStep();
      if (!r) break;
      const { batchSize, seqLen, gradAccum } = this.opts;
      this.emit({ kind: 'step', runId: this.runId, step: done, loss: r.loss, lr: r.lr, grad_norm: r.gradNorm, tokens_per_s: (batchSize * seqLen * gradAccum) / r.seconds, elapsed_s: r.seconds });
      const last = this.step === steps;
      if (probeInterval > 0 && (this.step % probeInterval === 0 || last)) this.emitProbe(await this.probeMetrics());
      if ((evalInterval > 0 && this.step % evalInterval === 0) || last) {
        const val = await this.evaluateUnlessStopped();
        if (val === null) break;
        this.emit({ kind: 'eval', runId: this.runId, step: this.step, val_loss: val.valLoss, train_loss: r.loss, ...(val.bySource ? { val_by_source: val.bySource } : {}) });
        if (this.bestValLoss === null || val.valLoss < this.bestValLoss) {
          this.bestValLoss = val.valLoss;
          await this.checkpoint('best');
        }
      }
      if (this.step % checkpointInterval === 0 || last) {
        lastCkpt = await this.checkpoint('last');
        savedStep = this.step;
      }
      if (this.stopAfter !== null && this.step >= this.stopAfter) this.control.stopRequested = true;
    }
    const stopped = this.step < steps;
    // a stop (or a stop during the final evaluation) leaves a checkpoint of every completed step
    if (savedStep !== this.step || (stopped && lastCkpt === null)) lastCkpt = await this.checkpoint('last');
    return { stopped, checkpoint: lastCkpt };
  }

  private async evaluateUnlessStopped(): Promise<Awaited<ReturnType<Trainer['evaluate']>> | null> {
    try {
      return await this.evaluate();
    } catch (e) {
      if (e instanceof CancelledError) return null;
      throw e;
    }
  }

  private emitProbe(e: TrainEvent | null): void {
    if (e) this.emit(e);
  }

  private status(state: 'running' | 'paused'): void {
    this.emit({ kind: 'status', runId: this.runId, state, step: this.step, totalSteps: this.opts.steps, family: this.model.config.family });
  }

  dispose(): void {
    this.adam.dispose();
  }
}

export type { ModelConfig };
