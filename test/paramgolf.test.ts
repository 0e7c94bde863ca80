/**
 * The paramgolf family (engine/models/paramgolf.ts) against the authors' own outputs: the
 * `tiny-gated` case of ../shared/fixtures/paramgolf, computed by train_gpt.py of
 * openai/parameter-golf PR #1784 (see its README):
 * - the virtual-layer table (encoder/decoder with loops, skips, XSA, ln_scale_factor) and the
 *   state_dict order;
 * - on every runtime under test: every forward tensor of `tiny-gated.expected.safetensors` from
 *   the float state_dict, and the logits their deserialize() gives for the `.ptz` artifact; the
 *   loss on TensorFlow.js; the analysis path's gate signal against the fixture's gate values, the
 *   skipGate signal against its definition computed here from the fixture's hidden states, and
 *   `adaptiveOff` against a model without the gate;
 * - `headlens forward` on the `.ptz` through the real CLI (exactly the fixture's tensor names),
 *   and bad inputs: a truncated or non-brotli `.ptz`, a config that disagrees with the tensors.
 */
import { test, describe, before } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { readCheckpoint, type CheckpointRead } from '../engine/io/checkpoint';
import { readSafetensors } from '../engine/io/safetensors';
import type { HostTensor } from '../engine/io/tensor';
import { BadInputError } from '../engine/errors';
import { familyDef } from '../engine/models/registry';
import { paramgolfSchedule } from '../engine/models/paramgolf';
import { createRunner, initRuntime } from '../engine/runtime/select';
import type { InferenceRuntime, WindowLayer } from '../engine/runtime/runner';
import { initBackend, type TfjsChoice } from '../engine/runtime/tfjs/backend';
import { TfModel } from '../engine/runtime/tfjs/model';
import { ENGINE_JS, SHARED_FIXTURES, assertClose, testBackends } from './helpers/fixtures';

const DIR = path.join(SHARED_FIXTURES, 'paramgolf');
const fx = (n: string) => path.join(DIR, `tiny-gated${n}`);
const MODEL = fx('.model.safetensors'), PTZ = fx('.ptz'), CONFIG = fx('.json');
const meta = JSON.parse(fs.readFileSync(CONFIG, 'utf8'));
const expected = readSafetensors(fx('.expected.safetensors')).tensors;
const INPUTS = new Set(['input_ids', 'targets']);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'headlens-paramgolf-'));

/** The README's tolerances: attention 1e-4 absolute, everything else 1e-3 · max(1, max|expected|). */
function compareAll(got: Map<string, HostTensor>, label: string): void {
  for (const [name, exp] of expected) {
    if (INPUTS.has(name)) continue;
    const g = got.get(name);
    assert.ok(g, `${label}: engine produced no '${name}'`);
    assertClose(g!, exp, name.startsWith('attn.') ? { abs: 1e-4 } : { rel: 1e-3 }, `${label} ${name}`);
  }
}

const fixtureNames = () => [...expected.keys()].filter((n) => !INPUTS.has(n)).sort();

async function runnerOn(backend: string, ck: CheckpointRead): Promise<InferenceRuntime> {
  const state = await initRuntime(backend as never);
  assert.equal(state.info.name, backend, `asked for ${backend}, got ${state.info.name}`);
  return createRunner(familyDef(ck.config.family), ck.config, ck.weights, state);
}

async function forwardOn(backend: string, modelPath: string, ids: HostTensor): Promise<Map<string, HostTensor>> {
  const runner = await runnerOn(backend, await readCheckpoint({ path: modelPath, config: CONFIG }));
  try {
    return await runner.forwardTensors(Int32Array.from(ids.values), ids.shape[0], ids.shape[1]);
  } finally {
    await runner.dispose();
  }
}

/** Row 0 of the fixture batch through the analysis path: every layer, with optional controls. */
async function analyseRow0(runner: InferenceRuntime, adaptiveOff?: number): Promise<{ layers: WindowLayer[]; nll: Float32Array }> {
  const T = expected.get('input_ids')!.shape[1];
  const ids = Int32Array.from(expected.get('input_ids')!.values.subarray(0, T));
  const targets = Int32Array.from(expected.get('targets')!.values.subarray(0, T));
  const L = paramgolfSchedule((await readCheckpoint({ path: MODEL, config: CONFIG })).config).length, H = meta.hyperparameters.num_heads;
  const controls = adaptiveOff === undefined ? undefined : { headScale: new Float32Array(L * H).fill(1), headMean: new Float32Array(L * H), adaptiveOff: new Float32Array(L * H).fill(adaptiveOff) };
  const gen = runner.analyzeWindow({ ids, targets, topK: 1, attention: () => false, audit: [], controls });
  const layers: WindowLayer[] = [];
  for (;;) {
    const step = await gen.next();
    if (step.done) return { layers, nll: step.value.nll };
    layers.push(step.value);
  }
}

