/**
 * Builds pickles and `torch.save`-style zip archives by hand, opcode by opcode (names and bytes
 * as in CPython's pickletools), for tests of the restricted unpickler: tensors with any storage
 * dtype, offset and strides, state dicts, and hostile pickles that call what they must not.
 */
import { storedZip } from './zip';

/** A Python tuple in a value passed to `PickleWriter.value`. */
export class PyTuple {
  constructor(readonly items: unknown[]) {}
}
export const tuple = (...items: unknown[]) => new PyTuple(items);

/** A tensor view into a storage, as `torch._utils._rebuild_tensor_v2` receives it. */
export interface TensorRecord {
  storage: string;
  /** Legacy storage type name: FloatStorage, HalfStorage, LongStorage, … */
  storageType: string;
  /** Elements in the storage. */
  numel: number;
  offset?: number;
  shape: number[];
  /** Default: row-major contiguous. */
  stride?: number[];
  location?: string;
}
export const tensor = (t: TensorRecord) => ({ tensorRecord: t });

/** Python float (BINFLOAT) even when the number is integral. */
export const float = (x: number) => ({ pyFloat: x });

/** A dict written as `collections.OrderedDict()` + SETITEMS, as `state_dict()` pickles. */
export const ordered = (entries: [string, unknown][], metadata?: Map<string, unknown>) => ({ orderedEntries: entries, metadata });

export class PickleWriter {
  private readonly parts: Buffer[] = [];

  op(...bytes: number[]): this {
    this.parts.push(Buffer.from(bytes));
    return this;
  }
  raw(b: Buffer | string): this {
    this.parts.push(typeof b === 'string' ? Buffer.from(b, 'latin1') : b);
    return this;
  }
  proto(n: number): this {
    return this.op(0x80, n);
  }
  /** GLOBAL 'module name' (text form, protocols 0–3). */
  global(mod: string, name: string): this {
    return this.op(0x63).raw(`${mod}\n${name}\n`);
  }
  /** SHORT_BINUNICODE module, name; STACK_GLOBAL (protocol 4). */
  stackGlobal(mod: string, name: string): this {
    return this.str(mod).str(name).op(0x93);
  }
  str(s: string): this {
    const b = Buffer.from(s, 'utf8');
    if (b.length < 256) return this.op(0x8c, b.length).raw(b); // SHORT_BINUNICODE
    const len = Buffer.alloc(4);
    len.writeUInt32LE(b.length);
    return this.op(0x58).raw(len).raw(b); // BINUNICODE
  }
  int(n: number | bigint): this {
    if (typeof n === 'number' && Number.isInteger(n) && n >= 0 && n < 256) return this.op(0x4b, n); // BININT1
    if (typeof n === 'number' && Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31) {
      const b = Buffer.alloc(4);
      b.writeInt32LE(n);
      return this.op(0x4a).raw(b); // BININT
    }
    return this.long1(BigInt(n));
  }
  /** LONG1: little-endian two's complement, as short as the value allows. */
  long1(v: bigint): this {
    const bytes: number[] = [];
    let x = v;
    for (;;) {
      bytes.push(Number(x & 0xffn));
      x >>= 8n;
      const sign = bytes[bytes.length - 1] & 0x80;
      if ((x === 0n && !sign) || (x === -1n && sign)) break;
    }
    return this.op(0x8a, bytes.length, ...bytes);
  }
  float(x: number): this {
    const b = Buffer.alloc(8);
    b.writeDoubleBE(x);
    return this.op(0x47).raw(b);
  }
  mark(): this {
    return this.op(0x28);
  }
  stop(): this {
    return this.op(0x2e);
  }

