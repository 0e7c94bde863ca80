/**
 * Checkpoint readers and writers against independent truth: the a-gpt reference fixtures (written
 * by Python's safetensors and by torch.save from CUDA), their JSON (parameter counts, parameter
 * order, AdamW settings and losses), bytes made by CPython's pickle and zipfile and Python's
 * safetensors (embedded below with the script that made them), and hand-built bad or hostile
 * files — each refused with one line naming the file, and nothing run.
 */
import { test, describe } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readSafetensors, writeSafetensors, encodeSafetensors, decodeSafetensors } from '../engine/io/safetensors';
import { loadTorchCheckpoint, decodeTorchCheckpoint, type TorchCheckpoint } from '../engine/io/torch';
import { ZipArchive } from '../engine/io/zip';
import { PyDict, Tuple, unpickle } from '../engine/io/pickle';
import type { HostTensor } from '../engine/io/tensor';
import { BadInputError } from '../engine/errors';
import { FIXTURES } from './helpers/fixtures';
import { storedZip } from './helpers/zip';
import { PickleWriter, f32Bytes, f64Bytes, float, i64Bytes, ordered, pickleOf, tensor, torchArchive, tuple, u16Bytes } from './helpers/pickle-builder';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'headlens-io-'));
const fx = (n: string) => path.join(FIXTURES, n);
const FAMILIES = ['base', 'matched', 'adaptive', 'diffusion', 'adaptive_diffusion'];
const CHECKPOINTED = ['adaptive', 'adaptive_diffusion'];
const fixtureJson = (fam: string) => JSON.parse(fs.readFileSync(fx(`tiny-${fam}.json`), 'utf8'));

/** Throws a BadInputError whose single-line message names `file` (and matches `re`). */
function assertBad(fn: () => unknown, file: string, re?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof BadInputError, `not a BadInputError: ${e}`);
    assert.ok(e.message.includes(path.basename(file)), `message does not name ${path.basename(file)}: ${e.message}`);
    assert.ok(!e.message.includes('\n'), `message is not one line: ${e.message}`);
    if (re) assert.match(e.message, re);
    return true;
  });
}

function put(name: string, bytes: Buffer): string {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, bytes);
  return f;
}

/** A safetensors file from a header object (or raw header text) and data bytes. */
function safetensorsBytes(header: object | string, data: Buffer = Buffer.alloc(0)): Buffer {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, data]);
}

const values = (t: HostTensor | undefined) => [...t!.values];

describe('safetensors: the reference fixtures', () => {
  test('every fixture file reads, with finite float values', () => {
    const files = fs.readdirSync(FIXTURES).filter((f) => f.endsWith('.safetensors'));
    assert.ok(files.length >= 12, `only ${files.length} safetensors fixtures`);
    for (const f of files) {
      const { tensors } = readSafetensors(fx(f));
      assert.ok(tensors.size > 0, f);
      for (const [k, t] of tensors) if (t.dtype === 'float32') assert.ok(t.values.every(Number.isFinite), `${f}: ${k} has non-finite values`);
    }
  });

  test("model tensors add up to the JSON's param_count and are the parameters it lists", () => {
    for (const fam of FAMILIES) {
      const { tensors } = readSafetensors(fx(`tiny-${fam}.model.safetensors`));
      const meta = fixtureJson(fam);
      let n = 0;
      for (const t of tensors.values()) n += t.values.length;
      assert.equal(n, meta.param_count, fam);
      assert.deepEqual([...tensors.keys()].sort(), Object.keys(meta.grad_norms_step0).sort(), fam);
      assert.ok([...tensors.values()].every((t) => t.dtype === 'float32'), fam);
    }
  });

  test('adaptive model shapes follow its config (vocab, width, layers, heads, hypernetwork rank)', () => {
    const { config, hyper } = fixtureJson('adaptive');
    const m = readSafetensors(fx('tiny-adaptive.model.safetensors')).tensors;
    const C = config.n_embd, D = C / config.n_head, r = hyper.rank;
    assert.deepEqual(m.get('transformer.wte.weight')!.shape, [config.vocab_size, C]);
    assert.deepEqual(m.get('lm_head.weight')!.shape, [config.vocab_size, C]);
    assert.deepEqual(m.get('transformer.h.0.attn.hyper_v.0.layers.0.in_proj_weight')!.shape, [3 * D, D]);
    assert.deepEqual(m.get('transformer.h.1.attn.hyper_v.3.to_A.weight')!.shape, [D * r, D]);
    const layers = new Set([...m.keys()].map((k) => /^transformer\.h\.(\d+)\./.exec(k)?.[1]).filter(Boolean));
    assert.equal(layers.size, config.n_layer);
    const heads = new Set([...m.keys()].map((k) => /^transformer\.h\.0\.attn\.hyper_v\.(\d+)\./.exec(k)?.[1]).filter(Boolean));
    assert.equal(heads.size, config.n_head);
  });

  test('expected tensors: int64 token ids become int32 within the vocabulary', () => {
    for (const fam of FAMILIES) {
      const vocab = fixtureJson(fam).config.vocab_size;
      const ex = readSafetensors(fx(`tiny-${fam}.expected.safetensors`)).tensors;
      const ids = ex.get('input_ids')!;
      assert.equal(ids.dtype, 'int32');
      assert.deepEqual(ids.shape, [2, 24]);
      assert.ok(values(ids).every((v) => Number.isInteger(v) && v >= 0 && v < vocab), fam);
      assert.deepEqual(ex.get('logits')!.shape, [2, 24, vocab]);
    }
  });

  test("re-encoding every fixture reproduces the reference writer's bytes exactly", () => {
    for (const f of fs.readdirSync(FIXTURES).filter((n) => n.endsWith('.safetensors'))) {
      const bytes = fs.readFileSync(fx(f));
      const { tensors, metadata } = decodeSafetensors(bytes, f);
      assert.ok(encodeSafetensors(tensors, { metadata }).equals(bytes), f);
    }
  });
});

