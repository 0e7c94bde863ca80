/**
 * PonderTTT against ../shared/fixtures/methods `tiny-ttt` (a cited line-by-line port of
 * deveworld/ponderTTT's TTT layer, and their own ReconstructionGating run unchanged, see its README):
 * every tensor of the TTT branch on every backend (TensorFlow.js and the traced ONNX graph on
 * onnxruntime) at the README's tolerances; the gate fed their recorded float64 signals reproduces
 * every decision and τ / ema_rate / ema_loss to 1e-12 relative; and from our own float32 signals of
 * the 40-chunk stream the decisions still match.
 */
import { test, describe } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readSafetensors } from '../engine/io/safetensors';
import type { HostTensor } from '../engine/io/tensor';
import { initBackend, type TfjsChoice } from '../engine/runtime/tfjs/backend';
import type { OrtProvider } from '../engine/runtime/onnx/ort';
import { tttConfigOf, type TttConfig } from '../engine/ponder/config';
import { OrtTttRunner, TfTttRunner, type TttOutputName, type TttRunner } from '../engine/ponder/runners';
import { budgetToUpdateRate, runGate, tttLossFromStats, type GateRecord } from '../engine/ponder/gate';
import { SHARED_FIXTURES, assertClose, testBackends } from './helpers/fixtures';

const DIR = path.join(SHARED_FIXTURES, 'methods');
const MODEL_FILE = path.join(DIR, 'tiny-ttt.model.safetensors');
const json = JSON.parse(fs.readFileSync(path.join(DIR, 'tiny-ttt.json'), 'utf8'));
const weights = readSafetensors(MODEL_FILE).tensors;
const ex = readSafetensors(path.join(DIR, 'tiny-ttt.expected.safetensors')).tensors;
const config: TttConfig = tttConfigOf(weights, { layers: [[json.config, 'tiny-ttt.json']] }, 'tiny-ttt.model.safetensors');
const CHUNK: number = json.config.chunk_len;
const NMB = CHUNK / config.mini_batch_size;

const ALL: TttOutputName[] = ['out', 'tttOutput', 'normed', 'xq', 'xk', 'xv', 'eta', 'z', 'lossInit', 'lossStep0', 'lossStep1', 'sslTargetVariance', 'fastW', 'fastB'];

async function runnerFor(backend: string): Promise<TttRunner> {
  if (backend.startsWith('onnx-')) return new OrtTttRunner(config, weights, { provider: backend.slice(5) as OrtProvider, threads: 1 });
  await initBackend(backend as TfjsChoice);
  return new TfTttRunner(config, weights, backend);
}

/** The fixture's [1, chunks·T, …] hidden states as a batch of independent chunks (B = chunks, T = CHUNK). */
function chunksOf(t: HostTensor): { values: Float32Array; B: number } {
  return { values: t.values as Float32Array, B: t.shape[1] / CHUNK };
}

const host = (shape: number[], values: ArrayLike<number>): HostTensor => ({ shape, dtype: 'float32', values: Float32Array.from(values) });

/** (B, H, n) per head → [B, n] mean over heads (their `.mean(axis=(0, 1))` per chunk, B = 1 there). */
function meanOverHeads(t: HostTensor): HostTensor {
  const [B, Hh, n] = t.shape;
  const out = new Float32Array(B * n);
  for (let b = 0; b < B; b++) for (let i = 0; i < n; i++) {
    let s = 0;
    for (let h = 0; h < Hh; h++) s += t.values[(b * Hh + h) * n + i];
    out[b * n + i] = s / Hh;
  }
  return host([B, n], out);
}

