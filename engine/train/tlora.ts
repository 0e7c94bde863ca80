/**
 * Temporal LoRA training, phase by phase as stability-first-ai `temporal_lora.py` (c85243c) trains:
 *
 *   adapter phases (train_adapter, lines 455-633), one per adapter in order, on that adapter's own
 *     data: the adapter and the Time Mixer train, the GPT-2 base and every other adapter are frozen;
 *     loss = next-token cross-entropy of the mixed model (GPT-2's eos — their pad — ignored as a
 *     target); from the second adapter on + 0.5·T²·KL(p_teacher ‖ p_student), T = 2,
 *     p = softmax(mean over positions of the mixer weights / T), on one batch of the first domain
 *     per step, the teacher being the mixer as the previous phase left it ("Active Sleep");
 *   router phase (calibrate_mixer, lines 639-797): the mixer is re-initialised (reset_weights), only
 *     it trains, on −log p̄[domain] of the tail-weighted aggregate p̄ = Σ_s w_s softmax(logits_s),
 *     w_s ∝ m_s·exp((s − (L−1))/(0.35·S)), over windows of every domain labelled by their adapter.
 *
 * Each phase has its own torch.optim.Adam (betas 0.9/0.999, eps 1e-8, no decay, constant lr, no
 * clipping); their lrs (1e-4 adapters, 2e-3 router) and batch sizes (8, 16) are the defaults. Where
 * this differs from their script: steps instead of epochs, random windows of each domain's token
 * stream instead of padded short samples (so every window is full: L = S), dropout off, and
 * their FAST_MODE sequence lengths (32, 64). Events are the normal training records (step, eval,
 * status), one step counter across the phases, so the sidebar monitor draws them. The result is
 * written in their checkpoint format (tlora.pt) and as safetensors with the same names, with a
 * sidecar naming the base.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig, TrainEvent, TrainResult } from '../protocol';
import { BadInputError, CancelledError } from '../errors';
import type { HostTensor } from '../io/tensor';
import { writeSafetensors, atomicWriteFile } from '../io/safetensors';
import { writeTloraCheckpoint } from '../io/tlora';
import { storedPermutation } from '../models/family';
import { TfOps } from '../runtime/tfjs/ops';
import { TfModel } from '../runtime/tfjs/model';
import { readCheckpoint, type CheckpointRead } from '../io/checkpoint';
import { familyDef } from '../models/registry';
import { BASE_PREFIX, TLORA_DEFAULTS, mixerInit, parameterGroup, routerLogits, tloraOf } from '../models/tlora';
import { EOT_ID, GPT2_VOCAB_SIZE } from '../tokenizers/gpt2';
import { AdamW, globalNorm } from './adamw';
import { Rng } from './rng';
import { causalBatch, loadSources, type HostBatch, type Source } from './data';
import type { TrainerControl } from './trainer';

export interface TloraTrainOptions {
  /** Optimizer steps of each adapter phase, and of the router phase. */
  steps: number;
  routerSteps: number;
  lr: number;
  routerLr: number;
  batchSize: number;
  routerBatchSize: number;
  seqLen: number;
  routerSeqLen: number;
  betas: [number, number];
  eps: number;
  /** Active Sleep: KL temperature and weight (0 turns it off). */
  distillT: number;
  distillWeight: number;
  /** The router loss's tail emphasis τ. */
  tau: number;
  /** The target id the LM loss ignores (their pad = GPT-2's eos). */
  ignoreId: number;
  seed: number;
  /** Validate every N steps of a phase (0: at the end of each phase only), on evalIters batches. */
  evalInterval: number;
  evalIters: number;
  out: string | null;
}

export const TLORA_TRAIN_DEFAULTS: Omit<TloraTrainOptions, 'steps' | 'routerSteps'> = {
  lr: 1e-4, routerLr: 2e-3, batchSize: 8, routerBatchSize: 16, seqLen: 32, routerSeqLen: 64,
  betas: [0.9, 0.999], eps: 1e-8, distillT: 2, distillWeight: 0.5, tau: 0.35, ignoreId: EOT_ID,
  seed: 42, evalInterval: 0, evalIters: 5, out: null,
};

