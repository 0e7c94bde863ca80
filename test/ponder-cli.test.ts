/**
 * `headlens ponder` through the real CLI, on the reference GPT-2 base (test/reference/ponder, made by
 * scripts/reference/ponder_train.py) under the tiny-ttt fixture's TTT layer. The whole run is checked
 * against a recomputation from parts proven elsewhere: the base's logits and hidden states from
 * `headlens forward` (gpt2 parity), ln_f and the head done here in plain JS, the TTT branch by the
 * fixture-proven runner, the gate fed those signals — every chunk's decision and τ, the per-token NLL
 * of the three paths, and the perplexities (e^ of the mean over chunks). Then bad input: a TTT layer
 * that does not fit the base names the tensor, exit 2, one line.
 */
import { test, describe, before } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readSafetensors, writeSafetensors } from '../engine/io/safetensors';
import type { HostTensor } from '../engine/io/tensor';
import { initBackend } from '../engine/runtime/tfjs/backend';
import { tttConfigOf } from '../engine/ponder/config';
import { TfTttRunner } from '../engine/ponder/runners';
import { runGate, tttLossFromStats } from '../engine/ponder/gate';
import { ENGINE_JS, REPO, SHARED_FIXTURES, testBackends } from './helpers/fixtures';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'headlens-ponder-cli-'));
const REF = path.join(REPO, 'test', 'reference', 'ponder');
const BASE = path.join(REF, 'base.safetensors');
const TTT = path.join(SHARED_FIXTURES, 'methods', 'tiny-ttt.model.safetensors');
const TTT_JSON = path.join(SHARED_FIXTURES, 'methods', 'tiny-ttt.json');
const CHUNK = 16, FULL_CHUNKS = 20, TAIL = 7; // the tail: one chunk of 4 tokens (a mini-batch), 3 unscored

function cli(args: string[]) {
  const r = spawnSync(process.execPath, [ENGINE_JS, ...args], { encoding: 'utf8', timeout: 300_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Seeded ids in the base's vocabulary (256). */
function documentIds(): number[] {
  let s = 12345;
  return Array.from({ length: FULL_CHUNKS * CHUNK + TAIL }, () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s % 256;
  });
}

const base = readSafetensors(BASE).tensors;
const C = 32, V = 256;

function layerNorm(x: Float32Array, w: ArrayLike<number>, b: ArrayLike<number>): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r < x.length / C; r++) {
    let mu = 0, v = 0;
    for (let i = 0; i < C; i++) mu += x[r * C + i] / C;
    for (let i = 0; i < C; i++) v += (x[r * C + i] - mu) ** 2 / C;
    for (let i = 0; i < C; i++) out[r * C + i] = ((x[r * C + i] - mu) / Math.sqrt(v + 1e-5)) * w[i] + b[i];
  }
  return out;
}

/** −log softmax(h · wteᵀ)[target] of row r. */
function nllOf(h: Float32Array, r: number, target: number): number {
  const wte = base.get('transformer.wte.weight')!.values;
  const logits = new Float64Array(V);
  for (let v = 0; v < V; v++) for (let i = 0; i < C; i++) logits[v] += h[r * C + i] * wte[v * C + i];
  const m = Math.max(...logits);
  return Math.log(logits.reduce((s, z) => s + Math.exp(z - m), 0)) + m - logits[target];
}

interface Truth {
  decisions: string[];
  taus: (number | null)[];
  never: number[];
  always: number[];
  gated: number[];
  ppl: { gated: number; always: number; never: number };
}