for (const backend of testBackends()) {
  describe(`PonderTTT TTT layer against tiny-ttt on ${backend}`, () => {
    test('every tensor of the branch on the two chunks (run as one batch), at the README tolerances', async () => {
      const r = await runnerFor(backend);
      try {
        const { values, B } = chunksOf(ex.get('hidden_states')!);
        const got = await r.run(values, B, CHUNK, ALL);
        const rel = { rel: 1e-3 };
        const flat = (name: string, t: HostTensor) => host(ex.get(name)!.shape, t.values); // the chunks side by side along T
        assertClose(flat('fast_norm_out', got.get('normed')!), ex.get('fast_norm_out')!, rel, 'fast_norm_out');
        for (const k of ['xq', 'xk', 'xv'] as const) assertClose(flat(k, got.get(k)!), ex.get(k)!, rel, k);
        assertClose(flat('eta', got.get('eta')!), ex.get('eta')!, rel, 'eta');
        assertClose(flat('ttt_z', got.get('z')!), ex.get('ttt_z')!, rel, 'ttt_z');
        assertClose(flat('ttt_output', got.get('tttOutput')!), ex.get('ttt_output')!, rel, 'ttt_output');
        assertClose(flat('out_update', got.get('out')!), ex.get('out_update')!, rel, 'out_update');
        for (const [ours, theirs] of [['lossInit', 'ttt_loss_init'], ['lossStep0', 'ttt_loss_step_0'], ['lossStep1', 'ttt_loss_step_1']] as const) {
          assertClose(flat(`${theirs}.per_head`, got.get(ours)!), ex.get(`${theirs}.per_head`)!, rel, `${theirs}.per_head`);
          assertClose(meanOverHeads(got.get(ours)!), ex.get(theirs)!, rel, theirs);
        }
        assertClose(got.get('sslTargetVariance')!, ex.get('ssl_target_variance')!, rel, 'ssl_target_variance');
        assertClose(flat('fast_W', got.get('fastW')!), ex.get('fast_W')!, rel, 'fast_W');
        assertClose(flat('fast_b', got.get('fastB')!), ex.get('fast_b')!, rel, 'fast_b');
        const step0 = meanOverHeads(got.get('lossStep0')!), step1 = meanOverHeads(got.get('lossStep1')!);
        const signals = Array.from({ length: B }, (_, c) => tttLossFromStats(step0.values.subarray(c * NMB, (c + 1) * NMB), step1.values.subarray(c * NMB, (c + 1) * NMB)).signal);
        assertClose(host([B], signals), ex.get('gate_signal')!, rel, 'gate_signal');
      } finally {
        await r.dispose();
      }
    });

    test('η = 0 (their gating_scale 0): the fast weights stay at W1, b1 — ttt_output_eta0 and out_eta0', async () => {
      const r = await runnerFor(backend);
      try {
        const { values, B } = chunksOf(ex.get('hidden_states')!);
        const got = await r.run(values, B, CHUNK, ['out', 'tttOutput'], { etaScale: 0 });
        assertClose(host(ex.get('ttt_output_eta0')!.shape, got.get('tttOutput')!.values), ex.get('ttt_output_eta0')!, { rel: 1e-3 }, 'ttt_output_eta0');
        assertClose(host(ex.get('out_eta0')!.shape, got.get('out')!.values), ex.get('out_eta0')!, { rel: 1e-3 }, 'out_eta0');
        // SKIP in their code is no branch at all: the base hidden state itself
        assertClose(ex.get('hidden_states')!, ex.get('out_skip')!, { abs: 0 }, 'out_skip is h');
      } finally {
        await r.dispose();
      }
    });

    test('from our own float32 signals of the 40-chunk stream the gate takes every recorded decision', async () => {
      const r = await runnerFor(backend);
      try {
        const { values, B } = chunksOf(ex.get('stream')!);
        const got = await r.run(values, B, CHUNK, ['lossStep0', 'lossStep1']);
        const step0 = meanOverHeads(got.get('lossStep0')!), step1 = meanOverHeads(got.get('lossStep1')!);
        const ours = Array.from({ length: B }, (_, c) => tttLossFromStats(step0.values.subarray(c * NMB, (c + 1) * NMB), step1.values.subarray(c * NMB, (c + 1) * NMB)).signal);
        const recorded: GateRecord[] = json.gate.stream;
        ours.forEach((s, c) => assert.ok(Math.abs(s - recorded[c].signal) <= 1e-3 * Math.max(1, Math.abs(recorded[c].signal)), `chunk ${c}: signal ${s} vs ${recorded[c].signal}`));
        const gate = runGate(ours, { targetRate: budgetToUpdateRate(json.gate.budget) });
        assert.deepEqual(gate.map((g) => g.decision), recorded.map((g) => g.decision));
      } finally {
        await r.dispose();
      }
    });
  });
}

describe('the PonderTTT gate fed the recorded float64 signals (their ReconstructionGating, run unchanged)', () => {
  const close = (got: number | null, exp: number | null, label: string) => {
    if (exp === null) return assert.equal(got, null, label);
    assert.ok(got !== null && Math.abs(got - exp) <= 1e-12 * Math.max(Math.abs(exp), 1e-300), `${label}: ${got} vs ${exp}`);
  };
  for (const run of ['stream', 'synthetic'] as const) {
    test(`${run}: every decision exactly, τ, ema_rate and ema_loss to 1e-12 relative`, () => {
      const recorded: GateRecord[] = json.gate[run];
      const got = runGate(recorded.map((r) => r.signal), { targetRate: json.gate.target_update_rate, emaAlpha: json.gate.ema_alpha, calibrationBatches: json.gate.calibration_chunks / 8 });
      assert.equal(got.length, recorded.length);
      got.forEach((g, i) => {
        const r = recorded[i];
        assert.equal(g.decision, r.decision, `${run} chunk ${i} decision`);
        assert.equal(g.phase, r.phase, `${run} chunk ${i} phase`);
        assert.equal(g.calibrated_after, r.calibrated_after, `${run} chunk ${i} calibrated`);
        close(g.threshold_used, r.threshold_used, `${run} chunk ${i} τ used`);
        close(g.margin, r.margin, `${run} chunk ${i} margin`);
        close(g.threshold_after, r.threshold_after, `${run} chunk ${i} τ after`);
        close(g.ema_rate_after, r.ema_rate_after, `${run} chunk ${i} ema_rate`);
        close(g.ema_loss_after, r.ema_loss_after, `${run} chunk ${i} ema_loss`);
      });
      assert.ok(got.some((g) => g.decision === 'SKIP') && got.some((g, i) => i >= 16 && g.decision === 'UPDATE'), 'the run exercises both decisions after calibration');
    });
  }

  test('the synthetic run reaches the max(0.1, |τ|) factor and the 0.01 floor', () => {
    const got = runGate((json.gate.synthetic as GateRecord[]).map((r) => r.signal));
    assert.ok(got.some((g) => g.threshold_used !== null && g.threshold_used < 0.1));
    assert.ok(got.some((g) => g.threshold_after === 0.01));
  });

  test('budget_to_update_rate: clip((budget − 1) / 2, 0, 1)', () => {
    assert.equal(budgetToUpdateRate(2.0), 0.5);
    assert.equal(budgetToUpdateRate(1.0), 0);
    assert.equal(budgetToUpdateRate(0.5), 0);
    assert.equal(budgetToUpdateRate(3.0), 1);
    assert.equal(budgetToUpdateRate(5.0), 1);
    assert.equal(budgetToUpdateRate(1.5), 0.25);
  });
});
