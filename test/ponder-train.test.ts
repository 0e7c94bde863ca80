/**
 * Training PonderTTT's TTT layer with the base frozen, through the real CLI: the loss and gradient
 * norm at step 0 and three Adam steps against PyTorch (scripts/reference/ponder_train.py: float64,
 * the inner gradient by torch.autograd's own vjp), on every TensorFlow.js backend; checkpoints hold
 * the layer only and name their base, whose file is untouched; a stopped and resumed run equals an
 * uninterrupted one; `headlens train --ponder` is the same command; a trained layer runs in
 * `headlens ponder`; and in-process, the trainer's tensor count stays flat from step to step.
 */
import { test, describe } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { readSafetensors } from '../engine/io/safetensors';
import { initBackend } from '../engine/runtime/tfjs/backend';
import { buildPonderRun, preparePonderTraining } from '../engine/ponder/train';
import { ENGINE_JS, REPO, SHARED_FIXTURES, testBackends } from './helpers/fixtures';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'headlens-ponder-train-'));
const REF = path.join(REPO, 'test', 'reference', 'ponder');
const BASE = path.join(REF, 'base.safetensors');
const BATCH = path.join(REF, 'batch.safetensors');
const TTT = path.join(SHARED_FIXTURES, 'methods', 'tiny-ttt.model.safetensors');
const ref = JSON.parse(fs.readFileSync(path.join(REF, 'train.json'), 'utf8'));

