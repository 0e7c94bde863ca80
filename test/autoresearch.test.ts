/**
 * The autoresearch family against the authors' own model code (../shared/fixtures/autoresearch,
 * see its README): logits, every block's output, attention probabilities and value-embedding gates
 * of tiny-sssl, tiny-gqa and tiny-sl on every runtime under test; the rotary tables; the
 * `torch.compile` `.orig_mod.pt` with bf16 tensors; loss and gradient norms on TensorFlow.js; the
 * AdamW losses through the real CLI. The knobs (softcap 30 / none, fixed gate, value embeddings on
 * every layer or none, GatedAttn, HYLA) are checked against the fixture where a knob setting is
 * equivalent to it, then each trains two steps through the CLI and reloads. Bad configs fail with
 * one line naming the tensor.
 */
import { test, describe, before } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { readCheckpoint } from '../engine/io/checkpoint';
import { readSafetensors } from '../engine/io/safetensors';
import type { HostTensor } from '../engine/io/tensor';
import type { ModelConfig } from '../engine/protocol';
import { familyDef } from '../engine/models/registry';
import { ropeHostTables } from '../engine/models/layers';
import { layerWindows } from '../engine/models/autoresearch';
import { createRunner, initRuntime } from '../engine/runtime/select';
import type { HostArray } from '../engine/runtime/runner';
import { initBackend, type TfjsChoice } from '../engine/runtime/tfjs/backend';
import { TfModel } from '../engine/runtime/tfjs/model';
import { ENGINE_JS, SHARED_FIXTURES, assertClose, testBackends } from './helpers/fixtures';

const DIR = path.join(SHARED_FIXTURES, 'autoresearch');
const CASES = ['tiny-sssl', 'tiny-gqa', 'tiny-sl'] as const;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'headlens-autoresearch-'));
const fx = (n: string) => path.join(DIR, n);
const meta = (c: string) => JSON.parse(fs.readFileSync(fx(`${c}.json`), 'utf8'));
const expected = (c: string) => readSafetensors(fx(`${c}.expected.safetensors`)).tensors;

/**
 * The fixture's config file; tiny-sl runs T = 24 > sequence_len = 20 (so that even its L windows
 * cut), which needs block_size 24 beside their sequence_len.
 */
function configFile(c: string): string {
  if (c !== 'tiny-sl') return fx(`${c}.json`);
  const file = path.join(tmp, `${c}.config.json`);
  fs.writeFileSync(file, JSON.stringify({ ...meta(c).config, block_size: 24 }));
  return file;
}

async function forward(backend: string, config: ModelConfig, weights: Map<string, HostTensor>, ids: HostTensor): Promise<Map<string, HostTensor>> {
  const state = await initRuntime(backend as never);
  assert.equal(state.info.name, backend, `asked for ${backend}, got ${state.info.name}`);
  const runner = await createRunner(familyDef(config.family), config, weights, state);
  const [B, T] = ids.shape;
  try {
    return await runner.forwardTensors(Int32Array.from(ids.values), B, T);
  } finally {
    await runner.dispose();
  }
}

async function forwardFile(backend: string, model: string, config: string | Record<string, unknown>, ids: HostTensor): Promise<Map<string, HostTensor>> {
  const ck = await readCheckpoint({ path: model, config });
  assert.equal(ck.config.family, 'autoresearch');
  return forward(backend, ck.config, ck.weights, ids);
}

/** The analysis runner's per-layer signals for one row (batch axis removed). */
async function analysisSignals(backend: string, config: ModelConfig, weights: Map<string, HostTensor>, ids: Int32Array): Promise<Record<string, HostArray>[]> {
  const state = await initRuntime(backend as never);
  const runner = await createRunner(familyDef(config.family), config, weights, state);
  const out: Record<string, HostArray>[] = [];
  try {
    const targets = Int32Array.from([...ids.subarray(1), -1]);
    const gen = runner.analyzeWindow({ ids, targets, topK: 1, attention: () => false, audit: [] });
    for (let s = await gen.next(); !s.done; s = await gen.next()) out.push(s.value.signals);
  } finally {
    await runner.dispose();
  }
  return out;
}

