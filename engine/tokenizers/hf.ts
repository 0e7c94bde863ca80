/**
 * Hugging Face byte-level BPE tokenizers (GPT-2, nanoGPT-style and most small research LMs):
 * `tokenizer.json` (model.type "BPE") or the older `vocab.json` + `merges.txt` pair.
 *
 * Follows huggingface/tokenizers: the ByteLevel pre-tokenizer (`pre_tokenizers/byte_level.rs`:
 * GPT-2's split regex when `use_regex`, a space prepended to each piece that does not start with
 * one when `add_prefix_space`, then every byte written as a character of GPT-2's bytes_to_unicode
 * alphabet), optionally after `Split` steps inside a `Sequence`; then the BPE model
 * (`models/bpe/word.rs` `merge_all`: the pair of adjacent symbols with the lowest merge rank
 * merges first, leftmost on ties, per piece; `ignore_merges` takes a piece that is a whole token
 * as is; a byte missing from the vocabulary becomes `unk_token`, fused when `fuse_unk`, or is
 * dropped when there is none, as the library does). Merges in either form: `"a b"` strings (the
 * `#version` line skipped) or `["a", "b"]` pairs. `\s` in the split regexes is Unicode
 * White_Space, as in the library's Oniguruma regexes.
 *
 * Added and special tokens (`added_tokens`) in user text are ordinary text here: the library
 * would cut them out of the text first, but Head Lens analyses text as the model read it during
 * training (like gpt2.ts with "<|endoftext|>"); they still count in the vocabulary, and `special`
 * ones are `specialIds`. Post-processors (BOS/EOS templates) are not applied; `dropout` is ignored
 * (inference encodes deterministically).
 *
 * Anything that is not a byte-level BPE (WordPiece, Unigram, WordLevel, a Metaspace/SentencePiece-
 * style BPE, a normalizer, subword prefixes/suffixes) is refused with a BadInputError that names
 * the file and what was found.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TokenInfo } from '../protocol';
import { BadInputError } from '../errors';
import type { Tokenizer } from './types';
import { compilePattern } from './pattern';
import { MAX_RANK, NO_MERGE, PieceCache, bytesKey, checkTokenId, concatBytes, decodeUtf8, mergePairs, tileTokens, utf8Bytes, utf8Length } from './bpe';

/** GPT-2's bytes_to_unicode (openai/gpt-2 encoder.py): printable bytes map to themselves, the rest to U+0100.. */
export const BYTE_TO_UNICODE: readonly string[] = (() => {
  const table = new Array<string>(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = String.fromCharCode(printable ? b : 256 + extra++);
  }
  return table;
})();
const UNICODE_TO_BYTE = new Map<string, number>(BYTE_TO_UNICODE.map((c, b) => [c, b]));

/** The ByteLevel pre-tokenizer's regex (the library's `byte_level.rs`, from GPT-2's encoder.py). */
const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/** A pre-tokenizer piece: text (maybe with a prepended space) and where it starts in the original. */
interface Piece {
  text: string;
  /** UTF-16 offset of the piece's first original character. */
  start: number;
  /** A space was prepended (add_prefix_space): text[0] has no original character. */
  prefixed: boolean;
}
type PreTokenizerStep = (pieces: Piece[]) => Piece[];

interface AddedToken {
  id: number;
  content: string;
  special: boolean;
}

interface HfBpeSpec {
  /** Byte-level token string → id. */
  vocab: Map<string, number>;
  merges: [string, string][];
  added: AddedToken[];
  steps: PreTokenizerStep[];
  unkToken?: string;
  fuseUnk: boolean;
  ignoreMerges: boolean;
  /** Token names from tokenizer_config.json, when there is one. */
  bosToken?: string;
  eosToken?: string;
}

/** Loads `tokenizer.json`, or `vocab.json` + `merges.txt`, from a folder or one of those files. */
export function loadHfTokenizer(folderOrFile: string): Tokenizer {
  const { kind, file, folder } = locate(folderOrFile);
  const spec = kind === 'json' ? specFromTokenizerJson(file) : specFromVocabAndMerges(path.join(folder, 'vocab.json'), path.join(folder, 'merges.txt'));
  Object.assign(spec, configTokens(folder, file));
  return new HfBpeTokenizer(file, spec);
}

