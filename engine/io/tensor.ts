/**
 * Host tensors (dense, row-major, float32 or int32: what the models and TensorFlow.js take) and
 * the decoding of the storage dtypes that checkpoints use. Wider or narrower floats are
 * converted to float32; integers and booleans to int32, refusing values that do not fit rather
 * than wrapping them (a wrapped token id would silently select the wrong embedding row).
 */
import * as os from 'node:os';
import { BadInputError } from '../errors';
import { halfToFloat } from '../codec';

/** A tensor on the host: shape, dtype and a dense row-major typed array. */
export interface HostTensor {
  shape: number[];
  dtype: 'float32' | 'int32';
  values: Float32Array | Int32Array;
}

/** Number of elements of a shape (1 for a scalar, shape []). */
export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * A HostTensor whose dtype follows its values; the shape must account for every value
 * (a mismatch is a programming error, not bad input).
 */
export function makeHostTensor(shape: readonly number[], values: Float32Array | Int32Array): HostTensor {
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new Error(`makeHostTensor: invalid shape [${shape}]`);
  const n = sizeOf(shape);
  if (n !== values.length) throw new Error(`makeHostTensor: shape [${shape}] needs ${n} values, got ${values.length}`);
  return { shape: [...shape], dtype: values instanceof Float32Array ? 'float32' : 'int32', values };
}

/** Storage dtypes, named as safetensors names them. */
export type StorageDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U64' | 'U32' | 'U16' | 'U8' | 'BOOL';

export const DTYPE_BYTES: Record<StorageDtype, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1,
};

export function isStorageDtype(s: string): s is StorageDtype {
  return Object.prototype.hasOwnProperty.call(DTYPE_BYTES, s);
}

/** Float storages become float32 host tensors; everything else int32. */
export function isFloatDtype(dtype: StorageDtype): boolean {
  return dtype === 'F64' || dtype === 'F32' || dtype === 'F16' || dtype === 'BF16';
}

// Typed-array views read the host's byte order; every checkpoint format here is little-endian.
const LITTLE_ENDIAN_HOST = os.endianness() === 'LE';

/**
 * Decode the first `count` little-endian elements of `bytes` into float32 or int32.
 * `what` says where the bytes come from ("model.safetensors: tensor 'wte.weight'") and starts
 * every error message.
 */
export function decodeElements(bytes: Uint8Array, dtype: StorageDtype, count: number, what: string): Float32Array | Int32Array {
  const need = count * DTYPE_BYTES[dtype];
  if (bytes.length < need) throw new BadInputError(`${what}: needs ${need} bytes but has ${bytes.length} (truncated file? re-export the checkpoint)`);
  if (dtype === 'F32' && LITTLE_ENDIAN_HOST) return new Float32Array(copyBytes(bytes, need));
  if (dtype === 'I32' && LITTLE_ENDIAN_HOST) return new Int32Array(copyBytes(bytes, need));
  const dv = new DataView(bytes.buffer, bytes.byteOffset, need);
  return isFloatDtype(dtype) ? decodeFloats(dv, dtype, count) : decodeInts(dv, dtype, count, what);
}

/** A fresh, aligned ArrayBuffer with the first `n` bytes (Buffers from files are often unaligned). */
function copyBytes(bytes: Uint8Array, n: number): ArrayBuffer {
  const out = new Uint8Array(n);
  out.set(bytes.subarray(0, n));
  return out.buffer;
}

function decodeFloats(dv: DataView, dtype: StorageDtype, count: number): Float32Array {
  const out = new Float32Array(count);
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < count; i++) out[i] = dv.getFloat32(i * 4, true);
      break;
    case 'F64': // narrowed: float32 is what the models compute in
      for (let i = 0; i < count; i++) out[i] = dv.getFloat64(i * 8, true);
      break;
    case 'F16':
      for (let i = 0; i < count; i++) out[i] = halfToFloat(dv.getUint16(i * 2, true));
      break;
    case 'BF16': {
      // bfloat16 is the top half of a float32: widening is exact
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) bits[i] = dv.getUint16(i * 2, true) << 16;
      break;
    }
    default:
      throw new Error(`decodeFloats: ${dtype} is not a float dtype`);
  }
  return out;
}

const INT32_MIN = -2147483648, INT32_MAX = 2147483647;

function decodeInts(dv: DataView, dtype: StorageDtype, count: number, what: string): Int32Array {
  const out = new Int32Array(count);
  const read = intReader(dv, dtype);
  for (let i = 0; i < count; i++) {
    const v = read(i);
    if (v < INT32_MIN || v > INT32_MAX) {
      throw new BadInputError(`${what}: ${dtype} value ${v} at element ${i} does not fit in int32 (token ids and counts must be below 2^31; convert the tensor)`);
    }
    out[i] = Number(v);
  }
  return out;
}

function intReader(dv: DataView, dtype: StorageDtype): (i: number) => number | bigint {
  switch (dtype) {
    case 'I64': return (i) => dv.getBigInt64(i * 8, true);
    case 'U64': return (i) => dv.getBigUint64(i * 8, true);
    case 'I32': return (i) => dv.getInt32(i * 4, true);
    case 'U32': return (i) => dv.getUint32(i * 4, true);
    case 'I16': return (i) => dv.getInt16(i * 2, true);
    case 'U16': return (i) => dv.getUint16(i * 2, true);
    case 'I8': return (i) => dv.getInt8(i);
    case 'U8': return (i) => dv.getUint8(i);
    case 'BOOL': return (i) => (dv.getUint8(i) ? 1 : 0);
    default: throw new Error(`intReader: ${dtype} is not an integer dtype`);
  }
}
