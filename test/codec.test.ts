/**
 * The wire encoding: the webview's own base64 decoder (no Buffer there) against Node's, f16 bits
 * passed through unchanged, and round trips of every dtype.
 */
import { test, describe } from 'node:test';
import * as assert from 'node:assert/strict';
import { base64ToBytes, decodeArray, encodeArray, encodeHalfBits, floatToHalf } from '../engine/codec';

/** Runs `fn` as a webview would: without Node's Buffer. */
function withoutBuffer<T>(fn: () => T): T {
  const g = globalThis as { Buffer?: unknown };
  const saved = g.Buffer;
  delete g.Buffer;
  try {
    return fn();
  } finally {
    g.Buffer = saved;
  }
}

describe('codec', () => {
  test('the browser base64 decoder equals Buffer on every length and byte value', () => {
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) & 255;
    for (const n of [0, 1, 2, 3, 4, 5, 6, 7, 31, 32, 33, 255, 256, 1000, 65537]) {
      const bytes = Uint8Array.from({ length: n }, rnd);
      const text = Buffer.from(bytes).toString('base64');
      const got = withoutBuffer(() => base64ToBytes(text));
      assert.deepEqual(Buffer.from(got), Buffer.from(bytes), `length ${n}`);
    }
  });

  test('float16 bits from a device are sent as they are and decode to the floats', () => {
    const values = [0, 1, -2.5, 0.333251953125, 65504, 6.103515625e-5];
    const bits = Uint16Array.from(values, floatToHalf);
    const enc = encodeHalfBits(bits, [values.length]);
    assert.equal(enc.dtype, 'f16');
    assert.deepEqual(Array.from(decodeArray(enc)), values);
    assert.deepEqual(Array.from(withoutBuffer(() => decodeArray(enc))), values);
  });

  test('f32, i32 and u8 arrays round-trip', () => {
    const f = Float32Array.from([1.5, -0, NaN, Infinity, 3e-39]);
    assert.deepEqual(Array.from(decodeArray(encodeArray(f, [5]))), Array.from(f));
    const i = Int32Array.from([0, -1, 2 ** 31 - 1, -(2 ** 31)]);
    assert.deepEqual(Array.from(decodeArray(encodeArray(i, [2, 2], 'i32'))), Array.from(i));
    const u = Uint8Array.from([0, 255, 7]);
    assert.deepEqual(Array.from(decodeArray(encodeArray(u, [3], 'u8'))), [0, 255, 7]);
  });
});
