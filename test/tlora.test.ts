/**
 * The tlora family (Temporal LoRA) against the authors' own code (../shared/fixtures/methods,
 * `tiny-tlora`, computed by stability-first-ai temporal_lora.py on a tiny nanoGPT): every tensor of
 * the fixture — router weights and logits, the residual entering each layer, every adapter's delta,
 * the mixed delta, the last hidden state, and the logits of each of their forward paths (mixer,
 * uniform, manual weights, no adapter, tanh GELU, the base alone with ln_f) — on every runtime under
 * test, from the safetensors file and from their `.pt` with a GPT-2 base beside it. Also: the
 * controls (adaptive off = uniform router), their checkpoint format written back, training phases
 * and losses against a PyTorch reference (scripts/reference/tlora_train.py), the CLI, and bad input.
 */
import { test, describe, before } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ModelConfig, TloraRoute } from '../engine/protocol';
import { readCheckpoint } from '../engine/io/checkpoint';
import { readSafetensors, writeSafetensors } from '../engine/io/safetensors';
import type { HostTensor } from '../engine/io/tensor';
import { familyDef } from '../engine/models/registry';
import { createRunner, initRuntime } from '../engine/runtime/select';
import { initBackend } from '../engine/runtime/tfjs/backend';
import { TfModel } from '../engine/runtime/tfjs/model';
import { PhaseOptimizer, adapterPhaseParams, distillLoss, lmLoss, routerAccuracy, routerLoss, routerPhaseParams, snapshotMixer, type RouterBatch } from '../engine/train/tlora';
import type { HostBatch } from '../engine/train/data';
import { PROTOCOL_VERSION, type AnalyzeEvent, type TrainEvent } from '../engine/protocol';
import { PassThrough } from 'node:stream';
import { EngineServer } from '../engine/server/server';
import { EngineService } from '../engine/server/service';
import { EngineConnection, EngineRequestError } from '../engine/server/client';
import { loadModel, type LoadedModel } from '../engine/runtime/loaded';
import { analyzeText } from '../engine/analysis/analyze';
import { AnalysisRecord } from '../engine/analysis/record';
import { controlsFor, documentNll } from '../engine/analysis/interventions';
import { dominantAdapters, hostRouterWeights, tloraLosses } from '../engine/eval/tlora';
import { writeTloraCheckpoint } from '../engine/io/tlora';
import { OrderedDict, writeTorchSave, type TorchValue } from '../engine/io/torchSave';
import { gpt2Init } from '../engine/models/gpt2';
import { decodeArray } from '../engine/codec';
import * as tf from '@tensorflow/tfjs-core';

/** a + k·b, as one scalar. */
const tfAdd = (a: tf.Scalar, b: tf.Scalar, k: number): tf.Scalar => tf.tidy(() => tf.add(a, tf.mul(b, k)) as tf.Scalar);
import { ENGINE_JS, REPO, SHARED_FIXTURES, assertClose, testBackends } from './helpers/fixtures';

const METHODS = path.join(SHARED_FIXTURES, 'methods');
const fx = (n: string) => path.join(METHODS, n);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'headlens-tlora-'));
const expected = readSafetensors(fx('tiny-tlora.expected.safetensors')).tensors;
const META = JSON.parse(fs.readFileSync(fx('tiny-tlora.json'), 'utf8'));

/** The fixture's GPT-2 (the `base.*` tensors under nanoGPT's names) as its own file, with n_head in a sidecar. */
function baseFile(): string {
  const file = path.join(tmp, 'tiny-base.safetensors');
  if (fs.existsSync(file)) return file;
  const model = readSafetensors(fx('tiny-tlora.model.safetensors')).tensors;
  writeSafetensors(file, new Map([...model].filter(([k]) => k.startsWith('base.')).map(([k, v]) => [k.slice(5), v])));
  fs.writeFileSync(path.join(tmp, 'tiny-base.json'), JSON.stringify({ n_head: META.config.n_head }));
  return file;
}

