/**
 * TensorBoard event files (`events.out.tfevents.*`), read without TensorFlow or a protobuf library.
 *
 * Framing follows tensorboard's `summary/writer/record_writer.py`: each record is
 * `uint64 LE length`, `uint32 LE masked CRC-32C of those 8 bytes`, `data`, `uint32 LE masked
 * CRC-32C of data`; mask = ((crc >>> 15) | (crc << 17)) + 0xa282ead8 mod 2^32, CRC-32C being the
 * reflected Castagnoli polynomial 0x82F63B78 with init/xorout 0xFFFFFFFF (its
 * `tensorflow_stub/pywrap_tensorflow.py`). The data is a protobuf `Event` (event.proto: wall_time=1
 * double, step=2 int64, file_version=3, summary=5, source_metadata=10); `Summary.value`=1 holds
 * `Value`s (summary.proto: tag=1, simple_value=2 float, tensor=8, metadata=9). A scalar comes as
 * `simple_value` (torch `add_scalar`, TF1), as a rank-0 `TensorProto` with `tensor_content` (TF2
 * `tf.summary.scalar`), or as a `TensorProto` with one `float_val` and no shape (torch
 * `add_scalar(new_style=True)`); tensor.proto / types.proto give the field numbers and dtypes.
 *
 * A record with a bad CRC ends the file's reading with one warning (its offset, what was wrong),
 * keeping everything before it. A record cut short at the end is an error for a finished file (as
 * TensorBoard's reader says, "truncated record in data") and, for a file still being written,
 * simply the place to resume from.
 */
import type { ParseStep, RunPoint, RunReadResult, StreamParser } from './series';
import { WarningBudget } from './series';
import type { IncrementalRead } from './lines';
import { displayNameOf, readFromOffset, readWholeFile } from './lines';

// ---------------------------------------------------------------------------------------------
// CRC-32C

const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    table[i] = c >>> 0;
  }
  return table;
})();

/** CRC-32C (Castagnoli) of `bytes[start, end)`. */
export function crc32c(bytes: Uint8Array, start = 0, end = bytes.length): number {
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = CRC32C_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** TFRecord's masked CRC: rotate right by 15 bits, add a constant (so CRCs of CRCs stay useful). */
export function maskCrc(crc: number): number {
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) % 0x100000000;
}

// ---------------------------------------------------------------------------------------------
// TFRecord framing

const HEADER_BYTES = 12; // uint64 length + uint32 masked crc
const FOOTER_BYTES = 4;
/** A record longer than this is not a scalar event (or the length is garbage that passed its CRC). */
const MAX_RECORD_BYTES = 256 << 20;

export interface TfRecord {
  /** Absolute byte offset of the record's header in the file. */
  offset: number;
  data: Uint8Array;
}

export interface RecordScan {
  records: TfRecord[];
  /** Bytes of the chunk taken by whole, valid records. */
  consumed: number;
  /** Set when reading cannot go on: a bad CRC, an absurd length, or (at the end) a cut record. */
  problem?: string;
}

/**
 * The whole records in `chunk`, whose first byte is at file offset `baseOffset`. An incomplete
 * last record is left unconsumed (more bytes may come) unless `atEnd`, when it is the problem.
 */
export function scanTfRecords(chunk: Uint8Array, baseOffset: number, atEnd: boolean): RecordScan {
  const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  const records: TfRecord[] = [];
  let pos = 0;
  while (pos < chunk.length) {
    const at = baseOffset + pos;
    const left = chunk.length - pos;
    if (left < HEADER_BYTES) return cutShort(records, pos, atEnd, at, `header: ${left} of ${HEADER_BYTES} bytes`);
    const lengthLow = view.getUint32(pos, true);
    const lengthHigh = view.getUint32(pos + 4, true);
    if (maskCrc(crc32c(chunk, pos, pos + 8)) !== view.getUint32(pos + 8, true)) {
      return { records, consumed: pos, problem: `corrupt record at offset ${at}: the length's CRC does not match` };
    }
    const length = lengthHigh * 0x100000000 + lengthLow;
    if (length > MAX_RECORD_BYTES) {
      return { records, consumed: pos, problem: `record at offset ${at} declares ${length} bytes, more than the ${MAX_RECORD_BYTES >> 20} MiB an event can be` };
    }
    const dataStart = pos + HEADER_BYTES;
    const dataEnd = dataStart + length;
    if (chunk.length < dataEnd) return cutShort(records, pos, atEnd, at, `data: ${chunk.length - dataStart} of ${length} bytes`);
    if (chunk.length < dataEnd + FOOTER_BYTES) return cutShort(records, pos, atEnd, at, `data crc: ${chunk.length - dataEnd} of ${FOOTER_BYTES} bytes`);
    if (maskCrc(crc32c(chunk, dataStart, dataEnd)) !== view.getUint32(dataEnd, true)) {
      return { records, consumed: pos, problem: `corrupt record at offset ${at}: the data's CRC does not match` };
    }
    records.push({ offset: at, data: chunk.subarray(dataStart, dataEnd) });
    pos = dataEnd + FOOTER_BYTES;
  }
  return { records, consumed: pos };
}

