/**
 * What the file-based tokenizers share: the pair-merge loop of byte pair encoding, UTF-8 helpers,
 * and the offset rule of types.ts (tokens tile the original text; a character belongs to the token
 * holding its first byte).
 *
 * The merge loop is the one every BPE flavour here runs: repeatedly merge the adjacent pair with
 * the best priority (lowest rank, or highest score mapped to a rank), leftmost on ties, until no
 * pair can merge. tiktoken, Hugging Face `tokenizers` (`Word::merge_all`) and sentencepiece
 * (`bpe_model.cc`) all define it that way; they differ only in what ranks a pair, which the caller
 * supplies. It runs off a heap, O(n log n) per piece, like gpt2.ts.
 */
import type { TokenInfo } from '../protocol';
import { BadInputError } from '../errors';

/** Heap key = rank · 2^32 + left symbol index: best rank first, then leftmost (exact below 2^53). */
const POSITION_SPAN = 2 ** 32;
/** Ranks must stay below 2^53 / 2^32 for the key to be exact. */
export const MAX_RANK = 2 ** 21 - 1;
export const NO_MERGE = -1;

/**
 * Merges symbols 0..count-1 (a piece's initial characters or bytes) pair by pair. A part starts
 * at symbol i and ends where part next[i] starts; a part's start never moves, so a heap entry
 * (rank, i) is current iff part i is alive and its pair still has that rank (the pair changes
 * only when one of its two parts grows, and then it is ranked again).
 *
 * `rankOf(left, right, after)`: the rank of merging part `left` with part `right` (which ends
 * where `after` starts, `after` = count at the end), or NO_MERGE. `onMerge(left, right, rank)`
 * lets the caller update its per-part state (the merged id). Returns `next`: walk the final parts
 * with `for (let i = 0; i < count; i = next[i])`.
 */
export function mergePairs(
  count: number,
  rankOf: (left: number, right: number, after: number) => number,
  onMerge: (left: number, right: number, rank: number) => void,
): Int32Array {
  const next = new Int32Array(count);
  const prev = new Int32Array(count);
  const pairRank = new Int32Array(count);
  const alive = new Uint8Array(count).fill(1);
  const heap = new MinHeap();
  const rankPairAt = (i: number): void => {
    const j = next[i];
    const rank = j < count ? rankOf(i, j, next[j]) : NO_MERGE;
    pairRank[i] = rank;
    if (rank !== NO_MERGE) heap.push(rank * POSITION_SPAN + i);
  };
  for (let i = 0; i < count; i++) {
    next[i] = i + 1;
    prev[i] = i - 1;
  }
  for (let i = 0; i + 1 < count; i++) rankPairAt(i);
  if (count > 0) pairRank[count - 1] = NO_MERGE;
  while (heap.size > 0) {
    const key = heap.pop();
    const i = key % POSITION_SPAN;
    const rank = (key - i) / POSITION_SPAN;
    if (!alive[i] || pairRank[i] !== rank) continue; // stale entry
    const absorbed = next[i];
    onMerge(i, absorbed, rank);
    alive[absorbed] = 0;
    next[i] = next[absorbed];
    if (next[i] < count) prev[next[i]] = i;
    rankPairAt(i);
    if (prev[i] >= 0) rankPairAt(prev[i]);
  }
  return next;
}

/** A binary min-heap of numbers. */
export class MinHeap {
  private readonly items: number[] = [];
  get size(): number {
    return this.items.length;
  }
  push(value: number): void {
    const a = this.items;
    let i = a.push(value) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (a[parent] <= value) break;
      a[i] = a[parent];
      i = parent;
    }
    a[i] = value;
  }
  pop(): number {
    const a = this.items;
    const top = a[0];
    const last = a.pop()!;
    if (a.length === 0) return top;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= a.length) break;
      if (child + 1 < a.length && a[child + 1] < a[child]) child++;
      if (a[child] >= last) break;
      a[i] = a[child];
      i = child;
    }
    a[i] = last;
    return top;
  }
}

// ---- UTF-8 ----

