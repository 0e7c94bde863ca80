/**
 * From a run spec (CLI flags or a `train/start` request) to a ready Trainer: the model (new with
 * a-gpt's init, `--init` weights, or `--resume` state), the data (corpus or one fixed batch), and
 * the options with a-gpt's defaults. Every problem with the input is found here, before training.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Family, TrainEvent } from '../protocol';
import { BadInputError } from '../errors';
import { interpret, readCheckpoint, readGivenConfig, type RawConfig } from '../io/checkpoint';
import { familyDef } from '../models/registry';
import { TfModel as Model } from '../runtime/tfjs/model';
import { isDiffusion } from '../models/config';
import { readSafetensors } from '../io/safetensors';
import { GPT2_VOCAB_SIZE } from '../tokenizers/gpt2';
import { loadSources, type HostBatch } from './data';
import { readResumePoint, restoreOptimizer, type ResumePoint } from './checkpoint';
import { DEFAULT_OPTIONS, Trainer, type BatchSource, type TrainOptions } from './trainer';

export interface RunSpec {
  init?: string;
  config?: string | Record<string, unknown>;
  family?: Family;
  data: string[];
  resume?: string;
  overfitBatch?: string;
  valRatio?: number;
  options: Partial<TrainOptions> & { steps: number };
}

export interface PreparedRun {
  trainer: Trainer;
  model: Model;
  note?: string;
  dispose(): void;
}

/** Options a resumed run continues with unless given again: the saved run's (never its step count). */
const INHERITED: (keyof TrainOptions)[] = ['lr', 'minLr', 'warmup', 'batchSize', 'seqLen', 'gradAccum', 'weightDecay', 'betas', 'eps', 'clip',
  'evalInterval', 'evalIters', 'seed', 'checkpointInterval', 'probeInterval', 'microTokens', 'minMaskRatio'];

