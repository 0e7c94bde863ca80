/**
 * Interventions against independent truth: the per-token NLL under `zero`, `mean` and `adaptive-off`
 * equals the a-gpt authors' code with the same change made by forward hooks
 * (test/reference/interventions/ablate.json, scripts/reference/ablate.py) on every runtime; ablating
 * nothing changes nothing; adaptive-off on a model without an adaptive path is refused in one line;
 * head-role scores on hand-made attention patterns equal the formula's values; a sweep streams one
 * cell per head and a cancelled one leaves nothing allocated.
 */
import { test, describe } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { loadModel, type LoadedModel } from '../engine/runtime/loaded';
import { initRuntime } from '../engine/runtime/select';
import { controlsFor, parseAblations, sequenceNll, sweep } from '../engine/analysis/interventions';
import { detectionPattern, inductionScores, layerRoleScores, patternScore, repeatedRandomTokens, ROLES } from '../engine/analysis/roles';
import { floatToHalf, halfToFloat } from '../engine/codec';
import { CancelledError } from '../engine/errors';
import { ENGINE_JS, FIXTURES, REPO, testBackends } from './helpers/fixtures';

const ref = JSON.parse(fs.readFileSync(path.join(REPO, 'test', 'reference', 'interventions', 'ablate.json'), 'utf8')) as {
  cases: { family: string; spec: string; ids: number[][]; base_nll: number[][]; nll: number[][] }[];
};

async function fixtureModel(backend: string, family: string): Promise<LoadedModel> {
  const base = path.join(FIXTURES, `tiny-${family}`);
  return loadModel({ path: `${base}.model.safetensors`, config: `${base}.json` }, await initRuntime(backend as never));
}

for (const backend of testBackends().filter((b) => b !== 'cpu')) {
  describe(`ablations on ${backend}`, () => {
    for (const c of ref.cases) {
      test(`${c.family} ${c.spec}: the NLL change equals the authors' code with hooks`, async () => {
        const lm = await fixtureModel(backend, c.family);
        try {
          const controls = controlsFor(parseAblations(c.spec, lm.info), lm.info.layers, lm.info.heads);
          let effect = 0;
          for (const [b, row] of c.ids.entries()) {
            const base = await sequenceNll(lm, Int32Array.from(row));
            const got = await sequenceNll(lm, Int32Array.from(row), controls);
            for (let t = 0; t < row.length - 1; t++) {
              const want = c.nll[b][t] - c.base_nll[b][t];
              effect = Math.max(effect, Math.abs(want));
              assert.ok(Math.abs(base[t] - c.base_nll[b][t]) <= 1e-4, `base ${b},${t}: ${base[t]} vs ${c.base_nll[b][t]}`);
              assert.ok(Math.abs(got[t] - base[t] - want) <= 2e-5, `Δ ${b},${t}: ${got[t] - base[t]} vs ${want}`);
            }
          }
          assert.ok(effect > 1e-4, `the ablation must move the loss for the test to mean something (max ${effect})`);
        } finally {
          await lm.dispose();
        }
      });
    }

    test('ablating nothing changes nothing', async () => {
      const lm = await fixtureModel(backend, 'adaptive');
      try {
        const row = Int32Array.from(ref.cases[0].ids[0]);
        const none = controlsFor([], lm.info.layers, lm.info.heads);
        assert.deepEqual(await sequenceNll(lm, row, none), await sequenceNll(lm, row));
      } finally {
        await lm.dispose();
      }
    });
  });
}

