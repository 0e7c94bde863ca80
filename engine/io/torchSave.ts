/**
 * Writing `torch.save` archives, so that PyTorch scripts can load what Head Lens trains: the zip
 * format PyTorch has written since 1.6 — `<archive>/data.pkl` (pickle protocol 2, as torch.save's
 * default), one `<archive>/data/<key>` entry per tensor storage (little-endian float32),
 * `<archive>/byteorder` and `<archive>/version` (3) — stored, not deflated, each entry's data
 * aligned to 64 bytes with the same padding extra field PyTorch's writer uses. Tensors are
 * pickled as `torch._utils._rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())`
 * with the storage as a persistent id `('storage', torch.FloatStorage, key, 'cpu', numel)`, which
 * is what torch.load (and our own reader, io/torch.ts) resolves. Only plain data is written:
 * dicts, OrderedDicts, lists, strings, numbers, booleans, None and float32 tensors.
 */
import { crc32 } from './zip';
import { atomicWriteFile } from './safetensors';
import type { HostTensor } from './tensor';

/** A value `torch.save` would pickle: `OrderedDict` keeps the state-dict type; a Map is a dict. */
export type TorchValue = string | number | boolean | null | HostTensor | TorchValue[] | Map<string, TorchValue> | OrderedDict;

/** A `collections.OrderedDict` (what `state_dict()` returns). */
export class OrderedDict {
  constructor(readonly entries: Map<string, TorchValue>) {}
}

// pickle opcodes (CPython's pickletools names)
const PROTO = 0x80, STOP = 0x2e, MARK = 0x28, EMPTY_DICT = 0x7d, SETITEMS = 0x75, EMPTY_LIST = 0x5d, APPENDS = 0x65;
const EMPTY_TUPLE = 0x29, TUPLE = 0x74, BINUNICODE = 0x58, BININT1 = 0x4b, BININT2 = 0x4d, BININT = 0x4a, BINFLOAT = 0x47;
const NEWTRUE = 0x88, NEWFALSE = 0x89, NONE = 0x4e, GLOBAL = 0x63, REDUCE = 0x52, BINPERSID = 0x51;

/** Builds the pickle byte by byte; tensors become storages collected on the side. */
class Pickler {
  private readonly parts: Buffer[] = [];
  readonly storages: Buffer[] = [];

  op(...bytes: number[]): this {
    this.parts.push(Buffer.from(bytes));
    return this;
  }

  global(module: string, name: string): this {
    this.op(GLOBAL);
    this.parts.push(Buffer.from(`${module}\n${name}\n`, 'latin1'));
    return this;
  }

  str(s: string): this {
    const b = Buffer.from(s, 'utf8'), len = Buffer.alloc(4);
    len.writeUInt32LE(b.length);
    this.op(BINUNICODE);
    this.parts.push(len, b);
    return this;
  }

  int(n: number): this {
    if (n >= 0 && n < 256) return this.op(BININT1, n);
    if (n >= 0 && n < 65536) return this.op(BININT2, n & 0xff, n >> 8);
    if (!(n >= -(2 ** 31) && n < 2 ** 31)) throw new Error(`torch.save writer: integer ${n} does not fit 32 bits`);
    const b = Buffer.alloc(4);
    b.writeInt32LE(n);
    this.op(BININT);
    this.parts.push(b);
    return this;
  }

  float(x: number): this {
    const b = Buffer.alloc(8);
    b.writeDoubleBE(x); // BINFLOAT is big-endian
    this.op(BINFLOAT);
    this.parts.push(b);
    return this;
  }

  tuple(items: (() => void)[]): this {
    if (!items.length) return this.op(EMPTY_TUPLE);
    this.op(MARK);
    items.forEach((write) => write());
    return this.op(TUPLE);
  }

  value(v: TorchValue): this {
    if (v === null) return this.op(NONE);
    if (typeof v === 'boolean') return this.op(v ? NEWTRUE : NEWFALSE);
    if (typeof v === 'string') return this.str(v);
    if (typeof v === 'number') return Number.isInteger(v) ? this.int(v) : this.float(v);
    if (Array.isArray(v)) return this.list(v);
    if (v instanceof OrderedDict) return this.global('collections', 'OrderedDict').op(EMPTY_TUPLE, REDUCE).items(v.entries);
    if (v instanceof Map) return this.op(EMPTY_DICT).items(v);
    return this.tensor(v);
  }

  private list(items: TorchValue[]): this {
    this.op(EMPTY_LIST);
    if (!items.length) return this;
    this.op(MARK);
    items.forEach((x) => this.value(x));
    return this.op(APPENDS);
  }

