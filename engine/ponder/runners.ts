/**
 * Where PonderTTT's maths runs for inference: the frozen base (its final hidden state after the
 * last norm, and the NLL of hidden states through its output head) and the TTT branch
 * (engine/ponder/ttt.ts), each on TensorFlow.js or on onnxruntime from the same definitions. The
 * base graph keeps batch and sequence free; a TTT graph is traced once per chunk length (its
 * mini-batch scan is unrolled) with the batch free, so every chunk of a document runs as one batch.
 * Hidden states cross to the host between the parts: (chunks·T, C) floats, small beside the base.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from '../protocol';
import type { HostTensor } from '../io/tensor';
import { DeviceError } from '../errors';
import type { FamilyDef } from '../models/family';
import { applyHead } from '../models/family';
import type { Ops } from '../models/ops';
import { familyDef } from '../models/registry';
import { TfModel } from '../runtime/tfjs/model';
import { TfOps } from '../runtime/tfjs/ops';
import { GraphOps, type GraphOutput } from '../runtime/onnx/builder';
import { createSession, ortTensor, type OrtProvider, type OrtSession, type OrtTensor } from '../runtime/onnx/ort';
import { storedWeights } from '../runtime/onnx/runner';
import type { TttConfig } from './config';
import { tttBranch, type TttBranch, type TttOptions } from './ttt';

/** The TTT branch's outputs by name, batch first (see TttBranch). */
export type TttOutputName = keyof TttBranch<unknown>;

/** What a ponder run needs from the TTT branch: the UPDATE hidden state and the three losses. */
export const GATE_OUTPUTS: TttOutputName[] = ['out', 'lossInit', 'lossStep0', 'lossStep1'];

export interface TttRunner {
  readonly name: string;
  /** The branch on h (B, T, C), returning the named outputs on the host. */
  run(h: Float32Array, B: number, T: number, outputs: TttOutputName[], opts?: TttOptions): Promise<Map<string, HostTensor>>;
  dispose(): Promise<void>;
}

export interface BaseRunner {
  readonly name: string;
  readonly config: ModelConfig;
  /** The final hidden state (B·T·C) of ids (B, T), positions 0 … T−1 in every row. */
  hidden(ids: Int32Array, B: number, T: number): Promise<Float32Array>;
  /** −log p(target) of each row of hidden (M, C) through the base's head. */
  nll(hidden: Float32Array, targets: Int32Array): Promise<Float32Array>;
  dispose(): Promise<void>;
}

/** The fast weights are computed only when an output asks for them. */
function optionsFor(outputs: TttOutputName[], opts: TttOptions): TttOptions {
  return outputs.includes('fastW') || outputs.includes('fastB') ? { ...opts, fastWeights: true } : opts;
}

const hostOf = (shape: number[], values: Float32Array): HostTensor => ({ shape, dtype: 'float32', values });

// ---------------------------------------------------------------------------------------------
// TensorFlow.js
// ---------------------------------------------------------------------------------------------

/** The TTT branch on TensorFlow.js over the given tensors (variables while training). */
export function tfTttBranch(c: TttConfig, params: (name: string) => tf.Tensor, h: tf.Tensor, opts: TttOptions = {}): TttBranch<tf.Tensor> {
  return tttBranch<tf.Tensor>(new TfOps(params), c, h, opts);
}

export class TfTttRunner implements TttRunner {
  private readonly params = new Map<string, tf.Tensor>();

  constructor(private readonly config: TttConfig, weights: Map<string, HostTensor>, readonly name: string) {
    for (const [k, w] of weights) this.params.set(k, tf.tensor(w.values, w.shape, 'float32'));
  }