/** The run recomputed from `headlens forward` and the fixture-proven TTT runner. */
async function truthOf(ids: number[]): Promise<Truth> {
  const spans: [number, number][] = [...Array(FULL_CHUNKS).keys()].map((c) => [c * CHUNK, (c + 1) * CHUNK]);
  spans.push([FULL_CHUNKS * CHUNK, FULL_CHUNKS * CHUNK + 4]);
  const groups = [spans.slice(0, FULL_CHUNKS), spans.slice(FULL_CHUNKS)];
  await initBackend('wasm');
  const weights = readSafetensors(TTT).tensors;
  const cfg = tttConfigOf(weights, { layers: [[JSON.parse(fs.readFileSync(TTT_JSON, 'utf8')).config, 'tiny-ttt.json']] }, 'tiny-ttt');
  const runner = new TfTttRunner(cfg, weights, 'wasm');
  const signals: number[] = [], never: number[][] = [], always: number[][] = [];
  for (const [g, group] of groups.entries()) {
    const T = group[0][1] - group[0][0];
    const idsFile = path.join(tmp, `chunks-${g}.json`), out = path.join(tmp, `forward-${g}.safetensors`);
    fs.writeFileSync(idsFile, JSON.stringify(group.map(([a, b]) => ids.slice(a, b))));
    const r = cli(['forward', '--model', BASE, '--ids', idsFile, '--out', out, '--backend', 'wasm']);
    assert.equal(r.code, 0, r.stderr);
    const f = readSafetensors(out).tensors;
    const h = layerNorm(f.get('hidden.1')!.values as Float32Array, base.get('transformer.ln_f.weight')!.values, base.get('transformer.ln_f.bias')!.values);
    const logits = f.get('logits')!;
    const branch = await runner.run(h, group.length, T, ['out', 'lossStep0', 'lossStep1']);
    const adapted = branch.get('out')!.values as Float32Array;
    const H = cfg.num_heads, n = T / cfg.mini_batch_size;
    group.forEach(([a], b) => {
      const perMb = (t: HostTensor) => Array.from({ length: n }, (_, i) => Array.from({ length: H }, (_, k) => t.values[(b * H + k) * n + i]).reduce((s, x) => s + x, 0) / H);
      signals.push(tttLossFromStats(perMb(branch.get('lossStep0')!), perMb(branch.get('lossStep1')!)).signal);
      const nv: number[] = [], al: number[] = [];
      for (let t = 0; t < T - 1; t++) {
        const row = Array.from(logits.values.subarray((b * T + t) * V, (b * T + t + 1) * V));
        const m = Math.max(...row);
        nv.push(Math.log(row.reduce((s, z) => s + Math.exp(z - m), 0)) + m - row[ids[a + t + 1]]);
        al.push(nllOf(adapted, b * T + t, ids[a + t + 1]));
      }
      never.push(nv);
      always.push(al);
    });
  }
  await runner.dispose();
  const gate = runGate(signals);
  const gated = gate.map((g, c) => (g.decision === 'UPDATE' ? always[c] : never[c]));
  const meanOfChunks = (xs: number[][]) => Math.exp(xs.map((x) => x.reduce((s, v) => s + v, 0) / x.length).reduce((s, v) => s + v, 0) / xs.length);
  return {
    decisions: gate.map((g) => g.decision), taus: gate.map((g) => g.threshold_used),
    never: never.flat(), always: always.flat(), gated: gated.flat(),
    ppl: { gated: meanOfChunks(gated), always: meanOfChunks(always), never: meanOfChunks(never) },
  };
}

describe('headlens ponder', () => {
  const ids = documentIds();
  const idsFile = path.join(tmp, 'doc.json');
  fs.writeFileSync(idsFile, JSON.stringify(ids));
  let truth: Truth;
  before(async () => {
    truth = await truthOf(ids);
  });

  for (const backend of testBackends()) {
    test(`${backend}: every chunk's decision and τ, the per-token NLL of the three paths and the perplexities`, () => {
      const json = path.join(tmp, `ponder-${backend}.json`);
      const r = cli(['ponder', '--model', BASE, '--ttt', TTT, '--ttt-config', TTT_JSON, '--ids', idsFile, '--json', json, '--backend', backend]);
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(fs.readFileSync(json, 'utf8'));
      assert.equal(out.chunks.length, FULL_CHUNKS + 1);
      assert.equal(out.unscored, 3);
      assert.deepEqual(out.chunks.map((c: { decision: string }) => c.decision), truth.decisions);
      assert.ok(truth.decisions.slice(0, 16).every((d) => d === 'UPDATE') && truth.decisions.includes('SKIP'), 'the run passes the calibration and skips');
      out.chunks.forEach((c: { tau: number | null }, i: number) => {
        const t = truth.taus[i];
        if (t === null) assert.equal(c.tau, null);
        else assert.ok(Math.abs(c.tau! - t) <= 1e-5 * Math.abs(t), `chunk ${i}: τ ${c.tau} vs ${t}`);
      });
      const scored = (a: (number | null)[]) => a.filter((v): v is number => v !== null);
      for (const k of ['never', 'always', 'gated'] as const) {
        const got = scored(out.nll[k]);
        assert.equal(got.length, truth[k].length, `${k}: scored positions`);
        got.forEach((v, i) => assert.ok(Math.abs(v - truth[k][i]) <= 1e-3, `${k} NLL ${i}: ${v} vs ${truth[k][i]}`));
        assert.ok(Math.abs(out.ppl[k] - truth.ppl[k]) <= 1e-4 * truth.ppl[k], `${k} ppl ${out.ppl[k]} vs ${truth.ppl[k]}`);
      }
      // the last position of every chunk predicts past its chunk: not scored
      assert.equal(out.nll.gated[CHUNK - 1], null);
      assert.match(r.stdout, /^chunk +0 .*UPDATE .*τ \(calibrating\)/m);
      assert.match(r.stdout, /perplexity: gated [\d.]+ .* always-update [\d.]+, never-update [\d.]+/);
    });
  }

  test('--target-rate moves the gate: ρ = 0.1 skips more chunks than ρ = 0.9', () => {
    const rate = (rho: string) => {
      const json = path.join(tmp, `rate-${rho}.json`);
      const r = cli(['ponder', '--model', BASE, '--ttt', TTT, '--ttt-config', TTT_JSON, '--ids', idsFile, '--target-rate', rho, '--json', json, '--backend', 'wasm']);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(fs.readFileSync(json, 'utf8')).updateRate as number;
    };
    assert.ok(rate('0.1') < rate('0.9'));
  });
});