describe('interventions', () => {
  test('adaptive-off on a model without an adaptive path is refused in one line', () => {
    const base = path.join(FIXTURES, 'tiny-base');
    const ids = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'headlens-abl-')), 'ids.json');
    fs.writeFileSync(ids, JSON.stringify(ref.cases[0].ids));
    const r = spawnSync(process.execPath, [ENGINE_JS, 'ablate', '--model', `${base}.model.safetensors`, '--config', `${base}.json`, '--ids', ids, '--ablate', '0.1:adaptive-off', '--backend', 'wasm'], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    const lines = r.stderr.split('\n').filter(Boolean);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /a base model has no adaptive path to switch off/);
  });

  test('ablate --json through the CLI: one row per sequence, nll[b][t] = −log p(ids[b][t+1])', () => {
    const c = ref.cases.find((x) => x.spec === '1.2:mean')!;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'headlens-abl-'));
    const ids = path.join(dir, 'ids.json'), out = path.join(dir, 'out.json');
    fs.writeFileSync(ids, JSON.stringify(c.ids));
    const base = path.join(FIXTURES, `tiny-${c.family}`);
    const r = spawnSync(process.execPath, [ENGINE_JS, 'ablate', '--model', `${base}.model.safetensors`, '--config', `${base}.json`, '--ids', ids, '--ablate', c.spec, '--json', out, '--backend', 'wasm'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const o = JSON.parse(fs.readFileSync(out, 'utf8'));
    assert.equal(o.nll.length, 2);
    assert.equal(o.nll[0].length, 23);
    for (let b = 0; b < 2; b++) for (let t = 0; t < 23; t++) assert.ok(Math.abs(o.nll[b][t] - c.nll[b][t]) <= 1e-4);
  });

  test('head roles on hand-made patterns: a pure previous-token head scores 1 as previous, ≈ 0 as induction', () => {
    const ids = [5, 6, 7, 5, 6, 7, 5, 6];
    const T = ids.length;
    const prev = new Float32Array(T * T);
    prev[0] = 1;
    for (let q = 1; q < T; q++) prev[q * T + q - 1] = 1;
    assert.equal(patternScore(prev, detectionPattern('previous', ids), T), (T - 1) / T); // row 0 can only see itself
    assert.equal(patternScore(prev, detectionPattern('previous', ids), T, { excludeBos: true }), 1 - 0 / T);
    assert.equal(patternScore(prev, detectionPattern('induction', ids), T), 0);
    // an induction head: each token attends to the one after its previous occurrence
    const ind = new Float32Array(T * T);
    for (let q = 0; q < T; q++) ind[q * T + (q >= 3 ? q - 2 : q)] = 1;
    assert.equal(patternScore(ind, detectionPattern('induction', ids), T), 5 / 8);
    assert.equal(patternScore(ind, detectionPattern('duplicate', ids), T), 0);
    // duplicate: attends to the earlier copy of itself
    const dup = new Float32Array(T * T);
    for (let q = 0; q < T; q++) dup[q * T + (q >= 3 ? q - 3 : q)] = 1;
    assert.equal(patternScore(dup, detectionPattern('duplicate', ids), T), 5 / 8);
    assert.equal(patternScore(dup, detectionPattern('duplicate', ids), T, { excludeCurrentToken: true }), 1);
  });

  test('the layer scorer (sparse pairs, float16 or float32 maps) gives the dense definition exactly', () => {
    const T = 37, H = 3;
    const ids = Array.from({ length: T }, (_, i) => [11, 12, 13, 11, 11, 14][i % 6] + (i % 7 === 0 ? 100 : 0));
    let s = 9;
    const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
    const attn = new Float32Array(H * T * T);
    for (let h = 0; h < H; h++) for (let q = 0; q < T; q++) {
      let sum = 0;
      for (let k = 0; k <= q; k++) sum += attn[h * T * T + q * T + k] = rnd() ** 3;
      for (let k = 0; k <= q; k++) attn[h * T * T + q * T + k] /= sum;
    }
    const half = Uint16Array.from(attn, (v) => floatToHalf(v));
    const halfAsFloat = Float32Array.from(half, (b) => halfToFloat(b));
    for (const opts of [{}, { excludeBos: true }, { excludeCurrentToken: true }, { excludeBos: true, excludeCurrentToken: true }]) {
      for (const [maps, dense] of [[attn, attn], [half, halfAsFloat]] as const) {
        const got = layerRoleScores(maps, ids, H, opts);
        for (const role of ROLES) for (let h = 0; h < H; h++) {
          const want = patternScore(dense.subarray(h * T * T, (h + 1) * T * T), detectionPattern(role, ids), T, opts);
          assert.equal(got[role][h], Math.fround(want), `${role} H${h} ${JSON.stringify(opts)} ${maps === half ? 'f16' : 'f32'}`);
        }
      }
    }
  });

  test('the induction test: a perfect induction pattern scores 1, uniform attention ≈ 1/T', () => {
    const n = 10, T = 2 * n, ids = repeatedRandomTokens(n, 0, 1000, 7);
    assert.deepEqual(Array.from(ids.subarray(0, n)), Array.from(ids.subarray(n)));
    const perfect = new Float32Array(T * T), uniform = new Float32Array(T * T);
    for (let i = 0; i < T; i++) {
      perfect[i * T + (i >= n ? i - n + 1 : i)] = 1;
      for (let k = 0; k <= i; k++) uniform[i * T + k] = 1 / (i + 1);
    }
    assert.equal(inductionScores(perfect, n, 1)[0], 1);
    assert.ok(inductionScores(uniform, n, 1)[0] < 0.1);
  });

  test('a sweep streams one cell per head, and a cancelled one frees its tensors', async () => {
    const lm = await fixtureModel('wasm', 'adaptive');
    try {
      const ids = Int32Array.from(ref.cases[0].ids.flat());
      const cells = [];
      for await (const c of sweep(lm, ids, 'zero', 'head')) cells.push(c);
      assert.equal(cells.length, lm.info.layers * lm.info.heads);
      assert.ok(cells.some((c) => Math.abs(c.mean) > 1e-4), 'zeroing heads moves the loss');
      assert.ok(cells.every((c) => c.lo <= c.mean && c.mean <= c.hi));
      const n0 = tf.memory().numTensors;
      const token = { cancelled: false };
      const gen = sweep(lm, ids, 'mean', 'head', token);
      await gen.next();
      token.cancelled = true;
      await assert.rejects(gen.next(), CancelledError);
      assert.equal(tf.memory().numTensors, n0);
    } finally {
      await lm.dispose();
    }
  });
});