describe('safetensors: reading every dtype', () => {
  test("a file written by Python's safetensors: F64, F16, I64, I16, I8, U8, BOOL and metadata", () => {
    const { tensors, metadata } = decodeSafetensors(PYTHON_MADE.safetensors(), 'numpy.safetensors');
    assert.deepEqual(metadata, { format: 'np' });
    assert.deepEqual(tensors.get('f64')!.shape, [2, 2]);
    assert.deepEqual(values(tensors.get('f64')), [1.5, -2.25, Math.fround(0.1), 3]);
    assert.deepEqual(values(tensors.get('f16')), [1, -0.5, 65504, 2 ** -24]); // 6e-8 → the nearest half, 2^-24
    assert.deepEqual(values(tensors.get('i64')), [1, -2, 2 ** 31 - 1, -(2 ** 31)]);
    assert.deepEqual(values(tensors.get('i16')), [-3, 300]);
    assert.deepEqual(values(tensors.get('i8')), [-128, 127]);
    assert.deepEqual(values(tensors.get('u8')), [255, 0]);
    assert.deepEqual(values(tensors.get('bool')), [1, 0, 1]);
    assert.equal(tensors.get('i64')!.dtype, 'int32');
    assert.equal(tensors.get('f16')!.dtype, 'float32');
  });

  test('BF16 widens exactly (bits 0x3F80, 0xC020, 0x3E20, 0x4049)', () => {
    const buf = safetensorsBytes({ b: { dtype: 'BF16', shape: [4], data_offsets: [0, 8] } }, u16Bytes([0x3f80, 0xc020, 0x3e20, 0x4049]));
    assert.deepEqual(values(decodeSafetensors(buf, 'bf16.safetensors').tensors.get('b')), [1, -2.5, 0.15625, 3.140625]);
  });

  test('an I64 value beyond int32 is refused naming the tensor and the file', () => {
    const f = put('big-ids.safetensors', safetensorsBytes({ ids: { dtype: 'I64', shape: [2], data_offsets: [0, 16] } }, i64Bytes([1, 2n ** 40n])));
    assertBad(() => readSafetensors(f), f, /'ids'.*1099511627776.*int32/);
  });
});

describe('safetensors: writing', () => {
  const w = Float32Array.from({ length: 100 }, (_, i) => Math.sin(i) * 3);
  const ids = Int32Array.from([0, 1, -1, 50256, 2 ** 31 - 1, -(2 ** 31)]);
  const sample = () => ({
    w: { shape: [10, 10], dtype: 'float32' as const, values: w },
    ids: { shape: [2, 3], dtype: 'int32' as const, values: ids },
    scalar: { shape: [], dtype: 'float32' as const, values: Float32Array.from([7.5]) },
    empty: { shape: [0, 4], dtype: 'float32' as const, values: new Float32Array(0) },
  });

  test('F32 round trip is exact; int tensors as I64 and I32; metadata kept', () => {
    for (const intDtype of ['I64', 'I32'] as const) {
      const f = path.join(tmp, `rt-${intDtype}.safetensors`);
      writeSafetensors(f, sample(), { metadata: { a: 'b', 'ü': 'ß' }, intDtype });
      const back = readSafetensors(f);
      assert.deepEqual(values(back.tensors.get('w')), [...w]);
      assert.deepEqual(values(back.tensors.get('ids')), [...ids]);
      assert.equal(back.tensors.get('ids')!.dtype, 'int32');
      assert.deepEqual(back.tensors.get('scalar'), { shape: [], dtype: 'float32', values: Float32Array.from([7.5]) });
      assert.deepEqual(back.tensors.get('empty')!.shape, [0, 4]);
      assert.deepEqual(back.metadata, { a: 'b', 'ü': 'ß' });
    }
  });

  test('F16 round trip within half precision (relative 2^-11, absolute 2^-25 below the normal range)', () => {
    const wide = Float32Array.from([...w, 1e-6, -3e-5, 65504, -0.1, 1 / 3]);
    const half = decodeSafetensors(encodeSafetensors({ w: { shape: [wide.length], dtype: 'float32', values: wide } }, { dtype: 'F16' }), 'h.safetensors');
    half.tensors.get('w')!.values.forEach((v, i) => {
      const x = wide[i];
      assert.ok(Math.abs(v - x) <= Math.max(Math.abs(x) * 2 ** -11, 2 ** -25), `${v} vs ${x}`);
    });
  });

  test('the layout follows the format: u64 length, padded JSON, contiguous aligned offsets that cover the data', () => {
    const buf = encodeSafetensors(sample(), { metadata: { k: 'v' }, dtype: 'F16' });
    const n = Number(buf.readBigUInt64LE(0));
    assert.equal(n % 8, 0);
    const text = buf.subarray(8, 8 + n).toString('utf8');
    assert.ok(text.startsWith('{') && /^[^]*\} *$/.test(text), 'header is JSON padded with spaces');
    const header = JSON.parse(text) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] } | Record<string, string>>;
    assert.deepEqual(header.__metadata__, { k: 'v' });
    const entries = Object.entries(header).filter(([k]) => k !== '__metadata__') as [string, { dtype: string; data_offsets: [number, number] }][];
    const size: Record<string, number> = { I64: 8, F16: 2 };
    let at = 0;
    for (const [name, e] of entries.sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0])) {
      assert.equal(e.data_offsets[0], at, `${name} starts where the previous tensor ends`);
      assert.equal(e.data_offsets[0] % size[e.dtype], 0, `${name} is aligned to its element size`);
      at = e.data_offsets[1];
    }
    assert.equal(8 + n + at, buf.length, 'the tensors cover the data exactly');
  });

  test('writes atomically: replaces the file and leaves no temp file', () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'atomic-'));
    const f = path.join(dir, 'model.safetensors');
    fs.writeFileSync(f, 'old contents');
    writeSafetensors(f, sample());
    assert.deepEqual(fs.readdirSync(dir), ['model.safetensors']);
    assert.deepEqual(values(readSafetensors(f).tensors.get('w')), [...w]);
  });

  test('writing into a missing folder is a one-line error naming the path', () => {
    const f = path.join(tmp, 'no-such-folder', 'out.safetensors');
    assertBad(() => writeSafetensors(f, sample()), f, /does not exist/);
  });

  test('a tensor whose shape does not match its values is refused before anything is written', () => {
    assert.throws(() => encodeSafetensors({ w: { shape: [3, 3], dtype: 'float32', values: new Float32Array(8) } }), /shape \[3,3\] but 8 values/);
  });
});

