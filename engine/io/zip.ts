/**
 * A minimal ZIP reader, enough for PyTorch's archives (`torch.save` writes an uncompressed zip
 * with 64-byte aligned entries; others may deflate): the end-of-central-directory record, zip64
 * where sizes or counts need it, stored and deflated entries, CRC-32 checked so a corrupt
 * download fails here instead of loading wrong weights. Every failure is a BadInputError naming
 * the file.
 */
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { BadInputError } from '../errors';

interface Entry {
  name: string;
  method: number;
  flags: number;
  crc: number;
  compressedSize: number;
  size: number;
  localOffset: number;
}

const SIG_LOCAL = 0x04034b50, SIG_CENTRAL = 0x02014b50, SIG_END = 0x06054b50, SIG_END64 = 0x06064b50, SIG_LOCATOR64 = 0x07064b50;
const METHOD_STORED = 0, METHOD_DEFLATE = 8;

export class ZipArchive {
  private readonly entries = new Map<string, Entry>();
  private readonly label: string;

  /** `file` names the archive in errors. */
  constructor(private readonly buf: Buffer, file: string) {
    this.label = path.basename(file);
    const end = this.findEnd();
    const { count, cdSize, cdOffset } = this.directoryPosition(end);
    if (cdOffset + cdSize > buf.length) this.fail('truncated: the zip directory lies beyond the end of the file (the download or copy is incomplete)');
    let p = cdOffset;
    for (let i = 0; i < count; i++) p = this.readCentralEntry(p);
  }