// ---------------------------------------------------------------------------------------------
// Losses (each returns scalars inside the caller's tidy / gradient scope)
// ---------------------------------------------------------------------------------------------

/** Per-position weights of the LM loss: 1/n on targets that count, 0 on the ignored id (F.cross_entropy's mean). */
export function lmWeights(targets: Int32Array, ignoreId: number): Float32Array {
  let n = 0;
  for (const t of targets) if (t !== ignoreId) n++;
  return Float32Array.from(targets, (t) => (t !== ignoreId && n ? 1 / n : 0));
}

/** Next-token cross-entropy of the mixed model on a batch, ignored targets left out. */
export function lmLoss(model: TfModel, b: HostBatch, ignoreId: number): tf.Scalar {
  return tf.tidy(() => model.loss({
    inputIds: tf.tensor2d(b.inputIds, [b.B, b.T], 'int32'),
    targets: tf.tensor2d(b.targets, [b.B, b.T], 'int32'),
    weights: tf.tensor1d(lmWeights(b.targets, ignoreId)),
  }));
}

/** The Time Mixer's weights (B, T, K) on ids, with the given parameters (the model's own, or a teacher's copy). */
function mixerWeights(ops: TfOps, ids: tf.Tensor2D): tf.Tensor3D {
  return tf.softmax(routerLogits(ops, ids)) as tf.Tensor3D;
}

/** Active Sleep: T²·KL(p_teacher ‖ p_student), p = softmax(mean_s(w) / T), batch mean (nn.KLDivLoss "batchmean"). */
export function distillLoss(model: TfModel, teacher: TfOps, prev: HostBatch, T: number): tf.Scalar {
  return tf.tidy(() => {
    const ids = tf.tensor2d(prev.inputIds, [prev.B, prev.T], 'int32');
    const pT = tf.softmax(tf.div(tf.mean(mixerWeights(teacher, ids), 1), T));
    const logPS = tf.logSoftmax(tf.div(tf.mean(mixerWeights(model.ops, ids), 1), T));
    const kl = tf.div(tf.sum(tf.mul(pT, tf.sub(tf.log(pT), logPS))), prev.B);
    return tf.mul(kl, T * T) as tf.Scalar;
  });
}

export interface RouterBatch {
  B: number;
  S: number;
  ids: Int32Array; // (B, S)
  mask: Float32Array; // (B, S): 1 on real tokens
  labels: Int32Array; // (B): the adapter index of each row's domain
}

/** The tail-weighted aggregate p̄ (B, K) of calibrate_mixer: Σ_s w_s·softmax(classifier(embed(x_s))). */
export function routerAggregate(model: TfModel, b: RouterBatch, tau: number): tf.Tensor2D {
  return tf.tidy(() => {
    const probs = mixerWeights(model.ops, tf.tensor2d(b.ids, [b.B, b.S], 'int32')); // (B, S, K)
    const mask = tf.tensor2d(b.mask, [b.B, b.S]);
    const last = tf.sub(tf.maximum(tf.sum(mask, 1, true), 1), 1); // (B, 1): the last real position
    const pos = tf.range(0, b.S, 1, 'float32').reshape([1, b.S]);
    const w = tf.mul(tf.exp(tf.div(tf.sub(pos, last), tau * b.S)), mask);
    const wn = tf.div(w, tf.add(tf.sum(w, 1, true), 1e-8));
    return tf.clipByValue(tf.sum(tf.mul(probs, tf.expandDims(wn, 2)), 1), 1e-8, 1) as tf.Tensor2D;
  });
}

/** F.nll_loss(log p̄, labels): the mean over rows of −log p̄[label]. */
export function routerLoss(model: TfModel, b: RouterBatch, tau: number): tf.Scalar {
  return tf.tidy(() => {
    const agg = routerAggregate(model, b, tau);
    const picked = tf.sum(tf.mul(tf.log(agg), tf.cast(tf.oneHot(tf.tensor1d(b.labels, 'int32'), agg.shape[1]), 'float32')), 1);
    return tf.neg(tf.mean(picked)) as tf.Scalar;
  });
}