// Called without {stream: true}: every decode flushes, nothing carries over between calls.
// ignoreBOM: a leading U+FEFF is text (a token), not a byte order mark to drop.
const utf8Decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

/** UTF-8 bytes of `text`; a lone surrogate becomes U+FFFD (3 bytes), as TextEncoder does. */
export function utf8Bytes(text: string): Uint8Array {
  return Buffer.from(text, 'utf8');
}

/** Bytes as a latin1 string (one char per byte): a cheap Map key for byte strings. */
export function bytesKey(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}

/** UTF-8 text of `bytes`; invalid or cut-off sequences become U+FFFD (maximal subparts). */
export function decodeUtf8(bytes: Uint8Array): string {
  return utf8Decoder.decode(bytes);
}

/** Concatenation of byte strings. */
export function concatBytes(parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** UTF-8 length of the code point that starts at code unit `i` (a lone surrogate: U+FFFD, 3). */
export function utf8LengthAt(text: string, i: number): number {
  const c = text.charCodeAt(i);
  if (c < 0x80) return 1;
  if (c < 0x800) return 2;
  if (c >= 0xd800 && c <= 0xdbff && isLowSurrogate(text.charCodeAt(i + 1))) return 4;
  return 3;
}

function isLowSurrogate(c: number): boolean {
  return c >= 0xdc00 && c <= 0xdfff;
}

/** UTF-8 length of text.slice(from, to) (both on code point boundaries). */
export function utf8Length(text: string, from: number, to: number): number {
  let bytes = 0;
  for (let i = from; i < to; ) {
    const n = utf8LengthAt(text, i);
    bytes += n;
    i += n === 4 ? 2 : 1;
  }
  return bytes;
}

// ---- offsets ----

/**
 * TokenInfo for `ids`, where token i begins at UTF-8 byte `startBytes[i]` of `text` (the bytes
 * before the first start and between starts belong to the token before them). Token i takes the
 * characters whose first byte lies in [startBytes[i], startBytes[i+1]); the first token also
 * takes anything before its start and the last one everything after, so the tokens tile the text.
 */
export function tileTokens(
  text: string,
  ids: ArrayLike<number>,
  startBytes: ArrayLike<number>,
  textOf: (id: number) => string,
  baseOffset = 0,
): TokenInfo[] {
  const tokens: TokenInfo[] = [];
  const starts = new Array<number>(ids.length);
  let unit = 0; // first code unit not yet given to a token
  let charByte = 0; // byte offset where the character at `unit` starts
  for (let i = 0; i < ids.length; i++) {
    // a token starts at the first character whose first byte is at or after its start byte
    while (i > 0 && unit < text.length && charByte < startBytes[i]) {
      const n = utf8LengthAt(text, unit);
      charByte += n;
      unit += n === 4 ? 2 : 1;
    }
    starts[i] = i === 0 ? 0 : unit;
  }
  for (let i = 0; i < ids.length; i++) {
    const end = i + 1 < ids.length ? starts[i + 1] : text.length;
    tokens.push({ index: i, id: ids[i], text: textOf(ids[i]), start: starts[i] + baseOffset, end: end + baseOffset });
  }
  return tokens;
}

/** Start bytes of tokens that spell the text's bytes one after another (lossless byte-level BPE). */
export function cumulativeStarts(ids: number[], byteLength: (id: number) => number): Int32Array {
  const starts = new Int32Array(ids.length);
  let at = 0;
  for (let i = 0; i < ids.length; i++) {
    starts[i] = at;
    at += byteLength(ids[i]);
  }
  return starts;
}

// ---- ids ----

/** An id check with a message that names the tokenizer. */
export function checkTokenId(id: number, vocabSize: number, name: string): void {
  if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
    throw new BadInputError(`token id ${id} is outside the vocabulary of ${name} [0, ${vocabSize})`);
  }
}

/** A small bounded cache for the BPE of short, frequently repeated pieces. */
export class PieceCache<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly maxEntries = 50_000) {}
  get(key: string): V | undefined {
    return this.map.get(key);
  }
  set(key: string, value: V): void {
    if (this.map.size >= this.maxEntries) this.map.clear();
    this.map.set(key, value);
  }
}