function headlens(args: string[]) {
  const r = spawnSync(process.execPath, [ENGINE_JS, ...args], { encoding: 'utf8', timeout: 300_000, env: { ...process.env, HEADLENS_BACKEND: 'wasm' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function forwardWeights(backend: string, config: ModelConfig, weights: Map<string, HostTensor>): Promise<Map<string, HostTensor>> {
  const state = await initRuntime(backend as never);
  assert.equal(state.info.name, backend, `asked for ${backend}, got ${state.info.name}`);
  const runner = await createRunner(familyDef(config.family), config, weights, state);
  assert.equal(runner.name, backend);
  const ids = expected.get('input_ids')!;
  try {
    return await runner.forwardTensors(Int32Array.from(ids.values), ids.shape[0], ids.shape[1]);
  } finally {
    await runner.dispose();
  }
}

const withRoute = (c: ModelConfig, route: TloraRoute): ModelConfig => ({ ...c, tlora: { ...c.tlora!, route } });
/** The README's tolerances: probabilities 1e-4 absolute, everything else 1e-3·max(1, max|expected|). */
const tolOf = (name: string) => (name === 'router_weights' ? { abs: 1e-4 } : { rel: 1e-3 });

/** Every per-layer and router tensor of the fixture, plus `logits` as `logitsName`. */
function compareMixed(got: Map<string, HostTensor>, label: string): number {
  let n = 0;
  for (const [name, exp] of expected) {
    if (name === 'input_ids' || name.startsWith('logits')) continue;
    assert.ok(got.has(name), `${label}: the engine produced no '${name}'`);
    assertClose(got.get(name)!, exp, tolOf(name), `${label} ${name}`);
    n++;
  }
  assertClose(got.get('logits')!, expected.get('logits_mixed')!, { rel: 1e-3 }, `${label} logits_mixed`);
  return n + 1;
}

for (const backend of testBackends()) {
  describe(`tlora parity with temporal_lora.py on ${backend}`, () => {
    before(async () => {
      await initRuntime(backend as never);
    });

    test('model.safetensors: router weights and logits, hidden_in, every delta, mixed_delta, hidden_final, logits_mixed', async () => {
      const ck = await readCheckpoint({ path: fx('tiny-tlora.model.safetensors'), config: fx('tiny-tlora.json') });
      assert.equal(ck.config.family, 'tlora');
      assert.deepEqual(ck.config.tlora!.adapter_names, ['shakespeare', 'python']);
      const n = compareMixed(await forwardWeights(backend, ck.config, ck.weights), 'safetensors');
      assert.equal(n, 12, 'every non-logit tensor of the fixture and logits_mixed');
    });

    test('their .pt with a GPT-2 base: the same tensors (base from --config; alpha and n_head from the sidecar)', async () => {
      const ck = await readCheckpoint({ path: fx('tiny-tlora.pt'), config: { base: baseFile() } });
      assert.equal(ck.config.tlora!.alpha, 8);
      assert.equal(ck.config.tlora!.base, baseFile());
      compareMixed(await forwardWeights(backend, ck.config, ck.weights), '.pt');
    });

    test('their other paths: uniform Δ/K, manual weights, no adapter, tanh GELU, and the base alone (with ln_f)', async () => {
      const ck = await readCheckpoint({ path: fx('tiny-tlora.model.safetensors'), config: fx('tiny-tlora.json') });
      const cases: [string, ModelConfig][] = [
        ['logits_avg', withRoute(ck.config, { kind: 'uniform' })],
        ['logits_manual', withRoute(ck.config, { kind: 'weights', weights: META.config.manual_adapter_weights })],
        ['logits_base_no_lnf', withRoute(ck.config, { kind: 'none' })],
        ['logits_mixed_tanh_gelu', { ...ck.config, activation: 'gelu_new' }],
      ];
      for (const [name, config] of cases) {
        const got = await forwardWeights(backend, config, ck.weights);
        assertClose(got.get('logits')!, expected.get(name)!, { rel: 1e-3 }, name);
      }
      const base = await readCheckpoint({ path: baseFile() });
      assert.equal(base.config.family, 'gpt2');
      assertClose((await forwardWeights(backend, base.config, base.weights)).get('logits')!, expected.get('logits_base')!, { rel: 1e-3 }, 'logits_base');
    });

    test('one adapter forced: its delta alone reaches the block; the router signal is one-hot', async () => {
      const ck = await readCheckpoint({ path: fx('tiny-tlora.model.safetensors'), config: fx('tiny-tlora.json') });
      const got = await forwardWeights(backend, withRoute(ck.config, { kind: 'adapter', name: 'python' }), ck.weights);
      // layer 0's input is the same for every route: its mixed delta is the python delta
      assertClose(got.get('mixed_delta.0')!, expected.get('delta.python.0')!, { rel: 1e-3 }, 'mixed_delta.0 = delta.python.0');
      const manual = await forwardWeights(backend, withRoute(ck.config, { kind: 'weights', weights: { python: 1 } }), ck.weights);
      assertClose(got.get('logits')!, manual.get('logits')!, { abs: 1e-5 }, 'adapter:python = weights {python: 1}');
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Training: the three phases against PyTorch
// ---------------------------------------------------------------------------------------------

const REF = path.join(REPO, 'test', 'reference', 'tlora');

/** Rows of a token sequence (B, T+1) as inputs and next-token targets. */
function shifted(rows: number[][]): HostBatch {
  const B = rows.length, T = rows[0].length - 1;
  return { B, T, inputIds: Int32Array.from(rows.flatMap((r) => r.slice(0, T))), targets: Int32Array.from(rows.flatMap((r) => r.slice(1))) };
}

const near = (got: number, want: number, label: string, rel = 1e-4) => assert.ok(Math.abs(got - want) <= rel * Math.max(1, Math.abs(want)), `${label}: ${got} vs ${want}`);
const scalar = async (t: { data(): Promise<ArrayLike<number>>; dispose(): void }) => {
  const v = (await t.data())[0];
  t.dispose();
  return v;
};

describe('tlora training phases against a PyTorch reference (scripts/reference/tlora_train.py)', () => {
  test('what trains when, the losses (CE with ignored pads, Active Sleep KL, tail-weighted router NLL), gradients, Adam steps and the final weights', async () => {
    await initBackend('wasm');
    const ref = JSON.parse(fs.readFileSync(path.join(REF, 'train.json'), 'utf8'));
    const [p1, p2, p3] = ref.phases;
    const ck = await readCheckpoint({ path: fx('tiny-tlora.model.safetensors'), config: fx('tiny-tlora.json') });
    const model = new TfModel(ck.config, ck.weights);
    const start = await model.toStateDict();
    const b = ref.batches, ignore = ref.ignore_id as number;
    const batchA = shifted(b.adapter_a), batchB = shifted(b.adapter_b);
    const prev: HostBatch = { B: b.prev.length, T: b.prev[0].length, inputIds: Int32Array.from(b.prev.flat()), targets: new Int32Array(b.prev.flat().length) };
    const router: RouterBatch = { B: b.router_ids.length, S: b.router_ids[0].length, ids: Int32Array.from(b.router_ids.flat()), mask: Float32Array.from(b.router_mask.flat()), labels: Int32Array.from(b.labels) };
    const adam = { betas: [0.9, 0.999] as [number, number], eps: 1e-8 };

    const runPhase = async (names: string[], want: typeof p1, loss: () => ReturnType<typeof lmLoss>, check?: (i: number) => Promise<void>) => {
      assert.deepEqual([...names].sort(), [...want.trainable].sort(), 'the parameters this phase trains');
      const opt = new PhaseOptimizer(model, names, adam);
      for (const [n, g] of await opt.gradNorms(loss)) near(g, want.grad_norms_step0[n], `step-0 gradient norm of ${n}`, 1e-3);
      for (let i = 0; i < want.losses.length; i++) {
        await check?.(i);
        near((await opt.step(loss, want.lr)).loss, want.losses[i], `loss before step ${i}`);
      }
      near(await scalar(loss()), want.loss_after, 'loss after the phase');
      opt.dispose();
    };
    const unchanged = async (prefixes: string[], label: string) => {
      const now = await model.toStateDict();
      for (const [n, t] of start) if (prefixes.some((p) => n.startsWith(p))) assert.deepEqual(now.get(n)!.values, t.values, `${label}: '${n}' moved`);
    };

    await runPhase(adapterPhaseParams(model, 'shakespeare'), p1, () => lmLoss(model, batchA, ignore));
    await unchanged(['base.', 'adapters.python.', 'time_mixer.gate.'], 'phase 1');
    const teacher = snapshotMixer(model);
    await runPhase(adapterPhaseParams(model, 'python'), p2, () => tfAdd(lmLoss(model, batchB, ignore), distillLoss(model, teacher.ops, prev, ref.distill_T), 0.5), async (i) => {
      near(await scalar(lmLoss(model, batchB, ignore)), p2.parts[i].ce, `phase 2 CE at step ${i}`);
      const kl = await scalar(distillLoss(model, teacher.ops, prev, ref.distill_T));
      // the teacher starts equal to the student: float32 cancellation in log p − log q bounds the absolute error (~1e-7 per term)
      assert.ok(Math.abs(kl - p2.parts[i].kl) <= 1e-3 * Math.abs(p2.parts[i].kl) + 2e-6, `phase 2 KL at step ${i}: ${kl} vs ${p2.parts[i].kl}`);
    });
    teacher.dispose();
    const afterAdapters = await model.toStateDict();
    await runPhase(routerPhaseParams(model), p3, () => routerLoss(model, router, ref.tau), async (i) => {
      assert.equal(await routerAccuracy(model, router, ref.tau), p3.parts[i].acc, `router accuracy at step ${i}`);
    });
    const final = await model.toStateDict();
    for (const [n, t] of readSafetensors(path.join(REF, 'final.safetensors')).tensors) assertClose(final.get(n)!, t, { rel: 1e-3 }, `after the three phases: ${n}`);
    for (const [n, t] of afterAdapters) if (n.startsWith('adapters.') || n.startsWith('base.')) assert.deepEqual(final.get(n)!.values, t.values, `the router phase moved '${n}'`);
    await unchanged(['base.'], 'all phases');
    model.dispose();
  });
});

// ---------------------------------------------------------------------------------------------
// The router signal in the analysis, the controls, the losses report
// ---------------------------------------------------------------------------------------------

/** Text whose GPT-2 tokens are single bytes (ids < 256, inside the fixture's vocabulary). */
const SMALL_TEXT = 'a,b.c;d:e!f?g{|}~x;y;z;w;a!b!c!d';
const fixtureLoad = () => ({ path: fx('tiny-tlora.model.safetensors'), config: fx('tiny-tlora.json') });

/** The fixture's ids as the "tokenizer" of the text: the losses can then be checked against its logits. */
function fixtureTokenizer(lm: LoadedModel): LoadedModel {
  const ids = Array.from(expected.get('input_ids')!.values);
  const tokenizer = Object.assign(Object.create(lm.tokenizer), { tokenize: () => ids.map((id, i) => ({ index: i, id, text: `<${id}>`, start: i, end: i + 1 })) });
  return { ...lm, tokenizer };
}

/** −log softmax(logits[t])[ids[t+1]] of a fixture logits tensor (1, T, V), mean over t. */
function meanNllOf(name: string): number {
  const logits = expected.get(name)!, ids = expected.get('input_ids')!.values;
  const [, T, V] = logits.shape;
  let sum = 0;
  for (let t = 0; t + 1 < T; t++) {
    const row = Float32Array.from(logits.values.subarray(t * V, (t + 1) * V));
    const max = row.reduce((m, v) => Math.max(m, v), -Infinity);
    const lse = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
    sum += lse - row[ids[t + 1]];
  }
  return sum / (T - 1);
}

describe('tlora analysis, controls and the losses report', () => {
  test('the Time Mixer on the host gives the fixture router_weights', () => {
    const w = readSafetensors(fx('tiny-tlora.model.safetensors')).tensors;
    const ids = Int32Array.from(expected.get('input_ids')!.values);
    const host = hostRouterWeights(w, ids, 2);
    assertClose({ shape: [1, ids.length, 2], dtype: 'float32', values: host }, expected.get('router_weights')!, { abs: 1e-4 }, 'host router weights');
    assert.deepEqual(dominantAdapters(host, 2), Array.from({ length: ids.length }, (_, t) => (host[2 * t + 1] > host[2 * t] ? 1 : 0)));
  });

  for (const backend of testBackends()) {
    test(`${backend}: the analysis streams the router signal (adapters × tokens) and the record names its channels`, async () => {
      const lm = await loadModel(fixtureLoad(), await initRuntime(backend as never));
      try {
        assert.deepEqual(lm.info.signals.map((s) => [s.name, s.scope, s.channels]), [['router', 'adapter×token', ['shakespeare', 'python']]]);
        const events: AnalyzeEvent[] = [];
        const gen = analyzeText(lm, { text: SMALL_TEXT });
        let step = await gen.next();
        while (!step.done) (events.push(step.value), (step = await gen.next()));
        const r = AnalysisRecord.from(events, lm.info, step.value);
        const host = hostRouterWeights(lm.weights, Int32Array.from(r.tokens, (t) => t.id), 2);
        assert.equal(r.resolveMetric('auto'), 'router', 'a tlora model colours by its router unless told otherwise');
        assert.equal(r.metricPerHead('router'), false);
        assert.deepEqual(r.channelSignals().map((s) => s.name), ['router']);
        for (let t = 0; t < r.N; t++) {
          for (let l = 0; l < r.L; l++) {
            const c = r.channelsAt('router', t, l)!;
            assert.deepEqual(c.map((x) => x.label), ['shakespeare', 'python']);
            c.forEach((x, k) => assert.ok(Math.abs(x.value - host[2 * t + k]) <= 1e-4, `token ${t} layer ${l} ${x.label}: ${x.value} vs ${host[2 * t + k]}`));
          }
          const dominant = host[2 * t + 1] > host[2 * t] ? 1 : 0;
          assert.equal(r.dominantChannel('router', t), dominant);
          assert.equal(r.metric('router', t), dominant, 'the colour metric is the dominant adapter');
        }
      } finally {
        await lm.dispose();
      }
    });

    test(`${backend}: adaptive off on every head = the uniform router (their Δ/K); on one layer only moves that layer`, async () => {
      const state = await initRuntime(backend as never);
      const lm = await loadModel(fixtureLoad(), state);
      const uniform = await loadModel({ ...fixtureLoad(), config: { ...META, route: 'uniform' } }, state);
      try {
        const ids = Int32Array.from(expected.get('input_ids')!.values);
        const { layers: L, heads: H } = lm.info;
        const all = [...Array(L).keys()].flatMap((layer) => [...Array(H).keys()].map((head) => ({ layer, head, mode: 'adaptive-off' as const })));
        const off = await documentNll(lm, ids, controlsFor(all, L, H));
        const flat = await documentNll(uniform, ids, undefined);
        const mixed = await documentNll(lm, ids, undefined);
        const one = await documentNll(lm, ids, controlsFor([{ layer: 1, head: 0, mode: 'adaptive-off' }], L, H));
        let moved = 0, partial = 0;
        for (let i = 1; i < ids.length; i++) {
          assert.ok(Math.abs(off[i] - flat[i]) <= 1e-3 * Math.max(1, flat[i]), `token ${i}: adaptive off ${off[i]} vs uniform ${flat[i]}`);
          moved = Math.max(moved, Math.abs(off[i] - mixed[i]));
          partial = Math.max(partial, Math.abs(one[i] - mixed[i]), Math.abs(one[i] - off[i]) > 1e-6 ? 0 : Infinity);
        }
        assert.ok(moved > 0.1, `adaptive off did not change the NLL (max change ${moved})`);
        assert.ok(Number.isFinite(partial) && partial > 1e-4, 'one layer off is neither the intact model nor all layers off');
      } finally {
        await lm.dispose();
        await uniform.dispose();
      }
    });
  }

  test('tlora/losses rows against the fixture logits: mixture, uniform, no adapter, base; each adapter alone = fixed weights', async () => {
    const state = await initRuntime('wasm');
    const lm = fixtureTokenizer(await loadModel(fixtureLoad(), state));
    try {
      const r = await tloraLosses(lm, 'ignored: the fixture ids', {}, state);
      assert.deepEqual(r.rows.map((x) => x.name), ['mixture', 'uniform', 'adapter:shakespeare', 'adapter:python', 'no adapter', 'base']);
      const want: Record<string, string> = { mixture: 'logits_mixed', uniform: 'logits_avg', 'no adapter': 'logits_base_no_lnf', base: 'logits_base' };
      for (const row of r.rows) {
        assert.equal(row.tokens, 15);
        if (want[row.name]) near(row.nll_mean!, meanNllOf(want[row.name]), `${row.name} mean NLL`, 1e-4);
      }
      const alone = await loadModel({ ...fixtureLoad(), config: { ...META, route: { kind: 'weights', weights: { python: 1 } } } }, state);
      const ids = Int32Array.from(expected.get('input_ids')!.values);
      const byWeights = await documentNll(alone, ids, undefined);
      await alone.dispose();
      const nll = decodeArray(r.nll), N = ids.length, row = r.rows.findIndex((x) => x.name === 'adapter:python');
      for (let i = 1; i < N; i++) assert.ok(Math.abs(nll[row * N + i] - byWeights[i]) <= 1e-5 * Math.max(1, byWeights[i]), `adapter:python token ${i}`);
      assert.deepEqual(r.dominant, dominantAdapters(hostRouterWeights(lm.weights, ids, 2), 2));
    } finally {
      await lm.dispose();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Their checkpoint format written back
// ---------------------------------------------------------------------------------------------

/** /usr/bin/python3 with torch, when this machine has it (the format check against torch.load itself). */
const PYTHON = ['/usr/bin/python3', 'python3'].find((p) => spawnSync(p, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0);

describe('tlora checkpoints written in their format', () => {
  test('tlora.pt written from the fixture reads back to the same tensors and the same forward', async () => {
    const w = readSafetensors(fx('tiny-tlora.model.safetensors')).tensors;
    const file = path.join(tmp, 'written.pt');
    writeTloraCheckpoint(file, w, ['shakespeare', 'python']);
    fs.writeFileSync(path.join(tmp, 'written.json'), JSON.stringify({ ...META.config, base: 'tiny-base.safetensors' }));
    baseFile();
    const ck = await readCheckpoint({ path: file }); // the base from the sidecar, relative to the checkpoint
    for (const [k, t] of w) if (!k.startsWith('base.')) assert.deepEqual(ck.weights.get(k)!.values, t.values, k);
    compareMixed(await forwardWeights('wasm', ck.config, ck.weights), 'written .pt');
  });

  test('torch.load reads our tlora.pt as their dict, equal to their own tiny-tlora.pt, state dicts loadable strictly', { skip: !PYTHON && 'no python3 with torch here' }, () => {
    const file = path.join(tmp, 'written-torch.pt');
    writeTloraCheckpoint(file, readSafetensors(fx('tiny-tlora.model.safetensors')).tensors, ['shakespeare', 'python']);
    const script = `
import sys, torch, torch.nn as nn
ours, theirs = torch.load(sys.argv[1]), torch.load(sys.argv[2])
assert list(ours) == ['adapters', 'time_mixer', 'adapter_names'] and ours['adapter_names'] == theirs['adapter_names'], list(ours)
for n in theirs['adapters']:
    assert list(ours['adapters'][n]) == list(theirs['adapters'][n])
    for k, v in theirs['adapters'][n].items(): assert torch.equal(ours['adapters'][n][k], v), (n, k)
    m = nn.Module(); m.lora_A = nn.Parameter(torch.zeros_like(v := theirs['adapters'][n]['lora_A'])); m.lora_B = nn.Parameter(torch.zeros_like(theirs['adapters'][n]['lora_B']))
    m.load_state_dict(ours['adapters'][n], strict=True)
assert list(ours['time_mixer']) == list(theirs['time_mixer'])
for k, v in theirs['time_mixer'].items(): assert torch.equal(ours['time_mixer'][k], v), k
print('ok')`;
    const r = spawnSync(PYTHON!, ['-c', script, file, fx('tiny-tlora.pt')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'ok');
  });
});

// ---------------------------------------------------------------------------------------------
// The CLI: bad input, training, evaluation
// ---------------------------------------------------------------------------------------------

/** A random GPT-2 (nanoGPT's init) of another shape, with its n_head beside it. */
function otherBase(name: string, shape: Partial<ModelConfig>): string {
  const config = { family: 'gpt2', vocab_size: 256, block_size: 32, n_layer: 2, n_head: 2, n_embd: 32, bias: true, activation: 'gelu', ...shape } as ModelConfig;
  const file = path.join(tmp, `${name}.safetensors`);
  writeSafetensors(file, gpt2Init(config, 5));
  fs.writeFileSync(path.join(tmp, `${name}.json`), JSON.stringify({ n_head: config.n_head }));
  return file;
}

/** Their .pt copied beside a sidecar naming a base. */
function ptWithBase(name: string, base: string): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(fx('tiny-tlora.pt'), path.join(dir, 'tlora.pt'));
  fs.writeFileSync(path.join(dir, 'tlora.json'), JSON.stringify({ base, n_head: 2, lora_alpha: 8 }));
  return path.join(dir, 'tlora.pt');
}

describe('tlora bad input through the CLI: exit 2, one line on stderr, nothing on stdout', () => {
  const bad = (args: string[], re: RegExp) => {
    const r = headlens(args);
    assert.equal(r.code, 2, `exit ${r.code}; stderr: ${r.stderr}`);
    assert.equal(r.stdout, '');
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `more than one line: ${r.stderr}`);
    assert.match(lines[0], re);
  };

  test('their .pt with no base named', () => {
    bad(['info', '--model', fx('tiny-tlora.pt')], /tiny-tlora\.pt: a Temporal LoRA checkpoint holds only the adapters and the router: name its GPT-2 base with --base PATH/);
  });

  test('adapters that do not fit the base: the first tensor that does not is named (width, vocabulary)', () => {
    const wide = ptWithBase('wide', otherBase('wide-base', { n_embd: 48 }));
    bad(['info', '--model', wide], /tlora\.pt: tensor 'adapters\.shakespeare\.lora_A' has shape \[4,32\] but the base .*wide-base\.safetensors needs \[4,48\]/);
    bad(['tlora-eval', '--model', fx('tiny-tlora.pt'), '--base', path.join(tmp, 'wide-base.safetensors'), '--text', SMALL_TEXT], /tensor 'adapters\.shakespeare\.lora_A' has shape \[4,32\] but the base .* needs \[4,48\]/);
    const vocab = ptWithBase('vocab', otherBase('vocab-base', { vocab_size: 300 }));
    bad(['info', '--model', vocab], /tensor 'time_mixer\.domain_embed\.weight' has shape \[256,64\] but the base .* needs \[300,64\] \(one row per token id/);
  });

  test('inconsistent checkpoints: an adapter missing from adapter_names, a lora_B of another rank, a base that is no GPT-2', () => {
    const w = readSafetensors(fx('tiny-tlora.model.safetensors')).tensors;
    const names = path.join(tmp, 'names.pt');
    const own = (prefix: string) => new OrderedDict(new Map([...w].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v])));
    writeTorchSave(names, new Map<string, TorchValue>([['adapters', new Map<string, TorchValue>([['shakespeare', own('adapters.shakespeare.')], ['python', own('adapters.python.')]])], ['time_mixer', own('time_mixer.')], ['adapter_names', ['shakespeare']]]));
    bad(['info', '--model', names, '--config', fx('tiny-tlora.json')], /names\.pt: adapter 'python' is in 'adapters' but not in 'adapter_names'/);
    const rank = path.join(tmp, 'rank.safetensors');
    writeSafetensors(rank, new Map([...w].map(([k, v]) => [k, k === 'adapters.python.lora_B' ? { shape: [32, 5], dtype: 'float32' as const, values: new Float32Array(160) } : v])));
    bad(['info', '--model', rank, '--config', fx('tiny-tlora.json')], /rank\.safetensors: tensor 'adapters\.python\.lora_B' has shape \[32,5\] but .* needs \[32,4\]/);
    const notGpt2 = ptWithBase('agpt', path.join(SHARED_FIXTURES, 'agpt', 'tiny-base.model.safetensors'));
    bad(['info', '--model', notGpt2], /is not a GPT-2 model/);
  });

  test('train --tlora: no adapters, a missing folder, a base without GPT-2’s vocabulary', () => {
    bad(['train', '--tlora', '--model', baseFile(), '--steps', '2'], /needs at least one --adapter NAME=PATH/);
    bad(['train', '--tlora', '--model', baseFile(), '--steps', '2', '--adapter', 'code'], /--adapter code: expected NAME=PATH/);
    bad(['train', '--tlora', '--model', baseFile(), '--steps', '2', '--adapter', 'code=/no/such/folder'], /the base has 256 tokens, fewer than GPT-2's 50257/);
    bad(['train', '--tlora', '--model', gpt2VocabBase(), '--steps', '2', '--adapter', 'code=/no/such/folder'], /--data \/no\/such\/folder: no such file or folder/);
  });
});

/** A tiny GPT-2 with GPT-2's vocabulary, so it can train on text. */
function gpt2VocabBase(): string {
  const file = path.join(tmp, 'gpt2-vocab-base.safetensors');
  return fs.existsSync(file) ? file : otherBase('gpt2-vocab-base', { vocab_size: 50257, block_size: 64, n_layer: 1, n_embd: 16 });
}

describe('headlens train --tlora and tlora-eval', () => {
  test('adapters per domain, then the router: their phases as steps, their checkpoint format, a sidecar that reloads it', async () => {
    const out = path.join(tmp, 'run'), metrics = path.join(tmp, 'run.jsonl');
    const base = gpt2VocabBase();
    const r = headlens(['train', '--tlora', '--model', base, '--adapter', `code=${path.join(REPO, 'engine', 'models')}`, '--adapter', `prose=${path.join(REPO, 'README.md')}`,
      '--steps', '3', '--router-steps', '4', '--batch-size', '2', '--router-batch-size', '4', '--seq-len', '16', '--router-seq-len', '16', '--lr', '1e-2', '--out', out, '--metrics-jsonl', metrics]);
    assert.equal(r.code, 0, r.stderr);
    const rows = fs.readFileSync(metrics, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const steps = rows.filter((x) => x.kind === undefined);
    assert.deepEqual(steps.map((x) => x.step), [...Array(10).keys()], 'one step counter over 3 + 3 adapter steps and 4 router steps');
    assert.ok(steps.every((x) => Number.isFinite(x.loss) && Number.isFinite(x.grad_norm)));
    const evals = rows.filter((x) => x.kind === 'eval');
    assert.deepEqual(Object.keys(evals[0].val_by_source), ['code', 'prose']);
    assert.match(r.stderr, /adapter 1\/2: code[\s\S]*adapter 2\/2: prose[\s\S]*router: the Time Mixer re-initialised/);
    for (const f of ['tlora.pt', 'tlora.safetensors', 'tlora.json']) assert.ok(fs.existsSync(path.join(out, f)), f);
    const fromPt = await readCheckpoint({ path: path.join(out, 'tlora.pt') });
    const fromSt = await readCheckpoint({ path: path.join(out, 'tlora.safetensors') });
    const baseW = readSafetensors(base).tensors;
    for (const ck of [fromPt, fromSt]) {
      assert.equal(ck.config.family, 'tlora');
      assert.deepEqual(ck.config.tlora!.adapter_names, ['code', 'prose']);
      for (const [k, v] of baseW) assert.deepEqual(ck.weights.get(`base.${k}`)!.values, v.values, `the base moved: ${k}`);
      for (const n of ['code', 'prose']) assert.ok(ck.weights.get(`adapters.${n}.lora_B`)!.values.some((v) => v !== 0), `adapter ${n} did not train (lora_B is still zero)`);
    }
    for (const [k, v] of fromPt.weights) assert.deepEqual(fromSt.weights.get(k)!.values, v.values, `the .pt and the safetensors differ at ${k}`);
    const info = headlens(['info', '--model', path.join(out, 'tlora.pt')]);
    assert.equal(info.code, 0, info.stderr);
    assert.match(info.stdout, /family +tlora[\s\S]*signals +router \(adapter×token\)/);
  });

  test('torch.load and their modules take our trained tlora.pt strictly', { skip: !PYTHON && 'no python3 with torch here' }, () => {
    const file = path.join(tmp, 'run', 'tlora.pt');
    assert.ok(fs.existsSync(file), 'the training test writes it first');
    const script = `
import sys, torch, torch.nn as nn
ck = torch.load(sys.argv[1]); C, r = 16, 8
for n in ck['adapter_names']:
    m = nn.Module(); m.lora_A = nn.Parameter(torch.zeros(r, C)); m.lora_B = nn.Parameter(torch.zeros(C, r)); m.load_state_dict(ck['adapters'][n], strict=True)
tm = nn.Module(); tm.domain_embed = nn.Embedding(50257, 64)
tm.domain_classifier = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 2))
tm.gate = nn.Sequential(nn.Linear(C, C // 2), nn.ReLU(), nn.Linear(C // 2, 2), nn.Softmax(dim=-1))
tm.load_state_dict(ck['time_mixer'], strict=True)
print(','.join(ck['adapter_names']))`;
    const r = spawnSync(PYTHON!, ['-c', script, file], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'code,prose');
  });

  test('tlora-eval: rows for the mixture, uniform, each adapter, no adapter and the base; per token the dominant adapter', () => {
    const json = path.join(tmp, 'eval.json');
    const r = headlens(['tlora-eval', '--model', fx('tiny-tlora.pt'), '--base', baseFile(), '--text', SMALL_TEXT, '--json', json]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^route +mean NLL[\s\S]*\nmixture [\s\S]*\nuniform [\s\S]*\nadapter:shakespeare [\s\S]*\nadapter:python [\s\S]*\nno adapter [\s\S]*\nbase [\s\S]*dominant adapter by token: shakespeare [\d.]+ % · python [\d.]+ %/);
    const out = JSON.parse(fs.readFileSync(json, 'utf8'));
    assert.deepEqual(out.adapters, ['shakespeare', 'python']);
    assert.ok(out.tokens.length > 10 && out.tokens.every((t: { dominant: string; weights: Record<string, number> }) => t.dominant === (t.weights.python > t.weights.shakespeare ? 'python' : 'shakespeare')));
  });
});

// ---------------------------------------------------------------------------------------------
// The protocol: tlora/losses on the loaded model, tlora/train streamed and cancellable
// ---------------------------------------------------------------------------------------------

describe('tlora over the protocol', () => {
  const c2s = new PassThrough(), s2c = new PassThrough();
  const server = new EngineService('wasm').attach(new EngineServer(c2s, s2c, { log: () => {} }));
  void server.listen();
  const client = new EngineConnection(s2c, c2s);
  before(async () => {
    await client.request('initialize', { clientName: 'test', protocolVersion: PROTOCOL_VERSION, backend: 'wasm' });
  });

  test('model/load of their .pt with a base; the model info carries the router with its adapter names', async () => {
    const info = await client.request('model/load', { path: fx('tiny-tlora.pt'), config: { base: baseFile() } as Partial<ModelConfig> });
    assert.equal(info.family, 'tlora');
    assert.deepEqual(info.signals.find((s) => s.name === 'router')?.channels, ['shakespeare', 'python']);
    assert.equal(info.adaptive, true);
  });

  test('tlora/losses streams progress and reports every row with per-token weights and dominant adapters', async () => {
    const progress: { done: number; total: number }[] = [];
    const r = await client.request('tlora/losses', { text: SMALL_TEXT }, { onProgress: (p) => progress.push(p) });
    assert.deepEqual(r.rows.map((x) => x.name), ['mixture', 'uniform', 'adapter:shakespeare', 'adapter:python', 'no adapter', 'base']);
    assert.ok(progress.length >= r.rows.length && progress.every((p) => p.done <= p.total));
    const w = decodeArray(r.weights);
    assert.deepEqual(r.weights.shape, [r.tokens.length, 2]);
    r.dominant.forEach((d, t) => assert.equal(d, w[2 * t + 1] > w[2 * t] ? 1 : 0));
  });

  test('tlora/train: the normal training records for the monitor; $/cancel stops it and still writes the checkpoint', async () => {
    const out = path.join(tmp, 'protocol-run');
    const params = { base: gpt2VocabBase(), adapters: [{ name: 'code', data: [path.join(REPO, 'engine', 'models')] }, { name: 'prose', data: [path.join(REPO, 'README.md')] }], steps: 2, routerSteps: 2, batchSize: 2, routerBatchSize: 2, seqLen: 16, out };
    const events: TrainEvent[] = [];
    const r = await client.request('tlora/train', params, { onProgress: (e) => events.push(e) });
    assert.equal(r.steps, 6);
    assert.equal(r.stoppedEarly, false);
    assert.equal(r.checkpoint, path.join(out, 'tlora.pt'));
    assert.deepEqual(events.filter((e) => e.kind === 'step').map((e) => e.step), [0, 1, 2, 3, 4, 5]);
    const last = events.at(-1);
    assert.ok(last?.kind === 'status' && last.state === 'finished', `the last record is ${JSON.stringify(last)}`);
    assert.ok(events.some((e) => e.kind === 'eval' && !!e.val_by_source?.code), 'validation per domain');
    const controller = new AbortController();
    const stopped: TrainEvent[] = [];
    const run = client.request('tlora/train', { ...params, steps: 500, out: path.join(tmp, 'protocol-stop') }, { token: controller.signal, onProgress: (e) => {
      stopped.push(e);
      if (e.kind === 'step') controller.abort();
    } });
    await assert.rejects(run, (e: EngineRequestError) => e.cancelled);
    assert.ok(stopped.filter((e) => e.kind === 'step').length < 10, 'the run went on after the cancel');
    await waitFor(() => fs.existsSync(path.join(tmp, 'protocol-stop', 'tlora.pt')));
  });
});

/** Polls until `ok` (the engine writes the stopped run's files after answering the cancel). */
async function waitFor(ok: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}
