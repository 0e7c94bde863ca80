/**
 * The inference runtimes as a user meets them: onnxruntime failing (a corrupt graph, a session that
 * breaks mid-use) falls back to TensorFlow.js with one line in the log and the same numbers; memory
 * stays flat over many analyses; `info` on a bad file prints one line and nothing from any backend.
 */
import { test, describe } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { readCheckpoint } from '../engine/io/checkpoint';
import { readSafetensors } from '../engine/io/safetensors';
import { familyDef } from '../engine/models/registry';
import { createSession } from '../engine/runtime/onnx/ort';
import { OrtRunner } from '../engine/runtime/onnx/runner';
import type { HostControls, InferenceRuntime, WindowOutput, WindowRequest } from '../engine/runtime/runner';
import { createRunner, initRuntime, setRuntimeLog } from '../engine/runtime/select';
import { ENGINE_JS, FIXTURES, testBackends } from './helpers/fixtures';

const base = path.join(FIXTURES, 'tiny-adaptive');
const onnx = testBackends().includes('onnx-cpu');

function request(): WindowRequest {
  const ids = readSafetensors(`${base}.expected.safetensors`).tensors.get('input_ids')!;
  const T = ids.shape[1];
  const row = Int32Array.from(ids.values.slice(0, T));
  return { ids: row, targets: Int32Array.from([...row.subarray(1), -1]), topK: 5, attention: () => true, audit: [0, 4] };
}

async function analyse(r: InferenceRuntime): Promise<WindowOutput> {
  const gen = r.analyzeWindow(request());
  for (;;) {
    const s = await gen.next();
    if (s.done) return s.value;
  }
}

async function fixtureModel() {
  const ck = await readCheckpoint({ path: `${base}.model.safetensors`, config: `${base}.json` });
  return { def: familyDef(ck.config.family), ck };
}

describe('onnxruntime falls back to TensorFlow.js', { skip: onnx ? false : 'onnx-cpu is not under test' }, () => {
  test('a graph onnxruntime cannot load: one log line, TensorFlow.js runs the model', async () => {
    const state = await initRuntime('onnx-cpu');
    const { def, ck } = await fixtureModel();
    const lines: string[] = [];
    setRuntimeLog((l) => lines.push(l));
    try {
      const corrupt = async () => {
        await createSession(new Uint8Array([8, 8, 58, 3, 10, 1, 120, 0xff, 0xff]), state.ort!); // truncated protobuf
        throw new Error('a corrupt graph was accepted');
      };
      const r = await createRunner(def, ck.config, ck.weights, state, corrupt);
      assert.ok(!r.name.startsWith('onnx'), `runs on ${r.name}`);
      assert.equal(lines.length, 1, lines.join('\n'));
      assert.match(lines[0], /onnxruntime could not run this adaptive model .*using TensorFlow\.js/);
      const out = await analyse(r);
      assert.ok(Number.isFinite(out.nll[0]));
      await r.dispose();
    } finally {
      setRuntimeLog((m) => process.stderr.write(`headlens: ${m}\n`));
    }
  });

  test('a session that fails mid-use: one log line, then the same numbers from TensorFlow.js', async () => {
    const state = await initRuntime('onnx-cpu');
    const { def, ck } = await fixtureModel();
    const lines: string[] = [];
    setRuntimeLog((l) => lines.push(l));
    try {
      let primary: InferenceRuntime | null = null;
      const r = await createRunner(def, ck.config, ck.weights, state, async (...a) => (primary = await OrtRunner.create(...a)));
      assert.equal(r.name, 'onnx-cpu');
      const before = await analyse(r);
      await primary!.dispose(); // its session released: the next run fails inside onnxruntime
      const after = await analyse(r);
      assert.ok(!r.name.startsWith('onnx'), `still on ${r.name}`);
      assert.equal(lines.length, 1, lines.join('\n'));
      assert.match(lines[0], /onnxruntime \(onnx-cpu\) failed.*falling back to TensorFlow\.js/);
      for (let t = 0; t < before.nll.length - 1; t++) assert.ok(Math.abs(before.nll[t] - after.nll[t]) <= 1e-3, `nll ${t}`);
      assert.deepEqual(Array.from(after.topIds), Array.from(before.topIds));
      await analyse(r);
      assert.equal(lines.length, 1, 'the fallback is for good: no second line');
      await r.dispose();
    } finally {
      setRuntimeLog((m) => process.stderr.write(`headlens: ${m}\n`));
    }
  });
});

