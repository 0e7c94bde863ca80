/**
 * PonderTTT on a document, as their evaluation runs it (deveworld/ponderTTT
 * `experiments/compare_methods.py:236-291`): the tokens cut into chunks, each run on its own
 * (local positions 0 … T−1, no context from the chunk before, fast weights reset), both paths
 * computed — SKIP = the base alone (their code: no TTT branch at all), UPDATE = the TTT branch —
 * the gate fed each chunk's signal (mean over mini-batches of ttt_loss_step_0) in document order,
 * and the chunk's loss is the one of the path it picked. Losses are next-token CE within the chunk
 * (T − 1 predictions); a method's loss is the unweighted mean over chunks, PPL = e^loss.
 *
 * A document's tail that does not fill a mini-batch (fewer than M tokens after the last chunk
 * that does) is not scored: their data pads it with a pad token GPT-2 does not have.
 */
import type { ModelConfig, PonderChunkInfo, PonderRunResult, TokenInfo } from '../protocol';
import { encodeArray } from '../codec';
import type { HostTensor } from '../io/tensor';
import { BadInputError, throwIfCancelled, type CancelToken } from '../errors';
import type { RuntimeState } from '../runtime/select';
import { initBackend, type TfjsChoice } from '../runtime/tfjs/backend';
import type { TttConfig } from './config';
import type { TttCheckpoint } from './checkpoint';
import { ReconstructionGate, tttLossFromStats, type GateOptions } from './gate';
import { GATE_OUTPUTS, OrtBaseRunner, OrtTttRunner, TfBaseRunner, TfTttRunner, type BaseRunner, type TttRunner } from './runners';

/** Their chunks are 512 tokens; 16 lets a document of a few hundred tokens get past the gate's 16-chunk calibration. */
export const DEFAULT_CHUNK = 16;
/** Tokens per batched run of the base (chunks of one length run together). */
const TOKENS_PER_BATCH = 2048;

export interface PonderEngine {
  base: BaseRunner;
  ttt: TttRunner;
  config: TttConfig;
  readonly name: string;
  dispose(): Promise<void>;
}

/** Base and TTT runners on the current runtime: onnxruntime when it is the one chosen, else TensorFlow.js. */
export async function createPonderEngine(base: { config: ModelConfig; weights: Map<string, HostTensor> }, ttt: TttCheckpoint, runtime: RuntimeState, log: (m: string) => void = () => {}): Promise<PonderEngine> {
  if (runtime.ort) {
    const choice = { provider: runtime.ort.provider, threads: runtime.ort.threads };
    try {
      const b = await OrtBaseRunner.create(base.config, base.weights, choice);
      return engineOf(b, new OrtTttRunner(ttt.config, ttt.weights, choice), ttt.config);
    } catch (e) {
      log(`onnxruntime could not run the PonderTTT base (${(e as Error).message.split('\n')[0]}); using TensorFlow.js`);
    }
  }
  const name = (await initBackend(runtime.ort ? 'auto' : (runtime.info.name as TfjsChoice))).info.name;
  return engineOf(new TfBaseRunner(base.config, base.weights, name), new TfTttRunner(ttt.config, ttt.weights, name), ttt.config);
}

function engineOf(base: BaseRunner, ttt: TttRunner, config: TttConfig): PonderEngine {
  return {
    base, ttt, config, name: base.name,
    dispose: async () => {
      await ttt.dispose();
      await base.dispose();
    },
  };
}

export interface ChunkSpan {
  /** Token indices [start, end). */
  start: number;
  end: number;
}

/** Chunks of `chunk` tokens; a shorter last one of whole mini-batches; the rest (< M tokens, or one token) unscored. */
export function planChunks(tokens: number, chunk: number, miniBatch: number): { chunks: ChunkSpan[]; unscored: number } {
  const chunks: ChunkSpan[] = [];
  let start = 0;
  while (tokens - start >= chunk) {
    chunks.push({ start, end: start + chunk });
    start += chunk;
  }
  const tail = Math.floor((tokens - start) / miniBatch) * miniBatch;
  if (tail >= 2) {
    chunks.push({ start, end: start + tail });
    start += tail;
  }
  return { chunks, unscored: tokens - start };
}

