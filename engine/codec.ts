/**
 * Encoding of numeric arrays for the wire (`EncodedArray` in protocol.ts): little-endian, base64.
 * Pure and dependency-free: the engine, the extension host and the webviews all use it.
 */
import type { EncodedArray } from './protocol';

type Typed = Float32Array | Int32Array | Uint8Array;

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

export function bytesToBase64(bytes: Uint8Array): string {
  if (typeof Buffer !== 'undefined') return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const a = bytes[i], b = bytes[i + 1] ?? 0, c = bytes[i + 2] ?? 0;
    const n = (a << 16) | (b << 8) | c;
    out += B64[(n >> 18) & 63] + B64[(n >> 12) & 63];
    out += i + 1 < bytes.length ? B64[(n >> 6) & 63] : '=';
    out += i + 2 < bytes.length ? B64[n & 63] : '=';
  }
  return out;
}

/** Character code → 6-bit value (255: not a base64 character). */
const B64_VALUE = (() => {
  const t = new Uint8Array(128).fill(255);
  for (let i = 0; i < B64.length; i++) t[B64.charCodeAt(i)] = i;
  return t;
})();

/**
 * base64 → bytes. In Node, Buffer; in a webview, four characters at a time through a lookup table
 * (a per-character `indexOf` was half of a 1024-token first draw).
 */
export function base64ToBytes(text: string): Uint8Array {
  if (typeof Buffer !== 'undefined') {
    const buf = Buffer.from(text, 'base64');
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  let n = text.length;
  while (n > 0 && text.charCodeAt(n - 1) === 61) n--; // '='
  const out = new Uint8Array(Math.floor((n * 3) / 4));
  let o = 0, i = 0;
  const v = (k: number) => B64_VALUE[text.charCodeAt(k) & 127];
  for (; i + 4 <= n; i += 4) {
    const x = (v(i) << 18) | (v(i + 1) << 12) | (v(i + 2) << 6) | v(i + 3);
    out[o++] = x >> 16;
    out[o++] = (x >> 8) & 255;
    out[o++] = x & 255;
  }
  const rest = n - i;
  if (rest >= 2) {
    const x = (v(i) << 18) | (v(i + 1) << 12) | (rest === 3 ? v(i + 2) << 6 : 0);
    out[o++] = x >> 16;
    if (rest === 3) out[o++] = (x >> 8) & 255;
  }
  return out;
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** IEEE 754 binary16 from a float (round to nearest even; overflow → ±Inf; NaN kept). */
export function floatToHalf(value: number): number {
  f32Scratch[0] = value;
  return bitsToHalf(u32Scratch[0]);
}

/** binary16 from the bits of a binary32. */
function bitsToHalf(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

export function encodeArray(values: ArrayLike<number>, shape: number[], dtype: EncodedArray['dtype'] = 'f32'): EncodedArray {
  const n = shape.reduce((a, b) => a * b, 1);
  if (n !== values.length) throw new Error(`encodeArray: shape [${shape}] needs ${n} values, got ${values.length}`);
  let bytes: Uint8Array;
  if (dtype === 'f16') {
    const u16 = new Uint16Array(n);
    const f = values instanceof Float32Array ? values : Float32Array.from(values);
    const bits = new Uint32Array(f.buffer, f.byteOffset, n); // read the float bits in place
    for (let i = 0; i < n; i++) u16[i] = bitsToHalf(bits[i]);
    bytes = new Uint8Array(u16.buffer);
  } else if (dtype === 'f32') {
    const f = values instanceof Float32Array ? values : Float32Array.from(values);
    bytes = new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
  } else if (dtype === 'i32') {
    const f = values instanceof Int32Array ? values : Int32Array.from(values);
    bytes = new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
  } else {
    bytes = values instanceof Uint8Array ? values : Uint8Array.from(values);
  }
  return { dtype, shape, data: bytesToBase64(bytes) };
}

/** float16 values already in binary16 (a device's output): no conversion, only base64. */
export function encodeHalfBits(bits: Uint16Array, shape: number[]): EncodedArray {
  return { dtype: 'f16', shape, data: bytesToBase64(new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength)) };
}

/** Decode to a fresh typed array (f16 widens to Float32Array). */
export function decodeArray(arr: EncodedArray): Typed {
  const bytes = base64ToBytes(arr.data);
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  const n = arr.shape.reduce((a, b) => a * b, 1);
  switch (arr.dtype) {
    case 'f32':
      return new Float32Array(copy.buffer, 0, n);
    case 'i32':
      return new Int32Array(copy.buffer, 0, n);
    case 'u8':
      return copy.subarray(0, n);
    case 'f16': {
      const u16 = new Uint16Array(copy.buffer, 0, n);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = halfToFloat(u16[i]);
      return out;
    }
  }
}
