/**
 * `headlens eval mc`: multiple choice as HellaSwag is scored (research/methods.md §4.3): each
 * ending on its own tokens only, after the context — tokens of `ctx`, then tokens of " " + ending,
 * each tokenized on its own. Three scorings, all reported: `sum` of the ending's log-probs (acc),
 * `per_token` their mean (build-nanogpt's acc_norm: the lowest ending perplexity), `per_byte` the
 * sum over the UTF-8 bytes of " " + ending (the harness's acc_norm divides by characters; bytes
 * are the tokenizer-independent unit). A context longer than the model can take is cut from the
 * left, and the result says how many were.
 */
import * as fs from 'node:fs';
import type { McItemResult, McResult } from '../protocol';
import { BadInputError, throwIfCancelled, type CancelToken } from '../errors';
import type { LoadedModel } from '../runtime/loaded';

export interface McItem {
  ctx: string;
  endings: string[];
  label: number;
}

/** HellaSwag's jsonl: `ctx`, `endings`, `label` (int or numeric string); extra fields ignored. */
export function readMcFile(file: string, limit?: number): McItem[] {
  if (!fs.existsSync(file)) throw new BadInputError(`no such file: ${file}`);
  const lines = fs.readFileSync(file, 'utf8').split(/\r?\n/);
  const items: McItem[] = [];
  for (const [i, line] of lines.entries()) {
    if (!line.trim()) continue;
    if (limit !== undefined && items.length >= limit) break;
    const where = `${file}:${i + 1}`;
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(line);
    } catch {
      throw new BadInputError(`${where}: not valid JSON (one HellaSwag item per line: {"ctx", "endings", "label"})`);
    }
    if (typeof o.ctx !== 'string') throw new BadInputError(`${where}: no "ctx" string`);
    if (!Array.isArray(o.endings) || o.endings.length < 2 || !o.endings.every((e) => typeof e === 'string')) throw new BadInputError(`${where}: no "endings" (a list of at least 2 strings)`);
    const label = typeof o.label === 'string' && /^\d+$/.test(o.label) ? +o.label : o.label;
    if (!Number.isInteger(label) || (label as number) < 0 || (label as number) >= o.endings.length) {
      throw new BadInputError(`${where}: "label" ${JSON.stringify(o.label)} is not an index into its ${o.endings.length} endings`);
    }
    items.push({ ctx: o.ctx, endings: o.endings as string[], label: label as number });
  }
  if (!items.length) throw new BadInputError(`${file}: no items (an empty file?)`);
  return items;
}

const utf8 = new TextEncoder();

function argmax(xs: number[]): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i] > xs[best]) best = i;
  return best;
}

/**
 * Log-probs of each ending after `ctx` (ids), the context cut from the left to fit `context` tokens.
 * Endings of the same total length go through the runtime as one batch. Never padded: a padded
 * tail is not always invisible (a-gpt's adaptive heads read statistics of the whole window).
 */
async function endingsLogprobs(lm: LoadedModel, ctx: number[], endings: number[][], context: number, token?: CancelToken): Promise<{ logprobs: number[][]; cut: number }> {
  const seqs = endings.map((ending) => {
    if (ending.length >= context) throw new BadInputError(`an ending of ${ending.length} tokens does not fit the model's context of ${context} tokens`);
    const cut = Math.max(0, ctx.length + ending.length - context);
    const ids = [...ctx.slice(cut), ...ending];
    if (ids.length < 2) throw new BadInputError('an item with an empty context and a one-token ending cannot be scored (nothing precedes the ending)');
    return { ids, cut, first: ids.length - ending.length };
  });
  const logprobs: number[][] = new Array(seqs.length);
  for (const T of new Set(seqs.map((s) => s.ids.length))) {
    const group = seqs.flatMap((s, e) => (s.ids.length === T ? [e] : []));
    const B = group.length;
    const flat = new Int32Array(B * T), targets = new Int32Array(B * T).fill(-1);
    group.forEach((e, b) => {
      flat.set(seqs[e].ids, b * T);
      for (let p = 0; p + 1 < T; p++) targets[b * T + p] = seqs[e].ids[p + 1];
    });
    const nll = await lm.runner.nll({ ids: flat, targets, B, T }, token);
    // an ending right at the start (empty context): its first token has no context and is skipped
    group.forEach((e, b) => {
      const out = [];
      for (let i = Math.max(seqs[e].first, 1); i < T; i++) out.push(-nll[b * T + i - 1]);
      logprobs[e] = out;
    });
  }
  return { logprobs, cut: Math.max(...seqs.map((s) => s.cut)) };
}

export async function evalMc(lm: LoadedModel, items: McItem[], token?: CancelToken, progress?: (done: number, total: number) => void): Promise<McResult> {
  if (!lm.info.causal) throw new BadInputError(`multiple choice needs a causal model; ${lm.info.family} is a denoiser`);
  const context = lm.config.block_size;
  const out: McItemResult[] = [];
  let truncatedItems = 0;
  for (const [index, item] of items.entries()) {
    throwIfCancelled(token);
    const ctx = lm.tokenizer.encode(item.ctx);
    const r: McItemResult = { index, label: item.label, sum: [], per_token: [], per_byte: [], logprobs: [], tokens: [], truncated: 0 };
    const encoded = item.endings.map((ending) => lm.tokenizer.encode(' ' + ending));
    const scored = await endingsLogprobs(lm, ctx, encoded, context, token);
    r.truncated = scored.cut;
    for (const [e, ending] of item.endings.entries()) {
      const text = ' ' + ending;
      const ids = encoded[e];
      const logprobs = scored.logprobs[e];
      const sum = logprobs.reduce((a, b) => a + b, 0);
      r.sum.push(sum);
      r.per_token.push(logprobs.length ? sum / logprobs.length : -Infinity);
      r.per_byte.push(sum / Math.max(1, utf8.encode(text).length));
      r.logprobs.push(logprobs);
      r.tokens.push(ids.slice(ids.length - logprobs.length).map((id) => lm.tokenizer.tokenText(id)));
    }
    if (r.truncated) truncatedItems++;
    out.push(r);
    progress?.(index + 1, items.length);
  }
  const acc = (k: 'sum' | 'per_token' | 'per_byte') => out.filter((r) => argmax(r[k]) === r.label).length / out.length;
  return { items: out, acc_sum: acc('sum'), acc_per_token: acc('per_token'), acc_per_byte: acc('per_byte'), truncated_items: truncatedItems, context };
}