/** Row 0 of a [B, …] fixture tensor, flat. */
function row0(name: string): Float32Array {
  const t = expected.get(name)!;
  const n = t.values.length / t.shape[0];
  return Float32Array.from(t.values.subarray(0, n));
}

describe('paramgolf: the model definition', () => {
  test("the virtual layers are the fixture's table (loops, U-Net skips, parallel blocks, XSA, ln_scale)", async () => {
    const ck = await readCheckpoint({ path: MODEL, config: CONFIG });
    const got = paramgolfSchedule(ck.config);
    assert.equal(got.length, meta.derived.num_virtual_layers);
    for (const [v, want] of (meta.virtual_layers as Record<string, unknown>[]).entries()) {
      const g = got[v];
      assert.deepEqual(
        { virtual: g.virtual, physical: g.physical, part: g.part, kind: g.kind, skip_in: g.skipIn, skip_from_virtual: g.skipFromVirtual, xsa: g.xsa },
        { virtual: want.virtual, physical: want.physical, part: want.part, kind: want.kind, skip_in: want.skip_in, skip_from_virtual: want.skip_from_virtual ?? null, xsa: want.xsa },
        `virtual layer ${v}`,
      );
      assert.ok(Math.abs(g.lnScaleFactor - (want.ln_scale_factor as number)) < 1e-12, `virtual layer ${v}: ln_scale_factor ${g.lnScaleFactor}`);
    }
    assert.deepEqual(got.filter((l) => l.part === 'encoder').map((l) => l.physical), meta.derived.encoder_indices);
    assert.deepEqual(got.filter((l) => l.part === 'decoder').map((l) => l.physical), meta.derived.decoder_indices);
  });

  test('parameters() are the state_dict in their order, and the count is theirs', async () => {
    const ck = await readCheckpoint({ path: MODEL, config: CONFIG });
    const specs = familyDef('paramgolf').parameters(ck.config);
    const file = readSafetensors(MODEL).tensors; // written from their state_dict, in its order
    assert.deepEqual(specs.map((s) => [s.name, s.shape]), [...file].map(([n, t]) => [n, t.shape]));
    assert.equal(specs.reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0), meta.param_count);
  });

  test('the config comes from the fixture json (their Hyperparameters) with the shapes; sources say so', async () => {
    const ck = await readCheckpoint({ path: MODEL, config: CONFIG });
    const hp = meta.hyperparameters;
    assert.equal(ck.config.family, 'paramgolf');
    assert.deepEqual([ck.config.n_layer, ck.config.n_embd, ck.config.n_head, ck.config.vocab_size, ck.config.block_size], [hp.num_layers, hp.model_dim, hp.num_heads, hp.vocab_size, hp.train_seq_len]);
    const pg = ck.config.paramgolf!;
    assert.deepEqual([pg.num_kv_heads, pg.rope_dims, pg.num_loops, pg.loop_start, pg.loop_end, pg.parallel_start_layer, pg.xsa_last_n, pg.logit_softcap, pg.gated_attn], [hp.num_kv_heads, hp.rope_dims, hp.num_loops, hp.loop_start, hp.loop_end, hp.parallel_start_layer, hp.xsa_last_n, hp.logit_softcap, true]);
    assert.equal(ck.sources.n_kv_head, 'shapes');
    assert.equal(ck.sources['paramgolf.num_loops'], 'config');
    assert.equal(ck.sources['paramgolf.rope_base'], 'config');
    assert.equal(ck.sources['paramgolf.gated_attn_init_std'], 'config'); // the json's gated_attn.init_std
    assert.equal(ck.config.paramgolf!.gated_attn_init_std, meta.gated_attn.init_std);
    // beside the .ptz its <name>.json is the sidecar; what nobody gives is the record's default
    assert.equal((await readCheckpoint({ path: PTZ })).sources['paramgolf.num_loops'], 'sidecar');
    const few = await readCheckpoint({ path: MODEL, config: { num_loops: 2, loop_start: 1, loop_end: 2, parallel_start_layer: 3 } });
    assert.equal(few.sources['paramgolf.rope_dims'], 'default');
    assert.equal(few.config.paramgolf!.rope_dims, 16);
  });

  test('TensorFlow.js holds the banks transposed and gives them back in PyTorch layout', async () => {
    await initBackend('cpu');
    const ck = await readCheckpoint({ path: MODEL, config: CONFIG });
    const model = new TfModel(ck.config, ck.weights);
    try {
      const qo = ck.weights.get('qo_bank')!;
      assert.deepEqual(model.params.get('qo_bank')!.shape, [qo.shape[0], qo.shape[2], qo.shape[1]]);
      const back = await model.toStateDict();
      for (const name of ['qo_bank', 'kv_bank', 'mlp_up_bank', 'mlp_down_bank', 'blocks.3.attn.attn_gate_w', 'skip_gates']) {
        assert.deepEqual(back.get(name)!.values, ck.weights.get(name)!.values, name);
      }
    } finally {
      model.dispose();
    }
  });
});