describe('safetensors: bad input', () => {
  test('a truncated file', () => {
    const buf = fs.readFileSync(fx('tiny-base.model.safetensors'));
    const f = put('cut.safetensors', buf.subarray(0, buf.length - 100));
    assertBad(() => readSafetensors(f), f, /truncated: tensor '.*' ends at byte \d+ but the file has \d+ bytes/);
  });

  test('garbage bytes', () => {
    const f = put('garbage.safetensors', Buffer.from('\x00\x01\x02 garbage garbage garbage'));
    assertBad(() => readSafetensors(f), f, /not a safetensors file/);
  });

  test('an empty file', () => {
    const f = put('empty.safetensors', Buffer.alloc(0));
    assertBad(() => readSafetensors(f), f, /not a safetensors file/);
  });

  test('a header length larger than the file', () => {
    const b = Buffer.alloc(64);
    b.writeBigUInt64LE(1000n);
    const f = put('biglen.safetensors', b);
    assertBad(() => readSafetensors(f), f, /truncated: the header needs 1000 bytes/);
  });

  test('a header that is not JSON', () => {
    const f = put('notjson.safetensors', safetensorsBytes('{"w": {"dtype": "F32", '));
    assertBad(() => readSafetensors(f), f, /not valid JSON/);
  });

  test('offsets beyond the data', () => {
    const f = put('offsets.safetensors', safetensorsBytes({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, Buffer.alloc(8)));
    assertBad(() => readSafetensors(f), f, /truncated: tensor 'w'/);
  });

  test('overlapping tensors', () => {
    const header = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } };
    const f = put('overlap.safetensors', safetensorsBytes(header, Buffer.alloc(12)));
    assertBad(() => readSafetensors(f), f, /'a' and 'b' overlap/);
  });

  test('offsets that do not match shape × dtype', () => {
    const f = put('size.safetensors', safetensorsBytes({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, Buffer.alloc(8)));
    assertBad(() => readSafetensors(f), f, /'w'.*span 8 bytes but shape \[3\] of F32 needs 12/);
  });

  test('an unknown dtype', () => {
    const f = put('dtype.safetensors', safetensorsBytes({ w: { dtype: 'C64', shape: [1], data_offsets: [0, 8] } }, Buffer.alloc(8)));
    assertBad(() => readSafetensors(f), f, /'w' has unsupported dtype "C64"/);
  });

  test('a missing file', () => {
    const f = path.join(tmp, 'nope.safetensors');
    assertBad(() => readSafetensors(f), f, /no such file/);
  });

  test('a folder', () => assertBad(() => readSafetensors(tmp), tmp, /is a folder/));
});

describe('zip', () => {
  test("reads stored and deflated entries of a zip64 archive made by Python's zipfile", () => {
    const zip = new ZipArchive(PYTHON_MADE.zip64(), 'py.zip');
    assert.deepEqual(zip.names(), ['archive/stored.txt', 'archive/deflated.txt']);
    assert.equal(zip.read('archive/stored.txt').toString(), 'stored bytes');
    assert.equal(zip.read('archive/deflated.txt').toString(), 'deflated '.repeat(40));
  });

  test('a damaged entry fails its CRC-32', () => {
    const buf = Buffer.from(PYTHON_MADE.zip64());
    buf[buf.indexOf('stored bytes')] ^= 0x20;
    assertBad(() => new ZipArchive(buf, 'damaged.zip').read('archive/stored.txt'), 'damaged.zip', /CRC-32 mismatch/);
  });

  test('not a zip, and a zip cut short', () => {
    assertBad(() => new ZipArchive(Buffer.from('just some text, not an archive'), 'text.pt'), 'text.pt', /not a zip archive/);
    const whole = storedZip([['a/b', Buffer.from('hello')]]);
    assertBad(() => new ZipArchive(whole.subarray(0, whole.length - 30), 'cut.zip'), 'cut.zip', /truncated/);
  });
});

describe('restricted unpickler: what CPython writes', () => {
  const py = (v: unknown): unknown => {
    if (v instanceof PyDict) return new Map([...v.map].map(([k, x]) => [k, py(x)]));
    if (v instanceof Tuple) return { tuple: v.items.map(py) };
    if (Array.isArray(v)) return v.map(py);
    if (v instanceof Uint8Array) return { bytes: [...v] };
    return v;
  };
  const common: [unknown, unknown][] = [
    ['int', 1], ['neg', -5], ['big', 2 ** 40], ['huge', 2n ** 70n], ['min64', -(2n ** 63n)], ['float', 0.1], ['inf', Infinity],
    ['str', 'h\u00e9llo \u2713'], ['long', 'x'.repeat(300)], ['none', null], ['t', true], ['f', false],
    ['list', [1, [2, 3], { tuple: [4] }]], ['tuple', { tuple: [1, 2, 3, 4] }], ['empty', { tuple: [] }],
    ['nested', new Map([['a', new Map([['b', [null]]])]])], ['shared', { tuple: [[1], [1]] }], [3, 'int key'],
  ];
  const extra45: [unknown, unknown][] = [['bytes', { bytes: [0, 255] }], ['set', [7]], ['frozen', [8]]];
  const cases: [string, () => Buffer, [unknown, unknown][]][] = [
    ['protocol 2', () => PYTHON_MADE.pickle2(), common],
    ['protocol 4 (frames, memoize, sets, bytes)', () => PYTHON_MADE.pickle4(), [...common, ...extra45]],
    ['protocol 5 (bytearray)', () => PYTHON_MADE.pickle5(), [...common, ...extra45, ['bytearray', { bytes: [97, 98] }]]],
  ];
  for (const [label, bytes, expected] of cases) {
    test(label, () => {
      const got = unpickle(bytes(), { file: 'py.pkl', persistentLoad: () => assert.fail('no persistent ids here'), globals: {} });
      assert.deepEqual(py(got), new Map(expected));
      const shared = ((got as PyDict).map.get('shared') as Tuple).items;
      assert.equal(shared[0], shared[1], 'a memoised object is the same object');
    });
  }

  test('unsupported opcodes and truncated data are one-line errors', () => {
    const opts = { file: 'x.pkl', persistentLoad: () => null, globals: {} };
    assertBad(() => unpickle(Buffer.from([0x80, 0x02, 0x82, 0x01, 0x2e]), opts), 'x.pkl', /unsupported pickle opcode 0x82/); // EXT1
    assertBad(() => unpickle(PYTHON_MADE.pickle2().subarray(0, 100), opts), 'x.pkl', /truncated pickle data/);
  });
});

