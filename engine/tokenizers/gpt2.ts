/**
 * GPT-2 BPE (r50k_base: 50257 ids, `<|endoftext|>` = 50256) with offsets into the original string.
 *
 * The vocabulary comes from `gpt-tokenizer`'s r50k_base rank table; the merge loop is ours. The
 * package's own `encode` re-scans every pair after each merge (quadratic in the length of a
 * pre-tokenizer piece: 64 KB of "a" takes ~10 s) and spreads a piece's ids as call arguments (a
 * piece of ~120k tokens overflows the stack), and its `decode` keeps a trailing partial character
 * in a shared streaming decoder that then leaks into the next call. Here the merges run off a heap
 * (O(n log n) per piece) and decoding is stateless. The result is the same merge order (lowest
 * rank first, leftmost on ties), so the ids equal the package's and tiktoken's.
 *
 * Offsets. BPE works on UTF-8 bytes; editors address UTF-16 code units. Every token gets
 * `[start, end)` in code units by this rule: a character belongs to the token that holds its
 * FIRST byte. Tokens therefore tile the string exactly (token i ends where token i+1 starts), stay
 * monotonic, and a token made only of a character's trailing bytes (an emoji split across tokens)
 * gets the empty range at that character's end. Lone surrogates are encoded as U+FFFD (3 bytes),
 * as TextEncoder does, and keep their one code unit.
 *
 * "<|endoftext|>" in user text is ordinary text here, never the special token.
 */
import type { TokenInfo } from '../protocol';
import { BadInputError } from '../errors';
import type { Tokenizer } from './types';
// `import = require`: the package exports its CommonJS build under the "require" condition only.
import r50kRanks = require('gpt-tokenizer/cjs/bpeRanks/r50k_base');

export const GPT2_VOCAB_SIZE = 50257;
export const EOT_ID = 50256;

/** The pre-tokenizer of openai/gpt-2 `encoder.py`: BPE never merges across these pieces. */
const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

interface Vocab {
  /** Token id by its text, for tokens that are whole UTF-8 characters (most pieces hit this). */
  idByText: Map<string, number>;
  /** Token id by its bytes written as a latin1 string (one char per byte). */
  idByBytes: Map<string, number>;
  bytesById: Uint8Array[];
  textById: string[];
  /** Longest token in bytes: no longer pair can have a rank. */
  maxTokenBytes: number;
}

const utf8Encoder = new TextEncoder();
// Called without {stream: true}: every decode flushes, nothing carries over between calls.
const utf8Decoder = new TextDecoder('utf-8', { fatal: false });
let vocab: Vocab | undefined;

/** Builds the lookup tables once, on first use (~50k entries). */
function getVocab(): Vocab {
  if (vocab) return vocab;
  const idByText = new Map<string, number>();
  const idByBytes = new Map<string, number>();
  const bytesById: Uint8Array[] = [];
  let maxTokenBytes = 0;
  // Each entry is the token's text, or its bytes where they are not valid UTF-8 on their own.
  r50kRanks.default.forEach((value, id) => {
    if (typeof value === 'string') idByText.set(value, id);
    const bytes = typeof value === 'string' ? utf8Encoder.encode(value) : Uint8Array.from(value);
    idByBytes.set(Buffer.from(bytes).toString('latin1'), id);
    bytesById[id] = bytes;
    maxTokenBytes = Math.max(maxTokenBytes, bytes.length);
  });
  if (idByBytes.size !== EOT_ID) throw new Error(`gpt-tokenizer's r50k_base table has ${idByBytes.size} tokens, expected ${EOT_ID}`);
  bytesById[EOT_ID] = utf8Encoder.encode('<|endoftext|>');
  const textById = bytesById.map((b) => utf8Decoder.decode(b));
  vocab = { idByText, idByBytes, bytesById, textById, maxTokenBytes };
  return vocab;
}

function checkId(id: number): void {
  if (!Number.isInteger(id) || id < 0 || id >= GPT2_VOCAB_SIZE) {
    throw new BadInputError(`token id ${id} is outside the GPT-2 vocabulary [0, ${GPT2_VOCAB_SIZE})`);
  }
}

/** Display text of one token; a partial UTF-8 character shows as U+FFFD. */
export function tokenText(id: number): string {
  checkId(id);
  return getVocab().textById[id];
}

/** UTF-8 bytes one token stands for; 0 for <|endoftext|> (a special token spells no text). */
export function tokenByteLength(id: number): number {
  checkId(id);
  return id === EOT_ID ? 0 : getVocab().bytesById[id].length;
}

/** Lossless for ids whose bytes form valid UTF-8; invalid or cut-off bytes become U+FFFD. */
export function decodeIds(ids: number[]): string {
  const { bytesById } = getVocab();
  let length = 0;
  for (const id of ids) {
    checkId(id);
    length += bytesById[id].length;
  }
  const bytes = new Uint8Array(length);
  let at = 0;
  for (const id of ids) {
    bytes.set(bytesById[id], at);
    at += bytesById[id].length;
  }
  return utf8Decoder.decode(bytes);
}

/** GPT-2 ids of `text`; "<|endoftext|>" in it is encoded as the characters it is made of. */
export function encodeIds(text: string): number[] {
  const v = getVocab();
  const ids: number[] = [];
  for (const [piece] of text.matchAll(GPT2_SPLIT)) {
    const whole = v.idByText.get(piece);
    if (whole !== undefined) ids.push(whole);
    // Buffer's UTF-8 turns a lone surrogate into U+FFFD, as TextEncoder does.
    else for (const id of encodePiece(Buffer.from(piece, 'utf8').toString('latin1'), v)) ids.push(id);
  }
  return ids;
}

