/**
 * Follow Cursor's maths (extension/cursorAttention.ts) on a record assembled from synthetic engine
 * events whose attention weights are a known formula: overlapping sliding windows (context 6,
 * stride 3, the rule of engine/analysis/windows.ts), two layers, two heads, causal rows. The
 * expected weights are computed here from the formula and the window list, not from the record.
 */
import { test, describe } from 'node:test';
import * as assert from 'node:assert/strict';
import type { AnalyzeEvent, TokenInfo } from '../engine/protocol';
import { AnalysisRecord } from '../engine/analysis/record';
import { slidingWindows, type Window } from '../engine/analysis/windows';
import { encodeArray } from '../engine/codec';
import { attentionFromQuery, attentionLevels, attentionToKey, chosenHeads, describeChoice, topK, type HeadChoice } from '../extension/cursorAttention';

const N = 14, CONTEXT = 6, STRIDE = 3, L = 2, H = 2;
const WINDOWS = slidingWindows(N, CONTEXT, STRIDE);

/** Unnormalised causal score of (layer, head, query, key) in document indices, window-dependent through `begin`. */
function raw(l: number, h: number, begin: number, q: number, k: number): number {
  return k > q ? 0 : 1 + ((l * 7 + h * 3 + q * 5 + k * 2 + begin) % 11);
}

/** The softmax-like row of query q inside window w (keys in document indices). */
function expectedWeight(l: number, h: number, w: Window, q: number, k: number): number {
  if (k < w.begin || k >= w.end) return NaN;
  let sum = 0;
  for (let j = w.begin; j < w.end; j++) sum += raw(l, h, w.begin, q, j);
  return raw(l, h, w.begin, q, k) / sum;
}

const owner = (q: number) => WINDOWS.find((w) => q >= w.ownFrom && q < w.ownTo)!;

function syntheticRecord(opts: { missingLayer?: { window: number; layer: number } } = {}): AnalysisRecord {
  const tokens: TokenInfo[] = Array.from({ length: N }, (_, i) => ({ index: i, id: i, text: ` t${i}`, start: 4 * i, end: 4 * i + 4 }));
  const events: AnalyzeEvent[] = [];
  WINDOWS.forEach((w, wi) => {
    const s = w.begin, T = w.end - w.begin;
    events.push({ kind: 'tokens', window: wi, windowCount: WINDOWS.length, tokenStart: s, tokens: tokens.slice(s, w.end), ownFrom: w.ownFrom, ownTo: w.ownTo });
    const zeros = (rows: number) => encodeArray(new Float32Array(rows * T), [rows, T]);
    for (let l = 0; l < L; l++) {
      const a = new Float32Array(H * T * T);
      for (let h = 0; h < H; h++) for (let q = 0; q < T; q++) for (let k = 0; k < T; k++) a[(h * T + q) * T + k] = expectedWeight(l, h, w, s + q, s + k);
      const missing = opts.missingLayer && opts.missingLayer.window === wi && opts.missingLayer.layer === l;
      events.push({
        kind: 'layer', window: wi, layer: l, tokenStart: s,
        ...(missing ? {} : { attn: encodeArray(a, [H, T, T]) }),
        headMax: zeros(H), headArgmax: encodeArray(new Int32Array(H * T), [H, T], 'i32'), headEntropy: zeros(H), headDistance: zeros(H),
        latentKey: encodeArray(new Int32Array(T), [T], 'i32'), latentCode: encodeArray(new Float32Array(T * H), [T, H]),
      });
    }
  });
  return AnalysisRecord.from(events, { layers: L, heads: H });
}

const close = (actual: number, expected: number, what: string) => {
  if (Number.isNaN(expected)) assert.ok(Number.isNaN(actual), `${what}: ${actual}, expected NaN`);
  else assert.ok(Math.abs(actual - expected) < 1e-6, `${what}: ${actual}, expected ${expected}`);
};