describe('PyTorch checkpoints: the a-gpt fixtures', () => {
  const loaded = new Map<string, TorchCheckpoint>();
  const load = (fam: string) => {
    if (!loaded.has(fam)) loaded.set(fam, loadTorchCheckpoint(fx(`tiny-${fam}.ckpt.pt`)));
    return loaded.get(fam)!;
  };

  for (const fam of CHECKPOINTED) {
    test(`${fam}: save_checkpoint's dict — step, config, best_val_loss, AdamW hyper-parameters`, () => {
      const ck = load(fam), meta = fixtureJson(fam);
      assert.equal(ck.kind, 'agpt-checkpoint');
      assert.equal(ck.step, meta.ckpt_after_steps);
      assert.deepEqual(ck.config, { model_name: fam });
      assert.equal(ck.bestValLoss, meta.adamw.losses.at(-1));
      const group = ck.optimizer!.paramGroups[0];
      assert.equal(group.lr, meta.adamw.lr);
      assert.deepEqual(group.betas, meta.adamw.betas);
      assert.equal(group.eps, meta.adamw.eps);
      assert.equal(group.weight_decay, meta.adamw.weight_decay);
    });

    test(`${fam}: same names and shapes as the model fixture; parameter order as named_parameters()`, () => {
      const ck = load(fam);
      const ref = readSafetensors(fx(`tiny-${fam}.model.safetensors`)).tensors;
      assert.deepEqual([...ck.stateDict.keys()].sort(), [...ref.keys()].sort());
      for (const [k, t] of ck.stateDict) assert.deepEqual(t.shape, ref.get(k)!.shape, k);
      const namedParameters = Object.keys(fixtureJson(fam).grad_norms_step0);
      assert.deepEqual(ck.stateDictOrder, namedParameters);
      assert.deepEqual(ck.optimizerParamOrder, namedParameters);
    });

    test(`${fam}: AdamW moments for every parameter, consistent with Adam's recurrences after 3 steps`, () => {
      const ck = load(fam);
      const { betas: [b1, b2] } = fixtureJson(fam).adamw;
      // m = (1−β1)Σβ1^k g, v = (1−β2)Σβ2^k g² over k < 3 ⇒ |m| ≤ (1−β1)/√(1−β2)·√(Σ(β1²/β2)^k)·√v (Cauchy–Schwarz)
      const q = (b1 * b1) / b2;
      const bound = ((1 - b1) / Math.sqrt(1 - b2)) * Math.sqrt(1 + q + q * q);
      assert.equal(ck.optimizer!.state.size, ck.stateDict.size);
      ck.optimizerParamOrder!.forEach((name, i) => {
        const s = ck.optimizer!.state.get(i)!;
        const m = s.exp_avg as HostTensor, v = s.exp_avg_sq as HostTensor, step = s.step as HostTensor;
        assert.deepEqual(m.shape, ck.stateDict.get(name)!.shape, name);
        assert.deepEqual(v.shape, ck.stateDict.get(name)!.shape, name);
        assert.deepEqual(step.shape, [], 'step is a 0-d tensor');
        assert.equal(step.values[0], 3);
        m.values.forEach((mj, j) => {
          assert.ok(v.values[j] >= 0, `${name}: exp_avg_sq < 0`);
          assert.ok(Math.abs(mj) <= bound * Math.sqrt(v.values[j]) * (1 + 1e-5) + 1e-30, `${name}[${j}]: |m| ${mj} vs √v ${Math.sqrt(v.values[j])}`);
        });
      });
    });

    test(`${fam}: weights are the initial ones after 3 AdamW steps (each moves ≤ 3·lr·(1 + wd·|w|))`, () => {
      const ck = load(fam);
      const { lr, weight_decay: wd } = fixtureJson(fam).adamw;
      const initial = readSafetensors(fx(`tiny-${fam}.model.safetensors`)).tensors;
      let moved = 0;
      for (const [k, t] of ck.stateDict) {
        const w0 = initial.get(k)!.values;
        t.values.forEach((w, j) => {
          const d = Math.abs(w - w0[j]);
          moved = Math.max(moved, d);
          // a bias-corrected Adam step is at most lr per element in the first steps; decay adds lr·wd·|w|
          assert.ok(d <= 3 * lr * (1 + wd * (Math.abs(w0[j]) + 3 * lr)) + 1e-5, `${k}[${j}] moved ${d}`);
        });
      }
      assert.ok(moved > lr, `the weights moved by at most ${moved}`);
    });
  }
});

