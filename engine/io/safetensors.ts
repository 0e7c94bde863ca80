/**
 * safetensors: an 8-byte little-endian header length, a JSON header
 * `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}`, then the
 * bytes. Everything is validated before use; every failure is one line naming the file.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BadInputError } from '../errors';
import { floatToHalf } from '../codec';
import { DTYPE_BYTES, decodeElements, isStorageDtype, sizeOf, type HostTensor } from './tensor';

export interface Safetensors {
  tensors: Map<string, HostTensor>;
  metadata: Record<string, string>;
}

const MAX_HEADER = 100 * 1024 * 1024;

export function readSafetensors(file: string): Safetensors {
  if (!fs.existsSync(file)) throw new BadInputError(`no such file: ${file}`);
  const buf = fs.readFileSync(file);
  return decodeSafetensors(buf, file);
}

export function decodeSafetensors(buf: Buffer, file: string): Safetensors {
  const name = path.basename(file);
  const fail = (m: string): never => {
    throw new BadInputError(`${name}: ${m}`);
  };
  if (buf.length < 8) fail(`not a safetensors file: only ${buf.length} bytes`);
  const n = Number(buf.readBigUInt64LE(0));
  if (n <= 0 || n > MAX_HEADER) fail(`not a safetensors file: header length ${n} is implausible (is this a PyTorch .pt file? use that extension)`);
  if (8 + n > buf.length) fail(`truncated: the header needs ${n} bytes but the file has ${buf.length - 8} after the length field`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  } catch {
    return fail('not a safetensors file: the header is not JSON');
  }
  if (!header || typeof header !== 'object' || Array.isArray(header)) fail('not a safetensors file: the header is not a JSON object');
  const data = buf.subarray(8 + n);
  const metadata = readMetadata(header.__metadata__, fail);
  const tensors = new Map<string, HostTensor>();
  const spans: [number, number, string][] = [];
  for (const [key, entry] of Object.entries(header)) {
    if (key === '__metadata__') continue;
    const { dtype, shape, data_offsets } = (entry ?? {}) as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof dtype !== 'string' || !isStorageDtype(dtype)) fail(`tensor '${key}' has unsupported dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) fail(`tensor '${key}' has an invalid shape ${JSON.stringify(shape)}`);
    if (!Array.isArray(data_offsets) || data_offsets.length !== 2 || !data_offsets.every((d) => Number.isInteger(d) && d >= 0)) {
      fail(`tensor '${key}' has invalid data_offsets ${JSON.stringify(data_offsets)}`);
    }
    const [begin, end] = data_offsets as [number, number];
    const count = sizeOf(shape as number[]);
    const dt = dtype as keyof typeof DTYPE_BYTES;
    if (end - begin !== count * DTYPE_BYTES[dt]) fail(`tensor '${key}': ${end - begin} bytes do not match shape [${shape}] of ${dtype}`);
    if (end > data.length) fail(`truncated: tensor '${key}' ends at byte ${8 + n + end} but the file has ${buf.length} bytes (re-export the checkpoint)`);
    spans.push([begin, end, key]);
    tensors.set(key, { shape: shape as number[], dtype: dt.startsWith('F') || dt === 'BF16' ? 'float32' : 'int32', values: decodeElements(data.subarray(begin, end), dt, count, key) });
  }
  spans.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i][0] < spans[i - 1][1]) fail(`tensors '${spans[i - 1][2]}' and '${spans[i][2]}' overlap`);
  }
  return { tensors, metadata };
}

function readMetadata(raw: unknown, fail: (m: string) => never): Record<string, string> {
  if (raw === undefined) return {};
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) fail('__metadata__ must be an object of strings');
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    if (typeof v !== 'string') fail(`__metadata__.${k} must be a string`);
    out[k] = v as string;
  }
  return out;
}

export interface WriteOptions {
  metadata?: Record<string, string>;
  /** Storage of float tensors (default F32). */
  dtype?: 'F32' | 'F16';
  /** Storage of int tensors (default I64, as PyTorch writes token ids). */
  intDtype?: 'I64' | 'I32';
}

/** Encode to bytes: sorted names, header padded with spaces to a multiple of 8. */
export function encodeSafetensors(tensors: Map<string, HostTensor> | Record<string, HostTensor>, opts: WriteOptions = {}): Buffer {
  const entries = [...(tensors instanceof Map ? tensors : new Map(Object.entries(tensors)))].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (opts.metadata && Object.keys(opts.metadata).length) header.__metadata__ = opts.metadata;
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const [name, t] of entries) {
    const dtype = t.dtype === 'float32' ? opts.dtype ?? 'F32' : opts.intDtype ?? 'I64';
    const bytes = encodeValues(t, dtype);
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    chunks.push(bytes);
    offset += bytes.length;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, ...chunks]);
}

function encodeValues(t: HostTensor, dtype: 'F32' | 'F16' | 'I64' | 'I32'): Buffer {
  const n = t.values.length;
  const out = Buffer.alloc(n * DTYPE_BYTES[dtype]);
  for (let i = 0; i < n; i++) {
    const v = t.values[i];
    if (dtype === 'F32') out.writeFloatLE(v, i * 4);
    else if (dtype === 'F16') out.writeUInt16LE(floatToHalf(v), i * 2);
    else if (dtype === 'I64') out.writeBigInt64LE(BigInt(Math.trunc(v)), i * 8);
    else out.writeInt32LE(v | 0, i * 4);
  }
  return out;
}

/** Write atomically: a temp file in the same folder, fsync, rename. */
export function writeSafetensors(file: string, tensors: Map<string, HostTensor> | Record<string, HostTensor>, opts: WriteOptions = {}): void {
  atomicWriteFile(file, encodeSafetensors(tensors, opts));
}

export function atomicWriteFile(file: string, data: Buffer | string): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  try {
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}
