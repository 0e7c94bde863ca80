/**
 * SentencePiece's normalizer (google/sentencepiece src/normalizer.cc, `Normalizer::Normalize`),
 * with an alignment back to the original bytes.
 *
 * The precompiled charsmap is `<uint32 trie size><Darts-clone double array><NUL-terminated
 * replacement strings>`. At each position the longest prefix of the remaining input found in the
 * double array is replaced by its string (a user-defined symbol matches first and is kept as is;
 * no match: one UTF-8 character, a malformed byte becomes U+FFFD). Then, as the library does:
 * leading whitespace dropped and runs of spaces collapsed (`remove_extra_whitespaces`), spaces
 * written as U+2581 "▁" (`escape_whitespaces`), a "▁" put in front (`add_dummy_prefix`; at the
 * end with `treat_whitespace_as_suffix`), trailing "▁" dropped.
 *
 * Alignment. Each call that consumes original bytes makes a chunk; every normalized byte records
 * its chunk's original [start, end) and whether it is the chunk's first byte. A token that starts
 * on a chunk's first byte starts at the chunk's original start; one that starts inside a chunk
 * ("½" → "1⁄2", or the 2nd byte of a byte-fallback character) starts at the chunk's end, so the
 * original character belongs to the token holding its first normalized piece. Inserted "▁"s are
 * chunks with an empty original range.
 */
import { BadInputError } from '../errors';

export interface NormalizerSpec {
  name: string;
  charsmap: Uint8Array;
  addDummyPrefix: boolean;
  removeExtraWhitespaces: boolean;
  escapeWhitespaces: boolean;
}

export interface Normalized {
  bytes: Uint8Array;
  /** Per normalized byte: where its chunk starts and ends in the original bytes. */
  origStart: Int32Array;
  origEnd: Int32Array;
  /** Per normalized byte: 1 if it is the first byte its chunk produced. */
  chunkFirst: Uint8Array;
}

const SPACE = 0x20;
const SPACE_SYMBOL = [0xe2, 0x96, 0x81]; // U+2581
const REPLACEMENT = Uint8Array.from([0xef, 0xbf, 0xbd]);

/** Longest-prefix matching over a set of byte strings (the library's PrefixMatcher). */
export class PrefixMatcher {
  private readonly byFirstByte = new Map<number, Uint8Array[]>();

  constructor(symbols: Uint8Array[]) {
    for (const s of symbols) {
      if (!s.length) continue;
      const list = this.byFirstByte.get(s[0]) ?? [];
      list.push(s);
      this.byFirstByte.set(s[0], list);
    }
    for (const list of this.byFirstByte.values()) list.sort((a, b) => b.length - a.length);
  }

  get empty(): boolean {
    return this.byFirstByte.size === 0;
  }

  /** Length of the longest symbol that `buf[pos..end)` starts with; 0 if none. */
  match(buf: Uint8Array, pos: number, end: number): number {
    const list = this.byFirstByte.get(buf[pos]);
    if (!list) return 0;
    for (const s of list) {
      if (s.length > end - pos) continue;
      let k = 1;
      while (k < s.length && buf[pos + k] === s[k]) k++;
      if (k === s.length) return s.length;
    }
    return 0;
  }
}

/** A Darts-clone double array (third_party/darts_clone/darts.h), read-only. */
class DoubleArray {
  constructor(private readonly units: Uint32Array) {}

  /** commonPrefixSearch keeping the longest hit: [length, value], or null. */
  longestPrefix(buf: Uint8Array, pos: number, end: number): [number, number] | null {
    const units = this.units;
    let best: [number, number] | null = null;
    let node = offsetOf(units[0]);
    for (let i = pos; i < end; i++) {
      const c = buf[i];
      node ^= c;
      if (node >= units.length) return best;
      const unit = units[node];
      if ((unit & 0x800000ff) >>> 0 !== c) return best; // label mismatch (a leaf unit has the MSB set)
      node ^= offsetOf(unit);
      if ((unit >>> 8) & 1) {
        if (node >= units.length) return best;
        best = [i - pos + 1, units[node] & 0x7fffffff];
      }
    }
    return best;
  }
}