  /** Entry names in directory order. */
  names(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** The entry's uncompressed bytes (stored entries are views into the archive buffer). */
  read(name: string): Buffer {
    const e = this.entries.get(name);
    if (!e) return this.fail(`the archive has no entry '${name}'`);
    const raw = this.rawData(e);
    let data: Buffer;
    if (e.method === METHOD_STORED) data = raw;
    else if (e.method === METHOD_DEFLATE) data = this.inflate(raw, e);
    else return this.fail(`entry '${name}' uses compression method ${e.method}; only stored and deflate are supported (re-save the file)`);
    if (data.length !== e.size) this.fail(`corrupt entry '${name}': ${data.length} bytes instead of ${e.size}`);
    if (crc32(data) !== e.crc) this.fail(`corrupt entry '${name}': CRC-32 mismatch (the file is damaged; copy or download it again)`);
    return data;
  }

  private fail(m: string): never {
    throw new BadInputError(`${this.label}: ${m}`);
  }

  private findEnd(): number {
    const b = this.buf;
    // the end record is the last 22 bytes unless a comment (≤ 65535 bytes) follows it
    for (let i = b.length - 22; i >= Math.max(0, b.length - 22 - 65535); i--) {
      if (b.readUInt32LE(i) === SIG_END) return i;
    }
    return this.fail(b.length >= 4 && b.readUInt32LE(0) === SIG_LOCAL
      ? 'truncated zip archive: its directory at the end is missing (the download or copy is incomplete)'
      : 'not a zip archive');
  }

  private directoryPosition(end: number): { count: number; cdSize: number; cdOffset: number } {
    const b = this.buf;
    if (b.readUInt16LE(end + 4) !== 0 || b.readUInt16LE(end + 6) !== 0) this.fail('multi-part zip archives are not supported');
    const count = b.readUInt16LE(end + 10), cdSize = b.readUInt32LE(end + 12), cdOffset = b.readUInt32LE(end + 16);
    if (count !== 0xffff && cdSize !== 0xffffffff && cdOffset !== 0xffffffff) return { count, cdSize, cdOffset };
    // zip64: a locator just before the end record points at the zip64 end record
    const loc = end - 20;
    if (loc < 0 || b.readUInt32LE(loc) !== SIG_LOCATOR64) this.fail('corrupt zip64 archive: no zip64 locator');
    const rec = this.safeNumber(b.readBigUInt64LE(loc + 8));
    if (rec + 56 > b.length || b.readUInt32LE(rec) !== SIG_END64) this.fail('corrupt zip64 archive: bad zip64 end record');
    return {
      count: this.safeNumber(b.readBigUInt64LE(rec + 32)),
      cdSize: this.safeNumber(b.readBigUInt64LE(rec + 40)),
      cdOffset: this.safeNumber(b.readBigUInt64LE(rec + 48)),
    };
  }

  /** Parse one central-directory record at `p`; returns where the next one starts. */
  private readCentralEntry(p: number): number {
    const b = this.buf;
    if (p + 46 > b.length || b.readUInt32LE(p) !== SIG_CENTRAL) this.fail('corrupt zip directory (the file is damaged)');
    const nameLen = b.readUInt16LE(p + 28), extraLen = b.readUInt16LE(p + 30), commentLen = b.readUInt16LE(p + 32);
    const next = p + 46 + nameLen + extraLen + commentLen;
    if (next > b.length) this.fail('corrupt zip directory (the file is damaged)');
    const name = b.subarray(p + 46, p + 46 + nameLen).toString('utf8');
    const sizes = this.zip64Sizes(b.subarray(p + 46 + nameLen, p + 46 + nameLen + extraLen), {
      size: b.readUInt32LE(p + 24),
      compressedSize: b.readUInt32LE(p + 20),
      localOffset: b.readUInt32LE(p + 42),
    });
    const flags = b.readUInt16LE(p + 8);
    if (flags & 1) this.fail(`entry '${name}' is encrypted`);
    this.entries.set(name, { name, method: b.readUInt16LE(p + 10), flags, crc: b.readUInt32LE(p + 16), ...sizes });
    return next;
  }

  /** Sizes that overflow 32 bits are 0xffffffff and live in the zip64 extra field (id 1), in this order. */
  private zip64Sizes(extra: Buffer, s: { size: number; compressedSize: number; localOffset: number }) {
    for (let p = 0; p + 4 <= extra.length; p += 4 + extra.readUInt16LE(p + 2)) {
      if (extra.readUInt16LE(p) !== 0x0001) continue;
      let q = p + 4;
      const next = (): number => {
        if (q + 8 > extra.length) this.fail('corrupt zip64 extra field');
        const v = this.safeNumber(extra.readBigUInt64LE(q));
        q += 8;
        return v;
      };
      if (s.size === 0xffffffff) s.size = next();
      if (s.compressedSize === 0xffffffff) s.compressedSize = next();
      if (s.localOffset === 0xffffffff) s.localOffset = next();
    }
    return s;
  }

  private rawData(e: Entry): Buffer {
    const b = this.buf, h = e.localOffset;
    if (h + 30 > b.length || b.readUInt32LE(h) !== SIG_LOCAL) this.fail(`corrupt zip: bad local header of '${e.name}'`);
    // the local header's own name and extra lengths (PyTorch pads the extra field for alignment)
    const start = h + 30 + b.readUInt16LE(h + 26) + b.readUInt16LE(h + 28);
    const end = start + e.compressedSize;
    if (end > b.length) this.fail(`truncated: entry '${e.name}' ends at byte ${end} but the file has ${b.length} bytes (the download or copy is incomplete)`);
    return b.subarray(start, end);
  }

  private inflate(raw: Buffer, e: Entry): Buffer {
    try {
      return zlib.inflateRawSync(raw, { maxOutputLength: Math.max(e.size, 1) });
    } catch {
      return this.fail(`corrupt entry '${e.name}': it does not inflate (the file is damaged)`);
    }
  }

  private safeNumber(v: bigint): number {
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail('corrupt zip64 archive: a size or offset is out of range');
    return Number(v);
  }
}

const CRC_TABLE = (() => {
  const t = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  return t;
})();

/** CRC-32 (ISO-HDLC, as zip uses); node:zlib has a native one from Node 20.15 and 22.2. */
export function crc32(data: Uint8Array): number {
  const native = (zlib as unknown as { crc32?: (d: Uint8Array) => number }).crc32;
  if (native) return native(data) >>> 0;
  let c = -1;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}