  async run(h: Float32Array, B: number, T: number, outputs: TttOutputName[], opts: TttOptions = {}): Promise<Map<string, HostTensor>> {
    const picked = tf.tidy(() => {
      const r = tfTttBranch(this.config, (n) => this.params.get(n)!, tf.tensor3d(h, [B, T, this.config.hidden_dim]), optionsFor(outputs, opts));
      return outputs.map((k) => r[k] as tf.Tensor);
    });
    const result = new Map<string, HostTensor>();
    for (let i = 0; i < outputs.length; i++) result.set(outputs[i], hostOf(picked[i].shape, Float32Array.from(await picked[i].data())));
    tf.dispose(picked);
    return result;
  }

  async dispose(): Promise<void> {
    tf.dispose([...this.params.values()]);
    this.params.clear();
  }
}

/** Rows of the head at a time: (rows, V) logits of at most ~16M floats. */
function headRows(vocab: number): number {
  return Math.max(1, Math.floor(16_000_000 / vocab));
}

export class TfBaseRunner implements BaseRunner {
  private readonly model: TfModel;

  constructor(readonly config: ModelConfig, weights: Map<string, HostTensor>, readonly name: string) {
    this.model = new TfModel(config, weights);
  }

  async hidden(ids: Int32Array, B: number, T: number): Promise<Float32Array> {
    const h = tf.tidy(() => this.model.finalHidden(tf.tensor2d(ids, [B, T], 'int32')));
    const values = Float32Array.from(await h.data());
    h.dispose();
    return values;
  }

  async nll(hidden: Float32Array, targets: Int32Array): Promise<Float32Array> {
    const C = this.config.n_embd, M = targets.length, step = headRows(this.config.vocab_size);
    const out = new Float32Array(M);
    for (let r0 = 0; r0 < M; r0 += step) {
      const r1 = Math.min(M, r0 + step);
      const nll = tf.tidy(() => nllRows(this.model.ops, this.model.head(tf.tensor2d(hidden.subarray(r0 * C, r1 * C), [r1 - r0, C])), tf.tensor2d(targets.subarray(r0, r1), [r1 - r0, 1], 'int32')));
      out.set(await nll.data(), r0);
      nll.dispose();
    }
    return out;
  }

  async dispose(): Promise<void> {
    this.model.dispose();
  }
}

/** −log softmax(logits)[target] per row: logits (M, V), targets (M, 1) int32 → (M). */
function nllRows<T>(o: Ops<T>, logits: T, targets: T): T {
  return o.squeeze(o.sub(o.logSumExp(logits, -1, true), o.takeAlongLast(logits, targets)), 1);
}

// ---------------------------------------------------------------------------------------------
// onnxruntime
// ---------------------------------------------------------------------------------------------

const PRODUCER = 'headlens-ponder';

async function runSession(session: OrtSession, feeds: Record<string, OrtTensor>, name: string): Promise<Record<string, OrtTensor>> {
  try {
    return await session.run(feeds);
  } catch (e) {
    throw new DeviceError(`onnxruntime (${name}) failed: ${(e as Error).message.split('\n')[0]}`);
  }
}

/** The branch traced for one chunk length T (batch free): h (B, T, C) → the named outputs. */
export function buildTttGraph(c: TttConfig, weights: Map<string, HostTensor>, T: number, outputs: TttOutputName[], opts: TttOptions = {}): Uint8Array {
  const g = new GraphOps((n) => {
    const w = weights.get(n);
    if (!w) throw new Error(`the TTT graph asks for '${n}', which the layer does not have`);
    return { shape: w.shape, values: w.values as Float32Array };
  });
  const h = g.input('h', 'float32', ['B', T, c.hidden_dim]);
  const r = tttBranch(g, c, h, optionsFor(outputs, opts));
  const outs: GraphOutput[] = outputs.map((k) => ({ sym: r[k]!, name: k }));
  return g.build(outs, PRODUCER, '1');
}

export class OrtTttRunner implements TttRunner {
  private readonly sessions = new Map<string, Promise<OrtSession>>();

  constructor(private readonly config: TttConfig, private readonly weights: Map<string, HostTensor>, private readonly choice: { provider: OrtProvider; threads: number }) {}

  get name(): string {
    return `onnx-${this.choice.provider}`;
  }

