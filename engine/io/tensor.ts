import { halfToFloat } from '../codec';

/** A tensor on the host: shape, dtype and a dense row-major typed array. */
export interface HostTensor {
  shape: number[];
  dtype: 'float32' | 'int32';
  values: Float32Array | Int32Array;
}

export function sizeOf(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Decode `count` little-endian elements of a storage dtype into float32 or int32.
 * `what` names the tensor for errors (integers beyond int32 are refused, not wrapped).
 */
export function decodeElements(bytes: Buffer, dtype: StorageDtype, count: number, what: string): Float32Array | Int32Array {
  const need = count * DTYPE_BYTES[dtype];
  if (bytes.length < need) throw new RangeError(`${what}: needs ${need} bytes, has ${bytes.length}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, need);
  switch (dtype) {
    case 'F32': {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = dv.getFloat32(i * 4, true);
      return out;
    }
    case 'F64': {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = dv.getFloat64(i * 8, true);
      return out;
    }
    case 'F16': {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = halfToFloat(dv.getUint16(i * 2, true));
      return out;
    }
    case 'BF16': {
      const out = new Float32Array(count);
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) u[i] = dv.getUint16(i * 2, true) << 16;
      return out;
    }
    default:
      return decodeInts(dv, dtype, count, what);
  }
}

function decodeInts(dv: DataView, dtype: StorageDtype, count: number, what: string): Int32Array {
  const out = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    switch (dtype) {
      case 'I64': {
        const v = dv.getBigInt64(i * 8, true);
        if (v > 2147483647n || v < -2147483648n) throw new RangeError(`${what}: value ${v} at element ${i} does not fit in int32`);
        out[i] = Number(v);
        break;
      }
      case 'I32':
        out[i] = dv.getInt32(i * 4, true);
        break;
      case 'I16':
        out[i] = dv.getInt16(i * 2, true);
        break;
      case 'I8':
        out[i] = dv.getInt8(i);
        break;
      case 'U8':
      case 'BOOL':
        out[i] = dv.getUint8(i);
        break;
      default:
        throw new RangeError(`${what}: unsupported dtype ${dtype}`);
    }
  }
  return out;
}

export type StorageDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';
export const DTYPE_BYTES: Record<StorageDtype, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };
export function isStorageDtype(s: string): s is StorageDtype {
  return Object.prototype.hasOwnProperty.call(DTYPE_BYTES, s);
}
