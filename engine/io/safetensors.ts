/**
 * safetensors (huggingface/safetensors, "format" in its README): an 8-byte little-endian u64
 * header length N, N bytes of UTF-8 JSON
 * `{"__metadata__": {string: string}, name: {"dtype", "shape", "data_offsets": [begin, end]}}`,
 * then the tensor bytes, offsets relative to the end of the header. Everything is validated
 * before use and every failure is one BadInputError line naming the file.
 *
 * The writer produces what the reference Rust writer does, so Python's `safetensors` reads it:
 * tensors ordered by element size (largest first) then name, which keeps every tensor aligned
 * to its element size; contiguous offsets; the header padded with spaces to a multiple of 8.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BadInputError } from '../errors';
import { floatToHalf } from '../codec';
import { DTYPE_BYTES, decodeElements, isFloatDtype, isStorageDtype, sizeOf, type HostTensor, type StorageDtype } from './tensor';

export interface Safetensors {
  tensors: Map<string, HostTensor>;
  metadata: Record<string, string>;
}

// The reference implementation's limit: larger headers are refused as not-safetensors.
const MAX_HEADER = 100_000_000;

export function readSafetensors(file: string): Safetensors {
  return decodeSafetensors(readInputFile(file), file);
}

/** The bytes of a file the user named, with missing files and folders as one-line errors. */
export function readInputFile(file: string): Buffer {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch {
    throw new BadInputError(`no such file: ${file}`);
  }
  if (stat.isDirectory()) throw new BadInputError(`${file} is a folder, not a checkpoint file`);
  try {
    return fs.readFileSync(file);
  } catch (e) {
    throw new BadInputError(`${file}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

interface Entry {
  name: string;
  dtype: StorageDtype;
  shape: number[];
  begin: number;
  end: number;
}

/** Decode a safetensors file's bytes; `file` names it in errors. */
export function decodeSafetensors(buf: Buffer, file: string): Safetensors {
  const name = path.basename(file);
  const fail = (m: string): never => {
    throw new BadInputError(`${name}: ${m}`);
  };
  const { header, dataStart } = readHeader(buf, fail);
  const metadata = readMetadata(header.__metadata__, fail);
  const data = buf.subarray(dataStart);
  const entries = Object.entries(header)
    .filter(([key]) => key !== '__metadata__')
    .map(([key, raw]) => readEntry(key, raw, fail));
  checkSpans(entries, data.length, dataStart, buf.length, fail);
  const tensors = new Map<string, HostTensor>();
  for (const e of entries) {
    const values = decodeElements(data.subarray(e.begin, e.end), e.dtype, sizeOf(e.shape), `${name}: tensor '${e.name}'`);
    tensors.set(e.name, { shape: e.shape, dtype: isFloatDtype(e.dtype) ? 'float32' : 'int32', values });
  }
  return { tensors, metadata };
}

function readHeader(buf: Buffer, fail: (m: string) => never): { header: Record<string, unknown>; dataStart: number } {
  if (buf.length < 8) fail(`not a safetensors file: only ${buf.length} bytes (the file is empty or cut short)`);
  const n = buf.readBigUInt64LE(0);
  if (n < 2n || n > BigInt(MAX_HEADER)) {
    fail(`not a safetensors file: its first 8 bytes give a header length of ${n} (a PyTorch .pt/.pth file? load it under that extension)`);
  }
  const headerEnd = 8 + Number(n);
  if (headerEnd > buf.length) fail(`truncated: the header needs ${n} bytes but the file has ${buf.length - 8} after the length field (re-export the checkpoint)`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(8, headerEnd));
  } catch {
    return fail('not a safetensors file: the header is not UTF-8 text');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    return fail(`not a safetensors file: the header is not valid JSON (${(e as Error).message})`);
  }
  if (!header || typeof header !== 'object' || Array.isArray(header)) fail('not a safetensors file: the header is not a JSON object');
  return { header: header as Record<string, unknown>, dataStart: headerEnd };
}

function readMetadata(raw: unknown, fail: (m: string) => never): Record<string, string> {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) fail('__metadata__ must be an object of strings (re-export the checkpoint)');
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    if (typeof v !== 'string') fail(`__metadata__.${k} must be a string, not ${JSON.stringify(v)} (re-export the checkpoint)`);
    out[k] = v as string;
  }
  return out;
}

function readEntry(key: string, raw: unknown, fail: (m: string) => never): Entry {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) fail(`tensor '${key}': header entry is not an object`);
  const { dtype, shape, data_offsets: offsets } = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
  if (typeof dtype !== 'string' || !isStorageDtype(dtype)) {
    fail(`tensor '${key}' has unsupported dtype ${JSON.stringify(dtype)} (supported: ${Object.keys(DTYPE_BYTES).join(', ')}; convert it to float32)`);
  }
  const isIndex = (d: unknown): d is number => Number.isSafeInteger(d) && (d as number) >= 0;
  if (!Array.isArray(shape) || !shape.every(isIndex)) fail(`tensor '${key}' has an invalid shape ${JSON.stringify(shape)}`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isIndex) || offsets[0] > offsets[1]) {
    fail(`tensor '${key}' has invalid data_offsets ${JSON.stringify(offsets)}`);
  }
  const dt = dtype as StorageDtype, dims = shape as number[];
  const [begin, end] = offsets as [number, number];
  const need = sizeOf(dims) * DTYPE_BYTES[dt];
  if (end - begin !== need) fail(`tensor '${key}': data_offsets [${begin}, ${end}] span ${end - begin} bytes but shape [${dims}] of ${dt} needs ${need}`);
  return { name: key, dtype: dt, shape: dims, begin, end };
}

/** Every tensor inside the data, none overlapping another. Gaps are tolerated (they hide nothing). */
function checkSpans(entries: Entry[], dataLength: number, dataStart: number, fileLength: number, fail: (m: string) => never): void {
  for (const e of entries) {
    if (e.end > dataLength) fail(`truncated: tensor '${e.name}' ends at byte ${dataStart + e.end} but the file has ${fileLength} bytes (re-export the checkpoint)`);
  }
  const sorted = entries.filter((e) => e.end > e.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i].begin < sorted[i - 1].end) fail(`tensors '${sorted[i - 1].name}' and '${sorted[i].name}' overlap in the file (re-export the checkpoint)`);
  }
}

export interface WriteOptions {
  metadata?: Record<string, string>;
  /** Storage of float tensors (default F32). */
  dtype?: 'F32' | 'F16';
  /** Storage of int tensors (default I64, as PyTorch stores token ids). */
  intDtype?: 'I64' | 'I32';
}

type Tensors = Map<string, HostTensor> | Record<string, HostTensor>;

/** The bytes of a safetensors file. */
export function encodeSafetensors(tensors: Tensors, opts: WriteOptions = {}): Buffer {
  const planned = [...(tensors instanceof Map ? tensors : Object.entries(tensors))].map(([name, t]) => {
    checkTensor(name, t);
    const dtype: StorageDtype = t.dtype === 'float32' ? opts.dtype ?? 'F32' : opts.intDtype ?? 'I64';
    return { name, t, dtype };
  });
  // the Rust writer's order: larger elements first, then by name — every tensor stays aligned
  planned.sort((a, b) => DTYPE_BYTES[b.dtype] - DTYPE_BYTES[a.dtype] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (opts.metadata && Object.keys(opts.metadata).length) header.__metadata__ = checkMetadata(opts.metadata);
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const { name, t, dtype } of planned) {
    const bytes = encodeValues(t.values, dtype);
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    chunks.push(bytes);
    offset += bytes.length;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(padded.length));
  return Buffer.concat([len, padded, ...chunks]);
}

/** Write atomically: a temp file in the same folder, fsync, rename. */
export function writeSafetensors(file: string, tensors: Tensors, opts: WriteOptions = {}): void {
  atomicWriteFile(file, encodeSafetensors(tensors, opts));
}

function checkTensor(name: string, t: HostTensor): void {
  if (!t || !Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new Error(`encodeSafetensors: tensor '${name}' has an invalid shape`);
  if (sizeOf(t.shape) !== t.values.length) throw new Error(`encodeSafetensors: tensor '${name}' has shape [${t.shape}] but ${t.values.length} values`);
  if ((t.dtype === 'float32') !== t.values instanceof Float32Array) throw new Error(`encodeSafetensors: tensor '${name}' says ${t.dtype} but holds a ${t.values.constructor.name}`);
}

function checkMetadata(metadata: Record<string, string>): Record<string, string> {
  for (const [k, v] of Object.entries(metadata)) if (typeof v !== 'string') throw new Error(`encodeSafetensors: metadata '${k}' must be a string`);
  return metadata;
}

const LITTLE_ENDIAN_HOST = os.endianness() === 'LE';

function encodeValues(values: Float32Array | Int32Array, dtype: StorageDtype): Buffer {
  const n = values.length;
  if (LITTLE_ENDIAN_HOST && ((dtype === 'F32' && values instanceof Float32Array) || (dtype === 'I32' && values instanceof Int32Array))) {
    return Buffer.from(values.buffer, values.byteOffset, values.byteLength); // copied by the concat
  }
  const out = Buffer.alloc(n * DTYPE_BYTES[dtype]);
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < n; i++) out.writeFloatLE(values[i], i * 4);
      break;
    case 'F16':
      for (let i = 0; i < n; i++) out.writeUInt16LE(floatToHalf(values[i]), i * 2);
      break;
    case 'I32':
      for (let i = 0; i < n; i++) out.writeInt32LE(values[i], i * 4);
      break;
    case 'I64': // int32 sign-extended: low word, then all ones or all zeros
      for (let i = 0; i < n; i++) {
        out.writeInt32LE(values[i], i * 8);
        out.writeInt32LE(values[i] < 0 ? -1 : 0, i * 8 + 4);
      }
      break;
    default:
      throw new Error(`encodeSafetensors: cannot write ${dtype}`);
  }
  return out;
}

/**
 * Replace `file` with `data` so that a reader never sees half a file: write a temp file in the
 * same folder (a rename is only atomic within one file system), fsync it, rename it over.
 */
export function atomicWriteFile(file: string, data: Buffer | string): void {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`);
  try {
    const fd = fs.openSync(tmp, 'w');
    try {
      fs.writeFileSync(fd, data);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw writeError(file, e as NodeJS.ErrnoException);
  }
  syncFolder(dir);
}

/** The rename itself is durable only once the folder is synced; not every platform allows it. */
function syncFolder(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // Windows cannot open folders; the file itself is already synced
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

function writeError(file: string, e: NodeJS.ErrnoException): Error {
  const why: Record<string, string> = {
    ENOENT: `the folder ${path.dirname(file)} does not exist`,
    ENOTDIR: `${path.dirname(file)} is not a folder`,
    EACCES: 'permission denied',
    EPERM: 'permission denied',
    EROFS: 'the file system is read-only',
    ENOSPC: 'the disk is full',
    EISDIR: 'it is a folder',
  };
  const reason = e.code ? why[e.code] : undefined;
  return reason ? new BadInputError(`cannot write ${file}: ${reason}`) : e;
}