function locate(folderOrFile: string): { kind: 'json' | 'pair'; file: string; folder: string } {
  const stat = statOrNull(folderOrFile);
  if (!stat) throw new BadInputError(`${folderOrFile}: no such file or folder (expected tokenizer.json, or vocab.json and merges.txt)`);
  const folder = stat.isDirectory() ? folderOrFile : path.dirname(folderOrFile);
  const base = stat.isDirectory() ? '' : path.basename(folderOrFile);
  if (base.endsWith('.json') && base !== 'vocab.json') return { kind: 'json', file: folderOrFile, folder };
  if (base === 'vocab.json' || base === 'merges.txt') return { kind: 'pair', file: path.join(folder, 'vocab.json'), folder };
  if (base) throw new BadInputError(`${folderOrFile}: not a Hugging Face tokenizer file (expected tokenizer.json, vocab.json or merges.txt)`);
  if (fs.existsSync(path.join(folder, 'tokenizer.json'))) return { kind: 'json', file: path.join(folder, 'tokenizer.json'), folder };
  if (fs.existsSync(path.join(folder, 'vocab.json')) && fs.existsSync(path.join(folder, 'merges.txt'))) return { kind: 'pair', file: path.join(folder, 'vocab.json'), folder };
  throw new BadInputError(`${folderOrFile}: no tokenizer.json, or vocab.json and merges.txt, in this folder`);
}

function statOrNull(p: string): fs.Stats | null {
  try {
    return fs.statSync(p);
  } catch {
    return null;
  }
}

function readJson(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new BadInputError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new BadInputError(`${file}: not valid JSON (${(e as Error).message}); the tokenizer file is damaged or of another kind`);
  }
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

// ---- tokenizer.json ----

function specFromTokenizerJson(file: string): HfBpeSpec {
  const root = readJson(file);
  if (!isObject(root) || !isObject(root.model)) throw new BadInputError(`${file}: no "model" object; not a Hugging Face tokenizer.json`);
  const model = root.model;
  const type = model.type ?? (model.merges !== undefined ? 'BPE' : undefined);
  if (type !== 'BPE') throw new BadInputError(`${file}: the model is ${describeModel(model)}, not a byte-level BPE; only byte-level BPE tokenizers (GPT-2 style) are supported`);
  checkNormalizer(file, root.normalizer);
  for (const key of ['continuing_subword_prefix', 'end_of_word_suffix'] as const) {
    if (model[key] !== null && model[key] !== undefined && model[key] !== '') throw new BadInputError(`${file}: the BPE model has ${key} ${JSON.stringify(model[key])}; that is not a byte-level BPE (GPT-2 style), which this reader supports`);
  }
  if (model.byte_fallback === true) throw new BadInputError(`${file}: the BPE model uses byte_fallback (a SentencePiece-style BPE); load its tokenizer.model instead`);
  const steps = preTokenizerSteps(file, root.pre_tokenizer);
  return {
    vocab: vocabMap(file, model.vocab),
    merges: mergeList(file, model.merges),
    added: addedTokens(file, root.added_tokens),
    steps,
    unkToken: typeof model.unk_token === 'string' ? model.unk_token : undefined,
    fuseUnk: model.fuse_unk === true,
    ignoreMerges: model.ignore_merges === true,
  };
}

function describeModel(model: Json): string {
  if (typeof model.type === 'string') return `of type ${model.type}${model.type === 'WordPiece' ? ' (BERT-style)' : model.type === 'Unigram' ? ' (SentencePiece unigram)' : ''}`;
  return 'of an unknown type (no "type" field and no merges)';
}

function checkNormalizer(file: string, normalizer: unknown): void {
  if (normalizer === null || normalizer === undefined) return;
  if (isObject(normalizer) && normalizer.type === 'Sequence' && Array.isArray(normalizer.normalizers) && normalizer.normalizers.length === 0) return;
  const type = isObject(normalizer) ? String(normalizer.type) : typeof normalizer;
  throw new BadInputError(`${file}: the tokenizer has a ${type} normalizer, which this reader does not implement (only byte-level BPE without a normalizer is supported)`);
}

