/**
 * `headlens eval ppl`: perplexity the standard way — Hugging Face's sliding window over each
 * document (analysis/windows.ts), every token after the first scored once — reported as the sum and
 * mean NLL (nats), perplexity exp(mean) and bits per UTF-8 byte of the scored tokens,
 * bpb = Σ NLL / (ln 2 · bytes). With several sources, the same per source (documents of a source are
 * scored one by one, never across a file boundary) and over all of them.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { PplResult, PplTotals } from '../protocol';
import { BadInputError, type CancelToken } from '../errors';
import type { LoadedModel } from '../runtime/loaded';
import { collectFiles } from '../train/data';
import { scoreIds, type Progress } from './score';

export interface PplDocument {
  source: string;
  name: string;
  text: string;
}

/** Context and stride: the model's block size and half of it unless given (checked). */
export function contextAndStride(lm: LoadedModel, context?: number, stride?: number): { context: number; stride: number } {
  const block = lm.config.block_size;
  const c = context ?? block;
  if (!Number.isInteger(c) || c < 1) throw new BadInputError(`--context must be a positive integer, got ${c}`);
  if (c > block) throw new BadInputError(`--context ${c} is longer than the model's context (${block} tokens)`);
  const s = stride ?? Math.max(1, Math.floor(c / 2));
  if (!Number.isInteger(s) || s < 1 || s > c) throw new BadInputError(`--stride must be an integer in [1, ${c}] (the context), got ${s}`);
  return { context: c, stride: s };
}

function totals(nllSum: number, tokens: number, bytes: number): PplTotals {
  const mean = tokens ? nllSum / tokens : null;
  return { tokens, nll_sum: nllSum, nll_mean: mean, ppl: mean === null ? null : Math.exp(mean), bytes, bpb: bytes ? nllSum / (Math.LN2 * bytes) : null };
}

export async function evalPpl(lm: LoadedModel, docs: PplDocument[], opts: { context?: number; stride?: number }, token?: CancelToken, progress?: (doc: number, docs: number, done: number, total: number) => void): Promise<PplResult> {
  const { context, stride } = contextAndStride(lm, opts.context, opts.stride);
  const bySource = new Map<string, { nll: number; tokens: number; bytes: number; documents: number }>();
  let nllSum = 0, count = 0, bytes = 0, documents = 0;
  for (const [d, doc] of docs.entries()) {
    const ids = Int32Array.from(lm.tokenizer.encode(doc.text));
    if (ids.length < 2) continue;
    const tick: Progress = (done, total) => progress?.(d, docs.length, done, total);
    const { nll } = await scoreIds(lm, ids, context, stride, token, tick);
    const s = bySource.get(doc.source) ?? { nll: 0, tokens: 0, bytes: 0, documents: 0 };
    for (let i = 1; i < ids.length; i++) {
      if (!Number.isFinite(nll[i])) continue;
      const b = lm.tokenizer.tokenBytes(ids[i]);
      s.nll += nll[i];
      s.tokens++;
      s.bytes += b;
    }
    s.documents++;
    bySource.set(doc.source, s);
    documents++;
  }
  for (const s of bySource.values()) {
    nllSum += s.nll;
    count += s.tokens;
    bytes += s.bytes;
  }
  if (!count) throw new BadInputError('nothing to evaluate: every document has fewer than 2 tokens');
  const result: PplResult = { ...totals(nllSum, count, bytes), context, stride, documents };
  if (bySource.size > 1) result.by_source = Object.fromEntries([...bySource].map(([k, s]) => [k, { ...totals(s.nll, s.tokens, s.bytes), documents: s.documents }]));
  return result;
}

/** --text-file F (one document) or --data PATH… (each a source of files, folders or globs; each file a document). */
export function readPplDocuments(textFile: string | undefined, data: string[]): PplDocument[] {
  if (textFile !== undefined) {
    if (!fs.existsSync(textFile)) throw new BadInputError(`no such file: ${textFile}`);
    if (fs.statSync(textFile).isDirectory()) throw new BadInputError(`${textFile} is a folder: --text-file takes a text file (use --data for folders)`);
    const text = fs.readFileSync(textFile, 'utf8');
    if (!text) throw new BadInputError(`${textFile} is empty: nothing to evaluate`);
    return [{ source: path.basename(textFile), name: textFile, text }];
  }
  if (!data.length) throw new BadInputError('eval ppl needs --text-file F or --data PATH… (files, folders or globs)');
  const docs: PplDocument[] = [];
  for (const spec of data) {
    const files = collectFiles(spec);
    if (!files.length) throw new BadInputError(`--data ${spec}: no text files found`);
    for (const f of files) docs.push({ source: spec, name: f, text: fs.readFileSync(f, 'utf8') });
  }
  return docs;
}