/** Router accuracy on a batch: argmax p̄ = label (their "Router Acc"). */
export async function routerAccuracy(model: TfModel, b: RouterBatch, tau: number): Promise<number> {
  const pred = tf.tidy(() => tf.argMax(routerAggregate(model, b, tau), 1));
  const p = (await pred.data()) as Int32Array;
  pred.dispose();
  return p.reduce((n, v, i) => n + (v === b.labels[i] ? 1 : 0), 0) / b.B;
}

// ---------------------------------------------------------------------------------------------
// What trains when, and one phase's optimizer
// ---------------------------------------------------------------------------------------------

/** The Time Mixer's parameters that a loss reaches (the hidden-state gate never gets a gradient). */
function mixerNames(model: TfModel): string[] {
  return model.parameterNames().filter((n) => parameterGroup(n).kind === 'mixer' && !n.includes('.gate.'));
}

/** An adapter phase trains that adapter and the mixer. */
export function adapterPhaseParams(model: TfModel, adapter: string): string[] {
  return [...model.parameterNames().filter((n) => { const g = parameterGroup(n); return g.kind === 'adapter' && g.adapter === adapter; }), ...mixerNames(model)];
}

/** The router phase trains the mixer only. */
export function routerPhaseParams(model: TfModel): string[] {
  return mixerNames(model);
}

/** A fresh torch.optim.Adam over some of the model's parameters (Adam = AdamW without decay). */
export class PhaseOptimizer {
  private readonly vars: Map<string, tf.Variable>;
  private readonly adam: AdamW;

  constructor(model: TfModel, names: string[], opts: { betas: [number, number]; eps: number }) {
    this.vars = new Map(names.map((n) => [n, model.params.get(n)!]));
    this.adam = new AdamW(this.vars, { betas: opts.betas, eps: opts.eps, weightDecay: 0 });
  }

  /** One step on `loss`; its value and the gradients' global norm (before the update). */
  async step(loss: () => tf.Scalar, lr: number): Promise<{ loss: number; gradNorm: number; grads?: Map<string, number> }> {
    const byVar = new Map([...this.vars].map(([n, v]) => [v.name, n]));
    const { value, grads } = tf.variableGrads(loss, [...this.vars.values()]);
    const named = new Map(Object.entries(grads).map(([v, g]) => [byVar.get(v)!, g]));
    try {
      const l = (await value.data())[0];
      const gradNorm = await globalNorm(named);
      if (!Number.isFinite(l) || !Number.isFinite(gradNorm)) throw new Error(`Temporal LoRA training diverged: loss ${l}, grad norm ${gradNorm} (lower the learning rate)`);
      this.adam.update(named, lr);
      return { loss: l, gradNorm };
    } finally {
      tf.dispose([value, ...named.values()]);
    }
  }

  /** Per-parameter gradient norms of `loss` (no update): what the reference compares. */
  async gradNorms(loss: () => tf.Scalar): Promise<Map<string, number>> {
    const byVar = new Map([...this.vars].map(([n, v]) => [v.name, n]));
    const { value, grads } = tf.variableGrads(loss, [...this.vars.values()]);
    const out = new Map<string, number>();
    for (const [v, g] of Object.entries(grads)) {
      const s = tf.tidy(() => tf.sqrt(tf.sum(tf.square(g))));
      out.set(byVar.get(v)!, (await s.data())[0]);
      s.dispose();
    }
    tf.dispose([value, ...Object.values(grads)]);
    return out;
  }

  dispose(): void {
    this.adam.dispose();
  }
}