function offsetOf(unit: number): number {
  return (unit >>> 10) << ((unit & (1 << 9)) >>> 6);
}

/** Growable parallel arrays for the normalized bytes and their alignment. */
class Output {
  length = 0;
  private bytes: Uint8Array;
  private starts: Int32Array;
  private ends: Int32Array;
  private firsts: Uint8Array;

  constructor(capacity: number) {
    this.bytes = new Uint8Array(capacity);
    this.starts = new Int32Array(capacity);
    this.ends = new Int32Array(capacity);
    this.firsts = new Uint8Array(capacity);
  }

  push(byte: number, start: number, end: number, first: boolean): void {
    if (this.length === this.bytes.length) this.grow();
    const i = this.length++;
    this.bytes[i] = byte;
    this.starts[i] = start;
    this.ends[i] = end;
    this.firsts[i] = first ? 1 : 0;
  }

  private grow(): void {
    const capacity = 2 * this.bytes.length + 16;
    const bytes = new Uint8Array(capacity);
    const starts = new Int32Array(capacity);
    const ends = new Int32Array(capacity);
    const firsts = new Uint8Array(capacity);
    bytes.set(this.bytes);
    starts.set(this.starts);
    ends.set(this.ends);
    firsts.set(this.firsts);
    [this.bytes, this.starts, this.ends, this.firsts] = [bytes, starts, ends, firsts];
  }

  origStartAt(i: number): number {
    return this.starts[i];
  }

  endsWith(tail: readonly number[]): boolean {
    if (this.length < tail.length) return false;
    for (let k = 0; k < tail.length; k++) if (this.bytes[this.length - tail.length + k] !== tail[k]) return false;
    return true;
  }

  result(): Normalized {
    const n = this.length;
    return { bytes: this.bytes.slice(0, n), origStart: this.starts.slice(0, n), origEnd: this.ends.slice(0, n), chunkFirst: this.firsts.slice(0, n) };
  }
}

export class Normalizer {
  private readonly trie?: DoubleArray;
  private readonly replacements?: Uint8Array;
  private readonly replacementCache = new Map<number, Uint8Array>();

  constructor(
    private readonly spec: NormalizerSpec,
    private readonly treatWhitespaceAsSuffix: boolean,
    private readonly userDefined: PrefixMatcher | null,
    file: string,
  ) {
    if (spec.charsmap.length) [this.trie, this.replacements] = decodeCharsmap(spec.charsmap, file);
  }

  normalize(input: Uint8Array): Normalized {
    const n = input.length;
    const out = new Output(n + (n >> 2) + 8);
    let pos = 0;
    if (this.spec.removeExtraWhitespaces) {
      // leading whitespace
      while (pos < n) {
        const [sp, used] = this.normalizePrefix(input, pos);
        if (!(sp.length === 1 && sp[0] === SPACE)) break;
        pos += used;
      }
    }
    if (pos >= n) return out.result();
    const space = this.spec.escapeWhitespaces ? SPACE_SYMBOL : [SPACE];
    const addSpace = (at: number): void => space.forEach((b, k) => out.push(b, at, at, k === 0));
    if (!this.treatWhitespaceAsSuffix && this.spec.addDummyPrefix) addSpace(pos);
    let isPrevSpace = this.spec.removeExtraWhitespaces;
    while (pos < n) {
      const [sp, used] = this.normalizePrefix(input, pos);
      let s = 0;
      while (isPrevSpace && s < sp.length && sp[s] === SPACE) s++; // collapse runs of spaces
      for (let k = s; k < sp.length; k++) {
        if (this.spec.escapeWhitespaces && sp[k] === SPACE) {
          for (let j = 0; j < 3; j++) out.push(SPACE_SYMBOL[j], pos, pos + used, k === s && j === 0);
        } else out.push(sp[k], pos, pos + used, k === s);
      }
      if (s < sp.length) isPrevSpace = sp[sp.length - 1] === SPACE;
      pos += used;
      if (!this.spec.removeExtraWhitespaces) isPrevSpace = false;
    }
    let end = pos;
    if (this.spec.removeExtraWhitespaces) {
      while (out.endsWith(space)) {
        out.length -= space.length;
        end = out.origStartAt(out.length);
      }
    }
    if (this.treatWhitespaceAsSuffix && this.spec.addDummyPrefix) addSpace(end);
    return out.result();
  }

