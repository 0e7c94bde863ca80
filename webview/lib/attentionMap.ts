/**
 * One window's attention map for one layer, (H, T, T), read straight from the wire's EncodedArray
 * (f16 base64, protocol.ts) one query row at a time. A 4,096-token window is 16.7 M weights per
 * head: decoding all of it before the first draw would take longer than drawing, so rows are
 * decoded when a view asks for them and kept as binary16 bits (2 bytes each); a 65,536-entry
 * table turns bits into floats. Only engine/codec.ts helpers are used (protocol-level, pure).
 */
import type { EncodedArray } from '../../engine/protocol';
import { decodeArray, floatToHalf, halfToFloat } from '../../engine/codec';

/** binary16 bits → float, for every bit pattern. */
export const HALF_TO_FLOAT: Float32Array = (() => {
  const t = new Float32Array(65536);
  for (let i = 0; i < 65536; i++) t[i] = halfToFloat(i);
  return t;
})();

/** Rows per storage block (2^BLOCK_SHIFT): memory is allocated per block, decoding is per row. */
const BLOCK_SHIFT = 4;
const BLOCK_ROWS = 1 << BLOCK_SHIFT;

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_VALUE = (() => {
  const t = new Uint8Array(128);
  for (let i = 0; i < B64.length; i++) t[B64.charCodeAt(i)] = i;
  return t;
})();

/**
 * Bytes [from, to) of the data a base64 string encodes, written to out[at…]. Base64 maps each
 * 3 bytes to 4 characters, so any byte range is decoded from the groups that cover it.
 */
export function decodeBase64Range(text: string, from: number, to: number, out: Uint8Array, at: number): void {
  const v = (k: number) => B64_VALUE[text.charCodeAt(k) & 127];
  let g = Math.floor(from / 3);
  let o = at - (from - g * 3);
  const last = Math.ceil(to / 3);
  const end = at + (to - from);
  for (; g < last; g++) {
    const c = g * 4;
    const x = (v(c) << 18) | (v(c + 1) << 12) | (v(c + 2) << 6) | v(c + 3);
    if (o >= at && o < end) out[o] = x >> 16;
    o++;
    if (o >= at && o < end) out[o] = (x >> 8) & 255;
    o++;
    if (o >= at && o < end) out[o] = x & 255;
    o++;
  }
}

export class AttentionMap {
  readonly H: number;
  readonly T: number;
  /** Per head, per block of BLOCK_ROWS query rows: binary16 bits, allocated on first use. */
  private readonly blocks: (Uint16Array | undefined)[][];
  /** Per head and row: decoded yet? */
  private readonly decoded: Uint8Array;
  /** f32 maps (allowed on the wire) are converted once, whole. */
  private readonly f32: Uint16Array | null;

  constructor(private readonly encoded: EncodedArray) {
    const [H, T, T2] = encoded.shape;
    if (encoded.shape.length !== 3 || T !== T2) throw new Error(`attention map of shape [${encoded.shape}]: expected (H, T, T)`);
    this.H = H;
    this.T = T;
    this.blocks = Array.from({ length: H }, () => []);
    this.decoded = new Uint8Array(H * T);
    this.f32 = encoded.dtype === 'f16' ? null : toHalves(decodeArray(encoded));
  }

  /** Query row q of head h as binary16 bits over the T keys (decoded now if needed). */
  row(h: number, q: number): Uint16Array {
    const T = this.T;
    if (this.f32) return this.f32.subarray((h * T + q) * T, (h * T + q + 1) * T);
    const b = q >> BLOCK_SHIFT;
    let block = this.blocks[h][b];
    if (!block) block = this.blocks[h][b] = new Uint16Array(BLOCK_ROWS * T);
    const r = q - b * BLOCK_ROWS;
    if (!this.decoded[h * T + q]) {
      const bytes = new Uint8Array(block.buffer, block.byteOffset, block.byteLength);
      const from = (h * T + q) * T * 2; // little-endian binary16, row-major (H, T, T)
      decodeBase64Range(this.encoded.data, from, from + T * 2, bytes, r * T * 2);
      this.decoded[h * T + q] = 1;
    }
    return block.subarray(r * T, (r + 1) * T);
  }

  value(h: number, q: number, k: number): number {
    return HALF_TO_FLOAT[this.row(h, q)[k]];
  }
}

function toHalves(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = floatToHalf(values[i]);
  return out;
}
