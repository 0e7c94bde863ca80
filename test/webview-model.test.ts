/**
 * The webview's pure modules in Node, against independent truth: the model stitches windows with
 * the engine's ownership rule (engine/analysis/windows.ts: each position read from the window that
 * owns it — here every window reports its own index, so a wrong owner shows); attention rows
 * decoded from a byte range of the base64 equal Node's own base64 decoding; the token classes
 * agree with the engine's comparison classes (engine/eval/classes.ts, a separate implementation);
 * the probe's linear algebra against hand-solved systems and its defining identities.
 */
import { test, describe } from 'node:test';
import * as assert from 'node:assert/strict';
import { encodeArray, floatToHalf, halfToFloat } from '../engine/codec';
import { slidingWindows } from '../engine/analysis/windows';
import { signalsOf } from '../engine/models/signals';
import { classifyTokens } from '../engine/eval/classes';
import type { AnalyzeEvent, ExplorerData, TokenInfo } from '../engine/protocol';
import { AnalysisModel } from '../webview/lib/model';
import { AttentionMap, decodeBase64Range } from '../webview/lib/attentionMap';
import { classifyTokenTexts } from '../webview/lib/tokenClass';
import { logisticProbe, pca2, ridgeFit, ridgeProbe, solveSpd, splitHalves, symmetricEigen, targetsOf } from '../webview/lib/probe';
import { restoreState, defaultState } from '../webview/lib/state';

/** Windows over N tokens where every reported number is the window's index (or a function of it). */
function windowed(N: number, context: number, stride: number, H = 2, Hkv = 1, L = 2): { data: ExplorerData; owner: (p: number) => number; begins: number[] } {
  const wins = slidingWindows(N, context, stride);
  const tokens: TokenInfo[] = Array.from({ length: N }, (_, i) => ({ index: i, id: i, text: ` t${i}`, start: 3 * i, end: 3 * i + 3 }));
  const events: AnalyzeEvent[] = [];
  wins.forEach((w, wi) => {
    const s = w.begin, T = w.end - w.begin;
    events.push({ kind: 'tokens', window: wi, windowCount: wins.length, tokenStart: s, tokens: tokens.slice(s, w.end), ownFrom: w.ownFrom, ownTo: w.ownTo });
    const rows = (n: number, f: (r: number, t: number) => number) => encodeArray(Float32Array.from({ length: n * T }, (_, i) => f(Math.floor(i / T), i % T)), [n, T]);
    for (let l = 0; l < L; l++) {
      events.push({
        kind: 'layer',
        window: wi,
        layer: l,
        tokenStart: s,
        attn: encodeArray(Float32Array.from({ length: H * T * T }, (_, i) => (wi + 1) / 8 + (i % 7) / 64), [H, T, T], 'f16'),
        headMax: rows(H, (h) => 100 * wi + 10 * l + h),
        headArgmax: encodeArray(Int32Array.from({ length: H * T }, (_, i) => i % T), [H, T], 'i32'),
        headEntropy: rows(H, () => wi),
        headDistance: rows(H, () => wi),
        latentKey: encodeArray(Int32Array.from({ length: T }, (_, t) => Math.max(0, t - 1)), [T], 'i32'),
        latentCode: encodeArray(Float32Array.from({ length: T * H }, (_, i) => wi + (i % H) / 10), [T, H]),
        signals: {
          gate: rows(H, (h) => wi + h / 10),
          veGate: rows(Hkv, (kv) => 10 * wi + kv),
          loraFro: encodeArray(Float32Array.from({ length: H }, (_, h) => wi + l + h / 10), [H]),
          ...(l === 0 ? { dNll: encodeArray(Float32Array.from({ length: T }, () => -wi), [T]) } : {}),
        },
      });
    }
    events.push({
      kind: 'output',
      window: wi,
      tokenStart: s,
      nll: encodeArray(Float32Array.from({ length: T }, () => wi), [T]),
      topIds: encodeArray(Int32Array.from({ length: T * 2 }, (_, i) => 1000 * wi + (i % 2)), [T, 2], 'i32'),
      topProbs: encodeArray(Float32Array.from({ length: T * 2 }, (_, i) => (i % 2 ? 0.25 : 0.75)), [T, 2]),
      leak: encodeArray(Float32Array.from({ length: T }, () => wi / 100), [T]),
      vocabText: { [1000 * wi]: `w${wi}` },
    });
  });
  const config = { family: 'autoresearch' as const, vocab_size: 100, block_size: context, n_layer: L, n_head: H, n_embd: 8 };
  const data: ExplorerData = {
    documentUri: 'file:///x',
    model: {
      path: 'x',
      family: 'autoresearch',
      config,
      paramCount: 1,
      configSources: {},
      tokenizer: { kind: 'gpt2', source: 'built in', vocabSize: 100 },
      causal: true,
      adaptive: true,
      futureLeak: false,
      layers: L,
      heads: H,
      kvHeads: Hkv,
      kvHeadOf: Array.from({ length: H }, (_, h) => Math.floor((h * Hkv) / H)),
      attentionWindows: Array(L).fill(null),
      signals: signalsOf('gate', 'veGate', 'loraFro', 'dNll'),
    },
    tokens,
    result: { tokenCount: N, windowCount: wins.length, layers: L, heads: H, meanNll: 0, maxLeak: 0, elapsedMs: 0, backend: 'cpu', vocabText: {} },
    events,
  };
  return { data, owner: (p) => wins.findIndex((w) => p >= w.ownFrom && p < w.ownTo), begins: wins.map((w) => w.begin) };
}