for (const backend of testBackends()) {
  describe(`paramgolf parity on ${backend}`, () => {
    before(async () => {
      await initRuntime(backend as never);
    });

    test('float state_dict: every forward tensor matches their code, under exactly the fixture names', async () => {
      const got = await forwardOn(backend, MODEL, expected.get('input_ids')!);
      compareAll(got, backend);
      assert.deepEqual([...got.keys()].sort(), fixtureNames());
    });

    test('.ptz artifact: the logits equal those of their deserialize()', async () => {
      const want = readSafetensors(fx('.ptz.logits.safetensors')).tensors;
      const got = await forwardOn(backend, PTZ, want.get('input_ids')!);
      assertClose(got.get('logits')!, want.get('logits')!, { rel: 1e-3 }, `${backend} ptz logits`);
    });

    if (!backend.startsWith('onnx-')) {
      test('the loss is their GPT.forward (mean CE of the soft-capped logits)', async () => {
        await initBackend(backend as TfjsChoice);
        const ck = await readCheckpoint({ path: MODEL, config: CONFIG });
        const model = new TfModel(ck.config, ck.weights);
        const s = expected.get('input_ids')!.shape as [number, number];
        const batch = { inputIds: tf.tensor2d(expected.get('input_ids')!.values, s, 'int32'), targets: tf.tensor2d(expected.get('targets')!.values, s, 'int32') };
        try {
          const loss = model.loss(batch, { withGrad: false });
          const value = (await loss.data())[0];
          loss.dispose();
          assert.ok(Math.abs(value - meta.loss) <= 1e-4, `loss ${value} vs ${meta.loss}`);
        } finally {
          tf.dispose([batch.inputIds, batch.targets]);
          model.dispose();
        }
      });
    }

    if (!backend.startsWith('onnx-')) {
      test('training: the gradient of their loss equals a central difference along a random direction', async () => {
        await initBackend(backend as TfjsChoice);
        const ck = await readCheckpoint({ path: MODEL, config: CONFIG });
        const model = new TfModel(ck.config, ck.weights);
        const s = expected.get('input_ids')!.shape as [number, number];
        const batch = { inputIds: tf.tensor2d(expected.get('input_ids')!.values, s, 'int32'), targets: tf.tensor2d(expected.get('targets')!.values, s, 'int32') };
        const vars = [...model.params.values()];
        const dirs = vars.map((v, i) => tf.randomNormal(v.shape, 0, 1, 'float32', 17 + i));
        try {
          const { value, grads } = tf.variableGrads(() => model.loss(batch, { withGrad: true }), vars);
          const gs = vars.map((v) => grads[v.name]);
          // asynchronous reads: tfjs-webgpu's synchronous read needs a canvas
          const read = async (t: tf.Tensor) => {
            const x = (await t.data())[0];
            t.dispose();
            return x;
          };
          for (const g of gs) assert.ok(g && Number.isFinite(await read(g.norm())), 'every parameter gets a finite gradient');
          let analytic = 0;
          for (const [i, g] of gs.entries()) analytic += await read(tf.sum(tf.mul(g, dirs[i])));
          const at = async (eps: number) => {
            vars.forEach((v, i) => v.assign(tf.tidy(() => tf.add(v, tf.mul(dirs[i], eps)))));
            const x = await read(model.loss(batch, { withGrad: false }));
            vars.forEach((v, i) => v.assign(tf.tidy(() => tf.sub(v, tf.mul(dirs[i], eps)))));
            return x;
          };
          const eps = 1e-3;
          const numeric = ((await at(eps)) - (await at(-eps))) / (2 * eps);
          assert.ok(Math.abs((await value.data())[0] - meta.loss) <= 1e-4, 'the differentiated loss is their loss');
          assert.ok(Math.abs(numeric - analytic) <= 0.02 * Math.abs(analytic) + 1e-3, `directional derivative: analytic ${analytic}, numeric ${numeric}`);
          tf.dispose([value, ...gs]);
        } finally {
          tf.dispose([batch.inputIds, batch.targets, ...dirs]);
          model.dispose();
        }
      });
    }

    test("analysis: the gate signal is the fixture's gate, skipGate follows its definition", async () => {
      const ck = await readCheckpoint({ path: MODEL, config: CONFIG });
      const runner = await runnerOn(backend, ck);
      try {
        const { layers } = await analyseRow0(runner);
        const schedule = paramgolfSchedule(ck.config);
        const [T, H] = expected.get('gate.0')!.shape.slice(1);
        for (const [v, layer] of layers.entries()) {
          const want = row0(`gate.${v}`), got = layer.signals.gate; // (T, H) vs (H, T)
          assert.deepEqual(got.shape, [H, T], `gate.${v} shape`);
          const transposed = Float32Array.from({ length: H * T }, (_, i) => want[(i % T) * H + Math.floor(i / T)]);
          assertClose({ shape: [H, T], dtype: 'float32', values: got.values }, { shape: [H, T], dtype: 'float32', values: transposed }, { rel: 1e-3 }, `${backend} gate signal ${v}`);
          const skip = schedule[v].skipIn;
          assert.equal('skipGate' in layer.signals, skip !== null, `skipGate on layer ${v}`);
          if (skip !== null) {
            const keep = keptShare(ck, skip, row0(`hidden.${v - 1}`), row0(`hidden.${schedule[v].skipFromVirtual}`));
            assertClose({ shape: [T], dtype: 'float32', values: layer.signals.skipGate.values }, { shape: [T], dtype: 'float32', values: keep }, { rel: 1e-3 }, `${backend} skipGate ${v}`);
          }
        }
      } finally {
        await runner.dispose();
      }
    });

    test('adaptiveOff sets every gate to 1: the same NLL as the model without GatedAttn', async () => {
      const ck = await readCheckpoint({ path: MODEL, config: CONFIG });
      const gated = await runnerOn(backend, ck);
      const offNll = (await analyseRow0(gated, 1)).nll, onNll = (await analyseRow0(gated, 0)).nll;
      await gated.dispose();
      const weights = new Map([...ck.weights].filter(([n]) => !n.endsWith('.attn_gate_w')));
      const plain = await runnerOn(backend, await readCheckpoint({ path: writeSafetensorsCopy(weights), config: { ...meta, gated_attn: false } }));
      const plainNll = (await analyseRow0(plain)).nll;
      await plain.dispose();
      const T = plainNll.length;
      assertClose({ shape: [T], dtype: 'float32', values: offNll }, { shape: [T], dtype: 'float32', values: plainNll }, { rel: 1e-4 }, `${backend} NLL with the gate off`);
      assert.ok(onNll.some((v, i) => Math.abs(v - plainNll[i]) > 1e-2), 'the gate changes nothing: the test cannot tell');
    });
  });
}

