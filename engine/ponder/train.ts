/**
 * Training PonderTTT's TTT layer with the base frozen, as deveworld/ponderTTT
 * `experiments/train_baseline.py` (commit d77657d) trains it: only `fast_norm` and `fast_layer` get
 * gradients (their TrainableParamsWrapper; the base sits behind stop_gradient), every training
 * sequence is one chunk run on its own (local positions, fast weights reset), and the loss is
 *   CE of the UPDATE path over the chunk's T − 1 next-token predictions
 *   + ssl_weight · mean(mean ttt_loss_init, mean ttt_loss_step_0, mean ttt_loss_step_1), ssl_weight 0.1
 * with global-norm clipping 1.0 and Adam (weight decay 0 unless given). The loop, schedule,
 * evaluation, checkpoints, pause/stop and progress events are the shared trainer's (the sidebar
 * monitor draws them as any run); checkpoints are TTT-layer files naming their base.
 */
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig, TrainEvent } from '../protocol';
import { BadInputError } from '../errors';
import type { HostTensor } from '../io/tensor';
import { readCheckpoint, type CheckpointRead, type RawConfig } from '../io/checkpoint';
import { TfModel, type Batch } from '../runtime/tfjs/model';
import { chunkedHeadLoss } from '../runtime/tfjs/kernels';
import { Trainer, type TrainOptions, type TrainTarget } from '../train/trainer';
import type { AdamW } from '../train/adamw';
import type { TrainState } from '../train/checkpoint';
import { prepareInputs, type PreparedRun, type RunInputs } from '../train/setup';
import { tttConfigOf, tttParameters, type TttConfig } from './config';
import { baseRecord, readTttCheckpoint, tttInit, writeTttCheckpoint, type TttCheckpoint } from './checkpoint';
import { chunkLength } from './run';
import { tfTttBranch } from './runners';

/** Their ssl_weight (train_baseline.py:426-438; the paper's β). */
export const SSL_WEIGHT = 0.1;

export interface PonderTrainSpec {
  /** The frozen base (any checkpoint a causal family loads) and its --config. */
  base: string;
  baseConfig?: string | Record<string, unknown>;
  /** Start from this TTT layer; else a new one (`tttConfig` sizes it) with their initialisation. */
  ttt?: string;
  /** TTTConfig keys: num_heads, head_dim, mini_batch_size, eta_decay_rate, … */
  tttConfig?: RawConfig;
  /** Tokens per training sequence = one chunk (a multiple of the mini-batch size). */
  chunk?: number;
  sslWeight?: number;
  data: string[];
  overfitBatch?: string;
  valRatio?: number;
  /** A TTT training checkpoint (ours) to continue from. */
  resume?: string;
  options: Partial<TrainOptions> & { steps: number };
}

/** Host-side inputs, all checked before any backend starts. */
export interface PonderTrainInputs {
  base: CheckpointRead;
  basePath: string;
  ttt: { config: TttConfig; weights: Map<string, HostTensor>; resumed: TttCheckpoint | null; source: string };
  chunk: number;
  sslWeight: number;
  run: RunInputs;
}

/** A new layer's shape for a base C wide: heads of 64 as their GPT-2 configs (C/64 of them), M = 16. */
function freshConfig(base: ModelConfig, given: RawConfig): TttConfig {
  const C = base.n_embd;
  const d = typeof given.head_dim === 'number' ? given.head_dim : C % 64 === 0 ? 64 : Math.max(2, 2 * Math.floor(Math.min(64, C) / 2));
  const H = typeof given.num_heads === 'number' ? given.num_heads : Math.max(1, Math.round(C / d));
  const M = typeof given.mini_batch_size === 'number' ? given.mini_batch_size : 16;
  const width = typeof given.conv_width === 'number' ? given.conv_width : 4;
  const probe = { hidden_dim: C, num_heads: H, head_dim: d, mini_batch_size: M, conv_width: width, ttt_base_lr: 1, eta_decay_rate: 0, rope_theta: 1e4, causal_k: 0, max_grad_norm: null };
  // the shapes of such a layer, so that the config is read (and checked) as any file's is
  const shapes = new Map(tttParameters(probe).map((p) => [p.name, { shape: p.shape, dtype: 'float32' as const, values: new Float32Array(0) }]));
  return tttConfigOf(shapes, { layers: [[given, '--ttt-config']] }, 'a new TTT layer');
}

/** Options a resumed run keeps unless given again (as the shared trainer's resume does). */
const INHERITED: (keyof TrainOptions)[] = ['lr', 'minLr', 'warmup', 'batchSize', 'gradAccum', 'weightDecay', 'betas', 'eps', 'clip', 'evalInterval', 'evalIters', 'seed', 'checkpointInterval', 'probeInterval', 'microTokens'];