describe('the webview model of an analysis', () => {
  const N = 50, context = 16, stride = 6;
  const { data, owner, begins } = windowed(N, context, stride);
  const m = AnalysisModel.from(data);

  test('every position is read from the window that owns it, per scope', () => {
    assert.equal(m.windows.length, slidingWindows(N, context, stride).length);
    for (let p = 0; p < N; p++) {
      const w = owner(p);
      assert.ok(w >= 0, `position ${p} has an owner`);
      assert.equal(m.windowOf(p), w, `windowOf(${p})`);
      assert.equal(m.valueFor('attnMax', 1, 1, p), 100 * w + 10 + 1, `head max at ${p}`);
      assert.equal(m.valueFor('entropy', 0, 0, p), w);
      assert.ok(Math.abs(m.valueFor('gate', 1, 1, p) - (w + 0.1)) < 1e-6, `head×token gate at ${p}`);
      assert.equal(m.valueFor('veGate', 0, 1, p), 10 * w, `kvhead×token veGate of head 1 (kv head 0) at ${p}`);
      assert.equal(m.valueFor('dNll', 1, 0, p) + 0, -w + 0, 'token-scoped, reported once');
      assert.equal(m.valueFor('nll', 0, 0, p), w);
      assert.ok(Math.abs(m.valueFor('leak', 0, 0, p) - w / 100) < 1e-6);
      assert.equal(m.topIds[p * 2], 1000 * w);
      assert.equal(m.top(p)[0].p, 0.75);
      const { key, code } = m.latent(1, p);
      assert.equal(key, Math.max(begins[w], begins[w] + (p - begins[w]) - 1), 'k* as a document index');
      assert.ok(Math.abs(code[1] - (w + 0.1)) < 1e-6);
      assert.equal(m.headArgmax[(1 * m.H + 0) * N + p], p, 'argmax key as a document index');
    }
    assert.equal(m.vocabText[1000], 'w1');
  });

  test('per-window signals and attention maps stay per window', () => {
    for (let w = 0; w < m.windows.length; w++) {
      assert.deepEqual(Array.from(m.windowSignal('loraFro', w, 1)!, (v) => Math.round(v * 10) / 10), [w + 1, w + 1.1]);
      const map = m.attention(w, 0)!;
      assert.equal(map.T, m.windows[w].length);
      assert.equal(map.value(1, 3, 2), halfToFloat(floatToHalf((w + 1) / 8 + (((1 * map.T + 3) * map.T + 2) % 7) / 64)));
    }
    const tracks = m.headTracks().map((t) => t.spec.name).sort();
    assert.deepEqual(tracks, ['attnMax', 'distance', 'entropy', 'gate', 'veGate']);
    assert.deepEqual(m.windowSpecs().map((s) => s.name), ['loraFro']);
    assert.equal(m.track('veGate')!.rows, 1);
  });

  test('a malformed array leaves its positions unreported instead of throwing', () => {
    const bad = structuredClone(data);
    const layer = bad.events.find((e) => e.kind === 'layer')!;
    if (layer.kind === 'layer') layer.headMax = encodeArray(new Float32Array(3), [1, 3]);
    const mb = AnalysisModel.from(bad);
    assert.ok(Number.isNaN(mb.valueFor('attnMax', 0, 0, 0)));
  });
});