/** skipGate from its definition: ‖g⊙x‖ / (‖g⊙x‖ + ‖(1−g)⊙w⊙s‖) per token, g = σ(skip_gates[k]). */
function keptShare(ck: CheckpointRead, k: number, x: Float32Array, s: Float32Array): Float32Array {
  const C = ck.config.n_embd, T = x.length / C;
  const w = ck.weights.get('skip_weights')!.values.subarray(k * C, (k + 1) * C);
  const g = Array.from(ck.weights.get('skip_gates')!.values.subarray(k * C, (k + 1) * C), (z) => 1 / (1 + Math.exp(-z)));
  return Float32Array.from({ length: T }, (_, t) => {
    let kept = 0, skipped = 0;
    for (let c = 0; c < C; c++) {
      kept += (g[c] * x[t * C + c]) ** 2;
      skipped += ((1 - g[c]) * w[c] * s[t * C + c]) ** 2;
    }
    return Math.sqrt(kept) / (Math.sqrt(kept) + Math.sqrt(skipped));
  });
}

/** A float32 safetensors file of these weights (header written from the format's definition). */
function writeSafetensorsCopy(weights: Map<string, HostTensor>): string {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, t] of weights) {
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + t.values.length * 4] };
    offset += t.values.length * 4;
  }
  const json = Buffer.from(JSON.stringify(header));
  const size = Buffer.alloc(8);
  size.writeBigUInt64LE(BigInt(json.length));
  const data = Buffer.concat([...weights.values()].map((t) => Buffer.from(Float32Array.from(t.values).buffer)));
  const file = path.join(tmp, 'ungated.safetensors');
  fs.writeFileSync(file, Buffer.concat([size, json, data]));
  return file;
}

