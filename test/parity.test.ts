/**
 * Parity with the a-gpt authors' own PyTorch outputs (../shared/fixtures/agpt, see its README):
 * logits, every block's output, attention probabilities, the hypernetwork's LoRA factors and
 * norms — for all five families, on every runtime under test (TensorFlow.js wasm / cpu / webgpu and
 * onnxruntime cpu / webgpu: one model definition traced or run eagerly), through
 * `.model.safetensors` and (adaptive families) the `.ckpt.pt` checkpoints. On TensorFlow.js also
 * the loss and every parameter's gradient norm.
 */
import { test, describe, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { readCheckpoint } from '../engine/io/checkpoint';
import { readSafetensors } from '../engine/io/safetensors';
import type { HostTensor } from '../engine/io/tensor';
import { familyDef } from '../engine/models/registry';
import { createRunner, initRuntime } from '../engine/runtime/select';
import { initBackend, type TfjsChoice } from '../engine/runtime/tfjs/backend';
import { TfModel } from '../engine/runtime/tfjs/model';
import { FIXTURES, FAMILIES_UNDER_TEST, assertClose, testBackends } from './helpers/fixtures';

/** Runs `headlens forward`'s computation for the fixture batch on the runtime under test. */
async function forwardOn(backend: string, model: string, config: string, ex: Map<string, HostTensor>): Promise<Map<string, HostTensor>> {
  const state = await initRuntime(backend as never);
  assert.equal(state.info.name, backend, `asked for ${backend}, got ${state.info.name}`);
  const ck = await readCheckpoint({ path: model, config });
  const runner = await createRunner(familyDef(ck.config.family), ck.config, ck.weights, state);
  assert.equal(runner.name, backend);
  const ids = ex.get('input_ids')!;
  const [B, T] = ids.shape;
  try {
    return await runner.forwardTensors(Int32Array.from(ids.values), B, T, ex.has('t') ? Int32Array.from(ex.get('t')!.values) : undefined);
  } finally {
    await runner.dispose();
  }
}

for (const backend of testBackends()) {
  describe(`parity on ${backend}`, () => {
    before(async () => {
      await initRuntime(backend as never);
    });
    for (const fam of FAMILIES_UNDER_TEST) {
      const base = path.join(FIXTURES, `tiny-${fam}`);
      test(`${fam}: forward tensors match PyTorch (.model.safetensors)`, async () => {
        const ex = readSafetensors(`${base}.expected.safetensors`).tensors;
        const got = await forwardOn(backend, `${base}.model.safetensors`, `${base}.json`, ex);
        let checked = 0;
        for (const [name, exp] of ex) {
          if (['input_ids', 'targets', 'mask', 't'].includes(name)) continue;
          const g = got.get(name);
          assert.ok(g, `engine produced no '${name}'`);
          assertClose(g!, exp, name.startsWith('attn.') ? { abs: 1e-4 } : { rel: 1e-3 }, `${fam} ${name}`);
          checked++;
        }
        assert.ok(checked >= 3, `only ${checked} tensors compared`);
      });

      if (!backend.startsWith('onnx-')) {
        test(`${fam}: loss and per-parameter gradient norms match PyTorch`, async () => {
          await initBackend(backend as TfjsChoice);
          const meta = JSON.parse(fs.readFileSync(`${base}.json`, 'utf8'));
          const ck = await readCheckpoint({ path: `${base}.model.safetensors`, config: `${base}.json` });
          const model = new TfModel(ck.config, ck.weights);
          const ex = readSafetensors(`${base}.expected.safetensors`).tensors;
          const batch = batchOf(ex);
          const { value, grads } = tf.variableGrads(() => model.loss(batch));
          assert.ok(Math.abs((await value.data())[0] - meta.loss) <= 1e-4, `loss ${(await value.data())[0]} vs ${meta.loss}`);
          const names = new Map([...model.params].map(([n, v]) => [v.name, n]));
          const expected = meta.grad_norms_step0 as Record<string, number>;
          assert.deepEqual(model.parameterNames(), Object.keys(expected), 'parameter order differs from PyTorch model.parameters()');
          for (const [vname, g] of Object.entries(grads)) {
            const name = names.get(vname)!;
            const norm = Math.sqrt((await tf.sum(tf.square(g)).data())[0]);
            assert.ok(Math.abs(norm - expected[name]) <= 1e-3 * Math.max(1, expected[name]), `${name}: grad norm ${norm} vs ${expected[name]}`);
          }
          tf.dispose([value, ...Object.values(grads), ...(Object.values(batch).filter(Boolean) as tf.Tensor[])]);
          model.dispose();
        });
      }

      if (fs.existsSync(`${base}.ckpt.pt`)) {
        test(`${fam}: a-gpt .ckpt.pt loads and its logits match PyTorch`, async () => {
          const ex = readSafetensors(`${base}.expected.safetensors`).tensors;
          const ck = await readCheckpoint({ path: `${base}.ckpt.pt`, config: `${base}.json` });
          assert.equal(ck.config.family, fam);
          const want = readSafetensors(`${base}.ckpt.logits.safetensors`).tensors.get('logits')!;
          const got = await forwardOn(backend, `${base}.ckpt.pt`, `${base}.json`, ex);
          assertClose(got.get('logits')!, want, { rel: 1e-3 }, `${fam} ckpt logits`);
        });
      }
    }
  });
}

function batchOf(ex: Map<string, HostTensor>) {
  const s = ex.get('input_ids')!.shape as [number, number];
  return {
    inputIds: tf.tensor2d(ex.get('input_ids')!.values, s, 'int32'),
    targets: tf.tensor2d(ex.get('targets')!.values, s, 'int32'),
    mask: ex.has('mask') ? tf.tensor2d(ex.get('mask')!.values, s, 'float32') : undefined,
    t: ex.has('t') ? tf.tensor1d(ex.get('t')!.values, 'int32') : undefined,
  };
}
