/**
 * The gpt2 family against nanoGPT's own PyTorch outputs (../shared/fixtures/gpt2, see its README):
 * logits, every block's output and attention for the Hugging Face folder and both nanoGPT `ckpt.pt`
 * cases on every runtime under test; loss, per-parameter gradient norms (TensorFlow.js) and AdamW
 * losses through the real CLI. Every format GPT-2 weights come in (HF folder, hub cache snapshot
 * and cache entry, keys without `transformer.`, explicit and untied `lm_head`, mask buffers,
 * `pytorch_model.bin`, nanoGPT with and without prefix and bias), HF's attention-scale flags against
 * a NumPy forward (scripts/reference/gpt2_bin.py), the GatedAttn knob, and bad input through `info`.
 */
import { test, describe, before } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from '../engine/protocol';
import { readCheckpoint, readRaw } from '../engine/io/checkpoint';
import { readSafetensors, writeSafetensors } from '../engine/io/safetensors';
import type { HostTensor } from '../engine/io/tensor';
import { familyDef } from '../engine/models/registry';
import { gpt2Init, gpt2Parameters } from '../engine/models/gpt2';
import { createRunner, initRuntime } from '../engine/runtime/select';
import { initBackend, type TfjsChoice } from '../engine/runtime/tfjs/backend';
import { TfModel } from '../engine/runtime/tfjs/model';
import { ENGINE_JS, REPO, SHARED_FIXTURES, assertClose, testBackends } from './helpers/fixtures';
import { PickleWriter, torchArchive } from './helpers/pickle-builder';

const GPT2 = path.join(SHARED_FIXTURES, 'gpt2');
const REF = path.join(REPO, 'test', 'reference', 'gpt2');
const fx = (n: string) => path.join(GPT2, n);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'headlens-gpt2-'));

/** The three fixture cases: the path handed to the loader and the case's name. */
const CASES = [
  { name: 'tiny-hf', model: fx('tiny-hf') },
  { name: 'tiny-nanogpt', model: fx('tiny-nanogpt.ckpt.pt') },
  { name: 'tiny-nanogpt-nobias', model: fx('tiny-nanogpt-nobias.ckpt.pt') },
];
const expected = (name: string) => readSafetensors(fx(`${name}.expected.safetensors`)).tensors;
const meta = (name: string) => JSON.parse(fs.readFileSync(fx(`${name}.json`), 'utf8'));

function headlens(args: string[]) {
  const env = { ...process.env, HEADLENS_BACKEND: 'wasm' };
  const r = spawnSync(process.execPath, [ENGINE_JS, ...args], { encoding: 'utf8', timeout: 300_000, env });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs `headlens forward`'s computation for the fixture batch on one runtime. */
async function forwardOn(backend: string, model: string, ex: Map<string, HostTensor>, config?: string): Promise<Map<string, HostTensor>> {
  const ck = await readCheckpoint({ path: model, config });
  return forwardWeights(backend, ck.config, ck.weights, ex);
}

async function forwardWeights(backend: string, config: ModelConfig, weights: Map<string, HostTensor>, ex: Map<string, HostTensor>): Promise<Map<string, HostTensor>> {
  const state = await initRuntime(backend as never);
  assert.equal(state.info.name, backend, `asked for ${backend}, got ${state.info.name}`);
  const runner = await createRunner(familyDef(config.family), config, weights, state);
  assert.equal(runner.name, backend);
  const ids = ex.get('input_ids')!;
  try {
    return await runner.forwardTensors(Int32Array.from(ids.values), ids.shape[0], ids.shape[1]);
  } finally {
    await runner.dispose();
  }
}

/** Every expected tensor (logits, hidden.{l}, attn.{l}) at the README's tolerances. */
function compareAll(got: Map<string, HostTensor>, ex: Map<string, HostTensor>, label: string, prefix = ''): void {
  let checked = 0;
  for (const [name, exp] of ex) {
    if (name === 'input_ids' || name === 'targets' || !name.startsWith(prefix)) continue;
    const key = name.slice(prefix.length);
    const g = got.get(key);
    assert.ok(g, `${label}: engine produced no '${key}'`);
    assertClose(g!, exp, key.startsWith('attn.') ? { abs: 1e-4 } : { rel: 1e-3 }, `${label} ${key}`);
    checked++;
  }
  assert.ok(checked >= 3, `${label}: only ${checked} tensors compared`);
}

const scaled = (t: HostTensor, k: number): HostTensor => ({ ...t, values: Float32Array.from(t.values, (v) => v * k) });

/** A folder holding the fixture's config.json (optionally changed) and a weights file. */
function hfFolder(name: string, weights: { file: string; from?: string; tensors?: Map<string, HostTensor> }, config: Record<string, unknown> | null = {}): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  if (config) fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...JSON.parse(fs.readFileSync(fx('tiny-hf/config.json'), 'utf8')), ...config }, null, 2));
  const target = path.join(dir, weights.file);
  if (weights.tensors) writeSafetensors(target, weights.tensors, { metadata: { format: 'pt' } });
  else fs.copyFileSync(weights.from!, target);
  return dir;
}