describe('attention rows decoded from a byte range of the base64', () => {
  test('any byte range equals Node’s decoding of the whole string', () => {
    const bytes = Uint8Array.from({ length: 1000 }, (_, i) => (i * 37 + 11) & 255);
    const text = Buffer.from(bytes).toString('base64');
    for (const [from, to] of [[0, 1], [0, 1000], [1, 2], [2, 7], [3, 6], [997, 1000], [500, 998], [401, 402]]) {
      const out = new Uint8Array(to - from + 4);
      decodeBase64Range(text, from, to, out, 2);
      assert.deepEqual(Array.from(out.subarray(2, 2 + to - from)), Array.from(bytes.subarray(from, to)), `[${from}, ${to})`);
      assert.equal(out[0] + out[1] + out[out.length - 2] + out[out.length - 1], 0, 'nothing written outside');
    }
  });

  test('an f16 map’s rows are its values rounded to binary16, in any order; an f32 map too', () => {
    const H = 3, T = 21;
    const values = Float32Array.from({ length: H * T * T }, (_, i) => Math.sin(i) / 3);
    for (const dtype of ['f16', 'f32'] as const) {
      const map = new AttentionMap(encodeArray(values, [H, T, T], dtype));
      for (const [h, q] of [[2, 20], [0, 0], [1, 7], [2, 19], [0, 16]]) {
        const row = map.row(h, q);
        for (let k = 0; k < T; k++) assert.equal(halfToFloat(row[k]), halfToFloat(floatToHalf(values[(h * T + q) * T + k])), `${dtype} (${h}, ${q}, ${k})`);
      }
    }
  });
});

describe('token classes', () => {
  test('agree with the engine’s comparison classes on code with strings and comments', () => {
    const pieces = ['def', ' main', '(', 'x', '=', '3', '.', '5', '):', '\n', '   ', ' s', ' =', ' "', 'hello', ' world', '"', ' #', ' a', ' comment', '\n', '   ', ' return', ' x', ' +', ' 0', 'x', '1f', '\n', '//', ' js', '\n', 'const', ' t', ' =', ' `', 'multi', '\n', 'line', '`;', '\n', '/*', ' block', ' */', ' while', ' True', ':', '  ', '42', "'''", 'doc', "'''"];
    const text = pieces.join('');
    let at = 0;
    const tokens: TokenInfo[] = pieces.map((p, i) => {
      const t = { index: i, id: i, text: p, start: at, end: at + p.length };
      at += p.length;
      return t;
    });
    const ours = classifyTokenTexts(pieces), engine = classifyTokens(text, tokens);
    assert.deepEqual(ours, engine);
    assert.equal(ours[pieces.indexOf(' return')], 'keyword');
    assert.equal(ours[pieces.indexOf('hello')], 'string/comment');
    assert.equal(ours[pieces.indexOf(' main')], 'identifier');
    assert.equal(ours[pieces.indexOf('42')], 'number');
    assert.equal(ours[pieces.indexOf('   ')], 'whitespace');
    assert.equal(ours[pieces.indexOf('(')], 'punctuation');
  });
});