export interface PonderOptions extends GateOptions {
  chunk?: number;
}

/** One chunk's outcome (the protocol's shape). */
export type ChunkResult = PonderChunkInfo;

export interface PonderResult {
  chunk: number;
  miniBatch: number;
  targetRate: number;
  chunks: ChunkResult[];
  /** Per position t (predicting token t + 1), NaN where not scored: gated, always-update, never-update. */
  nll: { gated: Float32Array; always: Float32Array; never: Float32Array };
  loss: { gated: number; always: number; never: number };
  ppl: { gated: number; always: number; never: number };
  updateRate: number;
  /** Tokens at the end left unscored (they do not fill a mini-batch). */
  unscored: number;
  backend: string;
}

/** The chunk length to use: given (checked), else DEFAULT_CHUNK rounded up to whole mini-batches; ≤ the base's block. */
export function chunkLength(given: number | undefined, M: number, block: number, where = '--chunk'): number {
  const chunk = given ?? Math.ceil(DEFAULT_CHUNK / M) * M;
  if (!Number.isInteger(chunk) || chunk <= 0 || chunk % M !== 0) throw new BadInputError(`${where} ${given}: the chunk length must be a positive multiple of the TTT layer's mini-batch size ${M}`);
  if (chunk > block) throw new BadInputError(`${where} ${chunk}: longer than the base model's block size ${block}`);
  return chunk;
}

/** One batch of equal-length chunks through both paths: per chunk its signal, final loss and per-position NLLs. */
async function runBatch(e: PonderEngine, ids: Int32Array, spans: ChunkSpan[]) {
  const T = spans[0].end - spans[0].start, B = spans.length, C = e.base.config.n_embd;
  const rows = new Int32Array(B * T), targets = new Int32Array(B * (T - 1));
  const pick = (h: Float32Array) => {
    const out = new Float32Array(B * (T - 1) * C);
    for (let b = 0; b < B; b++) out.set(h.subarray(b * T * C, (b * T + T - 1) * C), b * (T - 1) * C);
    return out;
  };
  spans.forEach((s, b) => {
    rows.set(ids.subarray(s.start, s.end), b * T);
    targets.set(ids.subarray(s.start + 1, s.end), b * (T - 1));
  });
  const h = await e.base.hidden(rows, B, T);
  const branch = await e.ttt.run(h, B, T, GATE_OUTPUTS);
  const never = await e.base.nll(pick(h), targets);
  const always = await e.base.nll(pick(branch.get('out')!.values as Float32Array), targets);
  const H = e.config.num_heads, n = T / e.config.mini_batch_size;
  const headMean = (t: HostTensor, b: number) => Float32Array.from({ length: n }, (_, i) => {
    let s = 0;
    for (let k = 0; k < H; k++) s += t.values[(b * H + k) * n + i];
    return s / H;
  });
  return spans.map((_, b) => ({
    ...tttLossFromStats(headMean(branch.get('lossStep0')!, b), headMean(branch.get('lossStep1')!, b)),
    never: never.subarray(b * (T - 1), (b + 1) * (T - 1)),
    always: always.subarray(b * (T - 1), (b + 1) * (T - 1)),
  }));
}

const mean = (xs: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i];
  return s / xs.length;
};