const hfTensors = () => readSafetensors(fx('tiny-hf/model.safetensors')).tensors;

/** A safetensors file with raw entries of any dtype (our writer writes F32/F16/I64/I32 only). */
function rawSafetensors(file: string, entries: [string, string, number[], Buffer][]): void {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const [name, dtype, shape, bytes] of entries) {
    header[name] = { dtype, shape, data_offsets: [offset, offset + bytes.length] };
    offset += bytes.length;
  }
  const json = Buffer.from(JSON.stringify(header));
  const padded = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(padded.length));
  fs.writeFileSync(file, Buffer.concat([len, padded, ...entries.map((e) => e[3])]));
}

const f32 = (t: HostTensor) => Buffer.from(Float32Array.from(t.values).buffer);
/** A lower-triangular [1, 1, P, P] causal mask, one byte per element (U8 / BOOL). */
function maskBytes(P: number): Buffer {
  const b = Buffer.alloc(P * P);
  for (let i = 0; i < P; i++) for (let j = 0; j <= i; j++) b[i * P + j] = 1;
  return b;
}

/** A hub cache entry `models--test--tiny-gpt2` whose snapshot files link into blobs/. */
function hubCache(name: string, commits: string[], refsMain: string | null): string {
  const root = path.join(tmp, name, 'models--test--tiny-gpt2');
  fs.mkdirSync(path.join(root, 'blobs'), { recursive: true });
  for (const commit of commits) {
    const snap = path.join(root, 'snapshots', commit);
    fs.mkdirSync(snap, { recursive: true });
    for (const file of ['config.json', 'model.safetensors']) {
      const bytes = fs.readFileSync(fx(`tiny-hf/${file}`));
      const blob = crypto.createHash('sha256').update(bytes).digest('hex');
      fs.writeFileSync(path.join(root, 'blobs', blob), bytes);
      fs.symlinkSync(path.join('..', '..', 'blobs', blob), path.join(snap, file));
    }
  }
  if (refsMain) {
    fs.mkdirSync(path.join(root, 'refs'), { recursive: true });
    fs.writeFileSync(path.join(root, 'refs', 'main'), refsMain);
  }
  return root;
}

// ---------------------------------------------------------------------------------------------

