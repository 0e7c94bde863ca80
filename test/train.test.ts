/**
 * Training: AdamW loss trajectories and gradient norms against the a-gpt fixtures (all five
 * families, through the real CLI), resume = uninterrupted, a killed run resumes from its last
 * checkpoint, a-gpt's schedule and diffusion sampler, and bad input.
 */
import { test, describe } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cosineLr } from '../engine/train/schedule';
import { diffusionBatch } from '../engine/train/data';
import { Rng } from '../engine/train/rng';
import { readSafetensors } from '../engine/io/safetensors';
import { ENGINE_JS, FIXTURES, FAMILIES_UNDER_TEST, REPO, testBackends } from './helpers/fixtures';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'headlens-train-'));
const fx = (n: string) => path.join(FIXTURES, n);

function train(args: string[], backend = 'wasm') {
  const r = spawnSync(process.execPath, [ENGINE_JS, 'train', '--backend', backend, ...args], { encoding: 'utf8', timeout: 300_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
function jsonl(file: string): Record<string, number>[] {
  return fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
}
const steps = (rows: Record<string, number>[]) => rows.filter((r) => r.grad_norm !== undefined);

/** A small corpus with a GPT-2 vocabulary model: the repository's own engine sources. */
const CORPUS = path.join(REPO, 'engine', 'models');
const TINY_CONFIG = path.join(tmp, 'tiny.json');
fs.writeFileSync(TINY_CONFIG, JSON.stringify({ family: 'adaptive', n_layer: 1, n_head: 4, n_embd: 32, block_size: 32, hyper: { rank: 2, n_heads: 2, n_layers: 1 } }));
const SMALL = ['--config', TINY_CONFIG, '--data', CORPUS, '--batch-size', '4', '--seq-len', '32', '--lr', '1e-3', '--warmup', '2', '--probe-interval', '0', '--eval-iters', '1'];

for (const backend of testBackends()) {
  const families = backend === 'cpu' ? (['adaptive'] as const) : FAMILIES_UNDER_TEST;
  describe(`AdamW parity on ${backend}`, () => {
    for (const fam of families) {
      test(`${fam}: losses of 3 AdamW steps and the step-0 gradient norm match PyTorch`, () => {
        const meta = JSON.parse(fs.readFileSync(fx(`tiny-${fam}.json`), 'utf8'));
        const a = meta.adamw;
        const metrics = path.join(tmp, `${backend}-${fam}.jsonl`);
        const r = train([
          '--init', fx(`tiny-${fam}.model.safetensors`), '--config', fx(`tiny-${fam}.json`), '--overfit-batch', fx(`tiny-${fam}.expected.safetensors`),
          '--steps', '3', '--lr', String(a.lr), '--min-lr', String(a.lr), '--warmup', '0', '--weight-decay', String(a.weight_decay),
          '--betas', a.betas.join(','), '--clip', String(a.clip_grad), '--eval-interval', '3', '--probe-interval', '0', '--metrics-jsonl', metrics,
        ], backend);
        assert.equal(r.code, 0, r.stderr);
        const rows = jsonl(metrics);
        const st = steps(rows);
        assert.equal(st.length, 3);
        st.forEach((row, i) => assert.ok(Math.abs(row.loss - a.losses[i]) <= 1e-4, `${fam} loss ${i}: ${row.loss} vs ${a.losses[i]}`));
        const final = rows.find((x) => x.val_loss !== undefined)!;
        assert.ok(Math.abs(final.val_loss - a.losses[3]) <= 1e-4, `${fam} loss after 3 steps: ${final.val_loss} vs ${a.losses[3]}`);
        assert.ok(Math.abs(st[0].grad_norm - meta.grad_total_norm_before_clip) <= 1e-4, `${fam} grad norm ${st[0].grad_norm} vs ${meta.grad_total_norm_before_clip}`);
        assert.deepEqual(st.map((x) => x.step), [0, 1, 2]);
      });
    }
  });
}

describe('resume', () => {
  test('stopping and resuming gives the same losses as an uninterrupted run', () => {
    const whole = path.join(tmp, 'whole.jsonl'), part = path.join(tmp, 'part.jsonl');
    const outA = path.join(tmp, 'runA'), outB = path.join(tmp, 'runB');
    assert.equal(train([...SMALL, '--steps', '6', '--out', outA, '--metrics-jsonl', whole, '--eval-interval', '3']).code, 0);
    const r1 = train([...SMALL, '--steps', '6', '--out', outB, '--metrics-jsonl', part, '--eval-interval', '3', '--stop-after', '3']);
    assert.equal(r1.code, 0, r1.stderr);
    assert.match(r1.stderr, /stopped at step 3/);
    const r2 = train([...SMALL, '--steps', '6', '--out', outB, '--metrics-jsonl', part, '--eval-interval', '3', '--resume', path.join(outB, 'last.safetensors')]);
    assert.equal(r2.code, 0, r2.stderr);
    const a = steps(jsonl(whole)).map((x) => x.loss), b = steps(jsonl(part)).map((x) => x.loss);
    assert.equal(b.length, 6);
    a.forEach((l, i) => assert.ok(Math.abs(l - b[i]) <= 1e-6, `step ${i}: ${l} vs ${b[i]}`));
  });

  test('a killed run resumes from its last checkpoint', async () => {
    const out = path.join(tmp, 'killed');
    const child = spawn(process.execPath, [ENGINE_JS, 'train', '--backend', 'wasm', ...SMALL, '--steps', '10000', '--out', out, '--checkpoint-interval', '2', '--eval-interval', '0'], { stdio: 'ignore' });
    const sidecar = path.join(out, 'last.json');
    const deadline = Date.now() + 120_000;
    while (!fs.existsSync(sidecar) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    // the checkpoint's own metadata, not the sidecar: the kill may fall between writing the two
    const saved = JSON.parse(readSafetensors(path.join(out, 'last.safetensors')).metadata.state);
    assert.ok(saved.step >= 2, `checkpoint at step ${saved.step}`);
    const metrics = path.join(tmp, 'killed.jsonl');
    const r = train([...SMALL, '--steps', String(saved.step + 2), '--out', out, '--eval-interval', '0', '--metrics-jsonl', metrics, '--resume', path.join(out, 'last.safetensors')]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(steps(jsonl(metrics)).map((x) => x.step), [saved.step, saved.step + 1]);
  });

  test('SIGTERM stops within the step, exits 0 and leaves a checkpoint', async () => {
    const out = path.join(tmp, 'term');
    const metrics = path.join(tmp, 'term.jsonl');
    const child = spawn(process.execPath, [ENGINE_JS, 'train', '--backend', 'wasm', ...SMALL, '--steps', '10000', '--out', out, '--eval-interval', '0', '--metrics-jsonl', metrics], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const deadline = Date.now() + 120_000;
    while (!(fs.existsSync(metrics) && fs.readFileSync(metrics, 'utf8').includes('"grad_norm"')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    child.kill('SIGTERM');
    assert.equal(await exited, 0, stderr);
    const done = steps(jsonl(metrics)).length;
    assert.match(stderr, new RegExp(`stopped at step ${done}`));
    const saved = JSON.parse(readSafetensors(path.join(out, 'last.safetensors')).metadata.state);
    assert.equal(saved.step, done);
  });

  test('a-gpt .pt checkpoints resume with their AdamW state', () => {
    const metrics = path.join(tmp, 'agpt-resume.jsonl');
    const r = train(['--resume', fx('tiny-adaptive.ckpt.pt'), '--config', fx('tiny-adaptive.json'), '--overfit-batch', fx('tiny-adaptive.expected.safetensors'),
      '--steps', '4', '--lr', '0.001', '--min-lr', '0.001', '--warmup', '0', '--probe-interval', '0', '--eval-interval', '0', '--metrics-jsonl', metrics]);
    assert.equal(r.code, 0, r.stderr);
    const st = steps(jsonl(metrics));
    assert.deepEqual(st.map((x) => x.step), [3]);
    // the loss before the 4th step is the fixture's loss after 3 steps (the checkpoint's weights)
    const meta = JSON.parse(fs.readFileSync(fx('tiny-adaptive.json'), 'utf8'));
    assert.ok(Math.abs(st[0].loss - meta.adamw.losses[3]) <= 1e-4, `${st[0].loss} vs ${meta.adamw.losses[3]}`);
  });
});

describe('schedule and sampler', () => {
  test("a-gpt's cosine schedule with linear warmup", () => {
    const near = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} vs ${b}`);
    near(cosineLr(0, 100, 10, 1e-3, 1e-4), 1e-4); // (step + 1)/warmup · base
    near(cosineLr(9, 100, 10, 1e-3, 1e-4), 1e-3);
    near(cosineLr(10, 100, 10, 1e-3, 1e-4), 1e-3);
    near(cosineLr(55, 100, 10, 1e-3, 1e-4), 5.5e-4); // halfway: (max + min) / 2
    near(cosineLr(100, 100, 10, 1e-3, 1e-4), 1e-4);
    near(cosineLr(5, 10, 20, 1e-3, 1e-4), 3e-4); // warmup longer than the run
  });

  test('diffusion batches: mask ratio min + (1 − min)·t/T_d per timestep, ≥ 1 masked token per row', () => {
    const tokens = Int32Array.from({ length: 5000 }, (_, i) => i % 1000);
    const rng = new Rng(3);
    const byT = new Map<number, [number, number]>();
    for (let i = 0; i < 400; i++) {
      const b = diffusionBatch(tokens, 8, 64, rng, { steps: 8, maskTokenId: 50256, minMaskRatio: 0.05 });
      for (let r = 0; r < 8; r++) {
        let masked = 0;
        for (let k = 0; k < 64; k++) {
          const m = b.mask![r * 64 + k];
          masked += m;
          assert.equal(b.inputIds[r * 64 + k], m ? 50256 : b.targets[r * 64 + k]);
        }
        assert.ok(masked >= 1);
        const t = b.t![r];
        assert.ok(t >= 1 && t <= 8);
        const acc = byT.get(t) ?? [0, 0];
        byT.set(t, [acc[0] + masked, acc[1] + 64]);
      }
    }
    for (const [t, [m, n]] of byT) {
      const expected = 0.05 + 0.95 * (t / 8);
      assert.ok(Math.abs(m / n - expected) < 0.03, `t=${t}: ratio ${m / n} vs ${expected}`);
    }
  });
});

describe('bad input', () => {
  const badLine = (r: ReturnType<typeof train>, re: RegExp) => {
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, re);
  };
  test('an empty corpus', () => {
    const empty = fs.mkdtempSync(path.join(tmp, 'empty-'));
    badLine(train(['--data', empty, '--steps', '2']), /no text files found/);
  });
  test('a corpus shorter than one window', () => {
    const f = path.join(tmp, 'short.txt');
    fs.writeFileSync(f, 'just a few words');
    badLine(train(['--data', f, '--steps', '2', '--seq-len', '64']), /too short/);
  });
  test('an unwritable --out', () => badLine(train(['--data', CORPUS, '--steps', '2', '--out', '/etc/hostname/sub']), /cannot write/));
  test('non-numeric flags', () => badLine(train(['--data', CORPUS, '--steps', 'ten']), /--steps must be a number/));
  test('betas that are not two numbers', () => badLine(train(['--data', CORPUS, '--steps', '2', '--betas', '0.9']), /--betas/));
  test('a missing data path', () => badLine(train(['--data', '/no/such/dir', '--steps', '2']), /no such file or folder/));
});