describe('memory', () => {
  test('onnxruntime: resident memory stays flat over 20 analyses', { skip: onnx ? false : 'onnx-cpu is not under test' }, async () => {
    const state = await initRuntime('onnx-cpu');
    const { def, ck } = await fixtureModel();
    const r = await createRunner(def, ck.config, ck.weights, state);
    for (let i = 0; i < 5; i++) await analyse(r);
    global.gc?.();
    const rss0 = process.memoryUsage().rss;
    for (let i = 0; i < 20; i++) await analyse(r);
    global.gc?.();
    const grown = (process.memoryUsage().rss - rss0) / 2 ** 20;
    assert.ok(grown < 40, `resident memory grew ${grown.toFixed(1)} MB over 20 analyses`);
    await r.dispose();
  });

  test('TensorFlow.js: the tensor count is the same after 20 analyses', async () => {
    const state = await initRuntime('wasm');
    const { def, ck } = await fixtureModel();
    const r = await createRunner(def, ck.config, ck.weights, state);
    await analyse(r);
    const n0 = tf.memory().numTensors;
    for (let i = 0; i < 20; i++) await analyse(r);
    assert.equal(tf.memory().numTensors, n0);
    await r.dispose();
  });
});

describe('quiet probes', () => {
  test('info on a bad file prints exactly one line and nothing from any backend', () => {
    const bad = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'headlens-rt-')), 'bad.safetensors');
    fs.writeFileSync(bad, 'not a safetensors file at all');
    const r = spawnSync(process.execPath, [ENGINE_JS, 'info', '--model', bad], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.equal(r.stdout, '');
    const lines = r.stderr.split('\n').filter(Boolean);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /^headlens: .*bad\.safetensors/);
  });

  test('info on the auto runtime prints no native warnings on stderr', () => {
    const r = spawnSync(process.execPath, [ENGINE_JS, 'info'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '', 'stderr must be empty');
    assert.match(r.stdout, /^backend +\S+/m);
  });
});

/**
 * Batched scoring (evaluation, compare, ablations): every row of a (B, T) batch gets −log p(target)
 * from the authors' logits in the fixture, on every runtime under test; a zero-scale control on
 * every head changes the numbers (the controls reach the batched graph).
 */
describe('batched scoring', () => {
  for (const backend of testBackends()) {
    for (const family of ['adaptive', 'adaptive_diffusion'] as const) {
      test(`${family} on ${backend}: nll of a (B, T) batch equals the fixture's logits`, async () => {
        const stem = path.join(FIXTURES, `tiny-${family}`);
        const ck = await readCheckpoint({ path: `${stem}.model.safetensors`, config: `${stem}.json` });
        const ex = readSafetensors(`${stem}.expected.safetensors`).tensors;
        const ids = ex.get('input_ids')!, logits = ex.get('logits')!;
        const [B, T] = ids.shape, V = logits.shape[2];
        const causal = family === 'adaptive';
        const tensorT = ex.get('t');
        const flat = Int32Array.from(ids.values);
        const targets = causal ? Int32Array.from({ length: B * T }, (_, i) => (i % T < T - 1 ? flat[i + 1] : -1)) : Int32Array.from(ex.get('targets')!.values);
        const r = await createRunner(familyDef(ck.config.family), ck.config, ck.weights, await initRuntime(backend));
        // causal: the whole batch at once; the denoiser's rows have their own timesteps: one row per call
        const score = async (controls?: HostControls) => {
          if (causal) return r.nll({ ids: flat, targets, B, T, controls });
          const out = new Float32Array(B * T);
          for (let b = 0; b < B; b++) out.set(await r.nll({ ids: flat.subarray(b * T, (b + 1) * T), targets: targets.subarray(b * T, (b + 1) * T), B: 1, T, t: tensorT!.values[b], controls }), b * T);
          return out;
        };
        try {
          const got = await score();
          for (let i = 0; i < B * T; i++) {
            if (targets[i] < 0) {
              assert.ok(Number.isNaN(got[i]), `row ${Math.floor(i / T)} position ${i % T} has no target`);
              continue;
            }
            const row = logits.values.subarray(i * V, (i + 1) * V);
            let m = -Infinity;
            for (const v of row) m = Math.max(m, v);
            let s = 0;
            for (const v of row) s += Math.exp(v - m);
            const want = m + Math.log(s) - row[targets[i]];
            assert.ok(Math.abs(got[i] - want) <= 1e-3 * Math.max(1, want), `row ${Math.floor(i / T)} position ${i % T}: ${got[i]} vs ${want}`);
          }
          const L = familyDef(ck.config.family).layerCount(ck.config), H = ck.config.n_head;
          const off = await score({ headScale: new Float32Array(L * H), headMean: new Float32Array(L * H), adaptiveOff: new Float32Array(L * H) });
          assert.ok(off.some((v, i) => targets[i] >= 0 && Math.abs(v - got[i]) > 1e-3), 'zeroing every head must change the NLL');
        } finally {
          await r.dispose();
        }
      });
    }
  }
});