const pieceCache = new Map<string, number[]>();
const PIECE_CACHE_MAX_ENTRIES = 50_000;
const PIECE_CACHE_MAX_BYTES = 64;

/** BPE of one piece (its bytes as a latin1 string); short pieces repeat a lot, so they are cached. */
function encodePiece(bytes: string, v: Vocab): number[] {
  if (bytes.length > PIECE_CACHE_MAX_BYTES) return bytePairMerge(bytes, v);
  let ids = pieceCache.get(bytes);
  if (!ids) {
    if (pieceCache.size >= PIECE_CACHE_MAX_ENTRIES) pieceCache.clear();
    ids = bytePairMerge(bytes, v);
    pieceCache.set(bytes, ids);
  }
  return ids;
}

const NO_RANK = -1;
/** Heap key = rank · 2^32 + start byte: lowest rank first, then leftmost (exact below 2^53). */
const POSITION_SPAN = 2 ** 32;

/**
 * Repeatedly merges the adjacent pair of parts whose concatenation has the lowest rank (leftmost
 * on ties) until no pair is a token. Parts are a linked list over byte positions: a part starts
 * at byte i and ends at next[i]. A part's start never moves, so a heap entry (rank, i) is still
 * current iff part i is alive and its pair still has that rank (a grown pair is a different
 * byte string, hence a different rank).
 */
function bytePairMerge(bytes: string, v: Vocab): number[] {
  const n = bytes.length;
  const next = new Int32Array(n);
  const prev = new Int32Array(n);
  const pairRank = new Int32Array(n);
  const alive = new Uint8Array(n).fill(1);
  const heap = new MinHeap();
  const rankPairAt = (i: number): void => {
    const j = next[i];
    const k = j < n ? next[j] : n;
    const rank = j < n && k - i <= v.maxTokenBytes ? v.idByBytes.get(bytes.slice(i, k)) ?? NO_RANK : NO_RANK;
    pairRank[i] = rank;
    if (rank !== NO_RANK) heap.push(rank * POSITION_SPAN + i);
  };
  for (let i = 0; i < n; i++) {
    next[i] = i + 1;
    prev[i] = i - 1;
  }
  for (let i = 0; i < n; i++) rankPairAt(i);
  while (heap.size > 0) {
    const key = heap.pop();
    const i = key % POSITION_SPAN;
    if (!alive[i] || pairRank[i] !== (key - i) / POSITION_SPAN) continue; // stale entry
    const absorbed = next[i];
    alive[absorbed] = 0;
    next[i] = next[absorbed];
    if (next[i] < n) prev[next[i]] = i;
    rankPairAt(i);
    if (prev[i] >= 0) rankPairAt(prev[i]);
  }
  const ids: number[] = [];
  // every single byte is a GPT-2 token, so each final part has an id
  for (let i = 0; i < n; i = next[i]) ids.push(v.idByBytes.get(bytes.slice(i, next[i]))!);
  return ids;
}

/** A binary min-heap of numbers. */
class MinHeap {
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

/** UTF-8 length of the code point that starts at code unit `i` (a lone surrogate: U+FFFD, 3). */
function utf8LengthAt(text: string, i: number): number {
  const c = text.charCodeAt(i);
  if (c < 0x80) return 1;
  if (c < 0x800) return 2;
  if (c >= 0xd800 && c <= 0xdbff && isLowSurrogate(text.charCodeAt(i + 1))) return 4;
  return 3;
}

function isLowSurrogate(c: number): boolean {
  return c >= 0xdc00 && c <= 0xdfff;
}

/** Tokens of `text` with `[start, end)` in its UTF-16 code units, shifted by `baseOffset`. */
export function tokenize(text: string, baseOffset = 0): TokenInfo[] {
  const { bytesById, textById } = getVocab();
  const ids = encodeIds(text);
  const tokens: TokenInfo[] = [];
  let unit = 0; // next code unit not yet given to a token
  let charByte = 0; // byte offset where the character at `unit` starts
  let tokenEnd = 0; // byte offset where the current token ends
  for (let index = 0; index < ids.length; index++) {
    const id = ids[index];
    tokenEnd += bytesById[id].length;
    const start = unit;
    // the token takes every character whose first byte lies before its end
    while (unit < text.length && charByte < tokenEnd) {
      const bytes = utf8LengthAt(text, unit);
      charByte += bytes;
      unit += bytes === 4 ? 2 : 1;
    }
    tokens.push({ index, id, text: textById[id], start: start + baseOffset, end: unit + baseOffset });
  }
  return tokens;
}

const SPECIAL_IDS: ReadonlySet<number> = new Set([EOT_ID]);

/** The functions above as the engine's Tokenizer (<|endoftext|> is both BOS and EOS, as in GPT-2). */
export function gpt2Tokenizer(): Tokenizer {
  return {
    kind: 'gpt2',
    name: 'GPT-2 (r50k_base, built in)',
    vocabSize: GPT2_VOCAB_SIZE,
    encode: encodeIds,
    tokenize,
    decode: decodeIds,
    tokenText,
    tokenBytes: tokenByteLength,
    bosId: EOT_ID,
    eosId: EOT_ID,
    specialIds: SPECIAL_IDS,
  };
}