function cutShort(records: TfRecord[], pos: number, atEnd: boolean, at: number, what: string): RecordScan {
  if (!atEnd) return { records, consumed: pos };
  return { records, consumed: pos, problem: `truncated record at offset ${at} (${what})` };
}

// ---------------------------------------------------------------------------------------------
// Protobuf wire format (only what Event needs)

class MalformedProto extends Error {}

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_BYTES = 2;
const WIRE_FIXED32 = 5;

/** A cursor over one protobuf message. */
class ProtoReader {
  private pos: number;
  private readonly view: DataView;

  constructor(private readonly bytes: Uint8Array, private readonly end = bytes.length, start = 0) {
    this.pos = start;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  /** The next field's number and wire type. */
  tag(): { field: number; wire: number } {
    const key = this.varint();
    return { field: Math.floor(key / 8), wire: key % 8 };
  }

  /** An unsigned varint, exact up to 2^53 (larger ones go through BigInt). */
  varint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 7; i++) {
      const b = this.byte();
      value += (b & 0x7f) * scale;
      if (b < 0x80) return value;
      scale *= 128;
    }
    return Number(this.varintTail(BigInt(value), 49n));
  }

  /** A varint read as a two's-complement int64 (how negative int32/int64 values are written). */
  signedVarint(): number {
    const start = this.pos;
    const small = this.varint();
    if (this.pos - start <= 7) return small; // at most 49 bits: not negative, exact
    this.pos = start;
    return Number(BigInt.asIntN(64, this.bigVarint()));
  }

  private bigVarint(): bigint {
    return this.varintTail(0n, 0n);
  }

  private varintTail(value: bigint, shift: bigint): bigint {
    for (let s = shift; s < 70n; s += 7n) {
      const b = this.byte();
      value |= BigInt(b & 0x7f) << s;
      if (b < 0x80) return BigInt.asUintN(64, value);
    }
    throw new MalformedProto('varint longer than 10 bytes');
  }

  private byte(): number {
    if (this.pos >= this.end) throw new MalformedProto('message ends inside a field');
    return this.bytes[this.pos++];
  }

  float(): number {
    this.need(4);
    const v = this.view.getFloat32(this.pos, true);
    this.pos += 4;
    return v;
  }

  double(): number {
    this.need(8);
    const v = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }

  /** A length-delimited field's bytes (a view, not a copy). */
  bytesField(): Uint8Array {
    const length = this.varint();
    this.need(length);
    const out = this.bytes.subarray(this.pos, this.pos + length);
    this.pos += length;
    return out;
  }

  string(): string {
    const b = this.bytesField();
    return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8');
  }

  skip(wire: number): void {
    if (wire === WIRE_VARINT) this.varint();
    else if (wire === WIRE_FIXED64) this.advance(8);
    else if (wire === WIRE_BYTES) this.bytesField();
    else if (wire === WIRE_FIXED32) this.advance(4);
    else throw new MalformedProto(`unsupported wire type ${wire}`);
  }

  private advance(n: number): void {
    this.need(n);
    this.pos += n;
  }

  private need(n: number): void {
    if (this.pos + n > this.end) throw new MalformedProto('message ends inside a field');
  }
}

/** Calls `read` once per element of a repeated scalar field, packed (wire 2) or not. */
function repeated(r: ProtoReader, wire: number, elementWire: number, read: (rr: ProtoReader) => void): void {
  if (wire === elementWire) {
    read(r);
    return;
  }
  if (wire !== WIRE_BYTES) throw new MalformedProto(`wire type ${wire} where ${elementWire} or packed was expected`);
  const packed = r.bytesField();
  const inner = new ProtoReader(packed);
  while (!inner.done) read(inner);
}

/** Decodes a sub-message with `onField`, skipping fields it does not take. */
function message(bytes: Uint8Array, onField: (r: ProtoReader, field: number, wire: number) => boolean): void {
  const r = new ProtoReader(bytes);
  while (!r.done) {
    const { field, wire } = r.tag();
    if (!onField(r, field, wire)) r.skip(wire);
  }
}

