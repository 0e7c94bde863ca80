/**
 * LoRA test-time training of one document, as parameter-golf PR #1784's `eval_val_ttt_phased`
 * runs it for a batch of one (shared/research/paramgolf.md §2; train_gpt.py T:2327-2602):
 *
 * - the document's predictions (pred_len = len − 1) are cut into chunks of `chunk` positions; chunk
 *   ci ends at min((ci+1)·chunk, pred_len) and is read in a window of at most `evalLen` tokens
 *   ending there (the window slides once the document is longer; RoPE positions restart at its
 *   start) — `_compute_chunk_window`;
 * - each chunk is scored with the adapters trained on chunks < ci only (score first, no future
 *   leak): the scored NLLs are what val_loss / val_bpb add up;
 * - then one AdamW step on the mean NLL of that chunk, reusing the scoring forward's tape (their
 *   TTT_GRAD_STEPS=1); the last chunk is scored and never trained;
 * - adapters per virtual layer on q/k/v/o/MLP and the head (ttt/adapters.ts), ΔW = (α/r)·B·A;
 *   B = 0 and the optimizer state zero at the document's start, A warm-started (given) or drawn
 *   U(±1/√in) like their reset; AdamW betas (0, 0.999), eps 1e-10, weight decay 1.0, lr 1e-4.
 *
 * Diagnostics the record does not score: each chunk re-scored after its own update (loss after),
 * the base model's NLL of the same tokens in the same window (no TTT), and ‖ΔW‖_F per adapter
 * after the update (the tttDelta signal). Runs on TensorFlow.js (gradients); the base model's
 * scoring goes through the loaded model's runner (onnxruntime where it runs). Cancellation is
 * checked between chunks and frees every tensor.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from '../protocol';
import type { HostTensor } from '../io/tensor';
import { BadInputError, throwIfCancelled, type CancelToken } from '../errors';
import type { FamilyDef } from '../models/family';
import { makeRng } from '../models/init';
import type { InferenceRuntime } from '../runtime/runner';
import type { TfModel } from '../runtime/tfjs/model';
import { oneHotF32 } from '../runtime/tfjs/kernels';
import { AdamW, type AdamWOptions } from '../train/adamw';
import { ADAPTER_MODULES, adaptedHead, adapterSpecs, assembleAdapters, supportsAdapters, type AdapterModule, type AdapterSpec, type Adapters, type LoraFactors } from './adapters';
import type { ByteCounter } from './bytes';
import { FrozenOps } from './frozen';
import { ensureComparisonGradients } from './gradients';

// ---------------------------------------------------------------------------------------------
// Settings (the record's defaults)
// ---------------------------------------------------------------------------------------------

export interface TttSettings {
  /** Predictions per chunk (TTT_CHUNK_SIZE). */
  chunk: number;
  /** Longest window a chunk is read in (TTT_EVAL_SEQ_LEN). */
  evalLen: number;
  rank: number;
  alpha: number;
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
  /** Which modules carry adapters (the record: all; its TTT_K/O/MLP_LORA flags switch three off). */
  modules: AdapterModule[];
  /** Seed of A's draw when no starting adapters are given. */
  seed: number;
}

/** train_gpt.py's defaults; evalLen is capped at the model's context. */
export const RECORD_TTT: TttSettings = { chunk: 48, evalLen: 2048, rank: 128, alpha: 144, lr: 1e-4, betas: [0, 0.999], eps: 1e-10, weightDecay: 1, modules: [...ADAPTER_MODULES], seed: 1337 };