export async function preparePonderTraining(spec: PonderTrainSpec): Promise<PonderTrainInputs> {
  const base = await readCheckpoint({ path: spec.base, config: spec.baseConfig });
  const baseRef = { config: base.config, path: spec.base };
  const resumed = spec.resume ? readTttCheckpoint(spec.resume, { base: baseRef, given: spec.tttConfig }) : null;
  if (resumed && !resumed.state) throw new BadInputError(`--resume ${spec.resume}: not a TTT training checkpoint (no training state in it); use --ttt to start from its weights`);
  const from = resumed ?? (spec.ttt ? readTttCheckpoint(spec.ttt, { base: baseRef, given: spec.tttConfig }) : null);
  const config = from?.config ?? freshConfig(base.config, spec.tttConfig ?? {});
  const weights = from?.weights ?? tttInit(config, spec.options.seed ?? 1337);
  const saved = (resumed?.state ?? {}) as Partial<TrainState> & { chunk?: number; sslWeight?: number };
  const chunk = chunkLength(spec.chunk ?? saved.chunk, config.mini_batch_size, base.config.block_size);
  const kept = Object.fromEntries(INHERITED.map((k) => [k, (saved.options as Partial<TrainOptions> | undefined)?.[k]]).filter(([, v]) => v !== undefined));
  const given = Object.fromEntries(Object.entries(spec.options).filter(([, v]) => v !== undefined));
  const options = { weightDecay: 0, probeInterval: 0, ...kept, ...given, seqLen: chunk, out: spec.options.out ?? (resumed ? path.dirname(path.resolve(spec.resume!)) : undefined) } as PonderTrainSpec['options'];
  const data = spec.overfitBatch || spec.data.length || !saved.data ? { data: spec.data, overfitBatch: spec.overfitBatch } : saved.data;
  const run = prepareInputs({ data: data.data, overfitBatch: data.overfitBatch, valRatio: spec.valRatio, options });
  if (run.opts.seqLen !== chunk) throw new BadInputError(`--overfit-batch: its sequences of ${run.opts.seqLen} tokens are not the chunk length ${chunk} (pass --chunk ${run.opts.seqLen} if it is a multiple of ${config.mini_batch_size})`);
  const source = resumed ? `resuming from ${spec.resume} at step ${saved.step}` : spec.ttt ? `TTT layer from ${spec.ttt}` : `new TTT layer (${config.num_heads} heads of ${config.head_dim}, mini-batch ${config.mini_batch_size})`;
  return { base, basePath: spec.base, ttt: { config, weights, resumed, source }, chunk, sslWeight: spec.sslWeight ?? saved.sslWeight ?? SSL_WEIGHT, run };
}

/** The trained part: the layer's variables, their loss on the frozen base, their checkpoint. */
class PonderTarget implements TrainTarget {
  readonly params = new Map<string, tf.Variable>();
  private readonly frozenHidden: (ids: tf.Tensor) => tf.Tensor;

  constructor(private readonly base: TfModel, private readonly inputs: PonderTrainInputs) {
    for (const p of tttParameters(inputs.ttt.config)) {
      const w = inputs.ttt.weights.get(p.name)!;
      this.params.set(p.name, tf.variable(tf.tensor(w.values, w.shape, 'float32'), true));
    }
    // their stop_gradient on the base: a custom gradient of zero, so that no op of the base is taped
    this.frozenHidden = tf.customGrad((ids: tf.Tensor | tf.GradSaveFunc) => ({
      value: tf.tidy(() => base.finalHidden(ids as tf.Tensor2D)),
      gradFunc: () => [tf.zerosLike(ids as tf.Tensor)],
    })) as (ids: tf.Tensor) => tf.Tensor;
  }

  loss(batch: Batch): tf.Scalar {
    return tf.tidy(() => {
      const [B, T] = batch.inputIds.shape;
      const C = this.base.config.n_embd;
      const r = tfTttBranch(this.inputs.ttt.config, (n) => this.params.get(n)!, this.frozenHidden(batch.inputIds));
      const w = batch.weights ?? (tf.fill([B * T], 1 / (B * T)) as tf.Tensor1D);
      // their CE: logits[:, :-1] against ids[:, 1:] — the chunk's last position predicts nothing
      const notLast = tf.tile(tf.concat([tf.ones([T - 1]), tf.zeros([1])]), [B]);
      const ceWeights = tf.mul(tf.mul(w, notLast), T / (T - 1)) as tf.Tensor1D;
      const { head, bias, softcap } = this.headOf();
      const ce = chunkedHeadLoss(r.out.reshape([-1, C]) as tf.Tensor2D, head, bias, batch.targets.reshape([-1]).toInt() as tf.Tensor1D, ceWeights, { softcap });
      const ssl = tf.div(tf.add(tf.add(tf.mean(r.lossInit), tf.mean(r.lossStep0)), tf.mean(r.lossStep1)), 3);
      return tf.add(ce, tf.mul(tf.mul(ssl, this.inputs.sslWeight), tf.sum(w))) as tf.Scalar;
    });
  }

