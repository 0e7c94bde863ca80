/**
 * The trainer in-process: AdamW moments and weights after three steps against the optimizer state
 * a-gpt's own save_checkpoint wrote (the fixtures' .ckpt.pt), per-parameter gradient norms through
 * micro-batched accumulation, flat tensor counts, a stop in the middle of a step, and how a
 * resumed run picks its options.
 */
import { test, describe, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../engine/runtime/tfjs/backend';
import { loadTorchCheckpoint } from '../engine/io/torch';
import { parameterSpecs } from '../engine/models/registry';
import type { TrainEvent } from '../engine/protocol';
import { prepareRun, withDefaults, type RunSpec } from '../engine/train/setup';
import { agptOptions } from '../engine/train/checkpoint';
import { DEFAULT_OPTIONS } from '../engine/train/trainer';
import { FIXTURES, FAMILIES_UNDER_TEST, REPO } from './helpers/fixtures';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'headlens-train-int-'));
const fx = (n: string) => path.join(FIXTURES, n);
const meta = (fam: string) => JSON.parse(fs.readFileSync(fx(`tiny-${fam}.json`), 'utf8'));

/** The fixture's AdamW run: its model, batch and hyper-parameters, constant LR. */
function fixtureSpec(fam: string, extra: Partial<RunSpec['options']> = {}): RunSpec {
  const a = meta(fam).adamw;
  return {
    init: fx(`tiny-${fam}.model.safetensors`),
    config: fx(`tiny-${fam}.json`),
    overfitBatch: fx(`tiny-${fam}.expected.safetensors`),
    data: [],
    options: { steps: 3, lr: a.lr, minLr: a.lr, warmup: 0, weightDecay: a.weight_decay, betas: a.betas, eps: a.eps, clip: a.clip_grad, probeInterval: 0, evalInterval: 0, ...extra },
  };
}

/** max |got − want| / max(max |want|, floor): one number per tensor. */
function relErr(got: ArrayLike<number>, want: ArrayLike<number>, floor: number): number {
  let d = 0, m = floor;
  for (let i = 0; i < want.length; i++) {
    d = Math.max(d, Math.abs(got[i] - want[i]));
    m = Math.max(m, Math.abs(want[i]));
  }
  return d / m;
}

async function pytorchLayout(linear: boolean, t: tf.Tensor): Promise<Float32Array> {
  const pt = linear ? tf.transpose(t) : t;
  const v = (await pt.data()) as Float32Array;
  if (pt !== t) pt.dispose();
  return v;
}

