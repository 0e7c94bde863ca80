/**
 * Analysis against independent truth, on every runtime under test: the causality audit is zero for
 * a causal base model and not for a-gpt's adaptive one; NLL and top-k equal those computed from the
 * authors' logits; the same request gives the same summaries on onnxruntime and TensorFlow.js;
 * windows and audit positions.
 */
import { test, describe } from 'node:test';
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { auditPositionsFor } from '../engine/analysis/analyze';
import { slidingWindows } from '../engine/analysis/windows';
import { readCheckpoint } from '../engine/io/checkpoint';
import { readSafetensors } from '../engine/io/safetensors';
import { familyDef } from '../engine/models/registry';
import type { InferenceRuntime, WindowLayer, WindowOutput, WindowRequest } from '../engine/runtime/runner';
import { createRunner, initRuntime } from '../engine/runtime/select';
import { FIXTURES, testBackends } from './helpers/fixtures';

async function runnerFor(backend: string, fam: string): Promise<InferenceRuntime> {
  const base = path.join(FIXTURES, `tiny-${fam}`);
  const state = await initRuntime(backend as never);
  const ck = await readCheckpoint({ path: `${base}.model.safetensors`, config: `${base}.json` });
  return createRunner(familyDef(ck.config.family), ck.config, ck.weights, state);
}

function fixtureRow(fam: string): { ids: Int32Array; logits: Float32Array; V: number } {
  const ex = readSafetensors(path.join(FIXTURES, `tiny-${fam}.expected.safetensors`)).tensors;
  const ids = ex.get('input_ids')!, logits = ex.get('logits')!;
  const T = ids.shape[1], V = logits.shape[2];
  return { ids: Int32Array.from(ids.values.slice(0, T)), logits: Float32Array.from(logits.values.slice(0, T * V)), V };
}

async function analyse(runner: InferenceRuntime, req: WindowRequest): Promise<{ layers: WindowLayer[]; out: WindowOutput }> {
  const gen = runner.analyzeWindow(req);
  const layers: WindowLayer[] = [];
  for (;;) {
    const s = await gen.next();
    if (s.done) return { layers, out: s.value };
    layers.push(s.value);
  }
}

function request(ids: Int32Array, audit: number[]): WindowRequest {
  return { ids, targets: Int32Array.from([...ids.subarray(1), -1]), topK: 5, attention: () => true, audit };
}

const backends = testBackends();

for (const backend of backends) {
  describe(`analysis on ${backend}`, () => {
    test('a causal base model leaks nothing from the future', async () => {
      const runner = await runnerFor(backend, 'base');
      const { ids } = fixtureRow('base');
      const { out } = await analyse(runner, request(ids, [...Array(ids.length - 1).keys()]));
      for (const v of out.leak!) assert.ok(v <= 1e-5, `leak ${v}`);
      await runner.dispose();
    });

    test("a-gpt's adaptive model leaks through its mean-pooled hypernetwork", async () => {
      const runner = await runnerFor(backend, 'adaptive');
      const { ids } = fixtureRow('adaptive');
      const { out } = await analyse(runner, request(ids, [0, 5]));
      assert.ok(out.leak![0] > 1e-4, `leak at t=0 is only ${out.leak![0]}`);
      assert.ok(out.leak![5] > 1e-4, `leak at t=5 is only ${out.leak![5]}`);
      assert.ok(Number.isNaN(out.leak![1]), 'an unaudited position is NaN');
      assert.equal(out.leak![ids.length - 1], 0);
      await runner.dispose();
    });

    test('NLL and top-5 equal those of the authors’ logits', async () => {
      const runner = await runnerFor(backend, 'adaptive');
      const { ids, logits, V } = fixtureRow('adaptive');
      const { out } = await analyse(runner, request(ids, []));
      const T = ids.length;
      for (let t = 0; t < T - 1; t++) {
        const row = logits.subarray(t * V, (t + 1) * V);
        const max = Math.max(...row);
        const lse = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
        assert.ok(Math.abs(out.nll[t] - (lse - row[ids[t + 1]])) <= 1e-3, `nll ${t}: ${out.nll[t]} vs ${lse - row[ids[t + 1]]}`);
        const order = [...row.keys()].sort((a, b) => row[b] - row[a]).slice(0, 5);
        assert.deepEqual(Array.from(out.topIds.subarray(t * 5, t * 5 + 5)), order, `top-5 at ${t}`);
        assert.ok(Math.abs(out.topProbs[t * 5] - Math.exp(row[order[0]] - lse)) <= 1e-4);
      }
      assert.ok(Number.isNaN(out.nll[T - 1]), 'the last position has no target');
      await runner.dispose();
    });
  });
}