function preTokenizerSteps(file: string, pre: unknown): PreTokenizerStep[] {
  const list = isObject(pre) && pre.type === 'Sequence' ? pre.pretokenizers : [pre];
  if (!Array.isArray(list)) throw new BadInputError(`${file}: pre_tokenizer Sequence without a "pretokenizers" list`);
  const steps: PreTokenizerStep[] = [];
  let byteLevel = false;
  for (const step of list) {
    if (!isObject(step)) throw new BadInputError(`${file}: the pre_tokenizer is ${JSON.stringify(step)}; a byte-level BPE needs a ByteLevel pre-tokenizer`);
    if (step.type === 'ByteLevel') {
      if (byteLevel) throw new BadInputError(`${file}: two ByteLevel pre-tokenizers in one Sequence`);
      byteLevel = true;
      steps.push(byteLevelStep(file, step.add_prefix_space === true, step.use_regex !== false));
    } else if (step.type === 'Split' && !byteLevel) steps.push(splitStep(file, step));
    else {
      const what = step.type === 'Metaspace' ? 'Metaspace (a SentencePiece-style BPE; load its tokenizer.model instead)' : String(step.type);
      throw new BadInputError(`${file}: the pre_tokenizer ${what} is not supported here (only ByteLevel, optionally after Split, inside a Sequence)`);
    }
  }
  if (!byteLevel) throw new BadInputError(`${file}: no ByteLevel pre-tokenizer; only byte-level BPE tokenizers (GPT-2 style) are supported`);
  return steps;
}

/** ByteLevel: per piece, a space in front unless there is one, then GPT-2's split (Isolated). */
function byteLevelStep(file: string, addPrefixSpace: boolean, useRegex: boolean): PreTokenizerStep {
  const regex = useRegex ? compilePattern(GPT2_PATTERN, file) : undefined;
  return (pieces) => {
    const out: Piece[] = [];
    for (const p of pieces) {
      const piece = addPrefixSpace && !p.text.startsWith(' ') ? { text: ' ' + p.text, start: p.start, prefixed: true } : p;
      if (regex) splitIsolated(piece, regex, out);
      else out.push(piece);
    }
    return out;
  };
}

