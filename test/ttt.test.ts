/**
 * LoRA test-time training (engine/ttt) against the authors' own trajectory: the `tiny-gated.ttt`
 * case of ../shared/fixtures/paramgolf, their `eval_val_ttt_phased` on one document (README
 * "TTT trajectory"): per chunk the score-first loss, the loss after the chunk's own update, the
 * base model's loss; val_loss and val_bpb (with the fixture's synthetic byte table); the trained
 * adapters (`lora_final`); ‖ΔW‖_F per module after every chunk (`delta_fro`); the per-token losses
 * of every scored chunk; and the same trajectory at the record's lr 1e-4 (`default_lr_run`).
 * TTT runs on TensorFlow.js (wasm, cpu); with onnx-cpu the base model's scoring runs on
 * onnxruntime. Also: a run cancelled mid-document frees every tensor.
 */
import { test, describe, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { readCheckpoint, type CheckpointRead } from '../engine/io/checkpoint';
import { readSafetensors } from '../engine/io/safetensors';
import type { HostTensor } from '../engine/io/tensor';
import { CancelledError } from '../engine/errors';
import { familyDef } from '../engine/models/registry';
import { createRunner, initRuntime } from '../engine/runtime/select';
import type { InferenceRuntime } from '../engine/runtime/runner';
import { initBackend, type TfjsChoice } from '../engine/runtime/tfjs/backend';
import { TfModel } from '../engine/runtime/tfjs/model';
import { adapterSpecs } from '../engine/ttt/adapters';
import { readLoraInit } from '../engine/ttt/files';
import { resolveSettings, runTtt, runnerScorer, type TttResult, type TttSettings } from '../engine/ttt/lora';
import type { ByteCounter } from '../engine/ttt/bytes';
import { SHARED_FIXTURES, assertClose, testBackends } from './helpers/fixtures';

const DIR = path.join(SHARED_FIXTURES, 'paramgolf');
const MODEL = path.join(DIR, 'tiny-gated.model.safetensors'), CONFIG = path.join(DIR, 'tiny-gated.json');
const TTT_FILE = path.join(DIR, 'tiny-gated.ttt.safetensors');
const meta = JSON.parse(fs.readFileSync(path.join(DIR, 'tiny-gated.ttt.json'), 'utf8'));
const tensors = readSafetensors(TTT_FILE).tensors;
const DOC = Int32Array.from(meta.document.tokens as number[]);

/** The fixture's settings (the record's scaled down, lr 1e-2). */
function fixtureSettings(ck: CheckpointRead, lr = meta.settings.optimizer.lr as number): TttSettings {
  const st = meta.settings;
  return resolveSettings({ chunk: st.chunk_size, evalLen: st.eval_seq_len, rank: st.lora_rank, alpha: st.lora_alpha, lr, betas: st.optimizer.betas, eps: st.optimizer.eps, weightDecay: st.optimizer.weight_decay }, ck.config);
}

/** `bpb_luts`: ids 0-3 control (0 bytes, boundary); id ≥ 4: 1 + id % 3 bytes, a leading space iff id is even. */
const syntheticBytes: ByteCounter = (prev, target) => (target < 4 ? 0 : 1 + (target % 3) + (target % 2 === 0 && prev >= 4 ? 1 : 0));

const close = (got: number, want: number, label: string) => assert.ok(Math.abs(got - want) <= 1e-3 * Math.max(1, Math.abs(want)), `${label}: ${got} vs ${want}`);

/** The TTT on TensorFlow.js `tfjs`, the base model's scoring on `runtime`. */
async function runOn(tfjs: TfjsChoice, runtime: string, lr?: number): Promise<TttResult> {
  const ck = await readCheckpoint({ path: MODEL, config: CONFIG });
  const def = familyDef(ck.config.family);
  const state = await initRuntime(runtime as never);
  assert.equal(state.info.name, runtime);
  const runner: InferenceRuntime = await createRunner(def, ck.config, ck.weights, state);
  await initBackend(tfjs);
  const model = new TfModel(ck.config, ck.weights);
  const settings = fixtureSettings(ck, lr);
  const start = readLoraInit(TTT_FILE, adapterSpecs(def, ck.config, settings.modules), settings.rank).values;
  try {
    return await runTtt({ def, model, score: runnerScorer(runner), doc: DOC, settings, start, bytes: syntheticBytes });
  } finally {
    model.dispose();
    await runner.dispose();
  }
}

function checkTrajectory(r: TttResult, label: string): void {
  assert.equal(r.chunks.length, meta.summary.num_chunks);
  for (const [i, want] of (meta.chunks as Record<string, number & boolean>[]).entries()) {
    const got = r.chunks[i];
    assert.deepEqual([got.windowStart, got.end - got.windowStart, got.start - got.windowStart, got.trained], [want.window_start, want.window_len, want.scored_offset_in_window, want.trained], `${label} chunk ${i} window`);
    close(got.lossBefore, want.loss_before, `${label} chunk ${i} loss_before`);
    close(got.lossAfter, want.loss_after, `${label} chunk ${i} loss_after`);
    close(got.lossBase, want.loss_base_model, `${label} chunk ${i} loss_base_model`);
  }
  close(r.valLoss, meta.summary.val_loss, `${label} val_loss`);
  close(r.valBpb!, meta.summary.val_bpb, `${label} val_bpb`);
}

const backends = testBackends();

for (const backend of backends) {
  const onnx = backend.startsWith('onnx-');
  const tfjs = (onnx ? 'wasm' : backend) as TfjsChoice;
  describe(`LoRA-TTT on ${onnx ? `wasm, base scoring on ${backend}` : backend}`, () => {
    let r: TttResult;
    before(async () => {
      r = await runOn(tfjs, backend);
    });

    test('per chunk: loss before and after the update and the base loss; val_loss, val_bpb', () => {
      checkTrajectory(r, backend);
    });

    test('the per-token losses of each scored chunk are the fixture’s ptl_before', () => {
      for (const c of r.chunks) {
        const ptl = tensors.get(`chunk${c.chunk}.ptl_before`)!;
        const from = c.start - c.windowStart;
        const want: HostTensor = { shape: [c.end - c.start], dtype: 'float32', values: ptl.values.subarray(from, from + c.end - c.start) };
        assertClose({ shape: want.shape, dtype: 'float32', values: r.nllTtt.subarray(c.start + 1, c.end + 1) }, want, { rel: 1e-3 }, `chunk ${c.chunk} ptl_before`);
      }
      assert.ok(Number.isNaN(r.nllTtt[0]) && Number.isNaN(r.nllBase[0]), 'the first token has no prediction');
    });

    test('lora_final: every trained A and B', () => {
      let n = 0;
      for (const [name, exp] of tensors) {
        if (!name.startsWith('lora_final.')) continue;
        const got = r.final.get(name.slice('lora_final.'.length));
        assert.ok(got, `no adapter for ${name}`);
        assertClose({ ...got!, shape: [1, ...got!.shape] }, exp, { rel: 1e-3 }, name);
        n++;
      }
      assert.equal(n, 2 * meta.lora_modules_order_for_delta_fro.length);
    });

    test('delta_fro: ‖ΔW‖_F of every module after every chunk, in the fixture’s module order', () => {
      assert.deepEqual(r.specs.map((s) => s.name), meta.lora_modules_order_for_delta_fro);
      const got = new Float32Array(r.chunks.flatMap((c) => [...c.deltaFro]));
      assertClose({ shape: [r.chunks.length, r.specs.length], dtype: 'float32', values: got }, tensors.get('delta_fro')!, { rel: 1e-3 }, 'delta_fro');
    });

    if (!onnx && backend === backends[0]) {
      test('at the record’s lr 1e-4 the trajectory is the fixture’s default_lr_run', async () => {
        const d = await runOn(tfjs, backend, meta.default_lr_run.lr);
        for (const [i, want] of (meta.default_lr_run.chunks as { loss_before: number; loss_after: number }[]).entries()) {
          close(d.chunks[i].lossBefore, want.loss_before, `lr 1e-4 chunk ${i} loss_before`);
          close(d.chunks[i].lossAfter, want.loss_after, `lr 1e-4 chunk ${i} loss_after`);
        }
        close(d.valLoss, meta.default_lr_run.summary.val_loss, 'lr 1e-4 val_loss');
        close(d.valBpb!, meta.default_lr_run.summary.val_bpb, 'lr 1e-4 val_bpb');
      });

      test('a run cancelled mid-document frees every tensor', async () => {
        const ck = await readCheckpoint({ path: MODEL, config: CONFIG });
        const def = familyDef(ck.config.family);
        await initBackend(tfjs);
        const model = new TfModel(ck.config, ck.weights);
        try {
          const runner = await createRunner(def, ck.config, ck.weights, await initRuntime(backend as never));
          const startTensors = tf.memory().numTensors;
          const token = { cancelled: false };
          let seen = 0;
          await assert.rejects(
            runTtt({ def, model, score: runnerScorer(runner), doc: DOC, settings: fixtureSettings(ck), token, onChunk: () => (token.cancelled = ++seen === 2) }),
            CancelledError,
          );
          assert.equal(seen, 2, 'stopped after the chunk where it was cancelled');
          assert.equal(tf.memory().numTensors, startTensors, 'tensors left behind');
          await runner.dispose();
        } finally {
          model.dispose();
        }
      });
    }
  });
}