for (const backend of testBackends()) {
  describe(`gpt2 parity on ${backend}`, () => {
    before(async () => {
      await initRuntime(backend as never);
    });

    for (const c of CASES) {
      test(`${c.name}: logits, hidden.{l}, attn.{l} match nanoGPT`, async () => {
        const ex = expected(c.name);
        compareAll(await forwardOn(backend, c.model, ex), ex, c.name);
      });
    }

    if (!backend.startsWith('onnx-')) {
      for (const c of CASES) {
        test(`${c.name}: loss and per-parameter gradient norms match PyTorch`, async () => {
          await initBackend(backend as TfjsChoice);
          const m = meta(c.name);
          const ck = await readCheckpoint({ path: c.model });
          const model = new TfModel(ck.config, ck.weights);
          const ex = expected(c.name);
          const s = ex.get('input_ids')!.shape as [number, number];
          const batch = { inputIds: tf.tensor2d(ex.get('input_ids')!.values, s, 'int32'), targets: tf.tensor2d(ex.get('targets')!.values, s, 'int32') };
          const { value, grads } = tf.variableGrads(() => model.loss(batch));
          const loss = (await value.data())[0];
          assert.ok(Math.abs(loss - m.loss) <= 1e-4, `loss ${loss} vs ${m.loss}`);
          const names = new Map([...model.params].map(([n, v]) => [v.name, n]));
          const want = m.grad_norms_step0 as Record<string, number>;
          assert.deepEqual(model.parameterNames(), Object.keys(want), 'parameter order differs from nanoGPT model.parameters()');
          for (const [vname, g] of Object.entries(grads)) {
            const name = names.get(vname)!;
            const norm = Math.sqrt((await tf.sum(tf.square(g)).data())[0]);
            assert.ok(Math.abs(norm - want[name]) <= 1e-3 * Math.max(1, want[name]), `${name}: grad norm ${norm} vs ${want[name]}`);
          }
          tf.dispose([value, ...Object.values(grads), batch.inputIds, batch.targets]);
          model.dispose();
        });
      }
    }

    test('HF scale_attn_weights false and scale_attn_by_inverse_layer_idx true match a NumPy forward of transformers GPT-2', async () => {
      const ref = readSafetensors(path.join(REF, 'flags.safetensors')).tensors;
      const ex = expected('tiny-hf');
      for (const [variant, flags] of [['noscale', { scale_attn_weights: false }], ['invlayer', { scale_attn_by_inverse_layer_idx: true }]] as const) {
        const dir = hfFolder(`flags-${variant}`, { file: 'model.safetensors', from: fx('tiny-hf/model.safetensors') }, flags);
        compareAll(await forwardOn(backend, dir, ex), ref, variant, `${variant}.`);
      }
    });

    test('gate: zero gate weights give g = 0.5 exactly, the logits of the ungated model with c_proj halved', async () => {
      const ck = await readCheckpoint({ path: fx('tiny-hf') });
      const { gated, halved } = gateVariants(ck.config, ck.weights);
      const ex = expected('tiny-hf');
      const g = await forwardWeights(backend, gated.config, gated.weights, ex);
      const h = await forwardWeights(backend, halved.config, halved.weights, ex);
      for (let l = 0; l < ck.config.n_layer; l++) {
        const gate = g.get(`gate.${l}`)!;
        assert.deepEqual(gate.shape, [2, 24, ck.config.n_head]);
        assert.ok(gate.values.every((v) => v === 0.5), `gate.${l} is not 0.5 everywhere`);
      }
      assertClose(g.get('logits')!, h.get('logits')!, { abs: 1e-6 }, 'gated logits vs halved c_proj');
      // and the halving matters: the unhalved model is far from it
      assert.throws(() => assertClose(g.get('logits')!, ex.get('logits')!, { rel: 1e-3 }, 'gated vs ungated'));
    });

    test('gate: the analysis reports the gate signal per head and token; adaptiveOff = 1 is the ungated head', async () => {
      const ck = await readCheckpoint({ path: fx('tiny-hf') });
      const { gated } = gateVariants(ck.config, ck.weights);
      const def = familyDef('gpt2');
      assert.deepEqual(def.signals(gated.config).map((s) => s.name), ['gate']);
      assert.deepEqual(def.signals(ck.config), []);
      const state = await initRuntime(backend as never);
      const ids = Int32Array.from(expected('tiny-hf').get('input_ids')!.values.slice(0, 24));
      const targets = Int32Array.from(expected('tiny-hf').get('targets')!.values.slice(0, 24));
      const L = ck.config.n_layer, H = ck.config.n_head;
      const run = async (config: ModelConfig, weights: Map<string, HostTensor>, off: number) => {
        const runner = await createRunner(familyDef(config.family), config, weights, state);
        const controls = { headScale: new Float32Array(L * H).fill(1), headMean: new Float32Array(L * H), adaptiveOff: new Float32Array(L * H).fill(off) };
        const gen = runner.analyzeWindow({ ids, targets, topK: 3, attention: () => false, audit: [], controls });
        const signals: Float32Array[] = [];
        for (;;) {
          const s = await gen.next();
          if (s.done) {
            await runner.dispose();
            return { nll: s.value.nll, signals };
          }
          if (s.value.signals.gate) {
            assert.deepEqual(s.value.signals.gate.shape, [H, 24]);
            signals.push(s.value.signals.gate.values as Float32Array);
          }
        }
      };
      const half = await run(gated.config, gated.weights, 0);
      assert.equal(half.signals.length, L);
      assert.ok(half.signals.every((s) => s.every((v) => v === 0.5)));
      const off = await run(gated.config, gated.weights, 1);
      assert.ok(off.signals.every((s) => s.every((v) => v === 1)), 'gate switched off is 1');
      const plain = await run(ck.config, ck.weights, 0);
      off.nll.forEach((v, i) => assert.ok(Math.abs(v - plain.nll[i]) <= 1e-4, `nll ${i}: ${v} vs ungated ${plain.nll[i]}`));
      assert.ok(half.nll.some((v, i) => Math.abs(v - plain.nll[i]) > 1e-3), 'the gate at 0.5 changes nothing');
    });
  });
}

/** The tiny-hf model with zero gates, and the ungated one whose attention c_proj weights are halved. */
function gateVariants(config: ModelConfig, weights: Map<string, HostTensor>) {
  const gatedConfig: ModelConfig = { ...config, gate: true };
  const gatedWeights = new Map(weights);
  for (let l = 0; l < config.n_layer; l++) gatedWeights.set(`transformer.h.${l}.attn.attn_gate_w`, { shape: [config.n_head, config.n_embd], dtype: 'float32', values: new Float32Array(config.n_head * config.n_embd) });
  const halved = new Map(weights);
  for (let l = 0; l < config.n_layer; l++) {
    const k = `transformer.h.${l}.attn.c_proj.weight`;
    halved.set(k, scaled(weights.get(k)!, 0.5));
  }
  return { gated: { config: gatedConfig, weights: gatedWeights }, halved: { config, weights: halved } };
}

// ---------------------------------------------------------------------------------------------