describe('probe maths', () => {
  test('the SPD solve and the ridge fit match hand-solved systems', () => {
    // [[4, 2], [2, 3]] x = [[2, 1], [5, 0]] → x = [[-0.5, 0.375], [2, -0.25]]
    const x = solveSpd(Float64Array.from([4, 2, 2, 3]), Float64Array.from([2, 1, 5, 0]), 2, 2);
    assert.deepEqual(Array.from(x, (v) => Math.round(v * 1e9) / 1e9), [-0.5, 0.375, 2, -0.25]);
    // X = [1, 2, 3], y = 2x, λ = 1 on the slope and the intercept: [[15, 6], [6, 4]] w = [28, 12] → w = 5/3, b = 1/2
    const w = ridgeFit(Float64Array.from([1, 2, 3]), 1, Float64Array.from([2, 4, 6]), 1, Int32Array.from([0, 1, 2]), 1);
    assert.ok(Math.abs(w[0] - 5 / 3) < 1e-12 && Math.abs(w[1] - 0.5) < 1e-12, `${w}`);
  });

  test('the eigen-decomposition satisfies S v = λ v with orthonormal vectors; PCA of a line explains it all', () => {
    const d = 4, S = Float64Array.from([4, 1, 0.5, 0, 1, 3, 0.2, 0.1, 0.5, 0.2, 2, 0.3, 0, 0.1, 0.3, 1]);
    const { values, vectors } = symmetricEigen(S, d);
    for (let r = 0; r < d; r++) {
      for (let i = 0; i < d; i++) {
        let sv = 0;
        for (let j = 0; j < d; j++) sv += S[i * d + j] * vectors[r * d + j];
        assert.ok(Math.abs(sv - values[r] * vectors[r * d + i]) < 1e-9, `S v = λ v for pair ${r}`);
      }
      for (let s = 0; s < d; s++) {
        let dot = 0;
        for (let j = 0; j < d; j++) dot += vectors[r * d + j] * vectors[s * d + j];
        assert.ok(Math.abs(dot - (r === s ? 1 : 0)) < 1e-9);
      }
    }
    assert.ok(values.every((v, i) => i === 0 || v <= values[i - 1]));
    const n = 50, X = new Float64Array(n * 3);
    for (let i = 0; i < n; i++) X.set([i, 2 * i + 1, -i], i * 3);
    const p = pca2(X, n, 3);
    assert.ok(p.explained[0] > 0.999999 && p.explained[1] < 1e-9, `${p.explained}`);
    assert.ok(Math.abs(Math.abs(p.coords[2] - p.coords[0]) - Math.sqrt(6)) < 1e-9, 'one step along the line is √6 long');
  });

  test('the split is seeded, a partition, and half/half', () => {
    const a = splitHalves(101, 1), b = splitHalves(101, 1), c = splitHalves(101, 2);
    assert.deepEqual(a, b);
    assert.notDeepEqual(a.train, c.train);
    assert.equal(a.train.length, 50);
    assert.deepEqual([...a.train, ...a.test].sort((x, y) => x - y), [...Array(101).keys()]);
  });

  test('ridge R² is 1 on labels linear in the codes, ≈ 0 on random labels; logistic accuracy is 1 when separable', () => {
    let s = 5;
    const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) / 4294967296);
    const n = 1200, d = 5, classes = 3;
    const labels = Int32Array.from({ length: n }, () => Math.floor(rnd() * classes));
    const X = new Float64Array(n * d);
    for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) X[i * d + j] = j < classes ? (labels[i] === j ? 1 : 0) : rnd();
    const split = splitHalves(n, 1);
    assert.ok(ridgeProbe(X, d, labels, classes, split, 1) >= 0.999);
    const random = Int32Array.from({ length: n }, () => Math.floor(rnd() * classes));
    assert.ok(Math.abs(ridgeProbe(X, d, random, classes, split, 1)) <= 0.1);
    const { accuracy, baseline } = logisticProbe(X, d, labels, classes, split);
    assert.ok(accuracy >= 0.99, `accuracy ${accuracy}`);
    assert.ok(baseline > 0.3 && baseline < 0.4, `majority share of three balanced classes: ${baseline}`);
    const chance = logisticProbe(X, d, random, classes, split).accuracy;
    assert.ok(chance < 0.45, `random labels: ${chance}`);
    // two classes are one indicator target, not two
    assert.equal(targetsOf(Int32Array.from([0, 1, 1]), 2).c, 1);
  });
});

describe('view state', () => {
  test('a saved state comes back; anything else falls back to the defaults field by field', () => {
    const s = { ...defaultState(), layer: 2, head: 1, query: 7, window: 3, hiddenHeads: [0, 2], matrixView: { cellW: 4, left: 10, top: 20 }, probeKind: 'logistic' as const };
    assert.deepEqual(restoreState(JSON.parse(JSON.stringify(s))), s);
    assert.deepEqual(restoreState(undefined), defaultState());
    const odd = restoreState({ layer: -1, head: 'x', query: 1.5, loraMetric: 'loraRel', probeKind: 'svm', headRange: [1] });
    assert.deepEqual([odd.layer, odd.head, odd.query, odd.stripSignal, odd.probeKind, odd.headRange], [0, 0, null, 'loraRel', 'ridge', null]);
  });
});
