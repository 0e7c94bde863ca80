/**
 * Compare two models on the same tokens (`headlens compare`, Compare Models…): both score the text
 * with the same sliding windows (the shorter of their contexts), per token dNll = NLL_A − NLL_B
 * (negative where A is better), and a summary that answers "where does adaptivity help?": the mean
 * ΔNLL overall, by token class and for repeated vs first occurrences, each with a bootstrap 95 %
 * interval. The models must share a tokenizer.
 */
import type { CompareHeads, CompareResult, CompareToken } from '../protocol';
import { BadInputError, type CancelToken } from '../errors';
import { encodeArray } from '../codec';
import { analyzeText } from '../analysis/analyze';
import { AnalysisRecord } from '../analysis/record';
import type { LoadedModel } from '../runtime/loaded';
import { contextAndStride } from './ppl';
import { scoreIds } from './score';
import { TOKEN_CLASSES, bootstrapMean, classifyTokens, repeatedInContext } from './classes';

/** Same tokenizer: the same kind and vocabulary, and the same ids on the text itself. */
export function checkSameTokenizer(a: LoadedModel, b: LoadedModel, text: string): void {
  const ta = a.tokenizer, tb = b.tokenizer;
  const same = ta.kind === tb.kind && ta.vocabSize === tb.vocabSize && sameIds(ta.encode(text), tb.encode(text));
  if (!same) throw new BadInputError(`the two models do not share a tokenizer (A: ${ta.info.kind}, ${ta.vocabSize} ids, ${ta.info.source}; B: ${tb.info.kind}, ${tb.vocabSize} ids, ${tb.info.source}): compare needs the same tokens`);
}

function sameIds(x: number[], y: number[]): boolean {
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

const finite = (v: number) => (Number.isFinite(v) ? v : null);

/** Top next-token predictions kept per position for the hover. */
const HEAD_TOP_K = 3;

/**
 * One model's heads on the text, analysed with the compare's windows (no attention maps, no
 * causality audit): per head and token attention max and entropy, each per-head signal's mean over
 * the tokens, and the top predictions. The tokens are the compare's (the same tokenizer, the same text).
 */
export async function compareHeads(lm: LoadedModel, text: string, context: number, stride: number, token?: CancelToken): Promise<CompareHeads> {
  const gen = analyzeText(lm, { text, window: context, stride, includeAttention: false, causalityAudit: false, topK: HEAD_TOP_K }, token);
  const record = new AnalysisRecord(lm.info);
  for (;;) {
    const s = await gen.next();
    if (s.done) {
      record.setResult(s.value);
      break;
    }
    record.add(s.value);
  }
  const { L, H, N } = record;
  const signals = record.headTokenSignals();
  const means: Record<string, number[]> = { attnMax: [], entropy: [] };
  for (const spec of signals) means[spec.name] = [];
  for (let l = 0; l < L; l++) {
    for (let h = 0; h < H; h++) {
      const at = (l * H + h) * N;
      means.attnMax.push(finiteMean(record.headMax.subarray(at, at + N)));
      means.entropy.push(finiteMean(record.headEntropy.subarray(at, at + N)));
      for (const spec of signals) means[spec.name].push(finiteMean(Float32Array.from({ length: N }, (_, t) => record.signalAt(spec.name, t, l, h))));
    }
  }
  const vocabText: Record<number, string> = {};
  for (const id of record.topIds) vocabText[id] = record.vocabText[id] ?? lm.tokenizer.tokenText(id);
  return {
    layers: L,
    heads: H,
    signals,
    means,
    attnMax: encodeArray(record.headMax, [L, H, N]),
    entropy: encodeArray(record.headEntropy, [L, H, N]),
    topIds: encodeArray(record.topIds, [N, record.K]),
    topProbs: encodeArray(record.topProbs, [N, record.K]),
    vocabText,
  };
}

function finiteMean(values: ArrayLike<number>): number {
  let sum = 0, n = 0;
  for (let i = 0; i < values.length; i++) if (Number.isFinite(values[i])) (sum += values[i]), n++;
  return n ? sum / n : NaN;
}

export async function compareModels(a: LoadedModel, b: LoadedModel, text: string, opts: { context?: number; stride?: number; heads?: boolean } = {}, token?: CancelToken, progress?: (model: 'A' | 'B', done: number, total: number) => void): Promise<CompareResult> {
  if (!text) throw new BadInputError('nothing to compare: the text is empty');
  checkSameTokenizer(a, b, text);
  if (!a.info.causal || !b.info.causal) throw new BadInputError('compare scores next-token NLL: both models must be causal');
  const shorter = a.config.block_size <= b.config.block_size ? a : b;
  const { context, stride } = contextAndStride(shorter, opts.context, opts.stride);
  const tokens = a.tokenizer.tokenize(text);
  if (tokens.length < 2) throw new BadInputError('nothing to compare: the text has fewer than 2 tokens');
  const ids = Int32Array.from(tokens, (t) => t.id);
  const A = await scoreIds(a, ids, context, stride, token, (d, n) => progress?.('A', d, n));
  const B = await scoreIds(b, ids, context, stride, token, (d, n) => progress?.('B', d, n));
  const classes = classifyTokens(text, tokens);
  const repeated = repeatedInContext(ids, A.context);
  const out: CompareToken[] = tokens.map((t, i) => {
    const d = A.nll[i] - B.nll[i];
    return { ...t, class: classes[i], repeated: !!repeated[i], context: A.context[i], nll_a: finite(A.nll[i]), nll_b: finite(B.nll[i]), dnll: finite(d) };
  });
  const scored = out.filter((t) => t.dnll !== null);
  const of = (pred: (t: CompareToken) => boolean) => bootstrapMean(scored.filter(pred).map((t) => t.dnll!));
  const mean = (k: 'nll_a' | 'nll_b') => scored.reduce((s, t) => s + t[k]!, 0) / Math.max(1, scored.length);
  const heads = opts.heads ? { a: await compareHeads(a, text, context, stride, token), b: await compareHeads(b, text, context, stride, token) } : undefined;
  return {
    model_a: a.info.path,
    model_b: b.info.path,
    context,
    stride,
    tokens: out,
    summary: {
      overall: of(() => true),
      by_class: Object.fromEntries(TOKEN_CLASSES.map((c) => [c, of((t) => t.class === c)])),
      repeated: of((t) => t.repeated),
      first: of((t) => !t.repeated),
      mean_nll_a: mean('nll_a'),
      mean_nll_b: mean('nll_b'),
    },
    ...(heads ? { heads } : {}),
  };
}