/** The settings of a run: the record's, overridden by `given`, each checked (one line naming the value). */
export function resolveSettings(given: Partial<TttSettings>, c: ModelConfig): TttSettings {
  const s: TttSettings = { ...RECORD_TTT, evalLen: Math.min(RECORD_TTT.evalLen, c.block_size), ...stripUndefined(given) };
  const fail = (m: string): never => {
    throw new BadInputError(m);
  };
  const positiveInt = (v: number, what: string) => (Number.isInteger(v) && v > 0) || fail(`${what} must be a positive integer, got ${v}`);
  positiveInt(s.chunk, 'the chunk size (--chunk)');
  positiveInt(s.evalLen, 'the eval length (--eval-len)');
  positiveInt(s.rank, 'the LoRA rank (--rank)');
  if (s.evalLen > c.block_size) fail(`the eval length ${s.evalLen} (--eval-len) is longer than the model's context of ${c.block_size} tokens`);
  if (s.chunk > s.evalLen) fail(`the chunk size ${s.chunk} (--chunk) is longer than the eval length ${s.evalLen}: a chunk must fit in its window (give --chunk ${s.evalLen} or less)`);
  if (!(s.alpha > 0 && Number.isFinite(s.alpha))) fail(`the LoRA alpha (--alpha) must be a positive number, got ${s.alpha}`);
  if (!(s.lr >= 0 && Number.isFinite(s.lr))) fail(`the learning rate (--lr) must be a number ≥ 0, got ${s.lr}`);
  if (!(s.eps > 0 && Number.isFinite(s.eps))) fail(`eps (--eps) must be a positive number, got ${s.eps}`);
  if (!(s.weightDecay >= 0 && Number.isFinite(s.weightDecay))) fail(`the weight decay (--weight-decay) must be a number ≥ 0, got ${s.weightDecay}`);
  if (!Array.isArray(s.betas) || s.betas.length !== 2 || !s.betas.every((b) => b >= 0 && b < 1)) fail(`betas (--betas) must be two numbers in [0, 1), got ${JSON.stringify(s.betas)}`);
  if (!s.modules.length || !s.modules.every((m) => ADAPTER_MODULES.includes(m))) fail(`the adapted modules (--modules) must be some of ${ADAPTER_MODULES.join(', ')}, got ${JSON.stringify(s.modules)}`);
  return s;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

// ---------------------------------------------------------------------------------------------
// The chunk schedule (_compute_chunk_window)
// ---------------------------------------------------------------------------------------------

export interface ChunkWindow {
  chunk: number;
  /** Window inputs are doc[windowStart, end), their targets doc[windowStart + 1, end + 1). */
  windowStart: number;
  /** Prediction positions [start, end) are the chunk: position p predicts doc[p + 1]. */
  start: number;
  end: number;
  /** Trained after scoring (every chunk but the last). */
  trained: boolean;
}

export function chunkWindows(predLen: number, chunk: number, evalLen: number): ChunkWindow[] {
  const n = Math.ceil(predLen / chunk);
  return Array.from({ length: n }, (_, ci) => {
    const end = ci === n - 1 ? predLen : (ci + 1) * chunk;
    return { chunk: ci, windowStart: Math.max(0, end - evalLen), start: ci * chunk, end, trained: ci < n - 1 };
  });
}

// ---------------------------------------------------------------------------------------------
// Adapters as variables
// ---------------------------------------------------------------------------------------------

/** Starting adapters in their layout: `{name}.A` [r, in] and `{name}.B` [out, r] (B absent: zeros). */
export type AdapterValues = Map<string, HostTensor>;

/** A drawn U(±1/√in) (their reset), B zero. */
function drawnA(spec: AdapterSpec, rank: number, rng: () => number): Float32Array {
  const bound = 1 / Math.sqrt(spec.inFeatures);
  return Float32Array.from({ length: rank * spec.inFeatures }, () => (2 * rng() - 1) * bound);
}

/** (rows, cols) row-major → its transpose. */
function transposed(values: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = values[r * cols + c];
  return out;
}

class AdapterSet {
  readonly factors = new Map<string, LoraFactors<tf.Variable>>();
  /** The optimizer's view: `{name}.A` → Aᵀ, `{name}.B` → Bᵀ. */
  readonly params = new Map<string, tf.Variable>();

  constructor(readonly specs: AdapterSpec[], readonly rank: number, readonly scale: number, private readonly layers: number, start: AdapterValues | undefined, seed: number) {
    const rng = makeRng(seed);
    for (const s of specs) {
      const a = start?.get(`${s.name}.A`)?.values ?? drawnA(s, rank, rng);
      const b = start?.get(`${s.name}.B`)?.values;
      // inside tidy: a variable keeps its data, the tensor it was made from is freed
      const [down, up] = tf.tidy(() => [
        tf.variable(tf.tensor2d(transposed(Float32Array.from(a), rank, s.inFeatures), [s.inFeatures, rank]), true),
        tf.variable(b ? tf.tensor2d(transposed(Float32Array.from(b), s.outFeatures, rank), [rank, s.outFeatures]) : tf.zeros([rank, s.outFeatures]), true),
      ]);
      this.factors.set(s.name, { down, up });
      this.params.set(`${s.name}.A`, down);
      this.params.set(`${s.name}.B`, up);
    }
  }

  programInput(): Adapters<tf.Tensor> {
    return assembleAdapters<tf.Tensor>(this.specs, this.factors, this.layers, this.scale);
  }

  /** ‖(α/r)·B·A‖_F of every adapter, in spec order: √Σ (BᵀB ⊙ AAᵀ), two r×r Gram matrices. */
  async deltaFro(): Promise<Float64Array> {
    const sq = tf.tidy(() =>
      tf.stack(
        this.specs.map((s) => {
          const f = this.factors.get(s.name)!;
          const gramA = tf.matMul(f.down, f.down, true, false); // A Aᵀ (r, r)
          const gramB = tf.matMul(f.up, f.up, false, true); // Bᵀ B (r, r)
          return tf.sum(tf.mul(gramA, gramB));
        }),
      ),
    );
    const v = await sq.data();
    sq.dispose();
    return Float64Array.from(v, (x) => this.scale * Math.sqrt(Math.max(0, x)));
  }

  /** The adapters in their layout (A [r, in], B [out, r]). */
  async toHost(): Promise<AdapterValues> {
    const out: AdapterValues = new Map();
    for (const s of this.specs) {
      const f = this.factors.get(s.name)!;
      const down = (await f.down.data()) as Float32Array, up = (await f.up.data()) as Float32Array;
      out.set(`${s.name}.A`, { shape: [this.rank, s.inFeatures], dtype: 'float32', values: transposed(down, s.inFeatures, this.rank) });
      out.set(`${s.name}.B`, { shape: [s.outFeatures, this.rank], dtype: 'float32', values: transposed(up, this.rank, s.outFeatures) });
    }
    return out;
  }

  dispose(): void {
    for (const v of this.params.values()) v.dispose();
    this.params.clear();
    this.factors.clear();
  }
}

// ---------------------------------------------------------------------------------------------
// One chunk's forward
// ---------------------------------------------------------------------------------------------

/**
 * Per-token NLL of the chunk's rows: the window through the program (with the adapters), the head
 * (with its adapter, before the soft cap) on the chunk's rows only, cross-entropy in float32.
 */
function chunkNll(net: Net, window: tf.Tensor2D, targets: tf.Tensor1D, from: number, adapters: Adapters<tf.Tensor> | undefined): tf.Tensor1D {
  const prog = net.def.program(net.ops, net.config, { ids: window, positions: tf.range(0, window.shape[1], 1, 'int32'), adapters });
  for (let l = 0; l < prog.layers; l++) prog.step(l);
  const h = prog.final(); // (1, W, C)
  const n = targets.shape[0], C = h.shape[2] as number;
  const rows = tf.reshape(tf.slice(h, [0, from, 0], [1, n, C]), [n, C]);
  const logits = adaptedHead(net.ops, net.def.head(net.config), rows, adapters) as tf.Tensor2D; // (n, V)
  const picked = tf.sum(tf.mul(logits, oneHotF32(targets, logits.shape[1])), 1);
  return tf.sub(tf.logSumExp(logits, 1), picked) as tf.Tensor1D;
}

/** The frozen base model the chunks run through. */
interface Net {
  def: FamilyDef;
  config: ModelConfig;
  ops: FrozenOps;
}

/** The chunk's window and targets as tensors. */
function windowTensors(doc: Int32Array, w: ChunkWindow): { ids: tf.Tensor2D; targets: tf.Tensor1D; from: number } {
  const ids = tf.tensor2d(doc.subarray(w.windowStart, w.end), [1, w.end - w.windowStart], 'int32');
  const targets = tf.tensor1d(doc.subarray(w.start + 1, w.end + 1), 'int32');
  return { ids, targets, from: w.start - w.windowStart };
}

function mean(v: Float32Array): number {
  let sum = 0;
  for (const x of v) sum += x;
  return sum / v.length;
}

// ---------------------------------------------------------------------------------------------
// The base model's scoring (no TTT), through the loaded model's runner
// ---------------------------------------------------------------------------------------------

/** NLL of each window position's target: runner output. */
export type WindowScorer = (ids: Int32Array, targets: Int32Array, token?: CancelToken) => Promise<Float32Array>;

export function runnerScorer(runner: InferenceRuntime): WindowScorer {
  return async (ids, targets, token) => {
    const gen = runner.analyzeWindow({ ids, targets, topK: 1, attention: () => false, audit: [] }, token);
    let step = await gen.next();
    while (!step.done) step = await gen.next();
    return step.value.nll;
  };
}

/**
 * Base NLL of every chunk's predictions, each in its chunk's window. A strictly causal model scores
 * position p the same in any window that starts at the same place, so there the chunks read from
 * position 0 share one forward; a model whose adaptive path reads later tokens of its window (a-gpt's
 * pooled hypernetwork: `futureLeak`) gets every chunk's own window.
 */
async function baseNll(doc: Int32Array, windows: ChunkWindow[], score: WindowScorer, shareWindows: boolean, token?: CancelToken): Promise<Float32Array> {
  const out = new Float32Array(doc.length - 1).fill(NaN);
  const fromZero = shareWindows ? windows.filter((w) => w.windowStart === 0) : [];
  const run = async (start: number, end: number, keep: (p: number) => boolean) => {
    throwIfCancelled(token);
    const nll = await score(Int32Array.from(doc.subarray(start, end)), Int32Array.from(doc.subarray(start + 1, end + 1)), token);
    for (let p = start; p < end; p++) if (keep(p)) out[p] = nll[p - start];
  };
  if (fromZero.length) await run(0, fromZero[fromZero.length - 1].end, () => true);
  for (const w of windows.filter((x) => !fromZero.includes(x))) await run(w.windowStart, w.end, (p) => p >= w.start);
  return out;
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

export interface TttChunk extends ChunkWindow {
  /** Mean NLL of the chunk scored before its update (what the score adds). */
  lossBefore: number;
  /** The same after its own update (= lossBefore for the last, untrained chunk). */
  lossAfter: number;
  /** The same tokens and window through the base model. */
  lossBase: number;
  /** ‖ΔW‖_F of every adapter after this chunk's update, in `specs` order. */
  deltaFro: Float64Array;
}

export interface TttResult {
  settings: TttSettings;
  specs: AdapterSpec[];
  chunks: TttChunk[];
  /** Per document position i ≥ 1: NLL of doc[i] scored first with TTT, and by the base model (NaN at 0). */
  nllTtt: Float32Array;
  nllBase: Float32Array;
  /** Their return value: mean scored NLL, and bits per byte (Σ NLL / (ln 2 · Σ bytes)). */
  valLoss: number;
  valBpb: number | null;
  valLossBase: number;
  scoredTokens: number;
  bytes: number;
  /** The trained adapters at the end (their layout). */
  final: AdapterValues;
}

export interface TttRequest {
  def: FamilyDef;
  model: TfModel;
  /** The base model's scoring (the runner of the loaded model). */
  score: WindowScorer;
  doc: Int32Array;
  settings: TttSettings;
  /** Starting adapters (A warm-started; B zero unless given). */
  start?: AdapterValues;
  bytes?: ByteCounter;
  token?: CancelToken;
  /** After each chunk: it, the number of chunks, the adapters its deltaFro lists. */
  onChunk?: (c: TttChunk, of: number, specs: AdapterSpec[]) => void;
}

/** The document must be ids of the model's vocabulary, at least two of them. */
function checkDoc(doc: Int32Array, vocab: number, where: string): void {
  if (doc.length < 2) throw new BadInputError(`${where}: test-time training needs a document of at least 2 tokens, got ${doc.length}`);
  const bad = doc.findIndex((v) => v < 0 || v >= vocab);
  if (bad >= 0) throw new BadInputError(`${where}: id ${doc[bad]} at position ${bad} is outside the model's vocabulary [0, ${vocab})`);
}

export async function runTtt(req: TttRequest): Promise<TttResult> {
  const { model, doc, settings: s, token } = req, c = model.config;
  if (!supportsAdapters(req.def, c)) throw new BadInputError(`test-time training needs a causal model of a family with adapters (a-gpt causal, gpt2, autoresearch, paramgolf); this one is ${c.family}`);
  checkDoc(doc, c.vocab_size, 'the document');
  ensureComparisonGradients();
  const specs = adapterSpecs(req.def, c, s.modules);
  const windows = chunkWindows(doc.length - 1, s.chunk, s.evalLen);
  const base = await baseNll(doc, windows, req.score, !req.def.futureLeak(c), token);
  const adapters = new AdapterSet(specs, s.rank, s.alpha / s.rank, req.def.layerCount(c), req.start, s.seed);
  const net: Net = { def: req.def, config: c, ops: new FrozenOps(model) };
  let opt: AdamW | null = null;
  try {
    net.ops.warm(req.def, c);
    opt = newAdamW(adapters.params, { betas: s.betas, eps: s.eps, weightDecay: s.weightDecay });
    const nllTtt = new Float32Array(doc.length).fill(NaN), nllBase = new Float32Array(doc.length).fill(NaN);
    const chunks: TttChunk[] = [];
    for (const w of windows) {
      throwIfCancelled(token);
      const before = await scoreAndStep(net, adapters, opt!, doc, w, s.lr);
      const after = w.trained ? await rescore(net, adapters, doc, w) : before;
      const baseRows = base.subarray(w.start, w.end);
      nllTtt.set(before, w.start + 1);
      nllBase.set(baseRows, w.start + 1);
      const chunk: TttChunk = { ...w, lossBefore: mean(before), lossAfter: mean(after), lossBase: mean(baseRows), deltaFro: await adapters.deltaFro() };
      chunks.push(chunk);
      req.onChunk?.(chunk, windows.length, specs);
    }
    return { settings: s, specs, chunks, nllTtt, nllBase, ...totals(doc, nllTtt, nllBase, req.bytes), final: await adapters.toHost() };
  } finally {
    opt?.dispose();
    adapters.dispose();
    net.ops.dispose();
  }
}

/** AdamW whose moments start as zerosLike tensors: made inside tidy, the zeros go and its variables stay. */
function newAdamW(params: Map<string, tf.Variable>, opts: AdamWOptions): AdamW {
  let made: AdamW | undefined;
  tf.tidy(() => void (made = new AdamW(params, opts)));
  return made!;
}

/**
 * Scores the chunk with the current adapters and, when it is trained, takes the AdamW step on its
 * mean NLL from the same forward. Returns the per-token NLL of the scoring.
 */
async function scoreAndStep(net: Net, adapters: AdapterSet, opt: AdamW, doc: Int32Array, w: ChunkWindow, lr: number): Promise<Float32Array> {
  if (!w.trained) return rescore(net, adapters, doc, w);
  const { ids, targets, from } = windowTensors(doc, w);
  const kept: { nll?: tf.Tensor1D } = {};
  try {
    const { value, grads } = tf.variableGrads(() => {
      kept.nll = tf.keep(chunkNll(net, ids, targets, from, adapters.programInput()));
      return tf.mean(kept.nll) as tf.Scalar;
    }, [...adapters.params.values()]);
    value.dispose();
    const nameOf = new Map([...adapters.params].map(([k, v]) => [v.name, k]));
    try {
      opt.update(new Map(Object.entries(grads).map(([vn, g]) => [nameOf.get(vn)!, g])), lr);
    } finally {
      tf.dispose(Object.values(grads));
    }
    return Float32Array.from(await kept.nll!.data());
  } finally {
    tf.dispose([ids, targets, ...(kept.nll ? [kept.nll] : [])]);
  }
}

/** The chunk's per-token NLL with the adapters as they are now (no tape). */
async function rescore(net: Net, adapters: AdapterSet, doc: Int32Array, w: ChunkWindow): Promise<Float32Array> {
  const { ids, targets, from } = windowTensors(doc, w);
  const nll = tf.tidy(() => chunkNll(net, ids, targets, from, adapters.programInput()));
  try {
    return Float32Array.from(await nll.data());
  } finally {
    tf.dispose([ids, targets, nll]);
  }
}

/** val_loss, val_bpb (their _loss_bpb_from_sums) and the base model's mean NLL over the same tokens. */
function totals(doc: Int32Array, nllTtt: Float32Array, nllBase: Float32Array, bytesOf: ByteCounter | undefined): Pick<TttResult, 'valLoss' | 'valBpb' | 'valLossBase' | 'scoredTokens' | 'bytes'> {
  let loss = 0, lossBase = 0, bytes = 0;
  for (let i = 1; i < doc.length; i++) {
    loss += nllTtt[i];
    lossBase += nllBase[i];
    if (bytesOf) bytes += bytesOf(doc[i - 1], doc[i]);
  }
  const n = doc.length - 1;
  return { valLoss: loss / n, valBpb: bytes > 0 ? loss / (Math.LN2 * bytes) : null, valLossBase: lossBase / n, scoredTokens: n, bytes };
}