describe('PyTorch checkpoints: built by hand', () => {
  const f32 = (storage: string, numel: number, shape: number[], rest: { offset?: number; stride?: number[] } = {}) =>
    tensor({ storage, storageType: 'FloatStorage', numel, shape, ...rest });

  test('storage offsets, strides, 0-d tensors and every storage dtype come out contiguous', () => {
    const range12 = Array.from({ length: 12 }, (_, i) => i);
    const model = ordered([
      ['w', f32('0', 12, [3, 4])],
      ['wT', f32('0', 12, [4, 3], { stride: [1, 4] })],
      ['row', f32('0', 12, [4], { offset: 4 })],
      ['col', f32('0', 12, [3], { offset: 1, stride: [4] })],
      ['expanded', f32('0', 12, [2, 3], { offset: 2, stride: [0, 1] })],
      ['scalar', f32('0', 12, [], { offset: 7 })],
      ['half', tensor({ storage: '1', storageType: 'HalfStorage', numel: 4, shape: [2, 2] })],
      ['bf16', tensor({ storage: '2', storageType: 'BFloat16Storage', numel: 2, shape: [2] })],
      ['double', tensor({ storage: '3', storageType: 'DoubleStorage', numel: 2, shape: [2], location: 'cuda:0' })],
      ['long', tensor({ storage: '4', storageType: 'LongStorage', numel: 3, shape: [3] })],
      ['char', tensor({ storage: '5', storageType: 'CharStorage', numel: 2, shape: [2] })],
      ['bool', tensor({ storage: '6', storageType: 'BoolStorage', numel: 3, shape: [3] })],
    ], new Map([['', new Map([['version', 1]])]]));
    const buf = torchArchive(pickleOf(model), {
      0: f32Bytes(range12),
      1: u16Bytes([0x3c00, 0xc000, 0x3800, 0x7bff]),
      2: u16Bytes([0x3f80, 0xc020]),
      3: f64Bytes([0.1, -1e-3]),
      4: i64Bytes([5, -7, 2 ** 31 - 1]),
      5: Buffer.from([0xff, 0x7f]),
      6: Buffer.from([1, 0, 1]),
    });
    const ck = decodeTorchCheckpoint(buf, 'views.pt');
    assert.equal(ck.kind, 'state-dict');
    assert.deepEqual(ck.stateDictOrder, ['w', 'wT', 'row', 'col', 'expanded', 'scalar', 'half', 'bf16', 'double', 'long', 'char', 'bool']);
    const sd = ck.stateDict;
    assert.deepEqual(values(sd.get('w')), range12);
    assert.deepEqual(values(sd.get('wT')), [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
    assert.deepEqual(sd.get('wT')!.shape, [4, 3]);
    assert.deepEqual(values(sd.get('row')), [4, 5, 6, 7]);
    assert.deepEqual(values(sd.get('col')), [1, 5, 9]);
    assert.deepEqual(values(sd.get('expanded')), [2, 3, 4, 2, 3, 4]);
    assert.deepEqual(sd.get('scalar'), { shape: [], dtype: 'float32', values: Float32Array.from([7]) });
    assert.deepEqual(values(sd.get('half')), [1, -2, 0.5, 65504]);
    assert.deepEqual(values(sd.get('bf16')), [1, -2.5]);
    assert.deepEqual(values(sd.get('double')), [Math.fround(0.1), Math.fround(-1e-3)]);
    assert.deepEqual(sd.get('long'), { shape: [3], dtype: 'int32', values: Int32Array.from([5, -7, 2 ** 31 - 1]) });
    assert.deepEqual(values(sd.get('char')), [-1, 127]);
    assert.deepEqual(values(sd.get('bool')), [1, 0, 1]);
  });

  test('an a-gpt checkpoint whose state dict has tied weights and a buffer: optimizer indices map to parameters()', () => {
    const model = ordered([
      ['wte.weight', f32('0', 8, [4, 2])],
      ['lm_head.weight', f32('0', 8, [4, 2])], // tied to wte: parameters() yields it once
      ['attn.mask', f32('1', 4, [2, 2])], // a persistent buffer: no optimizer state
      ['proj.weight', f32('2', 8, [4, 2])],
      ['ln.weight', f32('3', 2, [2])],
    ]);
    const moments = (key: string, shape: number[], numel: number) => new Map<string, unknown>([
      ['step', f32(`${key}s`, 1, [])], ['exp_avg', f32(`${key}m`, numel, shape)], ['exp_avg_sq', f32(`${key}v`, numel, shape)],
    ]);
    const optimizer = new Map<string, unknown>([
      ['state', new Map([[0, moments('a', [4, 2], 8)], [1, moments('b', [4, 2], 8)], [2, moments('c', [2], 2)]])],
      ['param_groups', [new Map<string, unknown>([['lr', 0.001], ['betas', tuple(0.9, 0.95)], ['params', [0, 1, 2]]])]],
    ]);
    const root = new Map<string, unknown>([
      ['model', model], ['optimizer', optimizer], ['step', 7],
      ['config', new Map<string, unknown>([['model_name', 'adaptive'], ['seed', 2n ** 70n]])], ['best_val_loss', float(2)],
    ]);
    const storages: Record<string, Buffer> = { 0: f32Bytes([1, 2, 3, 4, 5, 6, 7, 8]), 1: f32Bytes([1, 0, 1, 1]), 2: f32Bytes([8, 7, 6, 5, 4, 3, 2, 1]), 3: f32Bytes([0.5, 0.25]) };
    for (const [k, n] of [['a', 8], ['b', 8], ['c', 2]] as const) {
      Object.assign(storages, { [`${k}s`]: f32Bytes([7]), [`${k}m`]: f32Bytes(new Array(n).fill(0.1)), [`${k}v`]: f32Bytes(new Array(n).fill(0.2)) });
    }
    const ck = decodeTorchCheckpoint(torchArchive(pickleOf(root), storages), 'tied.pt');
    assert.equal(ck.kind, 'agpt-checkpoint');
    assert.deepEqual(ck.stateDictOrder, ['wte.weight', 'lm_head.weight', 'attn.mask', 'proj.weight', 'ln.weight']);
    assert.deepEqual(values(ck.stateDict.get('lm_head.weight')), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert.deepEqual(ck.optimizerParamOrder, ['wte.weight', 'proj.weight', 'ln.weight']);
    assert.equal(ck.step, 7);
    assert.equal(ck.bestValLoss, 2);
    assert.deepEqual(ck.config, { model_name: 'adaptive', seed: 2 ** 70 });
    assert.deepEqual(ck.optimizer!.paramGroups, [{ lr: 0.001, betas: [0.9, 0.95], params: [0, 1, 2] }]);
    assert.deepEqual((ck.optimizer!.state.get(2)!.exp_avg as HostTensor).shape, [2]);
  });

  test("torch.compile's _orig_mod. prefix is removed", () => {
    const model = ordered([['_orig_mod.wte.weight', f32('0', 2, [2])], ['_orig_mod.lm_head.weight', f32('0', 2, [2])]]);
    const ck = decodeTorchCheckpoint(torchArchive(pickleOf(new Map([['model', model]])), { 0: f32Bytes([1, 2]) }), 'compiled.pt');
    assert.deepEqual(ck.stateDictOrder, ['wte.weight', 'lm_head.weight']);
  });

  test("protocol 2's spellings of sets and bytes (__builtin__.set, _codecs.encode) in a config", () => {
    const pkl = new PickleWriter().proto(2).op(0x7d) // {
      .value('model').value(ordered([['w', f32('0', 1, [1])]])).op(0x73)
      .value('config').op(0x7d)
      .value('tags').global('__builtin__', 'set').op(0x5d).value('a').op(0x61, 0x85, 0x52, 0x73) // set(['a'])
      .value('blob').global('_codecs', 'encode').value('\u0000\u00ff').value('latin1').op(0x86, 0x52, 0x73) // b'\x00\xff'
      .op(0x73).stop().bytes();
    const ck = decodeTorchCheckpoint(torchArchive(pkl, { 0: f32Bytes([1]) }), 'p2.pt');
    assert.deepEqual(ck.config, { tags: ['a'], blob: Uint8Array.from([0, 255]) });
  });

  test('parameters pickled as such (_rebuild_parameter, _rebuild_from_type_v2) are their data', () => {
    const w = new PickleWriter().proto(2).global('collections', 'OrderedDict').op(0x29, 0x52).mark();
    // 'p': _rebuild_parameter(tensor, True, OrderedDict())
    w.value('p').global('torch._utils', '_rebuild_parameter').mark().value(f32('0', 2, [2])).op(0x88).global('collections', 'OrderedDict').op(0x29, 0x52, 0x74, 0x52);
    // 'q': _rebuild_from_type_v2(_rebuild_tensor_v2, torch.nn.parameter.Parameter, (storage, 0, (2,), (1,), False, OrderedDict()), {})
    w.value('q').global('torch._tensor', '_rebuild_from_type_v2').mark().global('torch._utils', '_rebuild_tensor_v2').global('torch.nn.parameter', 'Parameter');
    w.mark().mark().value('storage').global('torch', 'FloatStorage').value('1').value('cpu').value(2).op(0x74, 0x51);
    w.value(0).value(tuple(2)).value(tuple(1)).op(0x89).global('collections', 'OrderedDict').op(0x29, 0x52, 0x74).op(0x7d, 0x74, 0x52);
    const pkl = w.op(0x75).stop().bytes();
    const ck = decodeTorchCheckpoint(torchArchive(pkl, { 0: f32Bytes([1, 2]), 1: f32Bytes([3, 4]) }), 'params.pt');
    assert.deepEqual(values(ck.stateDict.get('p')), [1, 2]);
    assert.deepEqual(values(ck.stateDict.get('q')), [3, 4]);
  });

  test('a storage type without a float32 or int32 equivalent is named in the error', () => {
    const sd = ordered([['z', tensor({ storage: '0', storageType: 'ComplexFloatStorage', numel: 1, shape: [1] })]]);
    assertBad(() => decodeTorchCheckpoint(torchArchive(pickleOf(sd), { 0: Buffer.alloc(8) }), 'complex.pt'), 'complex.pt', /ComplexFloatStorage.*convert/);
  });

  test('an int64 value beyond int32 is refused naming the file and the storage', () => {
    const sd = ordered([['ids', tensor({ storage: '9', storageType: 'LongStorage', numel: 2, shape: [2] })]]);
    const f = put('big.pt', torchArchive(pickleOf(sd), { 9: i64Bytes([1, 2n ** 33n]) }));
    assertBad(() => loadTorchCheckpoint(f), f, /storage '9'.*8589934592.*int32/);
  });

  test('a storage the archive lacks, or one too short for its tensor', () => {
    const sd = ordered([['w', f32('0', 4, [4])]]);
    assertBad(() => decodeTorchCheckpoint(torchArchive(pickleOf(sd)), 'nostorage.pt'), 'nostorage.pt', /storage '0'.*no archive\/data\/0/);
    assertBad(() => decodeTorchCheckpoint(torchArchive(pickleOf(sd), { 0: f32Bytes([1, 2]) }), 'short.pt'), 'short.pt', /truncated: storage '0'/);
  });

  test('a damaged storage byte fails the CRC instead of loading wrong weights', () => {
    const data = f32Bytes([1, 2, 3, 4]);
    const buf = torchArchive(pickleOf(ordered([['w', f32('0', 4, [4])]])), { 0: data });
    buf[buf.indexOf(data) + 5] ^= 1;
    assertBad(() => decodeTorchCheckpoint(buf, 'bitrot.pt'), 'bitrot.pt', /CRC-32 mismatch/);
  });

  test('a zip that is not a checkpoint', () => {
    const f = put('notckpt.pt', storedZip([['archive/hello.txt', Buffer.from('hi')]]));
    assertBad(() => loadTorchCheckpoint(f), f, /not a PyTorch checkpoint.*data\.pkl/);
  });

  test('a checkpoint whose pickle holds no tensors', () => {
    const f = put('notensors.pt', torchArchive(pickleOf(new Map([['epoch', 3]]))));
    assertBad(() => loadTorchCheckpoint(f), f, /no tensors.*'epoch'/);
  });

  test('the legacy torch.save format, a TorchScript archive, a safetensors file under .pt', () => {
    const legacy = Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e]);
    assertBad(() => decodeTorchCheckpoint(legacy, 'old.pt'), 'old.pt', /legacy.*re-save/);
    const script = storedZip([['m/data.pkl', pickleOf(1)], ['m/code/__torch__.py', Buffer.from('')], ['m/constants.pkl', pickleOf(1)]]);
    assertBad(() => decodeTorchCheckpoint(script, 'script.pt'), 'script.pt', /TorchScript/);
    assertBad(() => decodeTorchCheckpoint(fs.readFileSync(fx('tiny-base.model.safetensors')), 'model.pt'), 'model.pt', /safetensors file/);
  });

  test('a truncated fixture checkpoint', () => {
    const buf = fs.readFileSync(fx('tiny-adaptive.ckpt.pt'));
    const f = put('cut.pt', buf.subarray(0, buf.length >> 1));
    assertBad(() => loadTorchCheckpoint(f), f, /truncated/);
  });

  test('a missing file', () => {
    const f = path.join(tmp, 'nope.pt');
    assertBad(() => loadTorchCheckpoint(f), f, /no such file/);
  });
});

describe('PyTorch checkpoints: hostile pickles are refused and nothing runs', () => {
  const evil = (name: string, pkl: Buffer) => put(name, torchArchive(pkl));

  test("os.system through GLOBAL + REDUCE ('posix system')", () => {
    const marker = path.join(tmp, 'pwned');
    // PROTO 2; GLOBAL 'posix system'; BINUNICODE cmd; TUPLE1; REDUCE; STOP
    const pkl = new PickleWriter().proto(2).global('posix', 'system').value(`touch ${marker}`).op(0x85, 0x52).stop().bytes();
    const f = evil('evil.pt', pkl);
    assertBad(() => loadTorchCheckpoint(f), f, /refused to load: the pickle calls 'posix\.system' — only tensors and plain containers are allowed/);
    assert.equal(fs.existsSync(marker), false);
  });

  test('builtins.eval through STACK_GLOBAL (protocol 4)', () => {
    const pkl = new PickleWriter().proto(4).stackGlobal('builtins', 'eval').value('1').op(0x85, 0x52).stop().bytes();
    const f = evil('eval.pt', pkl);
    assertBad(() => loadTorchCheckpoint(f), f, /refused to load: the pickle calls 'builtins\.eval'/);
  });

  test('other code-running globals, also when hidden deep inside a valid checkpoint', () => {
    for (const [mod, name] of [['os', 'system'], ['nt', 'system'], ['subprocess', 'Popen'], ['builtins', 'exec'], ['__builtin__', 'getattr'], ['builtins', '__import__'], ['torch', 'load'], ['torch._utils', 'something_else']]) {
      const hidden = new PickleWriter().proto(2).op(0x7d).value('config').op(0x5d).global(mod, name).op(0x61, 0x73).stop().bytes(); // {'config': [<global>]}
      assertBad(() => decodeTorchCheckpoint(torchArchive(hidden), 'hidden.pt'), 'hidden.pt', new RegExp(`refused to load: the pickle calls '${mod}\\.${name}'`));
    }
  });

  test('INST and OBJ cannot instantiate anything outside the table', () => {
    const inst = new PickleWriter().proto(2).mark().value('id').raw('ios\nsystem\n').stop().bytes();
    assertBad(() => decodeTorchCheckpoint(torchArchive(inst), 'inst.pt'), 'inst.pt', /refused to load: the pickle calls 'os\.system'/);
    const obj = new PickleWriter().proto(2).mark().global('torch', 'FloatStorage').op(0x6f).stop().bytes(); // OBJ on a storage type
    assertBad(() => decodeTorchCheckpoint(torchArchive(obj), 'obj.pt'), 'obj.pt', /refused to load: the pickle calls an object/);
  });

  test('BUILD on anything but a dict, and persistent ids that are not storages', () => {
    const build = new PickleWriter().proto(2).op(0x5d).value(new Map([['__class__', 'x']])).op(0x62).stop().bytes(); // [] BUILD {…}
    assertBad(() => decodeTorchCheckpoint(torchArchive(build), 'build.pt'), 'build.pt', /refused to load: the pickle sets state on a list/);
    const pid = new PickleWriter().proto(2).value(tuple('module', 'os')).op(0x51).stop().bytes();
    assertBad(() => decodeTorchCheckpoint(torchArchive(pid), 'pid.pt'), 'pid.pt', /persistent id that is not a tensor storage/);
  });
});

/**
 * Bytes made by CPython 3.11's pickle and zipfile and by Python's safetensors 0.8 (numpy), with:
 *
 *   st = safetensors.numpy.save({
 *       'f64': np.array([[1.5, -2.25], [0.1, 3.0]], np.float64), 'f16': np.array([1.0, -0.5, 65504, 6e-8], np.float16),
 *       'i64': np.array([1, -2, 2**31 - 1, -2**31], np.int64), 'i16': np.array([-3, 300], np.int16),
 *       'i8': np.array([-128, 127], np.int8), 'u8': np.array([255, 0], np.uint8), 'bool': np.array([True, False, True]),
 *   }, metadata={'format': 'np'})
 *   zipfile.ZIP64_LIMIT = 8   # forces zip64 records on a tiny archive
 *   with zipfile.ZipFile(buf, 'w') as z:
 *       z.writestr(zipfile.ZipInfo('archive/stored.txt'), b'stored bytes', compress_type=zipfile.ZIP_STORED)
 *       z.writestr(zipfile.ZipInfo('archive/deflated.txt'), b'deflated ' * 40, compress_type=zipfile.ZIP_DEFLATED)
 *   shared = [1]
 *   value = {'int': 1, 'neg': -5, 'big': 2**40, 'huge': 2**70, 'min64': -2**63, 'float': 0.1, 'inf': float('inf'),
 *            'str': 'h\u00e9llo \u2713', 'long': 'x' * 300, 'none': None, 't': True, 'f': False,
 *            'list': [1, [2, 3], (4,)], 'tuple': (1, 2, 3, 4), 'empty': (), 'nested': {'a': {'b': [None]}},
 *            'shared': (shared, shared), 3: 'int key'}
 *   pickle2 = pickle.dumps(value, protocol=2)
 *   v45 = dict(value, bytes=b'\x00\xff', set={7}, frozen=frozenset({8}))
 *   pickle4 = pickle.dumps(v45, protocol=4)
 *   pickle5 = pickle.dumps(dict(v45, bytearray=bytearray(b'ab')), protocol=5)
 */
const PYTHON_MADE_BASE64 = {
  SAFETENSORS: `
    sAEAAAAAAAB7Il9fbWV0YWRhdGFfXyI6eyJmb3JtYXQiOiJucCJ9LCJpNjQiOnsiZHR5cGUiOiJJNjQiLCJzaGFwZSI6WzRd
    LCJkYXRhX29mZnNldHMiOlswLDMyXX0sImY2NCI6eyJkdHlwZSI6IkY2NCIsInNoYXBlIjpbMiwyXSwiZGF0YV9vZmZzZXRz
    IjpbMzIsNjRdfSwiZjE2Ijp7ImR0eXBlIjoiRjE2Iiwic2hhcGUiOls0XSwiZGF0YV9vZmZzZXRzIjpbNjQsNzJdfSwiaTE2
    Ijp7ImR0eXBlIjoiSTE2Iiwic2hhcGUiOlsyXSwiZGF0YV9vZmZzZXRzIjpbNzIsNzZdfSwiaTgiOnsiZHR5cGUiOiJJOCIs
    InNoYXBlIjpbMl0sImRhdGFfb2Zmc2V0cyI6Wzc2LDc4XX0sInU4Ijp7ImR0eXBlIjoiVTgiLCJzaGFwZSI6WzJdLCJkYXRh
    X29mZnNldHMiOls3OCw4MF19LCJib29sIjp7ImR0eXBlIjoiQk9PTCIsInNoYXBlIjpbM10sImRhdGFfb2Zmc2V0cyI6Wzgw
    LDgzXX19ICABAAAAAAAAAP7/////////////fwAAAAAAAACA/////wAAAAAAAPg/AAAAAAAAAsCamZmZmZm5PwAAAAAAAAhA
    ADwAuP97AQD9/ywBgH//AAEAAQ==`,
  ZIP64: `
    UEsDBC0AAAAAAAAAIQB4d6YP//////////8SABQAYXJjaGl2ZS9zdG9yZWQudHh0AQAQAAwAAAAAAAAADAAAAAAAAABzdG9y
    ZWQgYnl0ZXNQSwMELQAAAAgAAAAhAFmSyWT//////////xQAFABhcmNoaXZlL2RlZmxhdGVkLnR4dAEAEABoAQAAAAAAABAA
    AAAAAAAAS0lNy0ksSU1RSBll0JIBAFBLAQItAy0AAAAAAAAAIQB4d6YP//////////8SABQAAAAAAAAAAACAAQAAAABhcmNo
    aXZlL3N0b3JlZC50eHQBABAADAAAAAAAAAAMAAAAAAAAAFBLAQItAy0AAAAIAAAAIQBZkslk//////////8UABwAAAAAAAAA
    AACAAf////9hcmNoaXZlL2RlZmxhdGVkLnR4dAEAGABoAQAAAAAAABAAAAAAAAAAUAAAAAAAAABQSwYGLAAAAAAAAAAtAC0A
    AAAAAAAAAAACAAAAAAAAAAIAAAAAAAAAsgAAAAAAAACmAAAAAAAAAFBLBgcAAAAAWAEAAAAAAAABAAAAUEsFBgAAAAACAAIA
    sgAAAKYAAAAAAA==`,
  PICKLE2: `
    gAJ9cQAoWAMAAABpbnRxAUsBWAMAAABuZWdxAkr7////WAMAAABiaWdxA4oGAAAAAAABWAQAAABodWdlcQSKCQAAAAAAAAAA
    QFgFAAAAbWluNjRxBYoIAAAAAAAAAIBYBQAAAGZsb2F0cQZHP7mZmZmZmZpYAwAAAGluZnEHR3/wAAAAAAAAWAMAAABzdHJx
    CFgKAAAAaMOpbGxvIOKck3EJWAQAAABsb25ncQpYLAEAAHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4
    eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4
    eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4
    eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4
    eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHELWAQAAABub25lcQxOWAEAAAB0cQ2IWAEA
    AABmcQ6JWAQAAABsaXN0cQ9dcRAoSwFdcREoSwJLA2VLBIVxEmVYBQAAAHR1cGxlcRMoSwFLAksDSwR0cRRYBQAAAGVtcHR5
    cRUpWAYAAABuZXN0ZWRxFn1xF1gBAAAAYXEYfXEZWAEAAABicRpdcRtOYXNzWAYAAABzaGFyZWRxHF1xHUsBYWgdhnEeSwNY
    BwAAAGludCBrZXlxH3Uu`,
  PICKLE4: `
    gASVXQIAAAAAAAB9lCiMA2ludJRLAYwDbmVnlEr7////jANiaWeUigYAAAAAAAGMBGh1Z2WUigkAAAAAAAAAAECMBW1pbjY0
    lIoIAAAAAAAAAICMBWZsb2F0lEc/uZmZmZmZmowDaW5mlEd/8AAAAAAAAIwDc3RylIwKaMOpbGxvIOKck5SMBGxvbmeUWCwB
    AAB4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4
    eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4
    eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4
    eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4
    eHh4eHh4eHh4eHh4eHiUjARub25llE6MAXSUiIwBZpSJjARsaXN0lF2UKEsBXZQoSwJLA2VLBIWUZYwFdHVwbGWUKEsBSwJL
    A0sEdJSMBWVtcHR5lCmMBm5lc3RlZJR9lIwBYZR9lIwBYpRdlE5hc3OMBnNoYXJlZJRdlEsBYWgdhpRLA4wHaW50IGtleZSM
    BWJ5dGVzlEMCAP+UjANzZXSUj5QoSweQjAZmcm96ZW6UKEsIkZR1Lg==`,
  PICKLE5: `
    gAWVdQIAAAAAAAB9lCiMA2ludJRLAYwDbmVnlEr7////jANiaWeUigYAAAAAAAGMBGh1Z2WUigkAAAAAAAAAAECMBW1pbjY0
    lIoIAAAAAAAAAICMBWZsb2F0lEc/uZmZmZmZmowDaW5mlEd/8AAAAAAAAIwDc3RylIwKaMOpbGxvIOKck5SMBGxvbmeUWCwB
    AAB4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4
    eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4
    eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4
    eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4
    eHh4eHh4eHh4eHh4eHiUjARub25llE6MAXSUiIwBZpSJjARsaXN0lF2UKEsBXZQoSwJLA2VLBIWUZYwFdHVwbGWUKEsBSwJL
    A0sEdJSMBWVtcHR5lCmMBm5lc3RlZJR9lIwBYZR9lIwBYpRdlE5hc3OMBnNoYXJlZJRdlEsBYWgdhpRLA4wHaW50IGtleZSM
    BWJ5dGVzlEMCAP+UjANzZXSUj5QoSweQjAZmcm96ZW6UKEsIkZSMCWJ5dGVhcnJheZSWAgAAAAAAAABhYpR1Lg==`,
};
const fromBase64 = (s: string) => () => Buffer.from(s.replace(/\s+/g, ''), 'base64');
const PYTHON_MADE = {
  safetensors: fromBase64(PYTHON_MADE_BASE64.SAFETENSORS),
  zip64: fromBase64(PYTHON_MADE_BASE64.ZIP64),
  pickle2: fromBase64(PYTHON_MADE_BASE64.PICKLE2),
  pickle4: fromBase64(PYTHON_MADE_BASE64.PICKLE4),
  pickle5: fromBase64(PYTHON_MADE_BASE64.PICKLE5),
};