function expectWire(wire: number, want: number, what: string): void {
  if (wire !== want) throw new MalformedProto(`${what} has wire type ${wire}, not ${want}`);
}

// ---------------------------------------------------------------------------------------------
// Event, Summary.Value, TensorProto

/** TensorFlow's DataType enum (types.proto), the numeric ones a scalar can have. */
export const DataType = {
  DT_FLOAT: 1, DT_DOUBLE: 2, DT_INT32: 3, DT_UINT8: 4, DT_INT16: 5, DT_INT8: 6, DT_STRING: 7,
  DT_INT64: 9, DT_BOOL: 10, DT_BFLOAT16: 14, DT_UINT16: 17, DT_HALF: 19, DT_UINT32: 22, DT_UINT64: 23,
} as const;

export interface SummaryValue {
  tag: string;
  /** The scalar this value holds, or undefined (an image, a histogram, a non-scalar tensor). */
  scalar?: number;
  /** How the scalar was stored. */
  encoding?: 'simple_value' | 'tensor_content' | 'typed_val';
  pluginName?: string;
}

export interface DecodedEvent {
  wallTime?: number;
  /** Absent on the wire means 0 (proto3). */
  step: number;
  fileVersion?: string;
  sourceWriter?: string;
  values: SummaryValue[];
}

/** One `Event` message. Throws MalformedProto (internal) on bytes that are not one. */
export function decodeEvent(data: Uint8Array): DecodedEvent {
  const event: DecodedEvent = { step: 0, values: [] };
  message(data, (r, field, wire) => {
    if (field === 1) {
      expectWire(wire, WIRE_FIXED64, 'Event.wall_time');
      event.wallTime = r.double();
    } else if (field === 2) {
      expectWire(wire, WIRE_VARINT, 'Event.step');
      event.step = r.signedVarint();
    } else if (field === 3) {
      expectWire(wire, WIRE_BYTES, 'Event.file_version');
      event.fileVersion = r.string();
    } else if (field === 5) {
      expectWire(wire, WIRE_BYTES, 'Event.summary');
      decodeSummary(r.bytesField(), event.values);
    } else if (field === 10) {
      expectWire(wire, WIRE_BYTES, 'Event.source_metadata');
      event.sourceWriter = stringField(r.bytesField(), 1); // SourceMetadata.writer
    } else return false;
    return true;
  });
  return event;
}

function decodeSummary(bytes: Uint8Array, into: SummaryValue[]): void {
  message(bytes, (r, field, wire) => {
    if (field !== 1 || wire !== WIRE_BYTES) return false;
    into.push(decodeValue(r.bytesField()));
    return true;
  });
}

function decodeValue(bytes: Uint8Array): SummaryValue {
  const value: SummaryValue = { tag: '' };
  let nodeName = '';
  message(bytes, (r, field, wire) => {
    if (field === 1 && wire === WIRE_BYTES) value.tag = r.string();
    else if (field === 7 && wire === WIRE_BYTES) nodeName = r.string();
    else if (field === 2 && wire === WIRE_FIXED32) {
      value.scalar = r.float();
      value.encoding = 'simple_value';
    } else if (field === 8 && wire === WIRE_BYTES) {
      const t = decodeTensor(r.bytesField());
      const scalar = tensorScalar(t);
      if (scalar !== undefined) {
        value.scalar = scalar;
        value.encoding = t.content ? 'tensor_content' : 'typed_val';
      }
    } else if (field === 9 && wire === WIRE_BYTES) value.pluginName = pluginNameOf(r.bytesField());
    else return false;
    return true;
  });
  if (!value.tag) value.tag = nodeName; // summaries from before `tag` existed
  return value;
}

/** SummaryMetadata.plugin_data (1) → PluginData.plugin_name (1). */
function pluginNameOf(metadata: Uint8Array): string | undefined {
  const pluginData = bytesFieldOf(metadata, 1);
  return pluginData && stringField(pluginData, 1);
}

/** The last occurrence of length-delimited field `fieldNo` in a message (proto3: last one wins). */
function bytesFieldOf(bytes: Uint8Array, fieldNo: number): Uint8Array | undefined {
  let found: Uint8Array | undefined;
  message(bytes, (r, field, wire) => {
    if (field !== fieldNo || wire !== WIRE_BYTES) return false;
    found = r.bytesField();
    return true;
  });
  return found;
}

function stringField(bytes: Uint8Array, fieldNo: number): string | undefined {
  const b = bytesFieldOf(bytes, fieldNo);
  return b && Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8');
}