  /** The base's output head as the chunked loss wants it (C, V): not a trained variable, so it stays frozen. */
  private headOf(): { head: tf.Tensor2D; bias: tf.Tensor1D; softcap?: number } {
    const spec = this.base.def.head(this.base.config);
    const w = this.base.params.get(spec.weight)!;
    const head = (spec.tied ? tf.transpose(w) : w) as tf.Tensor2D;
    const bias = (spec.bias ? this.base.params.get(spec.bias)! : tf.zeros([head.shape[1]])) as tf.Tensor1D;
    return { head, bias, softcap: spec.softcap ?? undefined };
  }

  async weights(): Promise<Map<string, HostTensor>> {
    const out = new Map<string, HostTensor>();
    for (const [k, v] of this.params) out.set(k, { shape: v.shape, dtype: 'float32', values: Float32Array.from(await v.data()) });
    return out;
  }

  async save(file: string, adam: AdamW, state: TrainState): Promise<void> {
    const read = async (m: Map<string, tf.Variable>) => {
      const out = new Map<string, HostTensor>();
      for (const [k, v] of m) out.set(k, { shape: v.shape, dtype: 'float32', values: Float32Array.from(await v.data()) });
      return out;
    };
    const { inputs } = this;
    writeTttCheckpoint(file, inputs.ttt.config, await this.weights(), baseRecord(inputs.basePath, inputs.base.config), {
      state: { ...state, chunk: inputs.chunk, sslWeight: inputs.sslWeight },
      moments: { m: await read(adam.m), v: await read(adam.v) },
    });
  }

  dispose(): void {
    tf.dispose([...this.params.values()]);
    this.params.clear();
  }
}

/** The frozen base on the active TensorFlow.js backend, the layer's variables and the shared trainer. */
export async function buildPonderRun(inputs: PonderTrainInputs, runId: string, emit: (e: TrainEvent) => void): Promise<PreparedRun & { target: TrainTarget }> {
  const base = new TfModel(inputs.base.config, inputs.base.weights, path.basename(inputs.basePath));
  const target = new PonderTarget(base, inputs);
  let trainer: Trainer | undefined;
  try {
    const { run } = inputs;
    if (run.data.kind === 'fixed') {
      const bad = run.data.batch.inputIds.find((v) => v < 0 || v >= base.config.vocab_size);
      if (bad !== undefined) throw new BadInputError(`--overfit-batch: id ${bad} is outside the base's vocabulary of ${base.config.vocab_size}`);
    }
    const saved = inputs.ttt.resumed?.state as (Partial<TrainState> & { step: number }) | undefined;
    trainer = new Trainer(base, run.data, run.opts, runId, emit, saved ? { step: saved.step, rngState: saved.rngState, bestValLoss: saved.bestValLoss ?? null } : {}, target);
    trainer.dataSpec = { data: run.source.data, overfitBatch: run.source.overfitBatch, valRatio: run.source.valRatio };
    if (inputs.ttt.resumed?.moments && saved) restoreMoments(trainer.adam, inputs.ttt.resumed.moments, saved.adamStep ?? saved.step, inputs.ttt.resumed.file);
  } catch (e) {
    trainer?.dispose();
    target.dispose();
    base.dispose();
    throw e;
  }
  const t = trainer;
  const note = `PonderTTT: ${inputs.ttt.source} on the frozen base ${inputs.basePath} (${inputs.base.config.family}), chunks of ${inputs.chunk} tokens`;
  return {
    trainer: t, model: base, note, target,
    dispose: () => {
      t.dispose();
      target.dispose();
      base.dispose();
    },
  };
}

function restoreMoments(adam: AdamW, saved: NonNullable<TttCheckpoint['moments']>, step: number, file: string): void {
  for (const [name, m] of adam.m) {
    const sm = saved.m.get(name), sv = saved.v.get(name);
    if (!sm || !sv) throw new BadInputError(`${path.basename(file)}: the optimizer state has no moments for '${name}'`);
    tf.tidy(() => {
      m.assign(tf.tensor(sm.values, m.shape, 'float32'));
      adam.v.get(name)!.assign(tf.tensor(sv.values, m.shape, 'float32'));
    });
  }
  adam.step = step;
}