describe('Follow Cursor: attention from the cursor', () => {
  const r = syntheticRecord();
  const choice = (layer: number, head: number, aggregate: HeadChoice['aggregate'] = 'head'): HeadChoice => ({ layer, head, aggregate });

  test('the windows overlap (the test would not exercise ownership otherwise)', () => {
    assert.ok(WINDOWS.length >= 3);
    assert.ok(WINDOWS[1].begin < WINDOWS[0].end);
  });

  test('attends to: the query row comes from the window that owns the query, NaN outside it', () => {
    for (const t of [0, 4, 7, 10, N - 1]) {
      const w = owner(t);
      const row = attentionFromQuery(r, t, choice(1, 0));
      for (let k = 0; k < N; k++) close(row[k], expectedWeight(1, 0, w, t, k), `query ${t} key ${k}`);
    }
  });

  test('a layer mean averages its heads, max takes the largest, layer −1 averages the layers too', () => {
    const t = 8, w = owner(t);
    const mean = attentionFromQuery(r, t, choice(0, 1, 'layerMean'));
    const max = attentionFromQuery(r, t, choice(0, 1, 'maxHeads'));
    const all = attentionFromQuery(r, t, choice(-1, -1));
    for (let k = w.begin; k < w.end; k++) {
      const hs = [0, 1].map((h) => expectedWeight(0, h, w, t, k));
      close(mean[k], (hs[0] + hs[1]) / 2, `mean key ${k}`);
      close(max[k], Math.max(...hs), `max key ${k}`);
      const four = [0, 1].flatMap((l) => [0, 1].map((h) => expectedWeight(l, h, w, t, k)));
      close(all[k], four.reduce((a, b) => a + b) / 4, `all key ${k}`);
    }
  });

  test('attended by: every query whose window holds the key, each read from its own window', () => {
    for (const k of [2, 4, 9]) {
      const column = attentionToKey(r, k, choice(1, 1));
      const windowsSeen = new Set<number>();
      for (let q = 0; q < N; q++) {
        const w = owner(q);
        close(column[q], expectedWeight(1, 1, w, q, k), `key ${k} query ${q}`);
        if (column[q] > 0) windowsSeen.add(WINDOWS.indexOf(w));
      }
      if (k === 4) assert.ok(windowsSeen.size >= 2, `key 4 is attended from windows ${[...windowsSeen]} only`);
    }
  });

  test('a layer whose map has not arrived is left out; with none the row is NaN', () => {
    const partial = syntheticRecord({ missingLayer: { window: WINDOWS.indexOf(owner(8)), layer: 0 } });
    const w = owner(8);
    const both = attentionFromQuery(partial, 8, choice(-1, 0));
    for (let k = w.begin; k < w.end; k++) close(both[k], expectedWeight(1, 0, w, 8, k), `key ${k} from layer 1 only`);
    assert.ok(Array.from(attentionFromQuery(partial, 8, choice(0, 0))).every(Number.isNaN));
  });

  test('top-k: largest first, the query left out, ties to the earlier token, zeros never', () => {
    assert.deepEqual(topK([0.1, 0.4, 0.2, 0.4, 0, NaN, 0.3], 3, 3), [{ index: 1, weight: 0.4 }, { index: 6, weight: 0.3 }, { index: 2, weight: 0.2 }]);
    assert.deepEqual(topK([0.5, 0.5, 0.1], 2).map((x) => x.index), [0, 1]);
    assert.deepEqual(topK([0, 0, 0.2], 5).map((x) => x.index), [2]);
  });

  test('levels: the largest weight gets the top level, tiny and excluded ones none', () => {
    const { levels, top } = attentionLevels([0.7, 0.35, 0.001, NaN, 0.9], 7, 4);
    assert.equal(top, 0.7);
    assert.deepEqual(Array.from(levels), [6, 3, -1, -1, -1]);
  });

  test('the choice in words, and a focus outside the model falls back to every head', () => {
    assert.equal(describeChoice(choice(1, 0), L, H), 'L1.H0');
    assert.equal(describeChoice(choice(1, 0, 'layerMean'), L, H), 'L1 mean of heads');
    assert.equal(describeChoice(choice(-1, 0, 'maxHeads'), L, H), 'all layers max over heads');
    assert.equal(describeChoice(choice(9, 9), L, H), 'mean of all heads');
    assert.deepEqual(chosenHeads(choice(0, 5), L, H), { layers: [0], heads: [0, 1], combine: 'mean' });
  });
});