/** Copies of the mixer's current parameters, as a TfOps for the teacher of Active Sleep. */
export function snapshotMixer(model: TfModel): { ops: TfOps; dispose(): void } {
  const copies = new Map(model.parameterNames().filter((n) => parameterGroup(n).kind === 'mixer').map((n) => [n, tf.clone(model.params.get(n)!)]));
  return {
    ops: new TfOps((n) => {
      const t = copies.get(n);
      if (!t) throw new Error(`the teacher mixer has no '${n}'`);
      return t;
    }),
    dispose: () => tf.dispose([...copies.values()]),
  };
}

/** Overwrite parameters with PyTorch-layout values (stored layout applied). */
export function assignParams(model: TfModel, values: Map<string, HostTensor>): void {
  for (const spec of model.specs) {
    const v = values.get(spec.name);
    if (!v) continue;
    tf.tidy(() => {
      const raw = tf.tensor(v.values, spec.shape, 'float32');
      const perm = storedPermutation(spec);
      model.params.get(spec.name)!.assign(perm ? tf.transpose(raw, perm) : raw);
    });
  }
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

/** One domain: the adapter it trains and its tokens. */
export interface Domain {
  name: string;
  source: Source;
}

/** A router batch: each row a window of a domain picked uniformly (their union of equal-sized datasets, shuffled). */
export function routerBatch(domains: Domain[], B: number, S: number, split: 'train' | 'val', rng: Rng): RouterBatch {
  const ids = new Int32Array(B * S), labels = new Int32Array(B);
  for (let b = 0; b < B; b++) {
    const d = rng.int(0, domains.length);
    const tokens = split === 'train' ? domains[d].source.train : domains[d].source.val;
    const i = rng.int(0, tokens.length - S);
    ids.set(tokens.subarray(i, i + S), b * S);
    labels[b] = d;
  }
  return { B, S, ids, mask: new Float32Array(B * S).fill(1), labels };
}

export interface TloraFiles {
  pt: string;
  safetensors: string;
  sidecar: string;
}

/** Writes their format (tlora.pt), safetensors with the same names (tlora.safetensors) and the sidecar both load with. */
export async function saveTlora(model: TfModel, out: string): Promise<TloraFiles> {
  fs.mkdirSync(out, { recursive: true });
  const all = await model.toStateDict();
  const own = new Map([...all].filter(([k]) => parameterGroup(k).kind !== 'base'));
  const t = tloraOf(model.config);
  const { route: _r, ...tl } = t;
  const config: ModelConfig = { ...model.config, tlora: tl };
  const files = { pt: path.join(out, 'tlora.pt'), safetensors: path.join(out, 'tlora.safetensors'), sidecar: path.join(out, 'tlora.json') };
  writeTloraCheckpoint(files.pt, own, t.adapter_names);
  writeSafetensors(files.safetensors, own, { metadata: { format: 'headlens-tlora-1', config: JSON.stringify(config) } });
  // their keys too (lora_rank, lora_alpha, adapter_names), for readers of their checkpoint
  atomicWriteFile(files.sidecar, JSON.stringify({ ...config, lora_rank: t.rank, lora_alpha: t.alpha, adapter_names: t.adapter_names }, null, 2));
  return files;
}

export class TloraTrainer {
  readonly control: TrainerControl = { paused: false, stopRequested: false };
  step = 0;
  lastLoss: number | null = null;
  bestValLoss: number | null = null;
  private readonly rng: Rng;

  constructor(readonly model: TfModel, readonly domains: Domain[], readonly opts: TloraTrainOptions, readonly runId: string, private readonly emit: (e: TrainEvent) => void) {
    this.rng = new Rng(opts.seed + 1);
    const names = tloraOf(model.config).adapter_names;
    if (names.length !== domains.length || names.some((n, i) => n !== domains[i].name)) throw new Error('the domains must be the adapters in order');
    const longest = Math.max(opts.seqLen, opts.routerSeqLen);
    if (longest > model.config.block_size) throw new BadInputError(`sequence length ${longest} is longer than the base's block size ${model.config.block_size}`);
  }

  get totalSteps(): number {
    return this.domains.length * this.opts.steps + this.opts.routerSteps;
  }

  private status(message: string): void {
    this.emit({ kind: 'status', runId: this.runId, state: 'running', step: this.step, totalSteps: this.totalSteps, family: 'tlora', message });
  }

  /** Waits while paused; false once a stop was asked for. */
  private async proceed(): Promise<boolean> {
    if (this.control.paused) {
      this.emit({ kind: 'status', runId: this.runId, state: 'paused', step: this.step, totalSteps: this.totalSteps, family: 'tlora' });
      while (this.control.paused && !this.control.stopRequested) await new Promise((r) => setTimeout(r, 50));
      if (!this.control.stopRequested) this.status('resumed');
    }
    await new Promise((r) => setImmediate(r)); // let stop/pause requests in
    return !this.control.stopRequested;
  }

  private emitStep(r: { loss: number; gradNorm: number }, lr: number, tokens: number, seconds: number): void {
    this.emit({ kind: 'step', runId: this.runId, step: this.step, loss: r.loss, lr, grad_norm: r.gradNorm, tokens_per_s: tokens / seconds, elapsed_s: seconds });
    this.step++;
    this.lastLoss = r.loss;
  }

  /** Validation LM loss of every domain with the mixture (seeded batches: comparable across evaluations). */
  private async lmValidation(): Promise<Record<string, number>> {
    const rng = new Rng(this.opts.seed + 7), out: Record<string, number> = {};
    for (const d of this.domains) {
      let sum = 0;
      for (let i = 0; i < this.opts.evalIters; i++) {
        if (this.control.stopRequested) throw new CancelledError('training stopped');
        const l = lmLoss(this.model, causalBatch(d.source.val, this.opts.batchSize, this.opts.seqLen, rng), this.opts.ignoreId);
        sum += (await l.data())[0];
        l.dispose();
      }
      out[d.name] = sum / this.opts.evalIters;
    }
    return out;
  }

  private async evalAdapters(current: string): Promise<void> {
    const bySource = await this.lmValidation();
    this.emit({ kind: 'eval', runId: this.runId, step: this.step, val_loss: bySource[current], train_loss: this.lastLoss ?? undefined, val_by_source: bySource });
  }

  private async evalRouter(): Promise<number> {
    const rng = new Rng(this.opts.seed + 11);
    let loss = 0, acc = 0;
    for (let i = 0; i < this.opts.evalIters; i++) {
      const b = routerBatch(this.domains, this.opts.routerBatchSize, this.opts.routerSeqLen, 'val', rng);
      const l = routerLoss(this.model, b, this.opts.tau);
      loss += (await l.data())[0] / this.opts.evalIters;
      l.dispose();
      acc += (await routerAccuracy(this.model, b, this.opts.tau)) / this.opts.evalIters;
    }
    this.emit({ kind: 'eval', runId: this.runId, step: this.step, val_loss: loss, train_loss: this.lastLoss ?? undefined });
    this.bestValLoss = this.bestValLoss === null ? loss : Math.min(this.bestValLoss, loss);
    return acc;
  }

  private due(s: number, steps: number): boolean {
    return s + 1 === steps || (this.opts.evalInterval > 0 && (s + 1) % this.opts.evalInterval === 0);
  }

  /** Phase k: adapter k and the mixer on domain k (Active Sleep from the second adapter on). */
  private async adapterPhase(k: number): Promise<boolean> {
    const d = this.domains[k], o = this.opts;
    this.status(`adapter ${k + 1}/${this.domains.length}: ${d.name} (the base and the other adapters frozen)`);
    const teacher = k > 0 && o.distillWeight > 0 ? snapshotMixer(this.model) : null;
    const opt = new PhaseOptimizer(this.model, adapterPhaseParams(this.model, d.name), o);
    try {
      for (let s = 0; s < o.steps; s++) {
        if (!(await this.proceed())) return false;
        const t0 = performance.now();
        const batch = causalBatch(d.source.train, o.batchSize, o.seqLen, this.rng);
        const prev = teacher ? causalBatch(this.domains[0].source.train, o.batchSize, o.seqLen, this.rng) : null;
        const r = await opt.step(() => {
          const ce = lmLoss(this.model, batch, o.ignoreId);
          return prev && teacher ? tf.add(ce, tf.mul(distillLoss(this.model, teacher.ops, prev, o.distillT), o.distillWeight)) as tf.Scalar : ce;
        }, o.lr);
        this.emitStep(r, o.lr, o.batchSize * o.seqLen, (performance.now() - t0) / 1000);
        if (this.due(s, o.steps)) await this.evalAdapters(d.name);
      }
      return true;
    } finally {
      opt.dispose();
      teacher?.dispose();
    }
  }

  /** The router phase: reset_weights, then the mixer alone on every domain's windows. */
  private async routerPhase(): Promise<boolean> {
    const o = this.opts;
    this.status('router: the Time Mixer re-initialised and trained alone (adapters frozen)');
    assignParams(this.model, mixerInit(this.model.config, o.seed + 3, true));
    const opt = new PhaseOptimizer(this.model, routerPhaseParams(this.model), o);
    try {
      for (let s = 0; s < o.routerSteps; s++) {
        if (!(await this.proceed())) return false;
        const t0 = performance.now();
        const b = routerBatch(this.domains, o.routerBatchSize, o.routerSeqLen, 'train', this.rng);
        const r = await opt.step(() => routerLoss(this.model, b, o.tau), o.routerLr);
        this.emitStep(r, o.routerLr, b.B * b.S, (performance.now() - t0) / 1000);
        if (this.due(s, o.routerSteps)) this.status(`router accuracy ${(100 * (await this.evalRouter())).toFixed(1)} % on validation windows`);
      }
      return true;
    } finally {
      opt.dispose();
    }
  }

  /** Every phase in turn; a stop ends the current step and still writes what was trained. */
  async run(): Promise<{ stopped: boolean; files: TloraFiles | null }> {
    let done = true;
    try {
      for (let k = 0; k < this.domains.length && done; k++) done = await this.adapterPhase(k);
      if (done) done = await this.routerPhase();
    } catch (e) {
      if (!(e instanceof CancelledError)) throw e;
      done = false;
    }
    const files = this.opts.out ? await saveTlora(this.model, this.opts.out) : null;
    return { stopped: !done, files };
  }

  result(r: { stopped: boolean; files: TloraFiles | null }): TrainResult {
    return { runId: this.runId, steps: this.step, finalLoss: this.lastLoss, bestValLoss: this.bestValLoss, checkpoint: r.files?.pt ?? null, stoppedEarly: r.stopped };
  }
}

// ---------------------------------------------------------------------------------------------
// From a request (CLI flags or `tlora/train`) to a ready run
// ---------------------------------------------------------------------------------------------

export interface TloraRunSpec {
  base: string;
  adapters: { name: string; data: string[] }[];
  rank?: number;
  alpha?: number;
  options: Partial<TloraTrainOptions> & { steps: number };
}

export interface TloraInputs {
  base: CheckpointRead;
  basePath: string;
  domains: Domain[];
  opts: TloraTrainOptions;
  rank: number;
  alpha: number;
}

/** ModuleDict keys: non-empty, no '.', each once (torch refuses the rest). */
function checkAdapterNames(names: string[]): void {
  if (!names.length) throw new BadInputError('Temporal LoRA training needs at least one --adapter NAME=PATH');
  for (const n of names) if (!/^[A-Za-z0-9_-]+$/.test(n)) throw new BadInputError(`--adapter ${n}: adapter names are letters, digits, _ and - (a torch ModuleDict key cannot hold '.')`);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw new BadInputError(`--adapter ${dup}: the name is given twice (one adapter per domain; list several paths after one name instead)`);
}

/** Every source of one adapter, as one domain (train and val splits concatenated). */
function domainOf(name: string, paths: string[], minTokens: number): Domain {
  if (!paths.length) throw new BadInputError(`--adapter ${name}: no data (give NAME=PATH, a file, folder or glob of text)`);
  const sources = loadSources(paths, { valRatio: 0.1, minTokens });
  const cat = (parts: Int32Array[]) => {
    const out = new Int32Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) (out.set(p, o), (o += p.length));
    return out;
  };
  return { name, source: { spec: name, weight: 1, files: sources.flatMap((s) => s.files), train: cat(sources.map((s) => s.train)), val: cat(sources.map((s) => s.val)) } };
}