describe('runtimes agree', () => {
  const pair = ['onnx-cpu', 'wasm'].filter((b) => backends.includes(b as never));
  test('the same request gives the same summaries, signals and outputs on onnxruntime and WASM', { skip: pair.length < 2 ? 'needs onnx-cpu and wasm under test' : false }, async () => {
    const { ids } = fixtureRow('adaptive');
    const results = [];
    for (const b of pair) {
      const runner = await runnerFor(b, 'adaptive');
      results.push(await analyse(runner, request(ids, [3])));
      await runner.dispose();
    }
    const [a, b] = results;
    const close = (x: ArrayLike<number>, y: ArrayLike<number>, tol: number, what: string) => {
      assert.equal(x.length, y.length, what);
      for (let i = 0; i < x.length; i++) assert.ok(Math.abs(x[i] - y[i]) <= tol || (Number.isNaN(x[i]) && Number.isNaN(y[i])), `${what}[${i}]: ${x[i]} vs ${y[i]}`);
    };
    for (let l = 0; l < a.layers.length; l++) {
      for (const k of ['headMax', 'headEntropy', 'headDistance', 'latentCode'] as const) close(a.layers[l][k], b.layers[l][k], 1e-4, `L${l} ${k}`);
      assert.deepEqual(Array.from(a.layers[l].latentKey), Array.from(b.layers[l].latentKey));
      for (const s of Object.keys(b.layers[l].signals)) close(a.layers[l].signals[s].values, b.layers[l].signals[s].values, 1e-4, `L${l} ${s}`);
      assert.deepEqual(Object.keys(a.layers[l].signals).sort(), ['loraFro', 'loraRel', 'loraTok']);
    }
    close(a.out.nll, b.out.nll, 1e-3, 'nll');
    assert.deepEqual(Array.from(a.out.topIds), Array.from(b.out.topIds));
    close(a.out.leak!, b.out.leak!, 1e-3, 'leak');
  });
});

describe('windows', () => {
  test('windows tile the tokens; audit positions are spread and exclude the last', () => {
    // stride = context: the disjoint windows; a window's first token is scored by the window before
    assert.deepEqual(slidingWindows(10, 4, 4), [
      { begin: 0, end: 4, ownFrom: 0, ownTo: 4 },
      { begin: 4, end: 8, ownFrom: 4, ownTo: 8 },
      { begin: 8, end: 10, ownFrom: 8, ownTo: 10 },
    ]);
    // Hugging Face's rule: window k scores the tokens past window k−1's end, read at one position before
    assert.deepEqual(slidingWindows(10, 4, 2), [
      { begin: 0, end: 4, ownFrom: 0, ownTo: 3 },
      { begin: 2, end: 6, ownFrom: 3, ownTo: 5 },
      { begin: 4, end: 8, ownFrom: 5, ownTo: 7 },
      { begin: 6, end: 10, ownFrom: 7, ownTo: 10 },
    ]);
    for (const [n, c, s] of [[1, 4, 2], [5, 4, 1], [257, 256, 128], [1000, 64, 48], [17, 5, 5]]) {
      const ws = slidingWindows(n, c, s);
      const owner = new Array(n).fill(0);
      for (const w of ws) {
        assert.ok(w.end - w.begin <= c && w.ownFrom >= w.begin && w.ownTo <= Math.min(n, w.end + 1));
        for (let p = w.ownFrom; p < w.ownTo; p++) owner[p]++;
        // a scored token (p + 1) sees at least itself's prefix inside the window: context ≥ 1
        for (let p = w.ownFrom; p < Math.min(w.ownTo, n - 1); p++) assert.ok(p >= w.begin && p < w.end);
      }
      assert.deepEqual(owner, new Array(n).fill(1), `n ${n} context ${c} stride ${s}: every position in exactly one window`);
      assert.equal(ws[ws.length - 1].end, n);
    }
    assert.deepEqual(auditPositionsFor(256, 4), [0, 42, 85, 127]);
    assert.deepEqual(auditPositionsFor(3, 8), [0, 1]);
    assert.deepEqual(auditPositionsFor(10, 2), [0, 4]);
    assert.deepEqual(auditPositionsFor(1, 4), []);
  });
});