  private items(entries: Map<string, TorchValue>): this {
    if (!entries.size) return this;
    this.op(MARK);
    for (const [k, x] of entries) this.str(k).value(x);
    return this.op(SETITEMS);
  }

  /** `_rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())`, contiguous. */
  private tensor(t: HostTensor): this {
    if (t.dtype !== 'float32') throw new Error('torch.save writer: only float32 tensors are written');
    const key = String(this.storages.length);
    this.storages.push(Buffer.from(Float32Array.from(t.values).buffer));
    const stride = t.shape.map((_, i) => t.shape.slice(i + 1).reduce((a, b) => a * b, 1));
    this.global('torch._utils', '_rebuild_tensor_v2');
    this.tuple([
      () => this.tuple([() => this.str('storage'), () => this.global('torch', 'FloatStorage'), () => this.str(key), () => this.str('cpu'), () => this.int(t.values.length)]).op(BINPERSID),
      () => this.int(0),
      () => this.tuple(t.shape.map((d) => () => this.int(d))),
      () => this.tuple(stride.map((s) => () => this.int(s))),
      () => this.op(NEWFALSE),
      () => this.global('collections', 'OrderedDict').op(EMPTY_TUPLE, REDUCE),
    ]);
    return this.op(REDUCE);
  }

  bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** The pickle of `root` (protocol 2) and the storages its tensors refer to, by key. */
export function pickleForTorch(root: TorchValue): { pickle: Buffer; storages: Buffer[] } {
  const p = new Pickler().op(PROTO, 2).value(root).op(STOP);
  return { pickle: p.bytes(), storages: p.storages };
}

// ---- the zip container ----

const ALIGN = 64;
const DOS_DATE_1980 = 0x21; // 1980-01-01, what zip writers put when the time does not matter

/** PyTorch's writer pads each local header with an extra field ('FB') so that the data is 64-byte aligned. */
function paddingExtra(headerEnd: number): Buffer {
  let pad = (ALIGN - (headerEnd % ALIGN)) % ALIGN;
  if (pad && pad < 4) pad += ALIGN; // the extra field's own id + length take 4 bytes
  if (!pad) return Buffer.alloc(0);
  const b = Buffer.alloc(pad);
  b.writeUInt16LE(0x4246, 0); // 'FB'
  b.writeUInt16LE(pad - 4, 2);
  return b;
}

/** An uncompressed zip of the entries, in order. */
export function storedZip(entries: [string, Buffer][]): Buffer {
  const out: Buffer[] = [], central: Buffer[] = [];
  let offset = 0;
  for (const [name, data] of entries) {
    if (data.length >= 2 ** 32 - 1) throw new Error(`torch.save writer: entry '${name}' is larger than a zip without zip64 holds`);
    const nameBytes = Buffer.from(name, 'utf8'), crc = crc32(data);
    const extra = paddingExtra(offset + 30 + nameBytes.length);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4); // version needed
    local.writeUInt16LE(DOS_DATE_1980, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(nameBytes.length, 26);
    local.writeUInt16LE(extra.length, 28);
    const dir = Buffer.alloc(46);
    dir.writeUInt32LE(0x02014b50, 0);
    dir.writeUInt16LE(20, 4); // made by
    dir.writeUInt16LE(20, 6); // needed
    dir.writeUInt16LE(DOS_DATE_1980, 14);
    dir.writeUInt32LE(crc, 16);
    dir.writeUInt32LE(data.length, 20);
    dir.writeUInt32LE(data.length, 24);
    dir.writeUInt16LE(nameBytes.length, 28);
    dir.writeUInt32LE(offset, 42);
    central.push(dir, nameBytes);
    out.push(local, nameBytes, extra, data);
    offset += 30 + nameBytes.length + extra.length + data.length;
  }
  const cd = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...out, cd, end]);
}

/** The bytes `torch.save(root, f)` would write; `archive` is the folder name inside the zip. */
export function encodeTorchSave(root: TorchValue, archive: string): Buffer {
  const { pickle, storages } = pickleForTorch(root);
  return storedZip([
    [`${archive}/data.pkl`, pickle],
    [`${archive}/byteorder`, Buffer.from('little')],
    ...storages.map((s, i): [string, Buffer] => [`${archive}/data/${i}`, s]),
    [`${archive}/version`, Buffer.from('3\n')],
  ]);
}

/** Write a torch.save archive atomically (the archive folder is named after the file, as torch does). */
export function writeTorchSave(file: string, root: TorchValue): void {
  const archive = (file.split(/[\\/]/).pop() ?? 'archive').replace(/\.[^.]*$/, '') || 'archive';
  atomicWriteFile(file, encodeTorchSave(root, archive));
}