for (const backend of testBackends().filter((b) => b !== 'cpu')) {
  describe(`logit lens on ${backend}`, () => {
    for (const family of ['adaptive', 'base']) {
      test(`${family}: at the last layer it equals the model's own top-k, NLL and rank`, async () => {
        const lm = await fixtureModel(backend, family);
        try {
          const { analyzeText } = await import('../engine/analysis/analyze');
          const { AnalysisRecord } = await import('../engine/analysis/record');
          const ids = ref.cases[0].ids[0];
          // the fixture vocabulary is not GPT-2's: analyse ids through a tokenizer that maps text 1:1
          const tokens = ids.map((id, index) => ({ index, id, text: `<${id}>`, start: index, end: index + 1 }));
          const text = 'x'.repeat(ids.length);
          const tok = Object.assign(Object.create(lm.tokenizer), { tokenize: () => tokens, tokenText: (id: number) => `<${id}>` });
          const events = [];
          const gen = analyzeText({ ...lm, tokenizer: tok }, { text, logitLens: true, causalityAudit: false });
          let result;
          for (;;) {
            const s = await gen.next();
            if (s.done) {
              result = s.value;
              break;
            }
            events.push(s.value);
          }
          const r = AnalysisRecord.from(events, lm.info, result);
          for (let t = 0; t < ids.length - 1; t++) {
            const lens = r.lensAt(t)!;
            const last = lens[lens.length - 1];
            assert.deepEqual(last.top.map((x) => x.id), r.top(t).map((x) => x.id), `top-k at ${t}`);
            assert.ok(Math.abs(last.prob - Math.exp(-r.nll[t])) <= 1e-5, `prob at ${t}`);
            if (r.topIds[t * r.K] === ids[t + 1]) assert.equal(last.rank, 1);
            assert.ok(lens.every((e) => e.rank >= 1 && e.rank <= lm.config.vocab_size));
          }
          // the earlier layers read something else: not every rank equals the last layer's
          assert.ok(ids.slice(0, -1).some((_, t) => r.lensAt(t)![0].rank !== r.lensAt(t)!.at(-1)!.rank), 'layer 0 and the last layer agree everywhere');
        } finally {
          await lm.dispose();
        }
      });
    }
  });
}