/** Every chunk through both paths and the gate, in document order; `onChunk` after each. */
export async function ponderDocument(e: PonderEngine, ids: Int32Array, opts: PonderOptions, token?: CancelToken, onChunk?: (c: ChunkResult, total: number) => void): Promise<PonderResult> {
  const M = e.config.mini_batch_size, V = e.base.config.vocab_size;
  const chunk = chunkLength(opts.chunk, M, e.base.config.block_size);
  const outside = ids.findIndex((id) => id < 0 || id >= V);
  if (outside >= 0) throw new BadInputError(`token ${outside} has id ${ids[outside]}, outside the base model's vocabulary of ${V} (its tokenizer does not match the base)`);
  const plan = planChunks(ids.length, chunk, M);
  if (!plan.chunks.length) throw new BadInputError(`the text has ${ids.length} tokens: PonderTTT needs at least one mini-batch of ${M} tokens`);
  const gate = new ReconstructionGate(opts);
  const N = ids.length, nll = { gated: new Float32Array(N).fill(NaN), always: new Float32Array(N).fill(NaN), never: new Float32Array(N).fill(NaN) };
  const chunks: ChunkResult[] = [];
  for (let i = 0; i < plan.chunks.length; ) {
    throwIfCancelled(token);
    const T = plan.chunks[i].end - plan.chunks[i].start;
    let j = i;
    while (j < plan.chunks.length && plan.chunks[j].end - plan.chunks[j].start === T && (j - i + 1) * T <= Math.max(T, TOKENS_PER_BATCH)) j++;
    const results = await runBatch(e, ids, plan.chunks.slice(i, j));
    results.forEach((r, k) => {
      const span = plan.chunks[i + k];
      const d = gate.decide(r.signal);
      gate.updateState(r.signal, d.update);
      nll.always.set(r.always, span.start);
      nll.never.set(r.never, span.start);
      nll.gated.set(d.update ? r.always : r.never, span.start);
      const c: ChunkResult = {
        index: i + k, ...span, decision: d.update ? 'UPDATE' : 'SKIP', phase: d.phase, signal: r.signal, tau: d.threshold,
        tauAfter: gate.threshold, emaRate: gate.emaRate, finalLoss: r.final, lossUpdate: mean(r.always), lossSkip: mean(r.never),
      };
      chunks.push(c);
      onChunk?.(c, plan.chunks.length);
    });
    i = j;
  }
  const loss = {
    gated: mean(chunks.map((c) => (c.decision === 'UPDATE' ? c.lossUpdate : c.lossSkip))),
    always: mean(chunks.map((c) => c.lossUpdate)),
    never: mean(chunks.map((c) => c.lossSkip)),
  };
  return {
    chunk, miniBatch: M, targetRate: gate.targetRate, chunks, nll, loss,
    ppl: { gated: Math.exp(loss.gated), always: Math.exp(loss.always), never: Math.exp(loss.never) },
    updateRate: chunks.filter((c) => c.decision === 'UPDATE').length / chunks.length,
    unscored: plan.unscored, backend: e.name,
  };
}

/** Per token, its chunk's decision (1 UPDATE, 0 SKIP) and signal; NaN outside every chunk: the tttUpdate and tttSignal signals. */
export function tokenSignals(r: PonderResult, tokens: number): { tttUpdate: Float32Array; tttSignal: Float32Array } {
  const tttUpdate = new Float32Array(tokens).fill(NaN), tttSignal = new Float32Array(tokens).fill(NaN);
  for (const c of r.chunks) {
    tttUpdate.fill(c.decision === 'UPDATE' ? 1 : 0, c.start, c.end);
    tttSignal.fill(c.signal, c.start, c.end);
  }
  return { tttUpdate, tttSignal };
}

/** The chunk length a TTT training checkpoint was trained with, if it records one. */
export function trainedChunk(ck: TttCheckpoint): number | undefined {
  const c = ck.state?.chunk;
  return typeof c === 'number' && Number.isInteger(c) && c > 0 ? c : undefined;
}

/** The protocol's result: per-token arrays encoded, the token texts and offsets beside them. */
export function encodeResult(r: PonderResult, tokens: TokenInfo[], note?: string): PonderRunResult {
  const N = tokens.length, f32 = (a: Float32Array) => encodeArray(a, [N]);
  const s = tokenSignals(r, N);
  return {
    tokens, chunk: r.chunk, miniBatch: r.miniBatch, targetRate: r.targetRate, chunks: r.chunks,
    nll: { gated: f32(r.nll.gated), always: f32(r.nll.always), never: f32(r.nll.never) },
    loss: r.loss, ppl: r.ppl, updateRate: r.updateRate, unscored: r.unscored,
    signals: { tttUpdate: f32(s.tttUpdate), tttSignal: f32(s.tttSignal) },
    backend: r.backend, ...(note ? { note } : {}),
  };
}