describe('trainer internals on wasm', () => {
  before(async () => {
    await initBackend('wasm');
  });

  for (const fam of ['adaptive', 'adaptive_diffusion']) {
    test(`${fam}: after 3 steps the weights and AdamW moments equal a-gpt's saved checkpoint`, async () => {
      const run = await prepareRun(fixtureSpec(fam), 't', () => {});
      await run.trainer.run();
      const ck = loadTorchCheckpoint(fx(`tiny-${fam}.ckpt.pt`));
      assert.equal(run.trainer.adam.step, 3);
      let worstW = 0, worstM = 0, worstV = 0;
      for (const [i, { name, linear }] of parameterSpecs(run.model.config).entries()) {
        const s = ck.optimizer!.state.get(i)!;
        assert.equal(ck.optimizerParamOrder?.[i], name, 'optimizer index order');
        worstW = Math.max(worstW, relErr(await pytorchLayout(!!linear, run.model.params.get(name)!), ck.stateDict.get(name)!.values, 1e-2));
        worstM = Math.max(worstM, relErr(await pytorchLayout(!!linear, run.trainer.adam.m.get(name)!), (s.exp_avg as { values: Float32Array }).values, 1e-6));
        worstV = Math.max(worstV, relErr(await pytorchLayout(!!linear, run.trainer.adam.v.get(name)!), (s.exp_avg_sq as { values: Float32Array }).values, 1e-9));
      }
      // measured on wasm: weights 2.6e-5, moments ≤ 1.2e-5 of the tensor's largest value
      assert.ok(worstW <= 1e-4, `weights: ${worstW}`);
      assert.ok(worstM <= 2e-4, `exp_avg: ${worstM}`);
      assert.ok(worstV <= 2e-4, `exp_avg_sq: ${worstV}`);
      run.dispose();
    });
  }

  test('resuming a-gpt\'s .pt with its AdamW state: a 4th step lands where our own 4th step does', async () => {
    const ours = await prepareRun(fixtureSpec('adaptive', { steps: 4 }), 'a', () => {});
    await ours.trainer.run();
    const spec = fixtureSpec('adaptive', { steps: 4 });
    const resumed = await prepareRun({ ...spec, init: undefined, resume: fx('tiny-adaptive.ckpt.pt') }, 'b', () => {});
    assert.equal(resumed.trainer.step, 3);
    await resumed.trainer.run();
    let worst = 0;
    for (const [name, p] of ours.model.params) worst = Math.max(worst, relErr(await p.data(), await resumed.model.params.get(name)!.data(), 1e-2));
    assert.ok(worst <= 1e-4, `weights after step 4 differ by ${worst}`);
    // without the moments the 4th update would be a fresh Adam step (≈ lr·sign(g)): far off
    const fresh = await prepareRun({ ...spec, init: undefined, resume: fx('tiny-adaptive.ckpt.pt') }, 'c', () => {});
    fresh.trainer.adam.step = 0;
    for (const t of [...fresh.trainer.adam.m.values(), ...fresh.trainer.adam.v.values()]) tf.tidy(() => t.assign(tf.zerosLike(t)));
    await fresh.trainer.run();
    let apart = 0;
    for (const [name, p] of ours.model.params) apart = Math.max(apart, relErr(await p.data(), await fresh.model.params.get(name)!.data(), 1e-2));
    assert.ok(apart > 100 * worst, `the test cannot tell: ${apart} vs ${worst}`);
    for (const r of [ours, resumed, fresh]) r.dispose();
  });

  for (const fam of FAMILIES_UNDER_TEST) {
    test(`${fam}: per-parameter gradient norms through one-row micro-batches match PyTorch`, async () => {
      const m = meta(fam);
      // 24-token micro-batches: each of the 2 rows separately, their gradients summed with loss weights
      const run = await prepareRun(fixtureSpec(fam, { microTokens: 24 }), 't', () => {});
      assert.equal(run.trainer.data.kind, 'fixed');
      const batch = run.trainer.data.kind === 'fixed' ? run.trainer.data.batch : null;
      const { loss, grads } = await run.trainer.batchGradients(batch!);
      assert.ok(Math.abs(loss - m.loss) <= 1e-4, `loss ${loss} vs ${m.loss}`);
      const expected = m.grad_norms_step0 as Record<string, number>;
      assert.deepEqual([...grads.keys()].sort(), Object.keys(expected).sort());
      for (const [name, g] of grads) {
        const norm = Math.sqrt((await tf.tidy(() => tf.sum(tf.square(g))).data())[0]);
        assert.ok(Math.abs(norm - expected[name]) <= 1e-3 * Math.max(1, expected[name]), `${name}: ${norm} vs ${expected[name]}`);
      }
      tf.dispose([...grads.values()]);
      run.dispose();
    });
  }

  test('gradient accumulation: 2 accumulation steps of one-row micro-batches keep the AdamW trajectory', async () => {
    // on the fixed batch every accumulation step sees the same batch: the mean gradient is the batch's
    const events: TrainEvent[] = [];
    const run = await prepareRun(fixtureSpec('adaptive_diffusion', { gradAccum: 2, microTokens: 24 }), 't', (e) => events.push(e));
    await run.trainer.run();
    const losses = events.flatMap((e) => (e.kind === 'step' ? [e.loss] : e.kind === 'eval' ? [e.val_loss] : []));
    const want = meta('adaptive_diffusion').adamw.losses as number[];
    assert.equal(losses.length, 4);
    losses.forEach((l, i) => assert.ok(Math.abs(l - want[i]) <= 1e-4, `loss ${i}: ${l} vs ${want[i]}`));
    run.dispose();
  });

  test('tensor count stays flat over training steps, evaluations and probes', async () => {
    const spec = fixtureSpec('adaptive', { steps: 8, probeInterval: 2, evalInterval: 2, microTokens: 24 });
    const run = await prepareRun(spec, 't', () => {});
    await run.trainer.trainStep();
    await run.trainer.evaluate();
    await run.trainer.probeMetrics();
    const start = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      await run.trainer.trainStep();
      await run.trainer.evaluate();
      await run.trainer.probeMetrics();
    }
    assert.equal(tf.memory().numTensors, start);
    run.dispose();
  });

  test('a stop in the middle of a step, then resume: the same losses as an uninterrupted run', async () => {
    const config = path.join(tmp, 'tiny.json');
    fs.writeFileSync(config, JSON.stringify({ family: 'adaptive', n_layer: 1, n_head: 2, n_embd: 16, block_size: 16, hyper: { rank: 2, n_heads: 2, n_layers: 1 } }));
    const spec = (out: string, resume?: string): RunSpec => ({
      config, family: 'adaptive', data: [path.join(REPO, 'engine', 'models')], resume,
      options: { steps: 6, batchSize: 4, seqLen: 16, microTokens: 16, lr: 1e-3, warmup: 2, evalInterval: 0, probeInterval: 0, out, seed: 5 },
    });
    const losses = (events: TrainEvent[]) => events.flatMap((e) => (e.kind === 'step' ? [e.loss] : []));

    const whole: TrainEvent[] = [];
    const a = await prepareRun(spec(path.join(tmp, 'whole')), 'a', (e) => whole.push(e));
    await a.trainer.run();
    a.dispose();

    const part: TrainEvent[] = [];
    const b = await prepareRun(spec(path.join(tmp, 'part')), 'b', (e) => part.push(e));
    // stop during the 4th step, after its 2nd of 4 micro-batches
    const loss = b.model.loss.bind(b.model);
    let calls = 0;
    b.model.loss = (batch, opts) => {
      if (opts?.withGrad !== false && ++calls === 3 * 4 + 2) b.trainer.control.stopRequested = true;
      return loss(batch, opts);
    };
    const r = await b.trainer.run();
    assert.equal(r.stopped, true);
    assert.equal(b.trainer.step, 3);
    b.dispose();
    // only --resume and --steps: options, data and --out come from the checkpoint
    const c = await prepareRun({ resume: r.checkpoint!, data: [], options: { steps: 6 } }, 'c', (e) => part.push(e));
    assert.equal(c.trainer.opts.out, path.join(tmp, 'part'));
    await c.trainer.run();
    c.dispose();
    assert.deepEqual(losses(part), losses(whole));
  });
});