  private session(T: number, outputs: TttOutputName[], opts: TttOptions): Promise<OrtSession> {
    const key = JSON.stringify([T, outputs, opts]);
    let s = this.sessions.get(key);
    if (!s) {
      s = createSession(buildTttGraph(this.config, this.weights, T, outputs, opts), this.choice, `ttt-${T}`);
      this.sessions.set(key, s);
    }
    return s;
  }

  async run(h: Float32Array, B: number, T: number, outputs: TttOutputName[], opts: TttOptions = {}): Promise<Map<string, HostTensor>> {
    const session = await this.session(T, outputs, opts);
    const out = await runSession(session, { h: ortTensor('float32', h, [B, T, this.config.hidden_dim]) }, this.name);
    return new Map(outputs.map((k) => [k, hostOf([...out[k].dims], out[k].data as Float32Array)]));
  }

  async dispose(): Promise<void> {
    for (const s of this.sessions.values()) await (await s).release();
    this.sessions.clear();
  }
}

export class OrtBaseRunner implements BaseRunner {
  private constructor(readonly config: ModelConfig, private readonly hiddenSession: OrtSession, private readonly nllSession: OrtSession, readonly name: string) {}

  /** The base's program up to its final norm (batch and length free), and its head on rows. */
  static async create(config: ModelConfig, weights: Map<string, HostTensor>, choice: { provider: OrtProvider; threads: number }): Promise<OrtBaseRunner> {
    const def = familyDef(config.family);
    const stored = storedWeights(def.parameters(config), weights);
    const hidden = await createSession(baseGraph(def, config, new GraphOps(stored)), choice, `${config.family}-ponder-base`);
    try {
      const nll = await createSession(headGraph(def, config, new GraphOps(stored)), choice, `${config.family}-ponder-head`);
      return new OrtBaseRunner(config, hidden, nll, `onnx-${choice.provider}`);
    } catch (e) {
      await hidden.release();
      throw e;
    }
  }

  async hidden(ids: Int32Array, B: number, T: number): Promise<Float32Array> {
    const out = await runSession(this.hiddenSession, { ids: ortTensor('int32', ids, [B, T]), positions: ortTensor('int32', Int32Array.from({ length: T }, (_, i) => i), [T]) }, this.name);
    return out.hidden.data as Float32Array;
  }

  async nll(hidden: Float32Array, targets: Int32Array): Promise<Float32Array> {
    const C = this.config.n_embd, M = targets.length, step = headRows(this.config.vocab_size);
    const nll = new Float32Array(M);
    for (let r0 = 0; r0 < M; r0 += step) {
      const r1 = Math.min(M, r0 + step);
      const feeds = { rows: ortTensor('float32', hidden.subarray(r0 * C, r1 * C), [r1 - r0, C]), targets: ortTensor('int32', targets.subarray(r0, r1), [r1 - r0, 1]) };
      nll.set((await runSession(this.nllSession, feeds, this.name)).nll.data as Float32Array, r0);
    }
    return nll;
  }

  async dispose(): Promise<void> {
    await this.hiddenSession.release();
    await this.nllSession.release();
  }
}

function baseGraph(def: FamilyDef, c: ModelConfig, g: GraphOps): Uint8Array {
  const ids = g.input('ids', 'int32', ['B', 'T']);
  const positions = g.input('positions', 'int32', ['T']);
  const prog = def.program(g, c, { ids, positions });
  for (let l = 0; l < prog.layers; l++) prog.step(l);
  return g.build([{ sym: prog.final(), name: 'hidden' }], PRODUCER, '1');
}

function headGraph(def: FamilyDef, c: ModelConfig, g: GraphOps): Uint8Array {
  const rows = g.input('rows', 'float32', ['M', c.n_embd]);
  const targets = g.input('targets', 'int32', ['M', 1]);
  return g.build([{ sym: nllRows(g, applyHead(g, def.head(c), rows), targets), name: 'nll' }], PRODUCER, '1');
}