// ---------------------------------------------------------------------------------------------
// Through the real CLI
// ---------------------------------------------------------------------------------------------

function headlens(args: string[]) {
  const backend = process.env.HEADLENS_BACKEND ?? testBackends()[0];
  const r = spawnSync(process.execPath, [ENGINE_JS, ...args, '--backend', backend], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Exit 2, exactly one line on stderr naming `what`, nothing on stdout. */
function assertBadInput(r: ReturnType<typeof headlens>, what: string, re: RegExp): void {
  assert.equal(r.code, 2, `exit ${r.code}; stderr: ${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `stderr has ${lines.length} lines: ${r.stderr}`);
  assert.ok(lines[0].includes(what), `does not name ${what}: ${lines[0]}`);
  assert.match(lines[0], re);
  assert.equal(r.stdout, '', `stdout: ${r.stdout}`);
}

describe('paramgolf through the CLI', () => {
  test('headlens forward on the .ptz writes exactly the fixture names, with their deserialize() logits', () => {
    const want = readSafetensors(fx('.ptz.logits.safetensors')).tensors;
    const ids = want.get('input_ids')!;
    const idsFile = path.join(tmp, 'ids.json'), out = path.join(tmp, 'forward.safetensors');
    const T = ids.shape[1];
    fs.writeFileSync(idsFile, JSON.stringify(Array.from({ length: ids.shape[0] }, (_, b) => Array.from(ids.values.subarray(b * T, (b + 1) * T)))));
    const r = headlens(['forward', '--model', PTZ, '--config', CONFIG, '--ids', idsFile, '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    const got = readSafetensors(out).tensors;
    assert.deepEqual([...got.keys()].sort(), fixtureNames());
    assertClose(got.get('logits')!, want.get('logits')!, { rel: 1e-3 }, 'CLI ptz logits');
  });

  test('info on a truncated .ptz: one line, exit 2', () => {
    const bytes = fs.readFileSync(PTZ);
    const file = path.join(tmp, 'truncated.ptz');
    fs.writeFileSync(file, bytes.subarray(0, bytes.length >> 1));
    assertBadInput(headlens(['info', '--model', file, '--config', CONFIG]), 'truncated.ptz', /truncated/);
  });

  test('info on a .ptz that is not brotli: one line, exit 2', () => {
    const file = path.join(tmp, 'garbage.ptz');
    fs.writeFileSync(file, Buffer.from('this is a text file, not a brotli stream at all\n'.repeat(20)));
    assertBadInput(headlens(['info', '--model', file, '--config', CONFIG]), 'garbage.ptz', /brotli/);
  });

  test('a config whose num_kv_heads disagrees with kv_bank: one line naming the tensor', async () => {
    const config = path.join(tmp, 'wrong-kv.json');
    fs.writeFileSync(config, JSON.stringify({ hyperparameters: { ...meta.hyperparameters, num_kv_heads: 1 } }));
    assertBadInput(headlens(['info', '--model', MODEL, '--config', config]), 'kv_bank', /num_kv_heads = 2.*num_kv_heads = 1/);
    await assert.rejects(readCheckpoint({ path: PTZ, config }), (e: unknown) => e instanceof BadInputError && /'kv_bank'/.test(e.message) && e.message.includes('tiny-gated.ptz'));
  });

  test('without the loop settings the default loop does not fit five blocks: one line saying so', async () => {
    // the record's defaults (loop 3..5) need at least 6 blocks; the .safetensors has no sidecar json
    await assert.rejects(readCheckpoint({ path: MODEL }), (e: unknown) => e instanceof BadInputError && /loop 3\.\.5/.test(e.message) && e.message.includes('tiny-gated.model.safetensors') && !e.message.includes('\n'));
  });
});
