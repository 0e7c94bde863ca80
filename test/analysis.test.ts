/** Analysis pieces against independent truth: the causality audit is zero for a causal base model and not for a-gpt's adaptive one; windows and audit positions. */
import { test, describe, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../engine/runtime/tfjs/backend';
import { loadModel } from '../engine/io/checkpoint';
import { causalityLeak, windowsOf, auditPositionsFor } from '../engine/analysis/analyze';
import { readSafetensors } from '../engine/io/safetensors';
import { FIXTURES } from './helpers/fixtures';

async function leakOf(fam: string): Promise<Float32Array> {
  const base = path.join(FIXTURES, `tiny-${fam}`);
  const lm = await loadModel({ path: `${base}.model.safetensors`, config: `${base}.json` });
  const ids = readSafetensors(`${base}.expected.safetensors`).tensors.get('input_ids')!;
  const T = ids.shape[1];
  const x = tf.tensor2d(ids.values.slice(0, T), [1, T], 'int32');
  const hidden = tf.tidy(() => lm.model.finalHidden(x).reshape([T, -1]) as tf.Tensor2D);
  const leak = await causalityLeak(lm.model, x, hidden, undefined, T);
  tf.dispose([x, hidden]);
  lm.model.dispose();
  return leak;
}

describe('analysis', () => {
  before(async () => {
    await initBackend('wasm');
  });

  test('a causal base model leaks nothing from the future', async () => {
    const leak = await leakOf('base');
    for (const v of leak) assert.ok(v <= 1e-5, `leak ${v}`);
  });

  test("a-gpt's adaptive model leaks through its mean-pooled hypernetwork", async () => {
    const leak = await leakOf('adaptive');
    assert.ok(leak[0] > 1e-4, `leak at t=0 is only ${leak[0]}`);
    assert.equal(leak[leak.length - 1], 0);
  });

  test('windows tile the tokens; audit positions are spread and exclude the last', () => {
    assert.deepEqual(windowsOf(10, 4), [[0, 4], [4, 8], [8, 10]]);
    assert.deepEqual(auditPositionsFor(256, 4), [0, 85, 169, 254]);
    assert.deepEqual(auditPositionsFor(3, 8), [0, 1]);
    assert.deepEqual(auditPositionsFor(1, 4), []);
  });
});