describe('headlens ponder: bad input (exit 2, one line naming the problem)', () => {
  const ids = path.join(tmp, 'short.json');
  fs.writeFileSync(ids, JSON.stringify(documentIds().slice(0, 40)));
  const oneLine = (r: { code: number | null; stdout: string; stderr: string }, pattern: RegExp) => {
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, pattern);
  };
  const ttt = readSafetensors(TTT).tensors;
  const variant = (name: string, change: (t: Map<string, HostTensor>) => void) => {
    const t = new Map(ttt);
    change(t);
    const file = path.join(tmp, `${name}.safetensors`);
    writeSafetensors(file, t);
    return file;
  };

  test('a TTT layer for another width than the base: the tensor is named', () => {
    oneLine(cli(['ponder', '--model', path.join(SHARED_FIXTURES, 'gpt2', 'tiny-hf'), '--ttt', TTT, '--ids', ids]), /tiny-ttt\.model\.safetensors: tensor 'fast_norm\.scale' has shape \[32\] but the base model .* is 64 wide/);
  });

  test('one tensor of the wrong shape, one missing, a GPT-2 file as the layer, a garbage file', () => {
    const narrow = variant('narrow-wq', (t) => t.set('fast_layer.wq.kernel', { shape: [32, 30], dtype: 'float32', values: new Float32Array(960) }));
    oneLine(cli(['ponder', '--model', BASE, '--ttt', narrow, '--ids', ids]), /tensor 'fast_layer\.wq\.kernel' has shape \[32,30\] .* needs \[32,32\]/);
    const missing = variant('missing', (t) => t.delete('fast_layer.learnable_ttt_lr_layers.1.bias'));
    oneLine(cli(['ponder', '--model', BASE, '--ttt', missing, '--ids', ids]), /missing tensor 'fast_layer\.learnable_ttt_lr_layers\.1\.bias'/);
    oneLine(cli(['ponder', '--model', BASE, '--ttt', BASE, '--ids', ids]), /base\.safetensors: missing tensor 'fast_layer\.W1': not a PonderTTT TTT-layer checkpoint/);
    const garbage = path.join(tmp, 'garbage.safetensors');
    fs.writeFileSync(garbage, Buffer.from('not a safetensors file at all'));
    oneLine(cli(['ponder', '--model', BASE, '--ttt', garbage, '--ids', ids]), /garbage\.safetensors: /);
  });

  test('a chunk that is not whole mini-batches, an id outside the vocabulary, a config that contradicts the tensors', () => {
    oneLine(cli(['ponder', '--model', BASE, '--ttt', TTT, '--ids', ids, '--chunk', '10']), /--chunk 10: .*multiple of the TTT layer's mini-batch size 4/);
    const bad = path.join(tmp, 'bad-ids.json');
    fs.writeFileSync(bad, JSON.stringify([1, 2, 300]));
    oneLine(cli(['ponder', '--model', BASE, '--ttt', TTT, '--ids', bad]), /id 300 at \[2\] is not an integer in \[0, 256\)/);
    oneLine(cli(['ponder', '--model', BASE, '--ttt', TTT, '--ids', ids, '--ttt-config', '{"num_heads": 4}']), /says num_heads 4 but tensor 'fast_layer\.W1' has shape \[2,16,16\]/);
  });

  test('ponder train: a TTT layer that does not fit the base names the tensor', () => {
    oneLine(cli(['ponder', 'train', '--model', path.join(SHARED_FIXTURES, 'gpt2', 'tiny-hf'), '--ttt', TTT, '--overfit-batch', path.join(REF, 'batch.safetensors'), '--steps', '1']), /tensor 'fast_norm\.scale' has shape \[32\] but the base model/);
  });
});