describe('gpt2 checkpoint formats (wasm)', () => {
  const ex = expected('tiny-hf');
  const logitsOf = async (model: string, config?: string) => (await forwardOn('wasm', model, ex, config)).get('logits')!;
  const want = ex.get('logits')!;

  test('the HF folder: config from config.json, Conv1D weights transposed, tied head, gelu_new', async () => {
    const ck = await readCheckpoint({ path: fx('tiny-hf') });
    assert.equal(ck.config.family, 'gpt2');
    assert.equal(ck.config.activation, 'gelu_new');
    assert.equal(ck.config.tie_word_embeddings, true);
    assert.equal(familyDef('gpt2').head(ck.config).weight, 'transformer.wte.weight');
    assert.equal(ck.sources.n_head, 'sidecar');
    const st = hfTensors();
    const hf = st.get('transformer.h.0.attn.c_attn.weight')!, ours = ck.weights.get('transformer.h.0.attn.c_attn.weight')!;
    assert.deepEqual(hf.shape, [64, 192]);
    assert.deepEqual(ours.shape, [192, 64]);
    assert.equal(ours.values[5 * 64 + 7], hf.values[7 * 192 + 5]);
    const params = gpt2Parameters(ck.config).reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
    assert.equal(params, meta('tiny-hf').param_count);
  });

  test('a hub cache snapshot (files linked into blobs/) and the cache entry (refs/main, or its only snapshot)', async () => {
    const root = hubCache('hub-ref', ['0123abcd', '4567ef01'], '4567ef01\n');
    const snapshot = path.join(root, 'snapshots', '0123abcd');
    assertClose(await logitsOf(snapshot), want, { rel: 1e-3 }, 'snapshot');
    assertClose(await logitsOf(root), want, { rel: 1e-3 }, 'cache entry');
    const raw = readRaw(root);
    assert.match(raw.name, /models--test--tiny-gpt2[/\\]snapshots[/\\]4567ef01[/\\]model\.safetensors$/);
    const only = hubCache('hub-one', ['89abcdef'], null);
    assert.match(readRaw(only).name, /89abcdef/);
    assertClose(await logitsOf(only), want, { rel: 1e-3 }, 'only snapshot');
  });

  test('keys without the transformer. prefix (the Hub gpt2 files saved from GPT2Model)', async () => {
    const bare = new Map([...hfTensors()].map(([k, v]) => [k.replace(/^transformer\./, ''), v]));
    assert.ok(bare.has('wte.weight') && bare.has('h.0.attn.c_attn.weight'));
    assertClose(await logitsOf(hfFolder('bare', { file: 'model.safetensors', tensors: bare })), want, { rel: 1e-3 }, 'bare keys');
  });

  test('an explicit lm_head.weight equal to wte is dropped (tied)', async () => {
    const t = hfTensors();
    t.set('lm_head.weight', { ...t.get('transformer.wte.weight')! });
    const dir = hfFolder('lm-head-tied', { file: 'model.safetensors', tensors: t });
    const ck = await readCheckpoint({ path: dir });
    assert.equal(ck.config.tie_word_embeddings, true);
    assert.ok(!ck.weights.has('lm_head.weight'));
    assert.equal(ck.note, undefined);
    assertClose(await logitsOf(dir), want, { rel: 1e-3 }, 'explicit tied lm_head');
  });

  test('an lm_head.weight that differs from wte is an untied head, said in the note (2·wte → 2× the logits)', async () => {
    const t = hfTensors();
    t.set('lm_head.weight', scaled(t.get('transformer.wte.weight')!, 2));
    const dir = hfFolder('lm-head-untied', { file: 'model.safetensors', tensors: t });
    const ck = await readCheckpoint({ path: dir });
    assert.equal(ck.config.tie_word_embeddings, false);
    assert.match(ck.note ?? '', /untied output head/);
    assert.deepEqual(familyDef('gpt2').head(ck.config), { weight: 'lm_head.weight', tied: false });
    assertClose(await logitsOf(dir), scaled(want, 2), { rel: 1e-3 }, 'untied lm_head');
    // a config.json that says tie_word_embeddings true ties them anyway, as transformers does
    const tiedDir = hfFolder('lm-head-config-tied', { file: 'model.safetensors', tensors: t }, { tie_word_embeddings: true });
    const tied = await readCheckpoint({ path: tiedDir });
    assert.equal(tied.config.tie_word_embeddings, true);
    assert.match(tied.note ?? '', /ignored/);
    assertClose(await logitsOf(tiedDir), want, { rel: 1e-3 }, 'lm_head ignored');
  });

  test('causal-mask buffers are skipped: U8 and BOOL attn.bias (transformers 4.x), F32 attn.bias + masked_bias (the 2019 export)', async () => {
    const t = hfTensors();
    const P = 64;
    for (const dtype of ['U8', 'BOOL']) {
      const entries: [string, string, number[], Buffer][] = [...t].map(([k, v]) => [k, 'F32', v.shape, f32(v)]);
      for (let l = 0; l < 2; l++) entries.push([`transformer.h.${l}.attn.bias`, dtype, [1, 1, P, P], maskBytes(P)]);
      const dir = hfFolder(`mask-${dtype}`, { file: 'model.safetensors', tensors: new Map() });
      rawSafetensors(path.join(dir, 'model.safetensors'), entries);
      assert.ok(readRaw(dir).tensors.has('transformer.h.1.attn.bias'));
      assertClose(await logitsOf(dir), want, { rel: 1e-3 }, `${dtype} masks`);
    }
    const withF32 = new Map([...t].map(([k, v]) => [k.replace(/^transformer\./, ''), v]));
    for (let l = 0; l < 2; l++) {
      const m = new Float32Array(P * P);
      for (let i = 0; i < P; i++) for (let j = 0; j <= i; j++) m[i * P + j] = 1;
      withF32.set(`h.${l}.attn.bias`, { shape: [1, 1, P, P], dtype: 'float32', values: m });
      withF32.set(`h.${l}.attn.masked_bias`, { shape: [], dtype: 'float32', values: Float32Array.of(-1e4) });
    }
    assertClose(await logitsOf(hfFolder('mask-F32', { file: 'model.safetensors', tensors: withF32 })), want, { rel: 1e-3 }, 'F32 masks');
  });

  test('pytorch_model.bin (torch.save of transformers 4.x: U8 masks, masked_bias, lm_head sharing wte) in a folder', async () => {
    const dir = hfFolder('bin', { file: 'pytorch_model.bin', from: path.join(REF, 'pytorch_model.bin') });
    const raw = readRaw(dir);
    assert.equal(raw.format, 'torch');
    assert.ok(raw.tensors.has('transformer.h.0.attn.masked_bias') && raw.tensors.has('lm_head.weight'));
    const ck = await readCheckpoint({ path: dir });
    assert.equal(ck.config.tie_word_embeddings, true);
    assertClose(await logitsOf(dir), want, { rel: 1e-3 }, 'pytorch_model.bin');
    // the weights file itself, with config.json beside it
    assertClose(await logitsOf(path.join(dir, 'pytorch_model.bin')), want, { rel: 1e-3 }, 'the .bin file');
  });

  test('model.safetensors is preferred when a folder holds both weights files', () => {
    const dir = hfFolder('both', { file: 'model.safetensors', from: fx('tiny-hf/model.safetensors') });
    fs.copyFileSync(path.join(REF, 'pytorch_model.bin'), path.join(dir, 'pytorch_model.bin'));
    assert.equal(readRaw(dir).format, 'safetensors');
  });

  test("nanoGPT ckpt.pt: model_args are the config, iter_num and best_val_loss exposed, _orig_mod. stripped, exact GELU", async () => {
    for (const name of ['tiny-nanogpt', 'tiny-nanogpt-nobias']) {
      const m = meta(name);
      const raw = readRaw(fx(`${name}.ckpt.pt`));
      assert.deepEqual(raw.extra.model_args, m.ckpt.model_args);
      assert.equal(raw.extra.iter_num, m.ckpt.iter_num);
      assert.ok(Math.abs((raw.extra.best_val_loss as number) - m.ckpt.best_val_loss) < 1e-6);
      assert.ok([...raw.tensors.keys()].every((k) => !k.startsWith('_orig_mod.')));
      const ck = await readCheckpoint({ path: fx(`${name}.ckpt.pt`) });
      assert.equal(ck.config.bias, m.config.bias);
      assert.equal(ck.config.activation, 'gelu');
      assert.equal(ck.sources.n_head, 'checkpoint');
      assert.ok(!ck.weights.has('lm_head.weight'), 'the tied lm_head is dropped');
    }
  });

  test('nanoGPT state dict as safetensors with the _orig_mod. prefix, no bias, config from --config', async () => {
    const raw = readRaw(fx('tiny-nanogpt-nobias.ckpt.pt'));
    const prefixed = new Map([...raw.tensors].map(([k, v]) => [`_orig_mod.${k}`, v]));
    const file = path.join(tmp, 'nobias-prefixed.safetensors');
    writeSafetensors(file, prefixed);
    const cfg = path.join(tmp, 'nobias-config.json');
    fs.writeFileSync(cfg, JSON.stringify({ n_head: 4 }));
    const ck = await readCheckpoint({ path: file, config: cfg });
    assert.equal(ck.config.bias, false);
    assert.equal(ck.config.activation, 'gelu', 'a Linear-layout file is nanoGPT: exact GELU');
    assert.equal(ck.sources.n_head, 'config');
    const exNb = expected('tiny-nanogpt-nobias');
    compareAll(await forwardOn('wasm', file, exNb, cfg), exNb, 'prefixed nobias');
  });

  test('a gpt2 saved by Head Lens (config in the metadata) reloads with the same config and logits', async () => {
    const ck = await readCheckpoint({ path: fx('tiny-hf') });
    const file = path.join(tmp, 'ours.safetensors');
    writeSafetensors(file, new Map(gpt2Parameters(ck.config).map((p) => [p.name, ck.weights.get(p.name)!])), { metadata: { format: 'headlens-model-1', config: JSON.stringify(ck.config) } });
    const back = await readCheckpoint({ path: file });
    assert.deepEqual(back.config, ck.config);
    assert.equal(back.sources.activation, 'checkpoint');
    assertClose(await logitsOf(file), want, { rel: 1e-3 }, 'reloaded');
  });

  test('info --json gives every config value a source: shapes, sidecar, checkpoint, config, default', () => {
    const cfg = path.join(tmp, 'override.json');
    fs.writeFileSync(cfg, JSON.stringify({ layer_norm_epsilon: 1e-5, activation_function: 'gelu' }));
    const runs: [string[], Record<string, string>][] = [
      [['--model', fx('tiny-hf')], { n_head: 'sidecar', vocab_size: 'shapes', activation: 'sidecar', bias: 'shapes', tie_word_embeddings: 'shapes' }],
      [['--model', fx('tiny-nanogpt.ckpt.pt')], { n_head: 'checkpoint', activation: 'default', layer_norm_epsilon: 'default', block_size: 'shapes' }],
      [['--model', fx('tiny-hf'), '--config', cfg], { activation: 'config', layer_norm_epsilon: 'config', n_head: 'sidecar' }],
    ];
    for (const [args, want] of runs) {
      const r = headlens(['info', ...args, '--json', '--backend', 'wasm']);
      assert.equal(r.code, 0, r.stderr);
      const info = JSON.parse(r.stdout);
      assert.equal(info.family, 'gpt2');
      for (const k of Object.keys(info.config)) assert.ok(info.configSources[k], `${args.join(' ')}: no source for '${k}'`);
      for (const [k, v] of Object.entries(want)) assert.equal(info.configSources[k], v, `${args.join(' ')}: source of ${k}`);
      if (args.includes('--config')) assert.equal(info.config.activation, 'gelu');
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('gpt2 training (wasm, through the CLI)', () => {
  const tmpTrain = path.join(tmp, 'train');
  fs.mkdirSync(tmpTrain, { recursive: true });
  const jsonl = (f: string) => fs.readFileSync(f, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
  const steps = (rows: Record<string, number>[]) => rows.filter((r) => r.grad_norm !== undefined);
  const adamwArgs = (a: { lr: number; weight_decay: number; betas: number[]; clip_grad: number }) => [
    '--lr', String(a.lr), '--min-lr', String(a.lr), '--warmup', '0', '--weight-decay', String(a.weight_decay), '--betas', a.betas.join(','), '--clip', String(a.clip_grad), '--probe-interval', '0',
  ];

  test('tiny-hf: 3 AdamW steps from the HF folder give PyTorch losses and the step-0 gradient norm', () => {
    const m = meta('tiny-hf');
    const metrics = path.join(tmpTrain, 'hf.jsonl');
    const r = headlens(['train', '--backend', 'wasm', '--init', fx('tiny-hf'), '--overfit-batch', fx('tiny-hf.expected.safetensors'), '--steps', '3', ...adamwArgs(m.adamw), '--eval-interval', '3', '--metrics-jsonl', metrics]);
    assert.equal(r.code, 0, r.stderr);
    const rows = jsonl(metrics), st = steps(rows);
    assert.equal(st.length, 3);
    // the trainer decays every parameter (adamw_decay_all); nanoGPT's grouping (adamw) moves these by < 5e-5
    for (const key of ['adamw', 'adamw_decay_all']) {
      const want = m[key].losses as number[];
      st.forEach((row, i) => assert.ok(Math.abs(row.loss - want[i]) <= 1e-4, `${key} loss ${i}: ${row.loss} vs ${want[i]}`));
    }
    const final = rows.find((x) => x.val_loss !== undefined)!;
    assert.ok(Math.abs(final.val_loss - m.adamw_decay_all.losses[3]) <= 1e-4, `loss after 3 steps ${final.val_loss} vs ${m.adamw_decay_all.losses[3]}`);
    assert.ok(Math.abs(st[0].grad_norm - m.grad_total_norm_before_clip) <= 1e-4, `grad norm ${st[0].grad_norm} vs ${m.grad_total_norm_before_clip}`);
  });

  test('gate: training a gated gpt2 moves the loss down and the gate away from 0.5', async () => {
    const ck = await readCheckpoint({ path: fx('tiny-hf') });
    const { gated } = gateVariants(ck.config, ck.weights);
    const init = path.join(tmpTrain, 'gated.safetensors');
    writeSafetensors(init, new Map(gpt2Parameters(gated.config).map((p) => [p.name, gated.weights.get(p.name)!])), { metadata: { config: JSON.stringify(gated.config) } });
    const out = path.join(tmpTrain, 'gated-run'), metrics = path.join(tmpTrain, 'gated.jsonl');
    const r = headlens(['train', '--backend', 'wasm', '--init', init, '--overfit-batch', fx('tiny-hf.expected.safetensors'), '--steps', '5', '--lr', '3e-3', '--min-lr', '3e-3', '--warmup', '0',
      '--probe-interval', '0', '--eval-interval', '5', '--out', out, '--metrics-jsonl', metrics]);
    assert.equal(r.code, 0, r.stderr);
    const losses = steps(jsonl(metrics)).map((x) => x.loss);
    assert.equal(losses.length, 5);
    losses.slice(1).forEach((l, i) => assert.ok(l < losses[i], `loss went up at step ${i + 1}: ${losses.join(', ')}`));
    const trained = readSafetensors(path.join(out, 'last.safetensors')).tensors;
    assert.ok(trained.get('transformer.h.0.attn.attn_gate_w')!.values.some((v) => Math.abs(v) > 1e-4), 'gate weights did not move');
    const ids = path.join(tmpTrain, 'ids.json'), fwd = path.join(tmpTrain, 'gated-forward.safetensors');
    fs.writeFileSync(ids, JSON.stringify([Array.from(expected('tiny-hf').get('input_ids')!.values.slice(0, 24))]));
    const f = headlens(['forward', '--backend', 'wasm', '--model', path.join(out, 'last.safetensors'), '--ids', ids, '--out', fwd]);
    assert.equal(f.code, 0, f.stderr);
    const gate = readSafetensors(fwd).tensors.get('gate.0')!;
    assert.ok(gate.values.every((v) => v > 0 && v < 1) && gate.values.some((v) => Math.abs(v - 0.5) > 1e-3), 'the gate values did not change');
  });

  test('a new gpt2 from --config family gpt2 (nanoGPT init) trains on text', () => {
    const cfg = path.join(tmpTrain, 'new.json');
    fs.writeFileSync(cfg, JSON.stringify({ family: 'gpt2', n_layer: 1, n_head: 2, n_embd: 32, gate: true }));
    const metrics = path.join(tmpTrain, 'new.jsonl');
    const r = headlens(['train', '--backend', 'wasm', '--config', cfg, '--data', path.join(REPO, 'engine', 'models'), '--steps', '6', '--batch-size', '4', '--seq-len', '32', '--lr', '3e-3',
      '--warmup', '0', '--probe-interval', '0', '--eval-interval', '0', '--metrics-jsonl', metrics]);
    assert.equal(r.code, 0, r.stderr);
    const losses = steps(jsonl(metrics)).map((x) => x.loss);
    assert.equal(losses.length, 6);
    assert.ok(losses[5] < losses[0] - 0.1, `loss did not fall: ${losses.join(', ')}`);
  });
});

describe('gpt2 defaults and init', () => {
  test("a new gpt2: GPT-2 small's shape, nanoGPT's choices, HF / nanoGPT / our key names", () => {
    const def = familyDef('gpt2');
    const c = def.defaults('gpt2', {});
    assert.deepEqual([c.n_layer, c.n_head, c.n_embd, c.block_size, c.vocab_size, c.bias, c.activation], [12, 12, 768, 1024, 50257, true, 'gelu']);
    const hf = def.defaults('gpt2', { n_positions: 128, activation_function: 'gelu_new', n_inner: null, model_type: 'gpt2' });
    assert.deepEqual([hf.block_size, hf.activation], [128, 'gelu_new']);
    assert.equal(def.defaults('gpt2', { bias: false, dropout: 0.0, vocab_size: 50304 }).bias, false);
    assert.throws(() => def.defaults('gpt2', { n_inner: 100 }), /n_inner 100 is not supported/);
    assert.throws(() => def.defaults('gpt2', { n_embd: 100, n_head: 12 }), /not divisible/);
  });

  test("nanoGPT's init: N(0, 0.02), c_proj N(0, 0.02/√(2L)), biases 0, LayerNorm 1, gate N(0, 0.005); seeded", () => {
    const c = familyDef('gpt2').defaults('gpt2', { n_layer: 4, n_head: 4, n_embd: 128, vocab_size: 1000, block_size: 64, gate: true });
    const w = gpt2Init(c, 7);
    const std = (t: HostTensor) => Math.sqrt(Array.from(t.values).reduce((s, v) => s + v * v, 0) / t.values.length);
    const near = (name: string, want: number) => assert.ok(Math.abs(std(w.get(name)!) - want) < 0.05 * want, `${name}: std ${std(w.get(name)!)} vs ${want}`);
    near('transformer.wte.weight', 0.02);
    near('transformer.wpe.weight', 0.02);
    near('transformer.h.1.attn.c_attn.weight', 0.02);
    near('transformer.h.1.mlp.c_fc.weight', 0.02);
    near('transformer.h.1.attn.c_proj.weight', 0.02 / Math.sqrt(8));
    near('transformer.h.1.mlp.c_proj.weight', 0.02 / Math.sqrt(8));
    near('transformer.h.1.attn.attn_gate_w', 0.005);
    assert.ok(w.get('transformer.h.0.ln_1.weight')!.values.every((v) => v === 1));
    assert.ok(w.get('transformer.h.0.mlp.c_fc.bias')!.values.every((v) => v === 0));
    assert.ok(w.get('transformer.ln_f.bias')!.values.every((v) => v === 0));
    assert.deepEqual(gpt2Init(c, 7).get('transformer.wte.weight')!.values, w.get('transformer.wte.weight')!.values);
    assert.notDeepEqual(gpt2Init(c, 8).get('transformer.wte.weight')!.values, w.get('transformer.wte.weight')!.values);
    assert.deepEqual([...w.keys()], gpt2Parameters(c).map((p) => p.name));
  });
});

// ---------------------------------------------------------------------------------------------

describe('gpt2 bad input through headlens info: exit 2, one line on stderr, nothing on stdout', () => {
  const bad = (args: string[], re: RegExp) => {
    const r = headlens(['info', ...args, '--backend', 'wasm']);
    assert.equal(r.code, 2, `exit ${r.code}; stderr: ${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `stderr has ${lines.length} lines: ${r.stderr}`);
    assert.match(lines[0], re);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    assert.equal(r.stdout, '', 'info printed something');
  };

  test('a folder without config.json and no --config', () => {
    bad(['--model', hfFolder('no-config', { file: 'model.safetensors', from: fx('tiny-hf/model.safetensors') }, null)], /no-config: no config\.json in this folder.*--config/);
  });

  test('a config.json that disagrees with the tensor shapes names the tensor', () => {
    bad(['--model', hfFolder('wrong-width', { file: 'model.safetensors', from: fx('tiny-hf/model.safetensors') }, { n_embd: 128 })], /config\.json says n_embd 128 but tensor 'transformer\.wte\.weight' is 64 wide/);
    bad(['--model', hfFolder('wrong-layers', { file: 'model.safetensors', from: fx('tiny-hf/model.safetensors') }, { n_layer: 3 })], /says n_layer 3 but tensor 'transformer\.h\.1\.[a-z_.0-9]+' is in the last block \(2 in all\)/);
  });

  test('a pytorch_model.bin whose pickle calls a global outside the allow-list (nothing runs)', () => {
    const marker = path.join(tmp, 'pwned');
    const pkl = new PickleWriter().proto(2).global('posix', 'system').value(`touch ${marker}`).op(0x85, 0x52).stop().bytes();
    const dir = hfFolder('hostile', { file: 'pytorch_model.bin', tensors: new Map() });
    fs.rmSync(path.join(dir, 'pytorch_model.bin'));
    fs.writeFileSync(path.join(dir, 'pytorch_model.bin'), torchArchive(pkl, {}, 'pytorch_model'));
    bad(['--model', dir], /pytorch_model\.bin.*posix.*system/);
    assert.ok(!fs.existsSync(marker), 'the pickle ran a command');
  });

  test('a safetensors tensor of an unknown dtype', () => {
    const dir = hfFolder('f8', { file: 'model.safetensors', tensors: new Map() });
    const entries: [string, string, number[], Buffer][] = [...hfTensors()].map(([k, v]) => [k, 'F32', v.shape, f32(v)]);
    entries[3] = [entries[3][0], 'F8_E4M3', entries[3][2], Buffer.alloc(entries[3][3].length / 4)];
    rawSafetensors(path.join(dir, 'model.safetensors'), entries);
    bad(['--model', dir], /model\.safetensors: tensor '.*' has unsupported dtype "F8_E4M3"/);
  });

  test('a folder with neither weights file', () => {
    const dir = path.join(tmp, 'empty-model');
    fs.mkdirSync(dir, { recursive: true });
    fs.copyFileSync(fx('tiny-hf/config.json'), path.join(dir, 'config.json'));
    fs.writeFileSync(path.join(dir, 'tf_model.h5'), '');
    bad(['--model', dir], /no model\.safetensors or pytorch_model\.bin in this folder \(it holds config\.json, tf_model\.h5\)/);
  });

  test('config values gpt2 cannot run: another model_type, activation, n_inner', () => {
    const st = fx('tiny-hf/model.safetensors');
    bad(['--model', hfFolder('llama', { file: 'model.safetensors', from: st }, { model_type: 'llama' })], /model_type is "llama", not "gpt2"/);
    bad(['--model', hfFolder('relu', { file: 'model.safetensors', from: st }, { activation_function: 'relu' })], /activation_function "relu" is not supported/);
    bad(['--model', hfFolder('inner', { file: 'model.safetensors', from: st }, { n_inner: 128 })], /n_inner 128 is not supported/);
  });

  test('a hub cache entry with several snapshots and no refs/main lists them', () => {
    bad(['--model', hubCache('hub-two', ['aaaa1111', 'bbbb2222'], null)], /2 snapshots \(aaaa1111, bbbb2222\) and no refs\/main/);
    bad(['--model', hubCache('hub-missing', ['aaaa1111'], 'cccc3333')], /refs\/main names snapshot cccc3333, which is not in snapshots/);
  });
});
