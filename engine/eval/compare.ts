/**
 * Compare two models on the same tokens (`headlens compare`, Compare Models…): both score the text
 * with the same sliding windows (the shorter of their contexts), per token dNll = NLL_A − NLL_B
 * (negative where A is better), and a summary that answers "where does adaptivity help?": the mean
 * ΔNLL overall, by token class and for repeated vs first occurrences, each with a bootstrap 95 %
 * interval. The models must share a tokenizer.
 */
import type { CompareResult, CompareToken } from '../protocol';
import { BadInputError, type CancelToken } from '../errors';
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

export async function compareModels(a: LoadedModel, b: LoadedModel, text: string, opts: { context?: number; stride?: number } = {}, token?: CancelToken, progress?: (model: 'A' | 'B', done: number, total: number) => void): Promise<CompareResult> {
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
  };
}
