/**
 * GPT-2 BPE (r50k_base, `gpt-tokenizer`) with offsets into the original string.
 *
 * BPE works on UTF-8 bytes; editors address UTF-16 code units. Every token gets `[start, end)` in
 * code units by this rule: a character belongs to the token that holds its FIRST byte. Tokens
 * therefore tile the string exactly (token i ends where token i+1 starts), stay monotonic, and a
 * token made only of a character's trailing bytes (an emoji split across tokens) gets the empty
 * range at that character's end. Lone surrogates are encoded as U+FFFD (3 bytes), as TextEncoder
 * does, and keep their one code unit.
 *
 * "<|endoftext|>" in user text is ordinary text here, never the special token.
 */
import type { TokenInfo } from './protocol';
import { BadInputError } from './errors';

// require(): the package exports its CommonJS build under the "require" condition only.
/* eslint-disable @typescript-eslint/no-require-imports */
const { encode, decode } = require('gpt-tokenizer/cjs/encoding/r50k_base') as {
  encode: (text: string, options?: { disallowedSpecial?: Set<string> }) => number[];
  decode: (ids: number[]) => string;
};
const ranks = (require('gpt-tokenizer/cjs/bpeRanks/r50k_base') as { default: (string | number[])[] }).default;
/* eslint-enable @typescript-eslint/no-require-imports */

export const GPT2_VOCAB_SIZE = 50257;
export const EOT_ID = 50256;

const NO_SPECIAL = { disallowedSpecial: new Set<string>() };
const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: false });
const bytesCache = new Map<number, Uint8Array>();

/** The UTF-8 bytes a token id stands for. */
export function tokenBytes(id: number): Uint8Array {
  let b = bytesCache.get(id);
  if (b) return b;
  if (!Number.isInteger(id) || id < 0 || id >= GPT2_VOCAB_SIZE) throw new BadInputError(`token id ${id} is outside the GPT-2 vocabulary [0, ${GPT2_VOCAB_SIZE})`);
  if (id === EOT_ID) b = utf8.encode('<|endoftext|>');
  else {
    const v = ranks[id];
    b = typeof v === 'string' ? utf8.encode(v) : Uint8Array.from(v);
  }
  bytesCache.set(id, b);
  return b;
}

/** Display text of one token; a partial UTF-8 character shows as U+FFFD. */
export function tokenText(id: number): string {
  return utf8Decoder.decode(tokenBytes(id));
}

export function encodeIds(text: string): number[] {
  return encode(text, NO_SPECIAL);
}

export function decodeIds(ids: number[]): string {
  for (const id of ids) tokenBytes(id); // range check with a clear error
  return decode(ids);
}

/** UTF-8 length of the code point starting at text[i], and its UTF-16 length. */
function charAt(text: string, i: number): { bytes: number; units: number } {
  const c = text.charCodeAt(i);
  if (c < 0x80) return { bytes: 1, units: 1 };
  if (c < 0x800) return { bytes: 2, units: 1 };
  if (c >= 0xd800 && c <= 0xdbff) {
    const d = text.charCodeAt(i + 1);
    if (d >= 0xdc00 && d <= 0xdfff) return { bytes: 4, units: 2 };
  }
  return { bytes: 3, units: 1 }; // BMP, or a lone surrogate encoded as U+FFFD
}

export function tokenize(text: string, baseOffset = 0): TokenInfo[] {
  if (!text) return [];
  const ids = encodeIds(text);
  const out: TokenInfo[] = [];
  let unit = 0; // next code unit not yet given to a token
  let charByte = 0; // byte offset where the character at `unit` starts
  let byte = 0; // byte offset where the current token starts
  for (let index = 0; index < ids.length; index++) {
    const id = ids[index];
    const tokenEnd = byte + tokenBytes(id).length;
    const start = unit;
    // the token takes every character whose first byte lies before its end
    while (unit < text.length && charByte < tokenEnd) {
      const ch = charAt(text, unit);
      charByte += ch.bytes;
      unit += ch.units;
    }
    out.push({ index, id, text: tokenText(id), start: start + baseOffset, end: unit + baseOffset });
    byte = tokenEnd;
  }
  if (unit !== text.length) throw new Error(`tokenizer offsets did not cover the text (${unit} of ${text.length} code units)`);
  return out;
}