const tolOf = (name: string) => (name.startsWith('attn.') ? { abs: 1e-4 } : { rel: 1e-3 });

/** A copy of the weights with some tensors replaced or removed (null). */
function edited(weights: Map<string, HostTensor>, changes: Record<string, HostTensor | null>): Map<string, HostTensor> {
  const out = new Map(weights);
  for (const [k, v] of Object.entries(changes)) v ? out.set(k, v) : out.delete(k);
  return out;
}
const filled = (shape: number[], f: (i: number) => number): HostTensor => ({ shape, dtype: 'float32', values: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => f(i)) });
const scaled = (t: HostTensor, s: number): HostTensor => ({ ...t, values: Float32Array.from(t.values, (v) => v * s) });

describe('autoresearch config and tables', () => {
  test('windows come from sequence_len: S = sequence_len // 2, L = sequence_len, the last layer L', async () => {
    for (const c of CASES) {
      const ck = await readCheckpoint({ path: fx(`${c}.model.safetensors`), config: configFile(c) });
      assert.deepEqual(layerWindows(ck.config), meta(c).derived.window_sizes.map((w: number[]) => w[0]), c);
      const ve = familyDef('autoresearch').parameters(ck.config).filter((p) => p.name.startsWith('value_embeds.')).map((p) => +p.name.split('.')[1]);
      assert.deepEqual(ve, meta(c).derived.ve_layers, `${c} value-embedding layers`);
    }
  });

  test('the GQA case infers n_kv_head from c_k, and the parameter order is their state_dict order', async () => {
    const ck = await readCheckpoint({ path: fx('tiny-gqa.model.safetensors'), config: { n_head: 4, sequence_len: 32, window_pattern: 'L' } });
    assert.equal(ck.config.n_kv_head, 2);
    assert.equal(ck.sources.n_kv_head, 'shapes');
    for (const c of CASES) {
      const ck2 = await readCheckpoint({ path: fx(`${c}.model.safetensors`), config: configFile(c) });
      assert.deepEqual(familyDef('autoresearch').parameters(ck2.config).map((p) => p.name), Object.keys(meta(c).grad_norms_step0), c);
    }
  });

  test('without a config the heads come from the ve_gate rows and c_k, the rest from their defaults', async () => {
    const ck = await readCheckpoint({ path: fx('tiny-sssl.orig_mod.pt') });
    const c = ck.config;
    assert.deepEqual([c.n_head, c.n_kv_head, c.n_layer, c.n_embd, c.vocab_size], [2, 2, 4, 64, 512]);
    assert.deepEqual([ck.sources.family, ck.sources.n_head, ck.sources.sequence_len], ['shapes', 'shapes', 'default']);
    const gqa = await readCheckpoint({ path: fx('tiny-gqa.model.safetensors') });
    assert.deepEqual([gqa.config.n_head, gqa.config.n_kv_head], [4, 2]);
  });

  test('rotary tables: half-split, bf16-rounded cos/sin as the fixture records them', () => {
    for (const c of CASES) {
      const ex = expected(c);
      const cos = ex.get('rope.cos')!, sin = ex.get('rope.sin')!;
      const [T, half] = cos.shape;
      const host = ropeHostTables({ layout: 'half', headDim: 2 * half, base: 10000, bf16: true, maxLen: T });
      for (let t = 0; t < T; t++) {
        for (let i = 0; i < half; i++) {
          for (const [ours, theirs, what] of [[host.cos, cos, 'cos'], [host.sin, sin, 'sin']] as const) {
            assert.equal(ours[t * 2 * half + i], theirs.values[t * half + i], `${c} ${what}[${t}][${i}]`);
            assert.equal(ours[t * 2 * half + half + i], theirs.values[t * half + i], `${c} ${what}[${t}][${half + i}] (pair of ${i})`);
          }
        }
      }
    }
  });

  test('the .orig_mod.pt (prefix _orig_mod., bf16 embeddings) holds exactly the safetensors weights', async () => {
    const pt = await readCheckpoint({ path: fx('tiny-sssl.orig_mod.pt'), config: fx('tiny-sssl.json') });
    const st = await readCheckpoint({ path: fx('tiny-sssl.model.safetensors'), config: fx('tiny-sssl.json') });
    assert.deepEqual(pt.config, st.config);
    assert.deepEqual([...pt.weights.keys()].sort(), [...st.weights.keys()].sort());
    for (const [k, v] of st.weights) assert.deepEqual(pt.weights.get(k)!.values, v.values, k);
  });
});

