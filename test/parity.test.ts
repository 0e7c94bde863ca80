/**
 * Parity with the a-gpt authors' own PyTorch outputs (../shared/fixtures/agpt, see its README):
 * logits, every block's output, attention probabilities, the hypernetwork's LoRA factors and
 * norms, the loss and every parameter's gradient norm — for all five families, on WASM and cpu,
 * through `.model.safetensors` and (adaptive families) the `.ckpt.pt` checkpoints.
 */
import { test, describe, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../engine/runtime/tfjs/backend';
import { loadModel } from '../engine/io/checkpoint';
import { readSafetensors } from '../engine/io/safetensors';
import type { HostTensor } from '../engine/io/tensor';
import { FIXTURES, FAMILIES_UNDER_TEST, assertClose, testBackends } from './helpers/fixtures';

for (const backend of testBackends()) {
  describe(`parity on ${backend}`, () => {
    before(async () => {
      await initBackend(backend);
    });
    for (const fam of FAMILIES_UNDER_TEST) {
      const base = path.join(FIXTURES, `tiny-${fam}`);
      test(`${fam}: forward tensors match PyTorch (.model.safetensors)`, async () => {
        await initBackend(backend);
        const lm = await loadModel({ path: `${base}.model.safetensors`, config: `${base}.json` });
        const ex = readSafetensors(`${base}.expected.safetensors`).tensors;
        const got = await forwardTensors(lm.model, ex);
        let checked = 0;
        for (const [name, exp] of ex) {
          if (['input_ids', 'targets', 'mask', 't'].includes(name)) continue;
          const g = got.get(name);
          assert.ok(g, `engine produced no '${name}'`);
          assertClose(g!, exp, name.startsWith('attn.') ? { abs: 1e-4 } : { rel: 1e-3 }, `${fam} ${name}`);
          checked++;
        }
        assert.ok(checked >= 3, `only ${checked} tensors compared`);
        lm.model.dispose();
      });

      test(`${fam}: loss and per-parameter gradient norms match PyTorch`, async () => {
        await initBackend(backend);
        const meta = JSON.parse(fs.readFileSync(`${base}.json`, 'utf8'));
        const lm = await loadModel({ path: `${base}.model.safetensors`, config: `${base}.json` });
        const ex = readSafetensors(`${base}.expected.safetensors`).tensors;
        const batch = batchOf(ex);
        const { value, grads } = tf.variableGrads(() => lm.model.loss(batch));
        assert.ok(Math.abs((await value.data())[0] - meta.loss) <= 1e-4, `loss ${(await value.data())[0]} vs ${meta.loss}`);
        const names = new Map([...lm.model.params].map(([n, v]) => [v.name, n]));
        const expected = meta.grad_norms_step0 as Record<string, number>;
        assert.deepEqual(lm.model.parameterNames(), Object.keys(expected), 'parameter order differs from PyTorch model.parameters()');
        for (const [vname, g] of Object.entries(grads)) {
          const name = names.get(vname)!;
          const norm = Math.sqrt((await tf.sum(tf.square(g)).data())[0]);
          assert.ok(Math.abs(norm - expected[name]) <= 1e-3 * Math.max(1, expected[name]), `${name}: grad norm ${norm} vs ${expected[name]}`);
        }
        tf.dispose([value, ...Object.values(grads), ...Object.values(batch)]);
        lm.model.dispose();
      });

      if (fs.existsSync(`${base}.ckpt.pt`)) {
        test(`${fam}: a-gpt .ckpt.pt loads and its logits match PyTorch`, async () => {
          await initBackend(backend);
          const lm = await loadModel({ path: `${base}.ckpt.pt`, config: `${base}.json` });
          assert.equal(lm.info.family, fam);
          const ex = readSafetensors(`${base}.expected.safetensors`).tensors;
          const want = readSafetensors(`${base}.ckpt.logits.safetensors`).tensors.get('logits')!;
          const ids = tf.tensor2d(ex.get('input_ids')!.values, ex.get('input_ids')!.shape as [number, number], 'int32');
          const t = ex.has('t') ? tf.tensor1d(ex.get('t')!.values, 'int32') : undefined;
          const logits = lm.model.logits(ids, t);
          assertClose(hostOf(logits.shape, await logits.data()), want, { rel: 1e-3 }, `${fam} ckpt logits`);
          tf.dispose([ids, t, logits].filter(Boolean) as tf.Tensor[]);
          lm.model.dispose();
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

function hostOf(shape: number[], values: ArrayLike<number>): HostTensor {
  return { shape, dtype: 'float32', values: Float32Array.from(values) };
}

/** The engine's forward with internals, named as in the fixtures. */
async function forwardTensors(model: Awaited<ReturnType<typeof loadModel>>['model'], ex: Map<string, HostTensor>): Promise<Map<string, HostTensor>> {
  const out = new Map<string, HostTensor>();
  const idsT = ex.get('input_ids')!;
  const ids = tf.tensor2d(idsT.values, idsT.shape as [number, number], 'int32');
  const t = ex.has('t') ? tf.tensor1d(ex.get('t')!.values, 'int32') : undefined;
  const { logits, layers } = model.forwardWithInternals(ids, t);
  const put = async (n: string, x: tf.Tensor) => out.set(n, hostOf(x.shape, await x.data()));
  await put('logits', logits);
  for (const L of layers) {
    await put(`hidden.${L.layer}`, L.hidden);
    await put(`attn.${L.layer}`, L.attn);
    if (L.loraA) {
      const H = L.loraA.shape[1];
      for (let h = 0; h < H; h++) {
        const a = L.loraA.slice([0, h], [-1, 1]).squeeze([1]);
        const b = L.loraB!.slice([0, h], [-1, 1]).squeeze([1]);
        await put(`lora_A.${L.layer}.${h}`, a);
        await put(`lora_B.${L.layer}.${h}`, b);
        tf.dispose([a, b]);
      }
      await put(`lora_fro.${L.layer}`, L.loraFro!);
      await put(`lora_tok.${L.layer}`, L.loraTok!);
    }
  }
  tf.dispose([ids, t, logits, ...layers.flatMap((L) => Object.values(L).filter((v): v is tf.Tensor => v instanceof tf.Tensor))].filter(Boolean) as tf.Tensor[]);
  return out;
}
