/**
 * A minimal ZIP reader for PyTorch archives: the central directory (zip64 where needed), stored
 * and deflated entries. Corrupt or non-zip input is a BadInputError naming the file.
 */
import * as zlib from 'node:zlib';
import * as path from 'node:path';
import { BadInputError } from '../errors';

interface Entry {
  name: string;
  method: number;
  compressedSize: number;
  size: number;
  localOffset: number;
}

export class ZipArchive {
  readonly entries = new Map<string, Entry>();

  constructor(private readonly buf: Buffer, private readonly file: string) {
    const eocd = this.findEnd();
    let count = buf.readUInt16LE(eocd + 10);
    let cdSize = buf.readUInt32LE(eocd + 12);
    let cdOffset = buf.readUInt32LE(eocd + 16);
    if (cdOffset === 0xffffffff || count === 0xffff) ({ count, cdSize, cdOffset } = this.zip64(eocd));
    if (cdOffset + cdSize > buf.length) this.fail('truncated: the central directory lies beyond the end of the file');
    let p = cdOffset;
    for (let i = 0; i < count; i++) {
      if (p + 46 > buf.length || buf.readUInt32LE(p) !== 0x02014b50) this.fail('corrupt central directory');
      const method = buf.readUInt16LE(p + 10);
      let compressedSize = buf.readUInt32LE(p + 20);
      let size = buf.readUInt32LE(p + 24);
      const nameLen = buf.readUInt16LE(p + 28), extraLen = buf.readUInt16LE(p + 30), commentLen = buf.readUInt16LE(p + 32);
      let localOffset = buf.readUInt32LE(p + 42);
      const name = buf.subarray(p + 46, p + 46 + nameLen).toString('utf8');
      const extra = buf.subarray(p + 46 + nameLen, p + 46 + nameLen + extraLen);
      ({ size, compressedSize, localOffset } = readZip64Extra(extra, size, compressedSize, localOffset));
      this.entries.set(name, { name, method, compressedSize, size, localOffset });
      p += 46 + nameLen + extraLen + commentLen;
    }
  }

  private fail(m: string): never {
    throw new BadInputError(`${path.basename(this.file)}: ${m}`);
  }

  private findEnd(): number {
    const b = this.buf;
    for (let i = b.length - 22; i >= Math.max(0, b.length - 22 - 65535); i--) {
      if (b.readUInt32LE(i) === 0x06054b50) return i;
    }
    return this.fail('not a zip archive (PyTorch checkpoints are zip files; was it saved with an old torch.save format?)');
  }

  private zip64(eocd: number): { count: number; cdSize: number; cdOffset: number } {
    const loc = eocd - 20;
    if (loc < 0 || this.buf.readUInt32LE(loc) !== 0x07064b50) this.fail('corrupt zip64 locator');
    const rec = Number(this.buf.readBigUInt64LE(loc + 8));
    if (rec + 56 > this.buf.length || this.buf.readUInt32LE(rec) !== 0x06064b50) this.fail('corrupt zip64 end record');
    return {
      count: Number(this.buf.readBigUInt64LE(rec + 32)),
      cdSize: Number(this.buf.readBigUInt64LE(rec + 40)),
      cdOffset: Number(this.buf.readBigUInt64LE(rec + 48)),
    };
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  read(name: string): Buffer {
    const e = this.entries.get(name);
    if (!e) this.fail(`missing archive entry '${name}'`);
    const b = this.buf;
    const h = e!.localOffset;
    if (h + 30 > b.length || b.readUInt32LE(h) !== 0x04034b50) this.fail(`corrupt local header of '${name}'`);
    const start = h + 30 + b.readUInt16LE(h + 26) + b.readUInt16LE(h + 28);
    const end = start + e!.compressedSize;
    if (end > b.length) this.fail(`truncated: entry '${name}' ends at byte ${end} but the file has ${b.length}`);
    const raw = b.subarray(start, end);
    if (e!.method === 0) return raw;
    if (e!.method === 8) {
      try {
        return zlib.inflateRawSync(raw);
      } catch {
        this.fail(`entry '${name}' does not inflate (corrupt file)`);
      }
    }
    return this.fail(`entry '${name}' uses unsupported compression method ${e!.method}`);
  }
}

function readZip64Extra(extra: Buffer, size: number, compressedSize: number, localOffset: number) {
  let p = 0;
  while (p + 4 <= extra.length) {
    const id = extra.readUInt16LE(p), len = extra.readUInt16LE(p + 2);
    if (id === 0x0001) {
      let q = p + 4;
      if (size === 0xffffffff) (size = Number(extra.readBigUInt64LE(q))), (q += 8);
      if (compressedSize === 0xffffffff) (compressedSize = Number(extra.readBigUInt64LE(q))), (q += 8);
      if (localOffset === 0xffffffff) localOffset = Number(extra.readBigUInt64LE(q));
    }
    p += 4 + len;
  }
  return { size, compressedSize, localOffset };
}