/** The last varint field `fieldNo` as a signed int64, or 0 when absent. */
function varintFieldOf(bytes: Uint8Array, fieldNo: number): number {
  let found = 0;
  message(bytes, (r, field, wire) => {
    if (field !== fieldNo || wire !== WIRE_VARINT) return false;
    found = r.signedVarint();
    return true;
  });
  return found;
}

interface DecodedTensor {
  dtype: number;
  /** Dimension sizes; undefined when the tensor has no tensor_shape field at all. */
  shape?: number[];
  unknownRank?: boolean;
  content?: Uint8Array;
  /** The first element of whichever typed `*_val` field was present, and how many there were. */
  firstTyped?: number;
  typedCount: number;
  /** `firstTyped` is the raw bits of a 16-bit float (half_val), decoded once the dtype is known. */
  typedIsHalf?: boolean;
  hasStrings?: boolean;
}

function decodeTensor(bytes: Uint8Array): DecodedTensor {
  const t: DecodedTensor = { dtype: 0, typedCount: 0 };
  const take = (v: number) => {
    if (t.typedCount++ === 0) t.firstTyped = v;
  };
  message(bytes, (r, field, wire) => {
    switch (field) {
      case 1: expectWire(wire, WIRE_VARINT, 'TensorProto.dtype'); t.dtype = r.varint(); return true;
      case 2: expectWire(wire, WIRE_BYTES, 'TensorProto.tensor_shape'); decodeShape(r.bytesField(), t); return true;
      case 4: expectWire(wire, WIRE_BYTES, 'TensorProto.tensor_content'); t.content = r.bytesField(); return true;
      case 5: repeated(r, wire, WIRE_FIXED32, (rr) => take(rr.float())); return true; // float_val
      case 6: repeated(r, wire, WIRE_FIXED64, (rr) => take(rr.double())); return true; // double_val
      case 7: repeated(r, wire, WIRE_VARINT, (rr) => take(rr.signedVarint())); return true; // int_val
      case 8: t.hasStrings = true; return false; // string_val
      case 10: repeated(r, wire, WIRE_VARINT, (rr) => take(rr.signedVarint())); return true; // int64_val
      case 11: repeated(r, wire, WIRE_VARINT, (rr) => take(rr.varint() ? 1 : 0)); return true; // bool_val
      case 13: t.typedIsHalf = true; repeated(r, wire, WIRE_VARINT, (rr) => take(rr.varint())); return true; // half_val
      case 16: repeated(r, wire, WIRE_VARINT, (rr) => take(rr.varint())); return true; // uint32_val
      case 17: repeated(r, wire, WIRE_VARINT, (rr) => take(rr.varint())); return true; // uint64_val
      default: return false;
    }
  });
  return t;
}

/** TensorShapeProto: dim=2 (Dim.size=1), unknown_rank=3. */
function decodeShape(bytes: Uint8Array, t: DecodedTensor): void {
  const dims: number[] = [];
  message(bytes, (r, field, wire) => {
    if (field === 2 && wire === WIRE_BYTES) dims.push(varintFieldOf(r.bytesField(), 1)); // Dim.size else if (field === 3 && wire === WIRE_VARINT) t.unknownRank = r.varint() !== 0;
    else return false;
    return true;
  });
  t.shape = dims;
}

/** The one value of a one-element numeric tensor, or undefined for anything else. */
function tensorScalar(t: DecodedTensor): number | undefined {
  if (t.hasStrings || t.dtype === DataType.DT_STRING || t.unknownRank) return undefined;
  const elements = t.shape ? t.shape.reduce((a, d) => a * d, 1) : t.content ? undefined : t.typedCount;
  if (t.content) {
    const size = ELEMENT_BYTES[t.dtype];
    if (!size || t.content.length !== size || (elements !== undefined && elements !== 1)) return undefined;
    return contentScalar(t.content, t.dtype);
  }
  if (elements !== 1 || t.firstTyped === undefined) return undefined;
  return t.typedIsHalf ? halfBits(t.firstTyped, t.dtype) : t.firstTyped;
}

const ELEMENT_BYTES: Record<number, number> = {
  [DataType.DT_FLOAT]: 4, [DataType.DT_DOUBLE]: 8, [DataType.DT_INT32]: 4, [DataType.DT_UINT8]: 1,
  [DataType.DT_INT16]: 2, [DataType.DT_INT8]: 1, [DataType.DT_INT64]: 8, [DataType.DT_BOOL]: 1,
  [DataType.DT_BFLOAT16]: 2, [DataType.DT_UINT16]: 2, [DataType.DT_HALF]: 2, [DataType.DT_UINT32]: 4,
  [DataType.DT_UINT64]: 8,
};

