/**
 * SentencePiece BPE models (`.model` files: a serialized `ModelProto`), e.g. parameter-golf's
 * `fineweb_8192_bpe.model`, encoded and decoded exactly as the sentencepiece library does.
 *
 * Follows google/sentencepiece: field numbers from src/sentencepiece_model.proto; pieces and
 * their checks from model_interface.cc `InitializePieces`; the normalizer from normalizer.cc
 * (sp-normalizer.ts); encoding from bpe_model.cc `SampleEncode` (no dropout): the normalized text
 * is split into characters (a user-defined piece matches first, as one frozen symbol), then the
 * adjacent pair whose concatenation is a piece with the highest score merges, leftmost on ties,
 * over the whole normalized text; a merged UNUSED piece is split back into the pieces it was made
 * of; then sentencepiece_processor.cc `PopulateSentencePieceText`: a piece that is not in the
 * vocabulary becomes `<0xNN>` byte pieces when `byte_fallback`, else `<unk>`, a run of unknown
 * pieces making one `<unk>`. Decoding is `SentencePieceProcessor::Decode` (the leading "▁" of the
 * first piece dropped, byte pieces joined into characters, `<unk>` as its surface " ⁇ ").
 * `split_digits` is a training option only: a vocabulary trained with it has no multi-digit
 * pieces, so encoding needs nothing for it. Only BPE models are read; Unigram, word and char
 * models are refused.
 *
 * Offsets map through the normalizer's alignment back to the ORIGINAL text (sp-normalizer.ts):
 * text the normalizer dropped (leading, repeated or trailing whitespace, removed characters)
 * belongs to the token before it (leading: the first token).
 *
 * Bytes. `tokenBytes` counts a piece's UTF-8 bytes with each "▁" as the one space it stands for;
 * a byte piece is 1, control/unknown/unused pieces 0. `bytesOf` is parameter-golf's `base_bytes`
 * (its bits-per-byte table: the leading "▁" not counted, credited separately after a
 * non-boundary token via `hasLeadingSpace`/`isBoundary`).
 */
import * as fs from 'node:fs';
import type { TokenInfo } from '../protocol';
import { BadInputError } from '../errors';
import type { Tokenizer } from './types';
import { MAX_RANK, NO_MERGE, bytesKey, checkTokenId, decodeUtf8, mergePairs, tileTokens, utf8Bytes } from './bpe';
import { Normalizer, PrefixMatcher, validUtf8Length, type Normalized, type NormalizerSpec } from './sp-normalizer';
import { WIRE_BYTES, WIRE_FIXED32, WIRE_VARINT, float32Of, readMessage, stringOf, type ProtoField } from './protobuf';

/** ModelProto.SentencePiece.Type */
export const PieceType = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;
const MODEL_TYPES: Record<number, string> = { 1: 'UNIGRAM', 2: 'BPE', 3: 'WORD', 4: 'CHAR' };
const BPE = 2;
const SPACE_SYMBOL = '\u2581';
/** The library's kDefaultUnknownSymbol. */
const DEFAULT_UNK_SURFACE = ' \u2047 ';

interface SpPiece {
  text: string;
  /** The piece's UTF-8 bytes as a latin1 string. */
  key: string;
  score: number;
  type: number;
}

interface TrainerSpec {
  modelType: number;
  byteFallback: boolean;
  treatWhitespaceAsSuffix: boolean;
  unkPiece: string;
  bosPiece: string;
  eosPiece: string;
  unkSurface?: string;
}

interface ModelProto {
  pieces: SpPiece[];
  trainer: TrainerSpec;
  normalizer: NormalizerSpec;
  denormalizer?: NormalizerSpec;
}