function cli(args: string[]) {
  const r = spawnSync(process.execPath, [ENGINE_JS, ...args], { encoding: 'utf8', timeout: 300_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
const rows = (file: string) => fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
const ADAM = ['--lr', String(ref.lr), '--min-lr', String(ref.lr), '--warmup', '0', '--betas', ref.betas.join(','), '--clip', String(ref.clip), '--probe-interval', '0'];
const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');

for (const backend of testBackends().filter((b) => !b.startsWith('onnx-'))) {
  describe(`PonderTTT training on ${backend}`, () => {
    test('loss and gradient norm at step 0, three Adam steps and the loss after them match PyTorch', () => {
      const metrics = path.join(tmp, `${backend}.jsonl`);
      const r = cli(['ponder', 'train', '--model', BASE, '--ttt', TTT, '--overfit-batch', BATCH, '--steps', '3', '--eval-interval', '3', ...ADAM, '--metrics-jsonl', metrics, '--backend', backend]);
      assert.equal(r.code, 0, r.stderr);
      const all = rows(metrics), steps = all.filter((x) => x.grad_norm !== undefined);
      assert.equal(steps.length, 3);
      steps.forEach((s, i) => assert.ok(Math.abs(s.loss - ref.losses[i]) <= 1e-4, `loss ${i}: ${s.loss} vs ${ref.losses[i]}`));
      assert.ok(Math.abs(steps[0].grad_norm - ref.grad_norm_step0) <= 1e-4 * ref.grad_norm_step0, `grad norm ${steps[0].grad_norm} vs ${ref.grad_norm_step0}`);
      const val = all.find((x) => x.val_loss !== undefined)!;
      assert.ok(Math.abs(val.val_loss - ref.loss_after) <= 1e-4, `loss after 3 steps: ${val.val_loss} vs ${ref.loss_after}`);
    });
  });
}

describe('PonderTTT training checkpoints', () => {
  const common = ['--model', BASE, '--ttt', TTT, '--overfit-batch', BATCH, ...ADAM, '--backend', 'wasm', '--checkpoint-interval', '1', '--eval-interval', '2'];

  test('a checkpoint holds the TTT layer (and its Adam moments) only, names its base, and leaves the base file as it was', () => {
    const before = sha(BASE);
    const out = path.join(tmp, 'run');
    const r = cli(['ponder', 'train', ...common, '--steps', '2', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sha(BASE), before);
    const { tensors, metadata } = readSafetensors(path.join(out, 'last.safetensors'));
    const names = [...tensors.keys()];
    const fixture = [...readSafetensors(TTT).tensors.keys()].sort();
    assert.deepEqual(names.filter((n) => !n.startsWith('optim.')).sort(), fixture);
    assert.deepEqual(names.filter((n) => n.startsWith('optim.exp_avg.')).map((n) => n.slice('optim.exp_avg.'.length)).sort(), fixture);
    assert.equal(metadata.format, 'headlens-ponder-ttt-1');
    assert.equal(JSON.parse(metadata.base).path, path.resolve(BASE));
    assert.equal(JSON.parse(metadata.state).step, 2);
    assert.ok(tensors.get('fast_layer.W1')!.values.some((v, i) => v !== readSafetensors(TTT).tensors.get('fast_layer.W1')!.values[i]), 'the fast weights W1 were trained');
    // and the trained layer runs on its base
    const ids = path.join(tmp, 'ids.json');
    fs.writeFileSync(ids, JSON.stringify(Array.from({ length: 40 }, (_, i) => (i * 7) % 256)));
    const run = cli(['ponder', '--model', BASE, '--ttt', path.join(out, 'last.safetensors'), '--ids', ids, '--backend', 'wasm']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /perplexity: gated/);
  });

  test('stopped after 2 steps and resumed to 4 = 4 steps uninterrupted', () => {
    const straight = path.join(tmp, 'straight'), split = path.join(tmp, 'split');
    assert.equal(cli(['ponder', 'train', ...common, '--steps', '4', '--out', straight]).code, 0);
    const first = cli(['ponder', 'train', ...common, '--steps', '4', '--out', split, '--stop-after', '2']);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, /stopped at step 2/);
    const resumed = cli(['ponder', 'train', '--model', BASE, '--resume', path.join(split, 'last.safetensors'), '--steps', '4', '--backend', 'wasm']);
    assert.equal(resumed.code, 0, resumed.stderr);
    const a = readSafetensors(path.join(straight, 'last.safetensors')).tensors, b = readSafetensors(path.join(split, 'last.safetensors')).tensors;
    for (const [k, t] of a) {
      const u = b.get(k)!;
      let worst = 0;
      t.values.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - u.values[i]))));
      assert.ok(worst <= 1e-6, `${k}: resumed differs by ${worst}`);
    }
  });

  test('headlens train --ponder is the same command', () => {
    const metrics = path.join(tmp, 'alias.jsonl');
    const r = cli(['train', '--ponder', '--model', BASE, '--ttt', TTT, '--overfit-batch', BATCH, '--steps', '1', ...ADAM, '--metrics-jsonl', metrics, '--backend', 'wasm']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(Math.abs(rows(metrics)[0].loss - ref.losses[0]) <= 1e-4);
  });

  test('bad training input: --seq-len instead of --chunk, a chunk that is not whole mini-batches', () => {
    const r = cli(['ponder', 'train', '--model', BASE, '--ttt', TTT, '--overfit-batch', BATCH, '--steps', '1', '--seq-len', '16']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /give --chunk N instead of --seq-len/);
    const c = cli(['ponder', 'train', '--model', BASE, '--ttt', TTT, '--overfit-batch', BATCH, '--steps', '1', '--chunk', '6']);
    assert.equal(c.code, 2);
    assert.match(c.stderr, /--chunk 6: the chunk length must be a positive multiple of the TTT layer's mini-batch size 4/);
  });
});

test('in-process: the trainer keeps the same number of tensors from step to step (the frozen base is not taped)', async () => {
  await initBackend('wasm');
  const inputs = await preparePonderTraining({ base: BASE, ttt: TTT, data: [], overfitBatch: BATCH, options: { steps: 4, lr: ref.lr, warmup: 0, probeInterval: 0 } });
  const run = await buildPonderRun(inputs, 'memory', () => {});
  try {
    await run.trainer.trainStep();
    const after1 = tf.memory().numTensors;
    await run.trainer.trainStep();
    await run.trainer.trainStep();
    assert.equal(tf.memory().numTensors, after1);
    // only the layer's parameters are trained: the optimizer holds moments for exactly those
    assert.deepEqual([...run.trainer.adam.m.keys()].sort(), [...readSafetensors(TTT).tensors.keys()].sort());
  } finally {
    run.dispose();
  }
});