/** tensor_content holds the element in little-endian machine layout. */
function contentScalar(c: Uint8Array, dtype: number): number | undefined {
  const v = new DataView(c.buffer, c.byteOffset, c.byteLength);
  switch (dtype) {
    case DataType.DT_FLOAT: return v.getFloat32(0, true);
    case DataType.DT_DOUBLE: return v.getFloat64(0, true);
    case DataType.DT_INT32: return v.getInt32(0, true);
    case DataType.DT_UINT8: return v.getUint8(0);
    case DataType.DT_INT16: return v.getInt16(0, true);
    case DataType.DT_INT8: return v.getInt8(0);
    case DataType.DT_INT64: return Number(v.getBigInt64(0, true));
    case DataType.DT_BOOL: return v.getUint8(0) ? 1 : 0;
    case DataType.DT_UINT16: return v.getUint16(0, true);
    case DataType.DT_UINT32: return v.getUint32(0, true);
    case DataType.DT_UINT64: return Number(v.getBigUint64(0, true));
    case DataType.DT_HALF:
    case DataType.DT_BFLOAT16: return halfBits(v.getUint16(0, true), dtype);
    default: return undefined;
  }
}

/** A 16-bit float from its bits: IEEE binary16 for DT_HALF, the top half of a float32 for DT_BFLOAT16. */
function halfBits(bits: number, dtype: number): number {
  if (dtype === DataType.DT_BFLOAT16) {
    const f = new DataView(new ArrayBuffer(4));
    f.setUint32(0, (bits & 0xffff) << 16);
    return f.getFloat32(0);
  }
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

// ---------------------------------------------------------------------------------------------
// The stream parser and file readers

/** Scalar points from consecutive chunks of one event file. */
export class TfEventsParser implements StreamParser {
  private offset: number;
  private readonly badEvents = new WarningBudget(5);

  /** `startOffset`: where in the file the first chunk begins (for resuming and for messages). */
  constructor(private readonly fileName: string, startOffset = 0) {
    this.offset = startOffset;
  }

  push(chunk: Buffer, atEnd: boolean): ParseStep {
    const scan = scanTfRecords(chunk, this.offset, atEnd);
    const points: RunPoint[] = [];
    const warnings: string[] = [];
    for (const rec of scan.records) this.collect(rec, points, warnings);
    this.offset += scan.consumed;
    if (scan.problem) warnings.push(`${this.fileName}: ${scan.problem}; the records before it were read, nothing after`);
    return { points, warnings, consumed: scan.consumed, stopped: scan.problem !== undefined };
  }

  private collect(rec: TfRecord, points: RunPoint[], warnings: string[]): void {
    let event: DecodedEvent;
    try {
      event = decodeEvent(rec.data);
    } catch (e) {
      if (!(e instanceof MalformedProto)) throw e;
      this.badEvents.add(warnings, `${this.fileName}: record at offset ${rec.offset} is not a TensorBoard Event (${e.message}); skipped`,
        `${this.fileName}: more records that are not Events; skipped without further warnings`);
      return;
    }
    for (const v of event.values) {
      if (v.scalar === undefined || !v.tag) continue;
      const p: RunPoint = { series: v.tag, step: event.step, value: v.scalar };
      if (event.wallTime !== undefined) p.wallTime = event.wallTime;
      points.push(p);
    }
  }
}

/** Every scalar of a finished event file; a cut or corrupt record ends it with one warning. */
export function readTfEvents(file: string, displayName = displayNameOf(file)): RunReadResult {
  return readWholeFile(file, new TfEventsParser(displayName));
}

/**
 * The scalars of a file being written, from byte `offset` (0, or a previous `nextOffset`): a record
 * not yet complete is no error, `nextOffset` points at it.
 */
export function readTfEventsFrom(file: string, offset: number, displayName = displayNameOf(file)): IncrementalRead {
  return readFromOffset(file, new TfEventsParser(displayName, offset), offset);
}

/** Scalars from event-file bytes in memory. */
export function parseTfEvents(bytes: Uint8Array, displayName: string, atEnd = true): ParseStep {
  return new TfEventsParser(displayName).push(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), atEnd);
}

/** TensorBoard's writers name files `events.out.tfevents.<time>.<host>.<pid>.<uid>`; `*.tfevents` too. */
export function isTfEventsName(name: string): boolean {
  return /(^|\.)tfevents(\.|$)/.test(name);
}
