/**
 * Token classes for comparing models where it matters: identifier, keyword, number, punctuation,
 * whitespace, and string/comment — by a small scanner for the string and comment syntax of the
 * languages people train on (Python, JavaScript/TypeScript, C-like, shell: quotes, triple quotes,
 * template strings, `#`, `//`, `/* … *\/`, `--`) — plus whether a token repeats one earlier in the
 * context it was scored with (a copy an induction head can make) or is its first occurrence.
 */
import type { TokenClass, TokenInfo } from '../protocol';

export const TOKEN_CLASSES: readonly TokenClass[] = ['identifier', 'keyword', 'number', 'punctuation', 'whitespace', 'string/comment'];

const KEYWORDS = new Set(
  (
    'and as assert async await break case catch class const continue def default del delete do elif else enum except export extends ' +
    'false finally for from function global if import in instanceof interface is lambda let new none nonlocal not null of or pass ' +
    'private protected public raise return self static super switch this throw true try type typeof undefined var void while with yield ' +
    'int float double char bool boolean string struct fn impl pub mut use mod match loop where trait'
  ).split(' '),
);

/** Per UTF-16 unit: inside a string literal or a comment? */
export function stringAndCommentMask(text: string): Uint8Array {
  const mask = new Uint8Array(text.length);
  let i = 0;
  const mark = (from: number, to: number) => mask.fill(1, from, Math.min(to, text.length));
  while (i < text.length) {
    const c = text[i], two = text.slice(i, i + 2), three = text.slice(i, i + 3);
    if (three === '"""' || three === "'''") {
      const end = text.indexOf(three, i + 3);
      const stop = end < 0 ? text.length : end + 3;
      mark(i, stop);
      i = stop;
    } else if (c === '"' || c === "'" || c === '`') {
      let j = i + 1;
      while (j < text.length && text[j] !== c && !(text[j] === '\n' && c !== '`')) j += text[j] === '\\' ? 2 : 1;
      mark(i, j + 1);
      i = j + 1;
    } else if (c === '#' || two === '//' || two === '--') {
      const end = text.indexOf('\n', i);
      const stop = end < 0 ? text.length : end;
      mark(i, stop);
      i = stop;
    } else if (two === '/*') {
      const end = text.indexOf('*/', i + 2);
      const stop = end < 0 ? text.length : end + 2;
      mark(i, stop);
      i = stop;
    } else i++;
  }
  return mask;
}

/** The class of a token of `text` (its [start, end) relative to the text). */
export function classify(text: string, start: number, end: number, mask: Uint8Array): TokenClass {
  const s = text.slice(start, end);
  const body = s.trim();
  if (!body) return 'whitespace';
  let inside = 0;
  for (let i = start; i < end; i++) inside += mask[i];
  if (inside * 2 > end - start) return 'string/comment';
  if (/^[+-]?(\d[\d_]*\.?\d*(e[+-]?\d+)?|\.\d+|0x[\da-f]+)$/i.test(body)) return 'number';
  if (/^[\p{L}_$][\p{L}\p{N}_$]*$/u.test(body)) return KEYWORDS.has(body.toLowerCase()) ? 'keyword' : 'identifier';
  if (/^[\p{L}\p{N}_$]+$/u.test(body)) return 'identifier';
  return 'punctuation';
}

/** Classes of every token; `base` is the offset of `text` in the document the offsets refer to. */
export function classifyTokens(text: string, tokens: TokenInfo[], base = 0): TokenClass[] {
  const mask = stringAndCommentMask(text);
  return tokens.map((t) => classify(text, t.start - base, t.end - base, mask));
}

/** Does token i repeat an id seen earlier in its context [i − context[i], i)? */
export function repeatedInContext(ids: ArrayLike<number>, context: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(ids.length);
  const last = new Map<number, number>();
  for (let i = 0; i < ids.length; i++) {
    const prev = last.get(ids[i]);
    if (prev !== undefined && i - prev <= context[i]) out[i] = 1;
    last.set(ids[i], i);
  }
  return out;
}

/** A seeded bootstrap 95 % interval of the mean (percentile method, 1000 resamples). */
export function bootstrapMean(values: ArrayLike<number>, resamples = 1000, seed = 1): { mean: number; lo: number; hi: number; n: number } {
  const n = values.length;
  if (!n) return { mean: NaN, lo: NaN, hi: NaN, n };
  let sum = 0;
  for (let i = 0; i < n; i++) sum += values[i];
  let s = seed >>> 0;
  const rnd = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const means = new Float64Array(resamples);
  for (let r = 0; r < resamples; r++) {
    let acc = 0;
    for (let i = 0; i < n; i++) acc += values[Math.floor(rnd() * n)];
    means[r] = acc / n;
  }
  means.sort();
  return { mean: sum / n, lo: means[Math.floor(0.025 * (resamples - 1))], hi: means[Math.ceil(0.975 * (resamples - 1))], n };
}