  /** Serialise a JS value: strings, numbers, bigints, booleans, null, arrays (lists), PyTuple, plain objects and Maps (dicts), tensors, ordered dicts. */
  value(v: unknown): this {
    if (v === null || v === undefined) return this.op(0x4e);
    if (v === true) return this.op(0x88);
    if (v === false) return this.op(0x89);
    if (typeof v === 'string') return this.str(v);
    if (typeof v === 'bigint') return this.long1(v);
    if (typeof v === 'number') return Number.isInteger(v) ? this.int(v) : this.float(v);
    if (v instanceof PyTuple) return this.tupleOf(v.items);
    if (Array.isArray(v)) {
      this.op(0x5d); // EMPTY_LIST
      if (v.length) this.mark().items(v).op(0x65); // APPENDS
      return this;
    }
    const o = v as Record<string, unknown>;
    if ('pyFloat' in o) return this.float(o.pyFloat as number);
    if ('tensorRecord' in o) return this.tensor(o.tensorRecord as TensorRecord);
    if ('orderedEntries' in o) return this.orderedDict(o.orderedEntries as [string, unknown][], o.metadata as Map<string, unknown> | undefined);
    const entries = v instanceof Map ? [...v] : Object.entries(o);
    this.op(0x7d); // EMPTY_DICT
    if (entries.length) this.mark().items(entries.flat()).op(0x75); // SETITEMS
    return this;
  }

  private items(vs: unknown[]): this {
    for (const x of vs) this.value(x);
    return this;
  }

  private tupleOf(items: unknown[]): this {
    if (items.length === 0) return this.op(0x29); // EMPTY_TUPLE
    return this.mark().items(items).op(0x74); // TUPLE
  }

  /** What torch.save writes for a tensor: _rebuild_tensor_v2((persistent storage id), offset, size, stride, False, OrderedDict()). */
  tensor(t: TensorRecord): this {
    this.global('torch._utils', '_rebuild_tensor_v2').mark();
    this.mark().str('storage').global('torch', t.storageType).str(t.storage).str(t.location ?? 'cpu').int(t.numel).op(0x74); // TUPLE
    this.op(0x51); // BINPERSID
    this.int(t.offset ?? 0).tupleOf(t.shape).tupleOf(t.stride ?? rowMajor(t.shape)).op(0x89);
    this.global('collections', 'OrderedDict').op(0x29, 0x52); // OrderedDict()
    return this.op(0x74, 0x52); // TUPLE, REDUCE
  }

  /** OrderedDict() REDUCE, SETITEMS, then BUILD with {'_metadata': …} as state_dict() pickles. */
  orderedDict(entries: [string, unknown][], metadata?: Map<string, unknown>): this {
    this.global('collections', 'OrderedDict').op(0x29, 0x52);
    if (entries.length) this.mark().items(entries.flat()).op(0x75);
    if (metadata) this.value(new Map([['_metadata', metadata]])).op(0x62); // BUILD
    return this;
  }

  bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

export function rowMajor(shape: number[]): number[] {
  const stride = new Array<number>(shape.length);
  let s = 1;
  for (let k = shape.length - 1; k >= 0; k--) {
    stride[k] = s;
    s *= shape[k];
  }
  return stride;
}

/** A pickle of `value` at protocol 2 (what torch.save uses). */
export function pickleOf(value: unknown): Buffer {
  return new PickleWriter().proto(2).value(value).stop().bytes();
}

/** A torch.save-style archive: `<name>/data.pkl`, `<name>/byteorder`, `<name>/data/<key>` per storage. */
export function torchArchive(pkl: Buffer, storages: Record<string, Buffer> = {}, name = 'archive'): Buffer {
  return storedZip([
    [`${name}/data.pkl`, pkl],
    [`${name}/byteorder`, Buffer.from('little')],
    ...Object.entries(storages).map(([key, bytes]): [string, Buffer] => [`${name}/data/${key}`, bytes]),
    [`${name}/version`, Buffer.from('3\n')],
  ]);
}

/** Little-endian storage bytes. */
export const f32Bytes = (xs: number[]) => Buffer.from(Float32Array.from(xs).buffer);
export const f64Bytes = (xs: number[]) => Buffer.from(Float64Array.from(xs).buffer);
export const i64Bytes = (xs: (number | bigint)[]) => Buffer.from(BigInt64Array.from(xs.map((x) => BigInt(x))).buffer);
export const u16Bytes = (xs: number[]) => Buffer.from(Uint16Array.from(xs).buffer);