/** A SentencePiece tokenizer, with parameter-golf's byte table on top of the engine's contract. */
export interface SentencePieceTokenizer extends Tokenizer {
  readonly kind: 'sentencepiece';
  /** The piece text as the model stores it ("▁the", "<0x0A>", "<s>"). */
  pieceOf(id: number): string;
  /** parameter-golf's base_bytes: 0 control/unknown/unused, 1 byte piece, else UTF-8 length without the leading "▁". */
  bytesOf(id: number): number;
  /** The piece starts with "▁" (a normal or user-defined piece). */
  hasLeadingSpace(id: number): boolean;
  /** Control, unknown or unused: no space is credited after it. */
  isBoundary(id: number): boolean;
}

/** Reads a `.model` file. */
export function loadSentencePiece(file: string): SentencePieceTokenizer {
  let data: Buffer;
  try {
    data = fs.readFileSync(file);
  } catch (e) {
    throw new BadInputError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return new SpTokenizer(file, parseModelProto(data, file));
}

// ---- the protobuf ----

/** Parses and checks a ModelProto (only the fields encoding and decoding need). */
function parseModelProto(data: Uint8Array, file: string): ModelProto {
  const fields = readMessage(data, protoFail(file, 'ModelProto'));
  const pieces: SpPiece[] = [];
  let trainer = parseTrainerSpec(new Uint8Array(0), file);
  let normalizer = parseNormalizerSpec(new Uint8Array(0), file, 'normalizer_spec');
  let denormalizer: NormalizerSpec | undefined;
  for (const f of fields) {
    if (f.num === 1) pieces.push(parsePiece(expect(f, WIRE_BYTES, file, 'pieces'), file, pieces.length));
    else if (f.num === 2) trainer = parseTrainerSpec(expect(f, WIRE_BYTES, file, 'trainer_spec').bytes, file);
    else if (f.num === 3) normalizer = parseNormalizerSpec(expect(f, WIRE_BYTES, file, 'normalizer_spec').bytes, file, 'normalizer_spec');
    else if (f.num === 5) denormalizer = parseNormalizerSpec(expect(f, WIRE_BYTES, file, 'denormalizer_spec').bytes, file, 'denormalizer_spec');
  }
  if (!pieces.length) throw new BadInputError(`${file}: no pieces; this is not a SentencePiece model`);
  if (trainer.modelType !== BPE) {
    throw new BadInputError(`${file}: a SentencePiece ${MODEL_TYPES[trainer.modelType] ?? `type-${trainer.modelType}`} model; only BPE models are supported`);
  }
  return { pieces, trainer, normalizer, denormalizer };
}

function protoFail(file: string, where: string): (problem: string, at: number) => never {
  return (problem, at) => {
    throw new BadInputError(`${file}: not a valid SentencePiece model (protobuf ${where}: ${problem} at byte ${at}); the file is truncated, damaged or of another kind`);
  };
}

function expect(f: ProtoField, wire: number, file: string, name: string): ProtoField {
  if (f.wire !== wire) throw new BadInputError(`${file}: not a valid SentencePiece model (field ${name} = ${f.num} has wire type ${f.wire}, expected ${wire}); the file is damaged or of another kind`);
  return f;
}

function parsePiece(f: ProtoField, file: string, index: number): SpPiece {
  const piece: SpPiece = { text: '', key: '', score: 0, type: PieceType.NORMAL };
  let hasText = false;
  for (const g of readMessage(f.bytes, protoFail(file, `piece ${index}`))) {
    if (g.num === 1) {
      const text = expect(g, WIRE_BYTES, file, 'piece');
      piece.text = stringOf(text);
      piece.key = bytesKey(text.bytes);
      hasText = true;
    } else if (g.num === 2) piece.score = float32Of(expect(g, WIRE_FIXED32, file, 'score'));
    else if (g.num === 3) piece.type = expect(g, WIRE_VARINT, file, 'type').int;
  }
  if (!hasText || !piece.text) throw new BadInputError(`${file}: piece ${index} is empty (the library refuses such a model: "piece must not be empty")`);
  if (!Object.values(PieceType).includes(piece.type as 1)) throw new BadInputError(`${file}: piece ${index} ${JSON.stringify(piece.text)} has the unknown type ${piece.type}`);
  return piece;
}

function parseTrainerSpec(bytes: Uint8Array, file: string): TrainerSpec {
  const spec: TrainerSpec = { modelType: 1, byteFallback: false, treatWhitespaceAsSuffix: false, unkPiece: '<unk>', bosPiece: '<s>', eosPiece: '</s>' };
  const text = (g: ProtoField, name: string, fallback: string): string => stringOf(expect(g, WIRE_BYTES, file, name)) || fallback;
  for (const g of readMessage(bytes, protoFail(file, 'trainer_spec'))) {
    if (g.num === 3) spec.modelType = expect(g, WIRE_VARINT, file, 'model_type').int;
    else if (g.num === 24) spec.treatWhitespaceAsSuffix = expect(g, WIRE_VARINT, file, 'treat_whitespace_as_suffix').int !== 0;
    else if (g.num === 35) spec.byteFallback = expect(g, WIRE_VARINT, file, 'byte_fallback').int !== 0;
    else if (g.num === 44) spec.unkSurface = stringOf(expect(g, WIRE_BYTES, file, 'unk_surface'));
    else if (g.num === 45) spec.unkPiece = text(g, 'unk_piece', '<unk>');
    else if (g.num === 46) spec.bosPiece = text(g, 'bos_piece', '<s>');
    else if (g.num === 47) spec.eosPiece = text(g, 'eos_piece', '</s>');
  }
  return spec;
}

function parseNormalizerSpec(bytes: Uint8Array, file: string, where: string): NormalizerSpec {
  // proto2 defaults: add_dummy_prefix, remove_extra_whitespaces and escape_whitespaces are true
  const spec: NormalizerSpec = { name: '', charsmap: new Uint8Array(0), addDummyPrefix: true, removeExtraWhitespaces: true, escapeWhitespaces: true };
  for (const g of readMessage(bytes, protoFail(file, where))) {
    if (g.num === 1) spec.name = stringOf(expect(g, WIRE_BYTES, file, 'name'));
    else if (g.num === 2) spec.charsmap = expect(g, WIRE_BYTES, file, 'precompiled_charsmap').bytes;
    else if (g.num === 3) spec.addDummyPrefix = expect(g, WIRE_VARINT, file, 'add_dummy_prefix').int !== 0;
    else if (g.num === 4) spec.removeExtraWhitespaces = expect(g, WIRE_VARINT, file, 'remove_extra_whitespaces').int !== 0;
    else if (g.num === 5) spec.escapeWhitespaces = expect(g, WIRE_VARINT, file, 'escape_whitespaces').int !== 0;
  }
  return spec;
}

// ---- the tokenizer ----

/** (piece bytes as latin1, id, normalized byte where it begins) */
type Segment = [string, number, number];

class SpTokenizer implements SentencePieceTokenizer {
  readonly kind = 'sentencepiece' as const;
  readonly vocabSize: number;
  readonly specialIds: ReadonlySet<number>;
  readonly bosId?: number;
  readonly eosId?: number;
  private readonly pieces: SpPiece[];
  /** NORMAL, USER_DEFINED and UNUSED pieces (merge candidates), as the library's pieces_. */
  private readonly normalIds = new Map<string, number>();
  /** CONTROL, UNKNOWN and BYTE pieces, as the library's reserved_id_map_. */
  private readonly reservedIds = new Map<string, number>();
  /** Per id: 0 for the best score, 1 for the next distinct score, ... (heap priority). */
  private readonly scoreRank: Int32Array;
  private readonly byteIds = new Int32Array(256).fill(-1);
  private readonly unkId: number;
  private readonly maxPieceBytes: number;
  private readonly userDefined: PrefixMatcher | null;
  private readonly normalizer: Normalizer;
  private readonly denormalizer?: Normalizer;
  private readonly textById: string[];

  constructor(readonly name: string, private readonly model: ModelProto) {
    this.pieces = model.pieces;
    this.vocabSize = model.pieces.length;
    this.unkId = this.indexPieces();
    this.scoreRank = rankScores(model.pieces);
    this.maxPieceBytes = model.pieces.reduce((m, p) => Math.max(m, p.key.length), 0);
    const userPieces = model.pieces.filter((p) => p.type === PieceType.USER_DEFINED).map((p) => Buffer.from(p.key, 'latin1'));
    this.userDefined = userPieces.length ? new PrefixMatcher(userPieces) : null;
    this.normalizer = new Normalizer(model.normalizer, model.trainer.treatWhitespaceAsSuffix, this.userDefined, name);
    if (model.denormalizer?.charsmap.length) this.denormalizer = new Normalizer(model.denormalizer, false, null, name);
    this.textById = model.pieces.map(displayText);
    this.specialIds = new Set(this.idsOfType(PieceType.CONTROL));
    this.bosId = this.controlId(model.trainer.bosPiece);
    this.eosId = this.controlId(model.trainer.eosPiece);
  }

  /** The library's InitializePieces checks; returns the unknown piece's id. */
  private indexPieces(): number {
    let unkId = -1;
    const { byteFallback } = this.model.trainer;
    this.pieces.forEach((p, id) => {
      const normal = p.type === PieceType.NORMAL || p.type === PieceType.USER_DEFINED || p.type === PieceType.UNUSED;
      const map = normal ? this.normalIds : this.reservedIds;
      if (map.has(p.key)) throw new BadInputError(`${this.name}: the piece ${JSON.stringify(p.text)} is defined twice (ids ${map.get(p.key)} and ${id})`);
      map.set(p.key, id);
      if (p.type === PieceType.UNKNOWN) {
        if (unkId >= 0) throw new BadInputError(`${this.name}: two unknown pieces (ids ${unkId} and ${id})`);
        unkId = id;
      }
      if (p.type === PieceType.BYTE) {
        const byte = /^<0x([0-9A-F]{2})>$/.exec(p.text);
        if (!byteFallback) throw new BadInputError(`${this.name}: the byte piece ${JSON.stringify(p.text)} is present although byte_fallback is false`);
        if (!byte) throw new BadInputError(`${this.name}: the byte piece ${JSON.stringify(p.text)} is not of the form <0xNN>`);
        this.byteIds[parseInt(byte[1], 16)] = id;
      }
    });
    if (unkId < 0) throw new BadInputError(`${this.name}: no unknown piece (<unk>) is defined`);
    if (byteFallback && this.byteIds.includes(-1)) throw new BadInputError(`${this.name}: byte_fallback is true but not all 256 <0xNN> byte pieces are present`);
    return unkId;
  }

  private idsOfType(type: number): number[] {
    return this.pieces.flatMap((p, id) => (p.type === type ? [id] : []));
  }

  /** bos_id()/eos_id(): the named piece's id if it is a control piece. */
  private controlId(piece: string): number | undefined {
    const id = this.pieceToId(bytesKey(utf8Bytes(piece)));
    return this.pieces[id].type === PieceType.CONTROL ? id : undefined;
  }

  private pieceToId(key: string): number {
    return this.reservedIds.get(key) ?? this.normalIds.get(key) ?? this.unkId;
  }

  encode(text: string): number[] {
    return this.encodeWithStarts(text).ids;
  }

  tokenize(text: string, baseOffset = 0): TokenInfo[] {
    const { ids, startBytes } = this.encodeWithStarts(text);
    return tileTokens(text, ids, startBytes, (id) => this.textById[id], baseOffset);
  }

  /** Ids and, per id, the original byte its text starts at. */
  private encodeWithStarts(text: string): { ids: number[]; startBytes: number[] } {
    const normalized = this.normalizer.normalize(utf8Bytes(text));
    const ids: number[] = [];
    const startBytes: number[] = [];
    if (!normalized.bytes.length) return { ids, startBytes };
    const startOf = (q: number): number => (normalized.chunkFirst[q] ? normalized.origStart[q] : normalized.origEnd[q]);
    let previousUnk = false;
    for (const [piece, id, begin] of this.bpe(normalized)) {
      const unknown = this.pieces[id].type === PieceType.UNKNOWN;
      if (unknown && this.model.trainer.byteFallback) {
        for (let k = 0; k < piece.length; k++) {
          ids.push(this.byteIds[piece.charCodeAt(k)]);
          startBytes.push(startOf(begin + k));
        }
      } else if (!(unknown && previousUnk)) {
        ids.push(id);
        startBytes.push(startOf(begin));
      } // else: a run of unknown pieces is one <unk>
      previousUnk = unknown;
    }
    return { ids, startBytes };
  }

  /** bpe_model.cc SampleEncode without dropout: the final pieces with their normalized offsets. */
  private bpe(normalized: Normalized): Segment[] {
    const bytes = normalized.bytes;
    const key = bytesKey(bytes);
    const startsAll = new Int32Array(bytes.length);
    const frozen = new Uint8Array(bytes.length);
    let count = 0;
    for (let p = 0; p < bytes.length; count++) {
      const user = this.userDefined?.match(bytes, p, bytes.length) ?? 0;
      startsAll[count] = p;
      frozen[count] = user > 0 ? 1 : 0;
      p += user || Math.min(oneCharLength(bytes[p]), bytes.length - p);
    }
    const starts = startsAll.subarray(0, count);
    const endOf = (symbol: number): number => (symbol < count ? starts[symbol] : bytes.length);
    const splitOf = new Map<string, [string, string]>(); // merged UNUSED piece → its two halves
    const next = mergePairs(
      count,
      (left, right, after) => {
        if (frozen[left] || frozen[right]) return NO_MERGE;
        const a = starts[left];
        const c = endOf(after);
        if (c - a > this.maxPieceBytes) return NO_MERGE;
        const piece = key.slice(a, c);
        const id = this.normalIds.get(piece);
        if (id === undefined) return NO_MERGE;
        if (this.pieces[id].type === PieceType.UNUSED) splitOf.set(piece, [key.slice(a, starts[right]), key.slice(starts[right], c)]);
        return this.scoreRank[id];
      },
      () => undefined,
    );
    const segments: Segment[] = [];
    for (let i = 0; i < count; i = next[i]) this.resegment(key.slice(starts[i], endOf(next[i])), starts[i], splitOf, segments);
    return segments;
  }

  /** An UNUSED piece is replaced by the two pieces it was merged from, recursively. */
  private resegment(piece: string, begin: number, splitOf: Map<string, [string, string]>, out: Segment[]): void {
    const id = this.pieceToId(piece);
    const halves = this.pieces[id].type === PieceType.UNUSED ? splitOf.get(piece) : undefined;
    if (!halves) {
      out.push([piece, id, begin]);
      return;
    }
    this.resegment(halves[0], begin, splitOf, out);
    this.resegment(halves[1], begin + halves[0].length, splitOf, out);
  }

  decode(ids: number[]): string {
    for (const id of ids) checkTokenId(id, this.vocabSize, this.name);
    const { addDummyPrefix, removeExtraWhitespaces } = this.model.normalizer;
    let text = '';
    let byteRun: number[] = [];
    let atStart = true; // is_bos_ws: a leading "▁" may still be dropped
    let startSpaceSeen = false;
    const flushBytes = (): void => {
      text += decodeBytePieces(byteRun);
      byteRun = [];
    };
    for (const id of ids) {
      const p = this.pieces[id];
      if (p.type === PieceType.BYTE) {
        byteRun.push(parseInt(p.text.slice(3, 5), 16));
        continue;
      }
      flushBytes();
      if (startSpaceSeen || text.length) atStart = false;
      if (p.type === PieceType.CONTROL) {
        startSpaceSeen = false;
        continue;
      }
      if (p.type === PieceType.UNKNOWN) {
        text += this.model.trainer.unkSurface ?? DEFAULT_UNK_SURFACE;
        startSpaceSeen = false;
        continue;
      }
      let piece = p.text;
      startSpaceSeen = false;
      if (atStart && (addDummyPrefix || removeExtraWhitespaces) && piece.startsWith(SPACE_SYMBOL)) {
        piece = piece.slice(1);
        startSpaceSeen = !removeExtraWhitespaces; // removing extra whitespace drops every leading "▁"
      }
      text += piece.replaceAll(SPACE_SYMBOL, ' ');
    }
    flushBytes();
    return this.denormalizer ? decodeUtf8(this.denormalizer.normalize(utf8Bytes(text)).bytes) : text;
  }

  tokenText(id: number): string {
    checkTokenId(id, this.vocabSize, this.name);
    return this.textById[id];
  }

  tokenBytes(id: number): number {
    checkTokenId(id, this.vocabSize, this.name);
    const p = this.pieces[id];
    if (this.isBoundary(id)) return 0;
    if (p.type === PieceType.BYTE) return 1;
    return Buffer.byteLength(p.text.replaceAll(SPACE_SYMBOL, ' '), 'utf8');
  }

  pieceOf(id: number): string {
    checkTokenId(id, this.vocabSize, this.name);
    return this.pieces[id].text;
  }

  bytesOf(id: number): number {
    checkTokenId(id, this.vocabSize, this.name);
    const p = this.pieces[id];
    if (this.isBoundary(id)) return 0;
    if (p.type === PieceType.BYTE) return 1;
    return Buffer.byteLength(p.text.startsWith(SPACE_SYMBOL) ? p.text.slice(1) : p.text, 'utf8');
  }

  hasLeadingSpace(id: number): boolean {
    checkTokenId(id, this.vocabSize, this.name);
    const p = this.pieces[id];
    return !this.isBoundary(id) && p.type !== PieceType.BYTE && p.text.startsWith(SPACE_SYMBOL);
  }

  isBoundary(id: number): boolean {
    checkTokenId(id, this.vocabSize, this.name);
    const t = this.pieces[id].type;
    return t === PieceType.CONTROL || t === PieceType.UNKNOWN || t === PieceType.UNUSED;
  }
}

/** Display text: "▁" as a space; a byte piece as its character if ASCII, else U+FFFD; control/unknown as named. */
function displayText(p: SpPiece): string {
  if (p.type === PieceType.BYTE) {
    const byte = parseInt(p.text.slice(3, 5), 16);
    return byte < 0x80 ? String.fromCharCode(byte) : '\uFFFD';
  }
  if (p.type === PieceType.CONTROL || p.type === PieceType.UNKNOWN) return p.text;
  return p.text.replaceAll(SPACE_SYMBOL, ' ');
}

/** Per piece: the rank of its score among the distinct scores, best (highest) first. */
function rankScores(pieces: SpPiece[]): Int32Array {
  const distinct = [...new Set(pieces.map((p) => p.score))].sort((a, b) => b - a);
  if (distinct.length > MAX_RANK) throw new BadInputError(`more than ${MAX_RANK} distinct piece scores`);
  const rankOf = new Map(distinct.map((s, r) => [s, r]));
  return Int32Array.from(pieces, (p) => rankOf.get(p.score)!);
}

/** util.h OneCharLen: the UTF-8 length its lead byte announces. */
function oneCharLength(lead: number): number {
  return [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4][lead >> 4];
}

/** A run of byte pieces as text: one character per valid UTF-8 sequence, U+FFFD per invalid byte. */
function decodeBytePieces(bytes: number[]): string {
  if (!bytes.length) return '';
  const buf = Uint8Array.from(bytes);
  let text = '';
  for (let at = 0; at < buf.length; ) {
    const length = validUtf8Length(buf, at, buf.length);
    text += length ? decodeUtf8(buf.subarray(at, at + length)) : '\uFFFD';
    at += length || 1;
  }
  return text;
}