/** Split with behavior Isolated: matches and the text between them are pieces of their own. */
function splitStep(file: string, step: Json): PreTokenizerStep {
  const pattern = isObject(step.pattern) ? step.pattern : {};
  if (step.behavior !== 'Isolated' || step.invert === true) throw new BadInputError(`${file}: Split with behavior ${String(step.behavior)}${step.invert ? ' (inverted)' : ''} is not supported here (only Isolated)`);
  let regex: RegExp;
  if (typeof pattern.Regex === 'string') regex = compilePattern(pattern.Regex, file);
  else if (typeof pattern.String === 'string') regex = new RegExp(pattern.String.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&'), 'gu');
  else throw new BadInputError(`${file}: Split without a Regex or String pattern`);
  return (pieces) => {
    const out: Piece[] = [];
    for (const p of pieces) splitIsolated(p, regex, out);
    return out;
  };
}

function splitIsolated(piece: Piece, regex: RegExp, out: Piece[]): void {
  const sub = (from: number, to: number): void => {
    if (to <= from) return;
    const prefixed = piece.prefixed && from === 0;
    const start = piece.start + Math.max(0, from - (piece.prefixed ? 1 : 0));
    out.push({ text: piece.text.slice(from, to), start, prefixed });
  };
  let at = 0;
  for (const m of piece.text.matchAll(regex)) {
    if (m[0].length === 0) continue;
    sub(at, m.index!);
    sub(m.index!, m.index! + m[0].length);
    at = m.index! + m[0].length;
  }
  sub(at, piece.text.length);
}

function vocabMap(file: string, vocab: unknown): Map<string, number> {
  if (!isObject(vocab)) throw new BadInputError(`${file}: the vocabulary is not an object of token → id`);
  const map = new Map<string, number>();
  for (const [token, id] of Object.entries(vocab)) {
    if (!Number.isInteger(id) || (id as number) < 0 || (id as number) > MAX_RANK) throw new BadInputError(`${file}: token ${JSON.stringify(token)} has the id ${JSON.stringify(id)}; ids must be integers in [0, ${MAX_RANK}]`);
    map.set(token, id as number);
  }
  if (map.size === 0) throw new BadInputError(`${file}: the vocabulary is empty`);
  return map;
}

function mergeList(file: string, merges: unknown): [string, string][] {
  if (!Array.isArray(merges)) throw new BadInputError(`${file}: "merges" is not a list`);
  const out: [string, string][] = [];
  merges.forEach((m, i) => {
    if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') out.push([m[0], m[1]]);
    else if (typeof m === 'string') {
      if (m.startsWith('#version')) return;
      const parts = m.split(' ');
      if (parts.length !== 2) throw new BadInputError(`${file}: merge ${i + 1} ${JSON.stringify(m)} is not two tokens separated by one space`);
      out.push([parts[0], parts[1]]);
    } else throw new BadInputError(`${file}: merge ${i + 1} is ${JSON.stringify(m)}, neither "a b" nor ["a", "b"]`);
  });
  return out;
}

function addedTokens(file: string, added: unknown): AddedToken[] {
  if (added === undefined || added === null) return [];
  if (!Array.isArray(added)) throw new BadInputError(`${file}: "added_tokens" is not a list`);
  return added.map((t, i) => {
    if (!isObject(t) || !Number.isInteger(t.id) || typeof t.content !== 'string') throw new BadInputError(`${file}: added token ${i + 1} has no integer id and string content`);
    return { id: t.id as number, content: t.content, special: t.special === true };
  });
}

// ---- vocab.json + merges.txt ----

function specFromVocabAndMerges(vocabFile: string, mergesFile: string): HfBpeSpec {
  const vocab = vocabMap(vocabFile, readJson(vocabFile));
  let text: string;
  try {
    text = fs.readFileSync(mergesFile, 'utf8');
  } catch (e) {
    throw new BadInputError(`${mergesFile}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); vocab.json needs its merges.txt beside it`);
  }
  const lines = text.split(/\r?\n/).filter((l) => l.length > 0);
  const eot = vocab.get('<|endoftext|>');
  return {
    vocab,
    merges: mergeList(mergesFile, lines),
    added: eot === undefined ? [] : [{ id: eot, content: '<|endoftext|>', special: true }],
    // what transformers' GPT2Tokenizer does: GPT-2's split, no prefix space
    steps: [byteLevelStep(vocabFile, false, true)],
    fuseUnk: false,
    ignoreMerges: false,
  };
}

/** bos_token / eos_token from tokenizer_config.json beside the file (a string or {content}). */
function configTokens(folder: string, file: string): { bosToken?: string; eosToken?: string } {
  const configFile = path.join(folder, 'tokenizer_config.json');
  if (configFile === file || !fs.existsSync(configFile)) return {};
  let config: unknown;
  try {
    config = readJson(configFile);
  } catch {
    return {}; // only a source of token names: a damaged one must not stop the tokenizer
  }
  if (!isObject(config)) return {};
  const name = (v: unknown): string | undefined => (typeof v === 'string' ? v : isObject(v) && typeof v.content === 'string' ? v.content : undefined);
  return { bosToken: name(config.bos_token), eosToken: name(config.eos_token) };
}

// ---- the tokenizer ----

interface PieceResult {
  ids: number[];
  /** Byte offset of each token in the piece's bytes. */
  starts: number[];
}

class HfBpeTokenizer implements Tokenizer {
  readonly kind = 'hf-bpe' as const;
  readonly vocabSize: number;
  readonly specialIds: ReadonlySet<number>;
  readonly bosId?: number;
  readonly eosId?: number;
  private readonly bytesById: Uint8Array[] = [];
  private readonly textById: string[] = [];
  /** Vocabulary id of each single byte's alphabet character (-1: not in the vocabulary). */
  private readonly byteIds = new Int32Array(256).fill(-1);
  /** (left id · vocabSize + right id) → merge rank. */
  private readonly rankOfPair = new Map<number, number>();
  private readonly mergedIdOfRank: number[] = [];
  private readonly idByBytes = new Map<string, number>();
  private readonly unkId: number;
  private readonly cache = new PieceCache<PieceResult>();

  constructor(readonly name: string, private readonly spec: HfBpeSpec) {
    let maxId = -1;
    for (const id of spec.vocab.values()) maxId = Math.max(maxId, id);
    for (const t of spec.added) maxId = Math.max(maxId, t.id);
    this.vocabSize = maxId + 1;
    for (const [token, id] of spec.vocab) {
      this.bytesById[id] = byteLevelBytes(token);
      this.idByBytes.set(bytesKey(this.bytesById[id]), id);
    }
    for (const t of spec.added) this.bytesById[t.id] = utf8Bytes(t.content);
    for (let b = 0; b < 256; b++) this.byteIds[b] = spec.vocab.get(BYTE_TO_UNICODE[b]) ?? -1;
    this.buildMerges();
    for (let id = 0; id < this.vocabSize; id++) this.textById[id] = this.bytesById[id] ? decodeUtf8(this.bytesById[id]) : '';
    for (const t of spec.added) this.textById[t.id] = t.content;
    this.specialIds = new Set(spec.added.filter((t) => t.special).map((t) => t.id));
    this.unkId = spec.unkToken === undefined ? -1 : this.idOf(spec.unkToken, 'unk_token');
    const eot = this.tokenId('<|endoftext|>');
    this.bosId = (spec.bosToken !== undefined ? this.tokenId(spec.bosToken) : undefined) ?? eot;
    this.eosId = (spec.eosToken !== undefined ? this.tokenId(spec.eosToken) : undefined) ?? eot;
  }

  private tokenId(token: string): number | undefined {
    return this.spec.added.find((t) => t.content === token)?.id ?? this.spec.vocab.get(token);
  }

  private idOf(token: string, what: string): number {
    const id = this.spec.vocab.get(token);
    if (id === undefined) throw new BadInputError(`${this.name}: the ${what} ${JSON.stringify(token)} is not in the vocabulary`);
    return id;
  }

  private buildMerges(): void {
    const v = this.vocabSize;
    this.spec.merges.forEach(([a, b], rank) => {
      if (rank > MAX_RANK) throw new BadInputError(`${this.name}: more than ${MAX_RANK} merges`);
      const left = this.idOf(a, `merge ${rank + 1}'s first token`);
      const right = this.idOf(b, `merge ${rank + 1}'s second token`);
      const merged = this.idOf(a + b, `merge ${rank + 1}'s result`);
      this.rankOfPair.set(left * v + right, rank);
      this.mergedIdOfRank[rank] = merged;
    });
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

  /** Pre-tokenizes and encodes `text`, calling `emit` with each id and the original byte it starts at. */
  private run(text: string, emit: (id: number, startByte: number) => void): void {
    let pieces: Piece[] = text.length ? [{ text, start: 0, prefixed: false }] : [];
    for (const step of this.spec.steps) pieces = step(pieces);
    let unit = 0;
    let byte = 0;
    for (const piece of pieces) {
      byte += utf8Length(text, unit, piece.start);
      unit = piece.start;
      const shift = piece.prefixed ? 1 : 0;
      const result = this.encodePiece(piece.text);
      for (let i = 0; i < result.ids.length; i++) emit(result.ids[i], byte + Math.max(0, result.starts[i] - shift));
    }
  }

  private encodePiece(text: string): PieceResult {
    const bytes = utf8Bytes(text);
    const key = bytesKey(bytes);
    const cached = this.cache.get(key);
    if (cached) return cached;
    const result = this.bytePairEncode(bytes, key);
    if (bytes.length <= 64) this.cache.set(key, result);
    return result;
  }

  private bytePairEncode(bytes: Uint8Array, key: string): PieceResult {
    if (this.spec.ignoreMerges) {
      const whole = this.idByBytes.get(key);
      if (whole !== undefined && !this.specialIds.has(whole)) return { ids: [whole], starts: [0] };
    }
    const { ids, starts } = this.initialSymbols(bytes);
    const v = this.vocabSize;
    const next = mergePairs(
      ids.length,
      (left, right) => this.rankOfPair.get(ids[left] * v + ids[right]) ?? NO_MERGE,
      (left, _right, rank) => {
        ids[left] = this.mergedIdOfRank[rank];
      },
    );
    const out: PieceResult = { ids: [], starts: [] };
    for (let i = 0; i < ids.length; i = next[i]) {
      out.ids.push(ids[i]);
      out.starts.push(starts[i]);
    }
    return out;
  }

  /** One symbol per byte; bytes outside the vocabulary become unk (fused if asked) or are dropped. */
  private initialSymbols(bytes: Uint8Array): { ids: number[]; starts: number[] } {
    const ids: number[] = [];
    const starts: number[] = [];
    let previousUnk = false;
    for (let i = 0; i < bytes.length; i++) {
      const id = this.byteIds[bytes[i]];
      if (id >= 0) {
        ids.push(id);
        starts.push(i);
        previousUnk = false;
      } else if (this.unkId >= 0) {
        if (!(previousUnk && this.spec.fuseUnk)) {
          ids.push(this.unkId);
          starts.push(i);
        }
        previousUnk = true;
      }
    }
    return { ids, starts };
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
    return this.specialIds.has(id) ? 0 : this.bytesById[id]?.length ?? 0;
  }
}

/** Bytes of a vocabulary string: alphabet characters are bytes; anything else counts as its UTF-8. */
function byteLevelBytes(token: string): Uint8Array {
  const bytes: number[] = [];
  for (const ch of token) {
    const b = UNICODE_TO_BYTE.get(ch);
    if (b !== undefined) bytes.push(b);
    else for (const x of utf8Bytes(ch)) bytes.push(x);
  }
  return Uint8Array.from(bytes);
}
