/**
 * tiktoken encodings saved with `pickle.dump(encoding)`: autoresearch's `tokenizer.pkl`
 * (a rustbpe-trained vocabulary wrapped as `tiktoken.Encoding("rustbpe", ...)`).
 *
 * The file. Python pickles the Encoding through `object.__reduce_ex__`: the global
 * `tiktoken.core Encoding`, EMPTY_TUPLE NEWOBJ, then BUILD with the state
 * `Encoding.__getstate__` returns (tiktoken/core.py): a dict `{name, pat_str, mergeable_ranks
 * (bytes → rank), special_tokens (str → id)}`, or only the name for an encoding registered with
 * tiktoken (cl100k_base, ...) — that one carries no ranks and is refused with a line that says so.
 * It is read with the restricted unpickler (engine/io/pickle.ts) allowing that one class as an
 * inert holder of its state; any other global is refused before anything is called.
 *
 * Encoding follows tiktoken's `CoreBPE::encode_ordinary` (src/lib.rs): split the text with
 * `pat_str` (translated to JavaScript by pattern.ts: possessive quantifiers, `(?i:..)`, `\s`);
 * a piece whose bytes are a whole token is that token; otherwise byte pair merging on the
 * piece's UTF-8 bytes, lowest rank first, leftmost on ties (ranks are the ids). Special-token
 * text in user text is ordinary text, as `encode_ordinary` (what autoresearch uses) treats it.
 */
import * as fs from 'node:fs';
import type { TokenInfo } from '../protocol';
import { BadInputError } from '../errors';
import { unpickle, PyDict, PyObject } from '../io/pickle';
import type { Tokenizer } from './types';
import { compilePattern } from './pattern';
import { MAX_RANK, NO_MERGE, PieceCache, bytesKey, checkTokenId, concatBytes, decodeUtf8, mergePairs, tileTokens, utf8Bytes, utf8Length } from './bpe';

const ENCODING_CLASS = 'tiktoken.core Encoding';

/** The fields of `Encoding.__getstate__`. */
interface EncodingState {
  name: string;
  patStr: string;
  ranks: Map<string, number>; // bytes (latin1 key) → rank
  specials: Map<string, number>;
}