  /** The library's NormalizePrefix: [replacement bytes, original bytes consumed]. */
  private normalizePrefix(input: Uint8Array, pos: number): [Uint8Array, number] {
    const n = input.length;
    if (this.userDefined) {
      const length = this.userDefined.match(input, pos, n);
      if (length) return [input.subarray(pos, pos + length), length];
    }
    const hit = this.trie?.longestPrefix(input, pos, n);
    if (hit) return [this.replacement(hit[1]), hit[0]];
    const length = validUtf8Length(input, pos, n);
    return length ? [input.subarray(pos, pos + length), length] : [REPLACEMENT, 1];
  }

  /** The NUL-terminated replacement string at `value`. */
  private replacement(value: number): Uint8Array {
    let r = this.replacementCache.get(value);
    if (!r) {
      const blob = this.replacements!;
      let end = Math.min(value, blob.length);
      while (end < blob.length && blob[end] !== 0) end++;
      r = blob.subarray(Math.min(value, blob.length), end);
      this.replacementCache.set(value, r);
    }
    return r;
  }
}

/** Splits the precompiled charsmap blob (normalizer.cc `DecodePrecompiledCharsMap`). */
function decodeCharsmap(blob: Uint8Array, file: string): [DoubleArray, Uint8Array] {
  const broken = (why: string): never => {
    throw new BadInputError(`${file}: the normalizer's precompiled charsmap is broken (${why}); the model file is damaged`);
  };
  if (blob.length <= 4) broken('shorter than its header');
  const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const trieSize = view.getUint32(0, true);
  if (trieSize >= blob.length) broken(`the trie size ${trieSize} exceeds the blob of ${blob.length} bytes`);
  if (trieSize % 4 || trieSize === 0) broken(`the trie size ${trieSize} is not a positive multiple of 4`);
  if (4 + trieSize > blob.length) broken('the trie runs past the blob');
  const units = new Uint32Array(trieSize / 4);
  for (let i = 0; i < units.length; i++) units[i] = view.getUint32(4 + 4 * i, true);
  return [new DoubleArray(units), blob.subarray(4 + trieSize)];
}

/**
 * Length of the valid UTF-8 character at `pos` (util.cc `DecodeUTF8` / `IsValidDecodeUTF8`:
 * no overlongs, no surrogates, at most U+10FFFF); 0 if malformed.
 */
export function validUtf8Length(buf: Uint8Array, pos: number, end: number): number {
  const b0 = buf[pos];
  const left = end - pos;
  const trail = (k: number): boolean => (buf[pos + k] & 0xc0) === 0x80;
  if (b0 < 0x80) return 1;
  if (left >= 2 && (b0 & 0xe0) === 0xc0 && trail(1)) {
    const cp = ((b0 & 0x1f) << 6) | (buf[pos + 1] & 0x3f);
    return cp >= 0x80 ? 2 : 0;
  }
  if (left >= 3 && (b0 & 0xf0) === 0xe0 && trail(1) && trail(2)) {
    const cp = ((b0 & 0x0f) << 12) | ((buf[pos + 1] & 0x3f) << 6) | (buf[pos + 2] & 0x3f);
    return cp >= 0x800 && (cp < 0xd800 || cp > 0xdfff) ? 3 : 0;
  }
  if (left >= 4 && (b0 & 0xf8) === 0xf0 && trail(1) && trail(2) && trail(3)) {
    const cp = ((b0 & 0x07) << 18) | ((buf[pos + 1] & 0x3f) << 12) | ((buf[pos + 2] & 0x3f) << 6) | (buf[pos + 3] & 0x3f);
    return cp >= 0x10000 && cp <= 0x10ffff ? 4 : 0;
  }
  return 0;
}