for (const backend of testBackends()) {
  const tfjs = !backend.startsWith('onnx-');
  describe(`autoresearch parity on ${backend}`, () => {
    before(async () => {
      await initRuntime(backend as never);
    });

    for (const c of CASES) {
      test(`${c}: logits, hidden, attention and value-embedding gates match train.py`, async () => {
        const ex = expected(c);
        const got = await forwardFile(backend, fx(`${c}.model.safetensors`), configFile(c), ex.get('input_ids')!);
        let checked = 0;
        for (const [name, exp] of ex) {
          if (['input_ids', 'targets', 'logits_precap', 'rope.cos', 'rope.sin'].includes(name)) continue;
          assert.ok(got.has(name), `engine produced no '${name}'`);
          assertClose(got.get(name)!, exp, tolOf(name), `${c} ${name}`);
          checked++;
        }
        const L = meta(c).config.n_layer;
        assert.equal(checked, 1 + 2 * L + meta(c).derived.ve_layers.length, 'tensors compared');
      });
    }

    test('tiny-sssl.orig_mod.pt gives the fixture logits', async () => {
      const ex = expected('tiny-sssl');
      const got = await forwardFile(backend, fx('tiny-sssl.orig_mod.pt'), fx('tiny-sssl.json'), ex.get('input_ids')!);
      assertClose(got.get('logits')!, ex.get('logits')!, { rel: 1e-3 }, 'orig_mod logits');
    });

    test('softcap null gives their pre-cap logits, softcap 30 caps them at 30', async () => {
      const ex = expected('tiny-sssl');
      const pre = ex.get('logits_precap')!;
      const none = await forwardFile(backend, fx('tiny-sssl.model.safetensors'), { ...meta('tiny-sssl').config, softcap: null }, ex.get('input_ids')!);
      assertClose(none.get('logits')!, pre, { rel: 1e-3 }, 'softcap none');
      const cap30 = await forwardFile(backend, fx('tiny-sssl.model.safetensors'), { ...meta('tiny-sssl').config, softcap: 30 }, ex.get('input_ids')!);
      assertClose(cap30.get('logits')!, { ...pre, values: Float32Array.from(pre.values, (z) => 30 * Math.tanh(z / 30)) }, { rel: 1e-3 }, 'softcap 30');
    });

    test('knobs equivalent to the fixture: fixed gate = zero gate weights; all / none value embeddings with zero tables', async () => {
      const ex = expected('tiny-sssl');
      const ck = await readCheckpoint({ path: fx('tiny-sssl.model.safetensors'), config: fx('tiny-sssl.json') });
      const ids = ex.get('input_ids')!;
      const zeros = (name: string) => filled(ck.weights.get(name)!.shape, () => 0);
      // ve_gate 'fixed' (gate 1, no weight) = 'learned' with W = 0 (2σ(0) = 1)
      const fixed = await forward(backend, { ...ck.config, ve_gate: 'fixed' }, edited(ck.weights, { 'transformer.h.1.attn.ve_gate.weight': null, 'transformer.h.3.attn.ve_gate.weight': null }), ids);
      const zeroGate = await forward(backend, ck.config, edited(ck.weights, { 'transformer.h.1.attn.ve_gate.weight': zeros('transformer.h.1.attn.ve_gate.weight'), 'transformer.h.3.attn.ve_gate.weight': zeros('transformer.h.3.attn.ve_gate.weight') }), ids);
      assertClose(fixed.get('logits')!, zeroGate.get('logits')!, { abs: 1e-5 }, 'fixed gate');
      // 'all': layers 0 and 2 get tables of zeros (and any gate): the fixture's logits
      const V = ck.config.vocab_size, C = ck.config.n_embd;
      const all = await forward(backend, { ...ck.config, value_embeds: 'all' }, edited(ck.weights, {
        'value_embeds.0.weight': filled([V, C], () => 0), 'value_embeds.2.weight': filled([V, C], () => 0),
        'transformer.h.0.attn.ve_gate.weight': filled([2, 32], (i) => Math.sin(i)), 'transformer.h.2.attn.ve_gate.weight': filled([2, 32], (i) => Math.cos(i)),
      }), ids);
      assertClose(all.get('logits')!, ex.get('logits')!, { rel: 1e-3 }, "value_embeds 'all'");
      assertClose(all.get('ve_gate.1')!, ex.get('ve_gate.1')!, { rel: 1e-3 }, "value_embeds 'all' ve_gate.1");
      assert.ok(all.has('ve_gate.0') && all.has('ve_gate.2'));
      // 'none' = their layout with zero tables
      const noneW = edited(ck.weights, { 'value_embeds.1.weight': null, 'value_embeds.3.weight': null, 'transformer.h.1.attn.ve_gate.weight': null, 'transformer.h.3.attn.ve_gate.weight': null });
      const none = await forward(backend, { ...ck.config, value_embeds: 'none' }, noneW, ids);
      const zeroTables = await forward(backend, ck.config, edited(ck.weights, { 'value_embeds.1.weight': zeros('value_embeds.1.weight'), 'value_embeds.3.weight': zeros('value_embeds.3.weight') }), ids);
      assertClose(none.get('logits')!, zeroTables.get('logits')!, { abs: 1e-5 }, "value_embeds 'none'");
      assert.ok(!none.has('ve_gate.1'));
    });

    test('GatedAttn with W = 0 halves every head: the model with c_proj halved', async () => {
      const ex = expected('tiny-gqa');
      const ck = await readCheckpoint({ path: fx('tiny-gqa.model.safetensors'), config: fx('tiny-gqa.json') });
      const { n_head: H, n_embd: C } = ck.config;
      const gate = await forward(backend, { ...ck.config, gate: true }, edited(ck.weights, {
        'transformer.h.0.attn.attn_gate_w': filled([H, C], () => 0), 'transformer.h.1.attn.attn_gate_w': filled([H, C], () => 0),
      }), ex.get('input_ids')!);
      const halved = await forward(backend, ck.config, edited(ck.weights, Object.fromEntries([0, 1].map((l) => [`transformer.h.${l}.attn.c_proj.weight`, scaled(ck.weights.get(`transformer.h.${l}.attn.c_proj.weight`)!, 0.5)]))), ex.get('input_ids')!);
      assertClose(gate.get('logits')!, halved.get('logits')!, { abs: 1e-5 }, 'gate 0.5');
      const g = gate.get('gate.0')!;
      assert.deepEqual(g.shape, [2, 24, H]);
      assert.ok(g.values.every((v) => v === 0.5));
    });

    test('the analysis reports veGate per kv head and token: the fixture gates', async () => {
      const ex = expected('tiny-gqa');
      const ck = await readCheckpoint({ path: fx('tiny-gqa.model.safetensors'), config: fx('tiny-gqa.json') });
      const T = 24, Hkv = 2;
      const layers = await analysisSignals(backend, ck.config, ck.weights, Int32Array.from(ex.get('input_ids')!.values.subarray(0, T)));
      assert.deepEqual(layers.map((s) => Object.keys(s)), [[], ['veGate']]);
      const got = layers[1].veGate, want = ex.get('ve_gate.1')!; // (Hkv, T) vs (B, T, Hkv)
      assert.deepEqual(got.shape, [Hkv, T]);
      for (let h = 0; h < Hkv; h++) for (let t = 0; t < T; t++) assert.ok(Math.abs(got.values[h * T + t] - want.values[t * Hkv + h]) <= 1e-4, `veGate[${h}][${t}]`);
    });

    test('HYLA knobs run: signed RMSHead codes, zero outside the window, hylaActive in [0, 1]', async () => {
      const ex = expected('tiny-sssl');
      const ck = await readCheckpoint({ path: fx('tiny-sssl.model.safetensors'), config: { ...meta('tiny-sssl').config, attention: 'rms_head', value_net: 'relu' } });
      const got = await forward(backend, ck.config, ck.weights, ex.get('input_ids')!);
      const a = got.get('attn.0')!; // (B, H, T, T), window 16
      const [, H, T] = a.shape;
      let negative = 0;
      for (let i = 0; i < a.values.length; i++) {
        const k = i % T, t = Math.floor(i / T) % T;
        if (k > t || t - k > 16) assert.equal(a.values[i], 0, `attn.0 at t=${t} k=${k} is outside the window`);
        if (a.values[i] < 0) negative++;
      }
      assert.ok(negative > 0, 'RMSHead codes should take both signs');
      // RMS over the heads is 1 wherever a pair is visible (ε aside)
      const b0 = (t: number, k: number) => Math.sqrt([...Array(H).keys()].reduce((s, h) => s + a.values[(h * T + t) * T + k] ** 2, 0) / H);
      assert.ok(Math.abs(b0(5, 3) - 1) < 1e-3, `RMS over heads ${b0(5, 3)}`);
      assert.ok(Number.isFinite(got.get('logits')!.values[0]));
      const layers = await analysisSignals(backend, ck.config, ck.weights, Int32Array.from(ex.get('input_ids')!.values.subarray(0, T)));
      const D = ck.config.n_embd / H;
      for (const [l, s] of layers.entries()) {
        const active = s.hylaActive;
        assert.deepEqual(active.shape, [H, T], `layer ${l}`);
        assert.ok(active.values.every((x) => x >= 0 && x <= 1 && Math.abs(x * D - Math.round(x * D)) < 1e-4), `layer ${l}: hylaActive is a share of ${D} units`);
        assert.ok(new Set(active.values).size > 1, `layer ${l}: hylaActive should vary over tokens`);
      }
    });

    if (tfjs) {
      for (const c of CASES) {
        test(`${c}: loss and per-parameter gradient norms match train.py`, async () => {
          await initBackend(backend as TfjsChoice);
          const m = meta(c);
          const ck = await readCheckpoint({ path: fx(`${c}.model.safetensors`), config: configFile(c) });
          const model = new TfModel(ck.config, ck.weights);
          const ex = expected(c);
          const s = ex.get('input_ids')!.shape as [number, number];
          const batch = { inputIds: tf.tensor2d(ex.get('input_ids')!.values, s, 'int32'), targets: tf.tensor2d(ex.get('targets')!.values, s, 'int32') };
          const { value, grads } = tf.variableGrads(() => model.loss(batch));
          const loss = (await value.data())[0];
          assert.ok(Math.abs(loss - m.loss) <= 1e-4, `loss ${loss} vs ${m.loss}`);
          const names = new Map([...model.params].map(([n, v]) => [v.name, n]));
          const want = m.grad_norms_step0 as Record<string, number>;
          assert.deepEqual(model.parameterNames(), Object.keys(want));
          assert.equal(Object.keys(grads).length, Object.keys(want).length);
          for (const [vname, g] of Object.entries(grads)) {
            const name = names.get(vname)!;
            const norm = Math.sqrt((await tf.sum(tf.square(g)).data())[0]);
            assert.ok(Math.abs(norm - want[name]) <= 1e-3 * Math.max(1, want[name]), `${c} ${name}: grad norm ${norm} vs ${want[name]}`);
          }
          tf.dispose([value, ...Object.values(grads), batch.inputIds, batch.targets]);
          model.dispose();
        });
      }

      test('adaptiveOff on every head removes the value embeddings (the model with zero tables)', async () => {
        await initBackend(backend as TfjsChoice);
        const ck = await readCheckpoint({ path: fx('tiny-gqa.model.safetensors'), config: fx('tiny-gqa.json') });
        const ids = expected('tiny-gqa').get('input_ids')!;
        const { n_layer: L, n_head: H } = ck.config;
        const zeroTables = edited(ck.weights, { 'value_embeds.1.weight': filled(ck.weights.get('value_embeds.1.weight')!.shape, () => 0) });
        const finalOf = async (weights: Map<string, HostTensor>, off: number) => {
          const model = new TfModel(ck.config, weights);
          const out = tf.tidy(() => {
            const controls = { headScale: tf.ones([L, H]), headMean: tf.zeros([L, H]), adaptiveOff: tf.fill([L, H], off) };
            const prog = model.program(tf.tensor2d(ids.values, ids.shape as [number, number], 'int32'), { controls });
            for (let l = 0; l < L; l++) prog.step(l);
            return prog.final();
          });
          const v = (await out.data()) as Float32Array; // WebGPU has no synchronous read in Node
          out.dispose();
          model.dispose();
          return { shape: out.shape, dtype: 'float32' as const, values: Float32Array.from(v) };
        };
        const off = await finalOf(ck.weights, 1), zero = await finalOf(zeroTables, 0), on = await finalOf(ck.weights, 0);
        assertClose(off, zero, { abs: 1e-5 }, 'adaptiveOff vs zero tables');
        assert.ok(on.values.some((v, i) => Math.abs(v - zero.values[i]) > 1e-3), 'the value embeddings should matter when on');
      });
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Through the CLI
// ---------------------------------------------------------------------------------------------

function cli(args: string[]) {
  const r = spawnSync(process.execPath, [ENGINE_JS, ...args], { encoding: 'utf8', timeout: 300_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
const jsonl = (file: string): Record<string, number>[] => fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));

for (const backend of testBackends().filter((b) => !b.startsWith('onnx-'))) {
  describe(`autoresearch AdamW through the CLI on ${backend}`, () => {
    for (const c of backend === 'cpu' ? (['tiny-gqa'] as const) : CASES) {
      test(`${c}: losses of 3 AdamW steps (one group, decay on everything) match PyTorch`, () => {
        const m = meta(c), a = m.adamw;
        const metrics = path.join(tmp, `${backend}-${c}.jsonl`);
        const r = cli(['train', '--backend', backend, '--init', fx(`${c}.model.safetensors`), '--config', configFile(c), '--overfit-batch', fx(`${c}.expected.safetensors`),
          '--steps', '3', '--lr', String(a.lr), '--min-lr', String(a.lr), '--warmup', '0', '--weight-decay', String(a.weight_decay), '--betas', a.betas.join(','),
          '--clip', String(a.clip_grad), '--eval-interval', '3', '--probe-interval', '0', '--metrics-jsonl', metrics]);
        assert.equal(r.code, 0, r.stderr);
        const rows = jsonl(metrics);
        const st = rows.filter((x) => x.grad_norm !== undefined);
        assert.equal(st.length, 3);
        st.forEach((row, i) => assert.ok(Math.abs(row.loss - a.losses[i]) <= 1e-4, `${c} loss ${i}: ${row.loss} vs ${a.losses[i]}`));
        const final = rows.find((x) => x.val_loss !== undefined)!;
        assert.ok(Math.abs(final.val_loss - a.losses[3]) <= 1e-4, `${c} loss after 3 steps: ${final.val_loss} vs ${a.losses[3]}`);
        assert.ok(Math.abs(st[0].grad_norm - m.grad_total_norm_before_clip) <= 1e-3, `${c} grad norm ${st[0].grad_norm} vs ${m.grad_total_norm_before_clip}`);
      });
    }
  });
}

describe('autoresearch knob variants train and reload through the CLI', () => {
  const base = { family: 'autoresearch', vocab_size: 512, n_layer: 3, n_head: 4, n_embd: 64, sequence_len: 32, window_pattern: 'SSL' };
  const variants: Record<string, Record<string, unknown>> = {
    gqa: { n_kv_head: 2 },
    mqa: { n_kv_head: 1 },
    'value embeddings on every layer': { value_embeds: 'all' },
    'no value embeddings': { value_embeds: 'none' },
    'fixed gate': { ve_gate: 'fixed' },
    'softcap 30': { softcap: 30 },
    'no softcap': { softcap: null },
    'GatedAttn': { gate: true },
    'HYLA (rms_head + relu)': { attention: 'rms_head', value_net: 'relu', n_kv_head: 2 },
    'RMSHead, linear value network': { attention: 'rms_head' },
  };
  for (const [label, knobs] of Object.entries(variants)) {
    test(`${label}: 2 training steps, then the checkpoint reloads with the same config`, () => {
      const slug = label.replace(/\W+/g, '-');
      const cfg = path.join(tmp, `${slug}.json`), out = path.join(tmp, `run-${slug}`), metrics = path.join(tmp, `${slug}.jsonl`);
      fs.writeFileSync(cfg, JSON.stringify({ ...base, ...knobs }));
      const r = cli(['train', '--backend', 'wasm', '--config', cfg, '--overfit-batch', fx('tiny-sssl.expected.safetensors'), '--steps', '2', '--lr', '1e-3',
        '--warmup', '0', '--eval-interval', '2', '--probe-interval', '0', '--out', out, '--metrics-jsonl', metrics]);
      assert.equal(r.code, 0, r.stderr);
      const losses = jsonl(metrics).filter((x) => x.grad_norm !== undefined).map((x) => x.loss);
      assert.equal(losses.length, 2);
      assert.ok(losses.every(Number.isFinite) && losses[1] < losses[0], `losses ${losses}`);
      const info = cli(['info', '--backend', 'wasm', '--json', '--model', path.join(out, 'last.safetensors')]);
      assert.equal(info.code, 0, info.stderr);
      const c = JSON.parse(info.stdout).config as Record<string, unknown>;
      assert.equal(c.family, 'autoresearch');
      for (const [k, v] of Object.entries({ ...base, ...knobs })) assert.deepEqual(c[k], v, `${label}: ${k} after reload`);
    });
  }
});

describe('autoresearch bad input', () => {
  const oneLine = (r: ReturnType<typeof cli>, re: RegExp) => {
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, re);
  };
  const withConfig = (name: string, cfg: Record<string, unknown>) => {
    const f = path.join(tmp, `${name}.json`);
    fs.writeFileSync(f, JSON.stringify(cfg));
    return f;
  };
  const info = (model: string, cfg: string) => cli(['info', '--backend', 'wasm', '--model', fx(model), '--config', cfg]);

  test('n_kv_head that disagrees with c_k names the tensor', () => {
    oneLine(info('tiny-gqa.model.safetensors', withConfig('bad-kv', { ...meta('tiny-gqa').config, n_kv_head: 4 })), /tiny-gqa\.model\.safetensors: tensor 'transformer\.h\.0\.attn\.c_k\.weight' has shape \[32,64\].*n_kv_head 4/);
  });
  test('value_embeds that disagree with the tables', () => {
    oneLine(info('tiny-sssl.model.safetensors', withConfig('bad-ve', { ...meta('tiny-sssl').config, value_embeds: 'none' })), /value_embeds 'none'.*layers \[1,3\]/);
  });
  test('gate on for a checkpoint without attn_gate_w', () => {
    oneLine(info('tiny-sssl.model.safetensors', withConfig('bad-gate', { ...meta('tiny-sssl').config, gate: true })), /gate true.*attn_gate_w/);
  });
  test('a window pattern that is not S and L', () => {
    oneLine(info('tiny-sssl.model.safetensors', withConfig('bad-pattern', { ...meta('tiny-sssl').config, window_pattern: 'SXL' })), /'window_pattern' must be a string of S and L/);
  });
  test('n_head that does not divide the kv width', () => {
    oneLine(info('tiny-gqa.model.safetensors', withConfig('bad-heads', { ...meta('tiny-gqa').config, n_head: 3, n_kv_head: undefined })), /c_k\.weight.*(rows|n_head)/);
  });
});