/** Loads a pickled tiktoken Encoding (autoresearch's tokenizer.pkl). */
export function loadTiktokenPickle(file: string): Tokenizer {
  let data: Buffer;
  try {
    data = fs.readFileSync(file);
  } catch (e) {
    throw new BadInputError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return new TiktokenTokenizer(file, readEncodingState(data, file));
}

/** Unpickles `data` allowing only tiktoken's Encoding, and checks its state. */
function readEncodingState(data: Uint8Array, file: string): EncodingState {
  const root = unpickle(data, {
    file,
    persistentLoad: () => {
      throw new BadInputError(`${file}: the pickle refers to persistent objects (a torch.save file?); a tiktoken pickle has none`);
    },
    globals: { [ENCODING_CLASS]: (args: unknown[]) => newEncoding(file, args) },
  });
  if (!(root instanceof PyObject)) throw new BadInputError(`${file}: the pickle holds ${describe(root)}, not a tiktoken Encoding`);
  const state = root.state;
  if (typeof state === 'string') throw new BadInputError(`${file}: the pickle names the registered tiktoken encoding '${state}' instead of carrying its ranks; it cannot be read without tiktoken's own files (pickle an Encoding built from its mergeable_ranks instead)`);
  if (!(state instanceof PyDict)) throw new BadInputError(`${file}: the Encoding's state is ${describe(state)}, not the dict tiktoken's __getstate__ writes`);
  return {
    name: field(state, 'name', 'a string', (v): v is string => typeof v === 'string', file),
    patStr: field(state, 'pat_str', 'a string', (v): v is string => typeof v === 'string', file),
    ranks: rankTable(field(state, 'mergeable_ranks', 'a dict', (v): v is PyDict => v instanceof PyDict, file), file),
    specials: specialTable(field(state, 'special_tokens', 'a dict', (v): v is PyDict => v instanceof PyDict, file), file),
  };
}

/** NEWOBJ of the Encoding class: `object.__reduce_ex__` passes no arguments. */
function newEncoding(file: string, args: unknown[]): PyObject {
  if (args.length) throw new BadInputError(`${file}: the pickle constructs tiktoken's Encoding with arguments; pickle.dump writes none (the file was not made by pickling an Encoding)`);
  return new PyObject('tiktoken.core.Encoding');
}

function field<T>(state: PyDict, key: string, what: string, is: (v: unknown) => v is T, file: string): T {
  const v = state.map.get(key);
  if (!is(v)) throw new BadInputError(`${file}: the Encoding's '${key}' is ${describe(v)}, expected ${what}`);
  return v;
}

function rankTable(d: PyDict, file: string): Map<string, number> {
  const ranks = new Map<string, number>();
  for (const [k, v] of d.map) {
    if (!(k instanceof Uint8Array) || !Number.isInteger(v) || (v as number) < 0 || (v as number) > MAX_RANK) {
      throw new BadInputError(`${file}: mergeable_ranks must map bytes to ranks in [0, ${MAX_RANK}]; found ${describe(k)} → ${describe(v)}`);
    }
    ranks.set(bytesKey(k), v as number);
  }
  for (let b = 0; b < 256; b++) {
    if (!ranks.has(String.fromCharCode(b))) throw new BadInputError(`${file}: mergeable_ranks has no token for the byte 0x${b.toString(16).padStart(2, '0')}; tiktoken needs all 256 single bytes`);
  }
  return ranks;
}

function specialTable(d: PyDict, file: string): Map<string, number> {
  const specials = new Map<string, number>();
  for (const [k, v] of d.map) {
    if (typeof k !== 'string' || !Number.isInteger(v) || (v as number) < 0 || (v as number) > MAX_RANK) {
      throw new BadInputError(`${file}: special_tokens must map strings to ids in [0, ${MAX_RANK}]; found ${describe(k)} → ${describe(v)}`);
    }
    specials.set(k, v as number);
  }
  return specials;
}

function describe(v: unknown): string {
  if (v === undefined) return 'missing';
  if (v === null) return 'None';
  if (v instanceof Uint8Array) return 'bytes';
  if (v instanceof PyDict) return 'a dict';
  if (v instanceof PyObject) return `an object of ${v.qualified}`;
  if (Array.isArray(v)) return 'a list';
  return `${typeof v === 'string' ? 'the string' : 'the value'} ${JSON.stringify(typeof v === 'bigint' ? String(v) : v)}`;
}

class TiktokenTokenizer implements Tokenizer {
  readonly kind = 'tiktoken' as const;
  readonly vocabSize: number;
  readonly specialIds: ReadonlySet<number>;
  readonly bosId?: number;
  readonly eosId?: number;
  private readonly split: RegExp;
  private readonly bytesById: Uint8Array[] = [];
  private readonly textById: string[] = [];
  private readonly maxTokenBytes: number;
  private readonly cache = new PieceCache<number[]>();

  constructor(readonly name: string, private readonly state: EncodingState) {
    this.split = compilePattern(state.patStr, name);
    let maxId = -1;
    let maxBytes = 0;
    for (const [key, rank] of state.ranks) {
      if (this.bytesById[rank]) throw new BadInputError(`${name}: two tokens have the rank ${rank} in mergeable_ranks`);
      this.bytesById[rank] = Uint8Array.from(Buffer.from(key, 'latin1'));
      maxId = Math.max(maxId, rank);
      maxBytes = Math.max(maxBytes, key.length);
    }
    for (const [text, id] of state.specials) {
      if (this.bytesById[id]) throw new BadInputError(`${name}: the special token ${JSON.stringify(text)} reuses the id ${id} of an ordinary token`);
      this.bytesById[id] = utf8Bytes(text);
      maxId = Math.max(maxId, id);
    }
    this.maxTokenBytes = maxBytes;
    this.vocabSize = maxId + 1; // tiktoken's n_vocab = max_token_value + 1
    for (let id = 0; id < this.vocabSize; id++) this.textById[id] = this.bytesById[id] ? decodeUtf8(this.bytesById[id]) : '';
    for (const [text, id] of state.specials) this.textById[id] = text;
    this.specialIds = new Set(state.specials.values());
    // autoresearch prepends <|reserved_0|> to every document (prepare.py); nanochat names it <|bos|>
    this.bosId = state.specials.get('<|reserved_0|>') ?? state.specials.get('<|bos|>');
    this.eosId = state.specials.get('<|endoftext|>');
  }

  encode(text: string): number[] {
    const ids: number[] = [];
    this.run(text, (id) => ids.push(id));
    return ids;
  }

  tokenize(text: string, baseOffset = 0): TokenInfo[] {
    const ids: number[] = [];
    const starts: number[] = [];
    this.run(text, (id, startByte) => {
      ids.push(id);
      starts.push(startByte);
    });
    return tileTokens(text, ids, starts, (id) => this.textById[id], baseOffset);
  }

  /** encode_ordinary; text the pattern does not match is skipped, as tiktoken's find_iter does. */
  private run(text: string, emit: (id: number, startByte: number) => void): void {
    let unit = 0;
    let byte = 0;
    for (const m of text.matchAll(this.split)) {
      if (m[0].length === 0) continue;
      byte += utf8Length(text, unit, m.index!);
      unit = m.index!;
      let at = byte;
      for (const id of this.encodePiece(m[0])) {
        emit(id, at);
        at += this.bytesById[id].length;
      }
    }
  }

  private encodePiece(piece: string): number[] {
    const key = bytesKey(utf8Bytes(piece));
    const whole = this.state.ranks.get(key);
    if (whole !== undefined) return [whole];
    if (key.length > 64) return this.bytePairEncode(key);
    let ids = this.cache.get(key);
    if (!ids) {
      ids = this.bytePairEncode(key);
      this.cache.set(key, ids);
    }
    return ids;
  }

  /** tiktoken's byte_pair_merge: ranks of concatenated byte strings; the rank is the id. */
  private bytePairEncode(bytes: string): number[] {
    const n = bytes.length;
    const ids = new Array<number>(n);
    for (let i = 0; i < n; i++) ids[i] = this.state.ranks.get(bytes[i])!;
    const next = mergePairs(
      n,
      (left, _right, after) => (after - left <= this.maxTokenBytes ? this.state.ranks.get(bytes.slice(left, after)) ?? NO_MERGE : NO_MERGE),
      (left, _right, rank) => {
        ids[left] = rank;
      },
    );
    const out: number[] = [];
    for (let i = 0; i < n; i = next[i]) out.push(ids[i]);
    return out;
  }

  decode(ids: number[]): string {
    const parts: Uint8Array[] = [];
    for (const id of ids) {
      checkTokenId(id, this.vocabSize, this.name);
      parts.push(this.bytesById[id] ?? new Uint8Array(0));
    }
    return decodeUtf8(concatBytes(parts));
  }

  tokenText(id: number): string {
    checkTokenId(id, this.vocabSize, this.name);
    return this.textById[id];
  }

  tokenBytes(id: number): number {
    checkTokenId(id, this.vocabSize, this.name);
    // autoresearch's token_bytes.pt: UTF-8 length, 0 for the special tokens
    return this.specialIds.has(id) ? 0 : this.bytesById[id]?.length ?? 0;
  }
}