describe('resumed options', () => {
  test("a-gpt's TrainConfig and param group become our options", () => {
    const cfg = { model_name: 'adaptive', base_lr: 3e-4, min_lr: 3e-5, warmup_steps: 100, batch_size: 8, grad_accum_steps: 4, weight_decay: 0.1, beta1: 0.9, beta2: 0.95, clip_grad: 1, eval_interval: 100, eval_iters: 20, min_mask_ratio: 0.05 };
    assert.deepEqual(agptOptions(cfg, { eps: 1e-8 }), { lr: 3e-4, minLr: 3e-5, warmup: 100, batchSize: 8, gradAccum: 4, weightDecay: 0.1, eps: 1e-8, clip: 1, evalInterval: 100, evalIters: 20, minMaskRatio: 0.05, betas: [0.9, 0.95] });
    assert.deepEqual(agptOptions({ model_name: 'base' }, { betas: [0.8, 0.9], weight_decay: 0.01 }), { weightDecay: 0.01, betas: [0.8, 0.9] });
  });

  test('given flags win over the resumed run, which wins over the defaults', () => {
    const o = withDefaults({ steps: 50, lr: 1e-3 }, { lr: 5e-4, seqLen: 64, warmup: 7, steps: 10, out: '/x' });
    assert.equal(o.lr, 1e-3);
    assert.equal(o.seqLen, 64);
    assert.equal(o.warmup, 7);
    assert.equal(o.steps, 50);
    assert.equal(o.out, '/x');
    assert.equal(o.batchSize, DEFAULT_OPTIONS.batchSize);
    assert.equal(withDefaults({ steps: 50 }).warmup, 5); // a-gpt's 100, capped at a tenth of a short run
  });
});