function definedOnly(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

/** Given flags, else the resumed run's options, else a-gpt's defaults. */
export function withDefaults(o: RunSpec['options'], inherited: Partial<TrainOptions> = {}): TrainOptions {
  const kept = Object.fromEntries(INHERITED.filter((k) => inherited[k] !== undefined).map((k) => [k, inherited[k]]));
  const opts = { ...DEFAULT_OPTIONS, ...kept, ...definedOnly(o) } as TrainOptions;
  if (opts.out === null && inherited.out) opts.out = inherited.out;
  const has = (k: keyof TrainOptions) => o[k] !== undefined || kept[k] !== undefined;
  if (!has('evalInterval')) opts.evalInterval = Math.max(1, Math.min(DEFAULT_OPTIONS.evalInterval, Math.ceil(opts.steps / 10)));
  if (!has('warmup')) opts.warmup = Math.min(DEFAULT_OPTIONS.warmup, Math.floor(opts.steps / 10));
  return opts;
}

/** The fixed batch of --overfit-batch: input_ids, targets and, for diffusion, mask and t. */
function readFixedBatch(file: string): HostBatch {
  const { tensors } = readSafetensors(file);
  const ids = tensors.get('input_ids'), tg = tensors.get('targets');
  if (!ids || !tg || ids.shape.length !== 2) throw new BadInputError(`--overfit-batch ${file}: needs 'input_ids' and 'targets' tensors of shape [B, T]`);
  const [B, T] = ids.shape;
  const mask = tensors.get('mask'), t = tensors.get('t');
  return {
    B,
    T,
    inputIds: Int32Array.from(ids.values),
    targets: Int32Array.from(tg.values),
    mask: mask ? Float32Array.from(mask.values) : undefined,
    t: t ? Int32Array.from(t.values) : undefined,
  };
}

function checkOut(out: string | null): void {
  if (!out) return;
  try {
    fs.mkdirSync(out, { recursive: true });
    const probe = path.join(out, `.write-test-${process.pid}`);
    fs.writeFileSync(probe, '');
    fs.rmSync(probe);
  } catch (e) {
    throw new BadInputError(`--out ${out}: cannot write there (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

async function buildModel(spec: RunSpec, opts: TrainOptions, resume: ResumePoint | undefined): Promise<{ model: Model; note?: string }> {
  const given = readGivenConfig(spec.config);
  if (resume && spec.resume) {
    const raw = { path: spec.resume, name: path.basename(spec.resume), format: 'safetensors' as const, tensors: resume.weights, fileConfig: (resume.config ?? {}) as RawConfig, sidecar: {}, extra: {} };
    const { config } = interpret(raw, given);
    return { model: new Model(config, resume.weights, path.basename(spec.resume)), note: `resuming from ${spec.resume} at step ${resume.state.step}` };
  }
  if (spec.init) {
    const ck = await readCheckpoint({ path: spec.init, config: spec.config });
    return { model: new Model(ck.config, ck.weights, path.basename(spec.init)), note: `initialised from ${spec.init} (${ck.config.family})` };
  }
  const family = spec.family ?? (given.family as Family | undefined) ?? 'adaptive';
  const config = familyDef(family).defaults(family, { vocab_size: GPT2_VOCAB_SIZE, ...given, block_size: given.block_size ?? Math.max(opts.seqLen, 1) });
  return { model: Model.init(config, opts.seed), note: `new ${family} model (${config.n_layer} layers, width ${config.n_embd}, seed ${opts.seed})` };
}

/** The resumed run's options: ours as saved (checkpoints go on into the same folder), or a-gpt's. */
function inheritedOptions(resume: ResumePoint | undefined, file: string | undefined): Partial<TrainOptions> {
  if (!resume || !file) return {};
  const saved = (resume.state.options ?? {}) as Partial<TrainOptions>;
  return { ...saved, out: resume.source === 'headlens' ? path.dirname(path.resolve(file)) : null };
}

/** What to train on: the flags, else what the resumed run trained on. */
function dataOf(spec: RunSpec, resume: ResumePoint | undefined): { data: string[]; overfitBatch?: string; valRatio?: number } {
  const saved = resume?.state.data;
  if (spec.overfitBatch || spec.data.length || !saved) return { data: spec.data.map((d) => path.resolve(d)), overfitBatch: spec.overfitBatch && path.resolve(spec.overfitBatch), valRatio: spec.valRatio };
  return { data: saved.data, overfitBatch: saved.overfitBatch, valRatio: spec.valRatio ?? saved.valRatio };
}

/** Everything a run needs that is not a tensor: checked before any backend starts. */
export interface RunInputs {
  spec: RunSpec;
  resume?: ResumePoint;
  opts: TrainOptions;
  source: { data: string[]; overfitBatch?: string; valRatio?: number };
  data: BatchSource;
}

/** Options, resume point, output folder and data — bad input fails here, before any backend starts. */
export function prepareInputs(spec: RunSpec): RunInputs {
  const resume = spec.resume ? readResumePoint(spec.resume) : undefined;
  const opts = withDefaults(spec.options, inheritedOptions(resume, spec.resume));
  checkOut(opts.out);
  const source = dataOf(spec, resume);
  let data: BatchSource;
  if (source.overfitBatch) {
    const batch = readFixedBatch(source.overfitBatch);
    opts.batchSize = batch.B;
    opts.seqLen = batch.T;
    data = { kind: 'fixed', batch };
  } else {
    if (!source.data.length) throw new BadInputError('no training data: pass --data PATH (files, folders or globs of text) or --overfit-batch FILE');
    data = { kind: 'corpus', sources: loadSources(source.data, { valRatio: source.valRatio ?? 0.1, minTokens: opts.seqLen + 2 }) };
  }
  return { spec, resume, opts, source, data };
}

/** The model and trainer on the active backend (nothing is left allocated when this throws). */
export async function buildRun(inputs: RunInputs, runId: string, emit: (e: TrainEvent) => void): Promise<PreparedRun> {
  const { spec, resume, opts, source, data } = inputs;
  const { model, note } = await buildModel(spec, opts, resume);
  let trainer: Trainer | undefined;
  try {
    if (data.kind === 'fixed') {
      const bad = data.batch.inputIds.find((v) => v < 0 || v >= model.config.vocab_size);
      if (bad !== undefined) throw new BadInputError(`--overfit-batch: id ${bad} is outside the model's vocabulary of ${model.config.vocab_size}`);
      if (isDiffusion(model.config.family) && !data.batch.mask) throw new BadInputError('--overfit-batch: a diffusion model needs a `mask` tensor in the batch file');
    }
    trainer = new Trainer(model, data, opts, runId, emit, resume ? { step: resume.state.step, rngState: resume.state.rngState, bestValLoss: resume.state.bestValLoss ?? null } : {});
    trainer.dataSpec = source;
    if (resume?.optimizer) restoreOptimizer(trainer.adam, model, resume.optimizer);
  } catch (e) {
    trainer?.dispose();
    model.dispose();
    throw e;
  }
  const t = trainer;
  return {
    trainer: t,
    model,
    note,
    dispose: () => {
      t.dispose();
      model.dispose();
    },
  };
}

export async function prepareRun(spec: RunSpec, runId: string, emit: (e: TrainEvent) => void): Promise<PreparedRun> {
  return buildRun(prepareInputs(spec), runId, emit);
}