/** Options, the base and the data, checked before any backend starts. */
export async function prepareTloraInputs(spec: TloraRunSpec): Promise<TloraInputs> {
  const o = spec.options;
  if (!Number.isInteger(o.steps) || o.steps <= 0) throw new BadInputError(`Temporal LoRA training: --steps must be a positive integer, got ${o.steps}`);
  const opts: TloraTrainOptions = { ...TLORA_TRAIN_DEFAULTS, routerSteps: o.steps, ...Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)), steps: o.steps } as TloraTrainOptions;
  for (const k of ['routerSteps', 'lr', 'routerLr', 'batchSize', 'routerBatchSize', 'seqLen', 'routerSeqLen'] as const) {
    if (!(opts[k] > 0)) throw new BadInputError(`Temporal LoRA training: ${k} must be > 0, got ${opts[k]}`);
  }
  const rank = spec.rank ?? TLORA_DEFAULTS.rank, alpha = spec.alpha ?? TLORA_DEFAULTS.alpha;
  if (!Number.isInteger(rank) || rank <= 0) throw new BadInputError(`--rank must be a positive integer, got ${rank}`);
  if (!(alpha > 0)) throw new BadInputError(`--alpha must be > 0, got ${alpha}`);
  checkAdapterNames(spec.adapters.map((a) => a.name));
  const basePath = path.resolve(spec.base);
  const base = await readCheckpoint({ path: basePath });
  if (base.config.family !== 'gpt2') throw new BadInputError(`--model ${spec.base}: the base must be a GPT-2 (gpt2 family), this is a ${base.config.family} model`);
  if (base.config.vocab_size < GPT2_VOCAB_SIZE) throw new BadInputError(`--model ${spec.base}: the base has ${base.config.vocab_size} tokens, fewer than GPT-2's ${GPT2_VOCAB_SIZE}: the training text is tokenized with GPT-2 BPE`);
  const minTokens = Math.max(opts.seqLen, opts.routerSeqLen) + 2;
  const domains = spec.adapters.map((a) => domainOf(a.name, a.data, minTokens));
  if (opts.out) fs.mkdirSync(opts.out, { recursive: true });
  return { base, basePath, domains, opts, rank, alpha };
}

