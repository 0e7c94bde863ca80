/**
 * What the `headlens ttt` command and the `ttt/run` method share: the document from a text (the
 * record's `[BOS] + tokens` for SentencePiece models), the TensorFlow.js model the training runs on
 * (the loaded model's own when it is a TensorFlow.js runner, else one built from its weights), and
 * the engine's result in the protocol's shapes (per-chunk events with ‖ΔW‖ per module and layer,
 * per-token NLL arrays).
 */
import type { ModelConfig, TokenInfo, TttChunkEvent, TttDelta, TttRunResult } from '../protocol';
import { encodeArray } from '../codec';
import { SIGNALS } from '../models/signals';
import type { LoadedModel } from '../runtime/loaded';
import { initBackend, tfjsChoiceOf } from '../runtime/tfjs/backend';
import { TfModel } from '../runtime/tfjs/model';
import { TfRunner } from '../runtime/tfjs/runner';
import type { Tokenizer } from '../tokenizers/types';
import type { AdapterSpec } from './adapters';
import type { TttChunk, TttResult } from './lora';

/** The document's ids and a token per id (a BOS the text does not hold has an empty range at 0). */
export interface TttDocument {
  ids: Int32Array;
  tokens: TokenInfo[];
}

/** SentencePiece models were trained on `[BOS] + tokens` (parameter-golf's shards): their documents start so. */
export function documentOf(tokenizer: Tokenizer, text: string): TttDocument {
  const own = tokenizer.tokenize(text);
  const bos = tokenizer.kind === 'sentencepiece' ? tokenizer.bosId : undefined;
  const tokens: TokenInfo[] = bos === undefined ? own : [{ index: 0, id: bos, text: tokenizer.tokenText(bos), start: 0, end: 0 }, ...own.map((t) => ({ ...t, index: t.index + 1 }))];
  return { ids: Int32Array.from(tokens, (t) => t.id), tokens };
}

/** A document given as ids (`--ids DOC.json`): tokens are their texts, without offsets. */
export function documentOfIds(tokenizer: Tokenizer, ids: number[]): TttDocument {
  let at = 0;
  const tokens = ids.map((id, index) => {
    const text = id < tokenizer.vocabSize ? tokenizer.tokenText(id) : `<${id}>`;
    const t: TokenInfo = { index, id, text, start: at, end: at + text.length };
    at = t.end;
    return t;
  });
  return { ids: Int32Array.from(ids), tokens };
}

/**
 * The TensorFlow.js model the training runs on: the loaded runner's when it is one (no copy),
 * else a new one on the best TensorFlow.js backend (`owned`: the caller disposes it).
 */
export async function trainingModelOf(lm: LoadedModel): Promise<{ model: TfModel; owned: boolean }> {
  if (lm.runner instanceof TfRunner) return { model: lm.runner.model, owned: false };
  await initBackend(tfjsChoiceOf(lm.runner.name));
  return { model: new TfModel(lm.config, lm.weights, lm.info.path), owned: true };
}

/** ‖ΔW‖_F of one chunk by module and layer (the tttDelta signal). */
export function deltaOf(specs: AdapterSpec[], values: Float64Array, layers: number): TttDelta {
  const delta: TttDelta = { layers: {}, head: null };
  specs.forEach((s, i) => {
    if (s.module === 'head') delta.head = values[i];
    else (delta.layers[s.module] ??= new Array<number>(layers).fill(0))[s.layer!] = values[i];
  });
  return delta;
}

export function chunkEvent(c: TttChunk, chunks: number, specs: AdapterSpec[], layers: number): TttChunkEvent {
  return {
    chunk: c.chunk,
    chunks,
    start: c.start,
    end: c.end,
    windowStart: c.windowStart,
    trained: c.trained,
    lossBefore: c.lossBefore,
    lossAfter: c.lossAfter,
    lossBase: c.lossBase,
    deltaFro: deltaOf(specs, c.deltaFro, layers),
  };
}

/** The result in the protocol's shapes; NLL arrays per position t: the NLL of token t + 1. */
export function encodeTtt(r: TttResult, doc: TttDocument, c: ModelConfig, layers: number, backend: string): TttRunResult {
  const N = doc.ids.length;
  const shift = (a: Float32Array) => {
    const out = new Float32Array(N).fill(NaN);
    out.set(a.subarray(1), 0);
    return encodeArray(out, [N]);
  };
  const s = r.settings;
  return {
    tokens: doc.tokens,
    nll: shift(r.nllTtt),
    nllBase: shift(r.nllBase),
    chunks: r.chunks.map((x) => chunkEvent(x, r.chunks.length, r.specs, layers)),
    val_loss: r.valLoss,
    val_bpb: r.valBpb,
    val_loss_base: r.valLossBase,
    settings: { chunk: s.chunk, evalLen: s.evalLen, rank: s.rank, alpha: s.alpha, lr: s.lr, betas: s.betas, eps: s.eps, weightDecay: s.weightDecay, modules: s.modules },
    layers,
    signal: { ...SIGNALS.tttDelta },
    backend,
    family: c.family,
  };
}