/** The tlora config on the base: their mixer sizes, the gate C/2 wide, the base's path. */
export function tloraConfigOn(base: ModelConfig, basePath: string, names: string[], rank: number, alpha: number): ModelConfig {
  return {
    ...base,
    family: 'tlora',
    tlora: { adapter_names: names, rank, alpha, mixer_embed: TLORA_DEFAULTS.mixer_embed, mixer_hidden: TLORA_DEFAULTS.mixer_hidden, gate_hidden: Math.floor(base.n_embd / 2), base: basePath },
  };
}

/** The model (the base's weights, new adapters and mixer) and its trainer, on the active backend. */
export function buildTloraRun(inputs: TloraInputs, runId: string, emit: (e: TrainEvent) => void): { trainer: TloraTrainer; model: TfModel; dispose(): void } {
  const names = inputs.domains.map((d) => d.name);
  const config = tloraConfigOn(inputs.base.config, inputs.basePath, names, inputs.rank, inputs.alpha);
  const weights = familyDef('tlora').init(config, inputs.opts.seed);
  for (const [k, v] of inputs.base.weights) weights.set(BASE_PREFIX + k, v);
  const model = new TfModel(config, weights, path.basename(inputs.basePath));
  try {
    return { trainer: new TloraTrainer(model, inputs.domains, inputs.opts, runId, emit), model, dispose: () => model.dispose() };
  } catch (e) {
    model.dispose();
    throw e;
  }
}
