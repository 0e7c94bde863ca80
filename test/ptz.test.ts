/**
 * parameter-golf's quantized artifact (engine/io/ptz.ts) against independent truth:
 * - `tiny-gated.ptz`, written by the authors' own serialize() (shared/fixtures/paramgolf), read
 *   back bit for bit as torch dequantizes it (test/reference/paramgolf/tiny-gated.dequant.json,
 *   made by scripts/reference/ptz_dequant.py), with the README's facts about the file;
 * - the float model it was quantized from (`tiny-gated.model.safetensors`): every tensor within
 *   the bound its kind allows, derived from the reference scales (and a deliberate rebanking
 *   mistake is shown to break that bound);
 * - small artifacts built here by hand from the format's definition (shuffle, scalar and per-row
 *   scales, bank layout), and bad or hostile files — each refused with one line naming the file.
 */
import { test, describe } from 'node:test';
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { decodePtzArtifact, readPtzArtifact, unshuffleBytes } from '../engine/io/ptz';
import { readSafetensors } from '../engine/io/safetensors';
import type { HostTensor } from '../engine/io/tensor';
import { BadInputError } from '../engine/errors';
import { REPO } from './helpers/fixtures';
import { PickleWriter, pickleOf, tensor, torchArchive, u16Bytes } from './helpers/pickle-builder';

const PARAMGOLF = path.join(REPO, '..', 'shared', 'fixtures', 'paramgolf');
const PTZ = path.join(PARAMGOLF, 'tiny-gated.ptz');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'headlens-ptz-'));

interface TensorFacts {
  shape: number[];
  sum: number;
  sum_sq: number;
  first16: number[];
  last16: number[];
  sha256_f32le: string;
}
interface QuantFacts {
  kind: string;
  q_shape: number[];
  q_min: number;
  q_max: number;
  scale: number[];
}
interface Reference {
  file: { name: string; bytes: number; sha256: string };
  decompressed_bytes: number;
  shuffle_stride: number;
  zip_bytes: number;
  stored_tensors: number;
  num_layers: number;
  categories: Record<string, number>;
  quant_meta: Record<string, string>;
  quantized: Record<string, QuantFacts>;
  tensors: Record<string, TensorFacts>;
}
const reference: Reference = JSON.parse(fs.readFileSync(path.join(REPO, 'test', 'reference', 'paramgolf', 'tiny-gated.dequant.json'), 'utf8'));
const fixtureJson = JSON.parse(fs.readFileSync(path.join(PARAMGOLF, 'tiny-gated.json'), 'utf8'));

/** Throws a BadInputError whose single-line message names `file` (and matches `re`). */
function assertBad(fn: () => unknown, file: string, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof BadInputError, `not a BadInputError: ${e}`);
    assert.ok(e.message.includes(path.basename(file)), `message does not name ${path.basename(file)}: ${e.message}`);
    assert.ok(!e.message.includes('\n'), `message is not one line: ${e.message}`);
    assert.match(e.message, re);
    return true;
  });
}

function put(name: string, bytes: Buffer): string {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, bytes);
  return f;
}

const sha256 = (t: HostTensor) => crypto.createHash('sha256').update(Buffer.from(t.values.buffer, t.values.byteOffset, t.values.byteLength)).digest('hex');

/** Their `_byte_shuffle`, from its definition: plane p is the bytes at p, p+stride, …; planes in order. */
function shuffle(data: Buffer, stride: number): Buffer {
  const planes: number[] = [];
  for (let p = 0; p < stride; p++) for (let i = p; i < data.length; i += stride) planes.push(data[i]);
  return Buffer.concat([Buffer.from('BSHF', 'latin1'), Buffer.from([stride]), Buffer.from(planes)]);
}

/** Brotli at a low quality: the same stream format as serialize()'s quality 11, made faster. */
const brotli = (data: Buffer) => zlib.brotliCompressSync(data, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 4 } });

/** What serialize() writes around a torch.save zip. */
const artifactOf = (zip: Buffer) => brotli(shuffle(zip, 2));

describe('parameter-golf .ptz: tiny-gated read as torch reads it', () => {
  const artifact = readPtzArtifact(PTZ);

  test("the README's facts: 118,955 bytes; 30 gptq int6, 1 int7, 5 int8_per_row, 24 passthrough; 5 blocks of width 64", () => {
    assert.equal(fs.statSync(PTZ).size, 118955);
    assert.equal(crypto.createHash('sha256').update(fs.readFileSync(PTZ)).digest('hex'), fixtureJson.artifact.sha256);
    const { info } = artifact;
    assert.equal(info.fileBytes, 118955);
    assert.deepEqual(info.kinds, { 'gptq (int6)': 30, 'gptq (int7)': 1, int8_per_row: 5, 'passthrough (float16)': 24 });
    assert.deepEqual(info.kinds, fixtureJson.artifact.categories);
    assert.equal(info.decompressedBytes, fixtureJson.artifact.pre_compression_bytes);
    assert.equal(info.zipBytes, fixtureJson.artifact.torch_save_zip_bytes);
    assert.equal(info.shuffleStride, 2);
    assert.equal(info.storedTensors, reference.stored_tensors);
    assert.deepEqual([info.numLayers, info.modelDim, info.kvDim, info.hiddenDim], [5, 64, 32, 256]);
    assert.equal(artifact.quantMeta['tok_emb.weight'], 'gptq (int7)');
  });

  test('quant_meta is the artifact\'s "m" map, in its order', () => {
    assert.deepEqual(Object.entries(artifact.quantMeta), Object.entries(reference.quant_meta));
    assert.deepEqual(artifact.quantMeta, fixtureJson.artifact.quant_meta);
  });

  test('every rebanked tensor is bit-identical to torch dequantizing the same file', () => {
    assert.deepEqual([...artifact.stateDict.keys()], Object.keys(reference.tensors));
    for (const [name, facts] of Object.entries(reference.tensors)) {
      const t = artifact.stateDict.get(name)!;
      assert.equal(t.dtype, 'float32', name);
      assert.deepEqual(t.shape, facts.shape, name);
      assert.deepEqual([...t.values.subarray(0, 16)], facts.first16, `${name}: first 16 values`);
      assert.deepEqual([...t.values.subarray(-16)], facts.last16, `${name}: last 16 values`);
      assert.equal(sha256(t), facts.sha256_f32le, `${name}: float32 bytes differ from torch's`);
      let sum = 0, sumSq = 0;
      for (const v of t.values) {
        sum += v;
        sumSq += v * v;
      }
      // numpy sums pairwise, we sum in order: equal up to float64 rounding
      assert.ok(Math.abs(sum - facts.sum) <= 1e-9 * Math.max(1, sumSq), `${name}: sum ${sum} vs ${facts.sum}`);
      assert.ok(Math.abs(sumSq - facts.sum_sq) <= 1e-9 * sumSq, `${name}: sum of squares ${sumSq} vs ${facts.sum_sq}`);
    }
  });

  test("names and shapes are the float model's state_dict (banks [2L,C,C], [2L,kv,C], [L,4C,C], [L,C,4C])", () => {
    const float = readSafetensors(path.join(PARAMGOLF, 'tiny-gated.model.safetensors')).tensors;
    assert.deepEqual([...artifact.stateDict.keys()].sort(), [...float.keys()].sort());
    for (const [name, t] of float) assert.deepEqual(artifact.stateDict.get(name)!.shape, t.shape, name);
    assert.deepEqual(artifact.stateDict.get('qo_bank')!.shape, [10, 64, 64]);
    assert.deepEqual(artifact.stateDict.get('kv_bank')!.shape, [10, 32, 64]);
    assert.deepEqual(artifact.stateDict.get('mlp_up_bank')!.shape, [5, 256, 64]);
    assert.deepEqual(artifact.stateDict.get('mlp_down_bank')!.shape, [5, 64, 256]);
  });

  test('every tensor is within its quantisation bound of the float weights, and a rebanking mistake is not', () => {
    const float = readSafetensors(path.join(PARAMGOLF, 'tiny-gated.model.safetensors')).tensors;
    const L = reference.num_layers;
    for (const [flat, kind] of Object.entries(reference.quant_meta)) {
      const got = flatView(artifact.stateDict, flat, L), want = flatView(float, flat, L);
      const q = reference.quantized[flat];
      if (kind === 'passthrough (float16)') assertPassthroughBound(got, want, flat);
      else {
        const qMax = kind === 'int8_per_row' ? 127 : 2 ** (Number(/int(\d)/.exec(kind)![1]) - 1) - 1;
        assert.ok(q.q_min >= -qMax && q.q_max <= qMax, `${flat}: q in [${q.q_min}, ${q.q_max}] exceeds ±${qMax}`);
        const { worst, mean } = errorInSteps(got, want, q.scale);
        const bound = kind === 'int8_per_row' ? INT8_ROW_BOUND : GPTQ_BOUND;
        assert.ok(worst <= bound.worst, `${flat} (${kind}): an element is ${worst.toFixed(3)} steps off (bound ${bound.worst})`);
        assert.ok(mean <= bound.mean, `${flat} (${kind}): mean error ${mean.toFixed(3)} steps (bound ${bound.mean})`);
      }
    }
    // negative control: Wq of block 1 read as block 0's, or Wv as Wk, is far outside the bound
    for (const [wrong, right] of [['blocks.1.attn.c_q.weight', 'blocks.0.attn.c_q.weight'], ['blocks.0.attn.c_v.weight', 'blocks.0.attn.c_k.weight']]) {
      const { mean } = errorInSteps(flatView(artifact.stateDict, wrong, L), flatView(float, right, L), reference.quantized[right].scale);
      assert.ok(mean > 3 * GPTQ_BOUND.mean, `${wrong} as ${right}: mean error only ${mean.toFixed(3)} steps`);
    }
  });
});

/**
 * Bounds in quantisation steps (the row's scale s):
 * - int8_per_row rounds W/s to the nearest integer with the exact s = max|W_row|/127, then stores
 *   s in fp16 (relative error ≤ 2^-11): |W − q·s16| ≤ s/2 + 127·s·2^-11; mean ≈ s/4 for rounding.
 * - GPTQ rounds each weight after adding the error feedback of the columns already rounded (each
 *   ≤ s/2, spread by the inverse Hessian): its errors stay rounding-sized on average (≤ s/2) and
 *   within a few steps everywhere (3 s; a different weight of the same kind is ~5 steps away).
 */
const INT8_ROW_BOUND = { worst: 0.5 + 127 * 2 ** -11 + 1e-4, mean: 0.5 };
const GPTQ_BOUND = { worst: 3, mean: 0.5 };

/** fp16 passthrough: round to nearest half, so |Δ| ≤ |w|·2^-11 (2^-25 absolute for subnormals). */
function assertPassthroughBound(got: Float32Array, want: Float32Array, name: string): void {
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    assert.ok(d <= Math.abs(want[i]) * 2 ** -11 + 2 ** -25, `${name}[${i}]: ${got[i]} vs float ${want[i]}`);
  }
}

/** Largest and mean |got − want| / s_row, rows along the leading axis. */
function errorInSteps(got: Float32Array, want: Float32Array, scales: number[]): { worst: number; mean: number } {
  const rowLength = want.length / scales.length;
  let worst = 0, total = 0;
  for (let i = 0; i < want.length; i++) {
    const steps = Math.abs(got[i] - want[i]) / scales[Math.floor(i / rowLength)];
    worst = Math.max(worst, steps);
    total += steps;
  }
  return { worst, mean: total / want.length };
}

/** A flat (unbanked) tensor's values, sliced out of a banked state dict as `_unbank_state_dict` names them. */
function flatView(sd: Map<string, HostTensor>, flat: string, L: number): Float32Array {
  const hit = /^blocks\.(\d+)\.(attn\.c_q|attn\.proj|attn\.c_k|attn\.c_v|mlp\.fc|mlp\.proj)\.weight$/.exec(flat);
  if (!hit) return sd.get(flat)!.values as Float32Array;
  const i = Number(hit[1]);
  const [bank, row] = ({
    'attn.c_q': ['qo_bank', i], 'attn.proj': ['qo_bank', L + i], 'attn.c_k': ['kv_bank', i], 'attn.c_v': ['kv_bank', L + i],
    'mlp.fc': ['mlp_up_bank', i], 'mlp.proj': ['mlp_down_bank', i],
  } as Record<string, [string, number]>)[hit[2]];
  const t = sd.get(bank)!;
  const size = t.shape[1] * t.shape[2];
  return (t.values as Float32Array).subarray(row * size, (row + 1) * size);
}

describe('parameter-golf .ptz: the byte shuffle', () => {
  test('un-shuffling inverts the shuffle for every stride and every length, divisible or not', () => {
    for (const stride of [2, 3, 7]) {
      for (let n = 0; n <= 23; n++) {
        const data = Buffer.from(Array.from({ length: n }, (_, i) => (i * 37 + 11) & 0xff));
        const { stride: s, bytes } = unshuffleBytes(shuffle(data, stride), 'x.ptz');
        assert.equal(s, stride);
        assert.deepEqual(bytes, data, `stride ${stride}, ${n} bytes`);
      }
    }
  });

  test('the first ⌈n/2⌉ payload bytes are the even positions (odd n)', () => {
    const payload = Buffer.from([0, 2, 4, 1, 3]);
    const { bytes } = unshuffleBytes(Buffer.concat([Buffer.from('BSHF\x02', 'latin1'), payload]), 'x.ptz');
    assert.deepEqual([...bytes], [0, 1, 2, 3, 4]);
  });

  test('a stride below 2 means the payload is not shuffled', () => {
    for (const stride of [0, 1]) {
      const { bytes } = unshuffleBytes(Buffer.concat([Buffer.from('BSHF', 'latin1'), Buffer.from([stride, 9, 8, 7])]), 'x.ptz');
      assert.deepEqual([...bytes], [9, 8, 7]);
    }
  });
});

// ---- small artifacts built by hand ----

const HALF = { '0.5': 0x3800, '0.25': 0x3400, '2': 0x4000, '-1': 0xbc00, '1.5': 0x3e00 } as const;
const i8Bytes = (xs: number[]) => Buffer.from(Int8Array.from(xs).buffer);

interface Stored {
  storageType: 'CharStorage' | 'HalfStorage' | 'FloatStorage';
  shape: number[];
  bytes: Buffer;
}

/** torch.save({"w": {...}, "m": {...}}) by hand, then shuffle + brotli. */
function handArtifact(w: [string, Stored][], m: [string, string][]): Buffer {
  const storages: Record<string, Buffer> = {};
  const entries = w.map(([name, s], k): [string, unknown] => {
    storages[String(k)] = s.bytes;
    const elem = s.storageType === 'CharStorage' ? 1 : s.storageType === 'HalfStorage' ? 2 : 4;
    return [name, tensor({ storage: String(k), storageType: s.storageType, numel: s.bytes.length / elem, shape: s.shape })];
  });
  return artifactOf(torchArchive(pickleOf(new Map<string, unknown>([['w', new Map(entries)], ['m', new Map(m)]])), storages));
}

const int8 = (shape: number[], xs: number[]): Stored => ({ storageType: 'CharStorage', shape, bytes: i8Bytes(xs) });
const half = (shape: number[], xs: number[]): Stored => ({ storageType: 'HalfStorage', shape, bytes: u16Bytes(xs) });

/** One block of width 2, kv width 1, hidden 2: every bank member quantized, with known values. */
function oneBlock(overrides: { w?: [string, Stored][]; m?: [string, string][]; drop?: string } = {}): Buffer {
  const member = (name: string, shape: number[], q: number[]): [string, Stored][] => [
    [`${name}.q`, int8(shape, q)],
    [`${name}.scale`, half([shape[0]], shape[0] === 2 ? [HALF['0.5'], HALF['2']] : [HALF['0.25']])],
  ];
  const w: [string, Stored][] = [
    ...member('blocks.0.attn.c_q.weight', [2, 2], [1, 2, 3, 4]),
    ...member('blocks.0.attn.proj.weight', [2, 2], [-1, -2, -3, -4]),
    ...member('blocks.0.attn.c_k.weight', [1, 2], [5, 6]),
    ...member('blocks.0.attn.c_v.weight', [1, 2], [7, -7]),
    ...member('blocks.0.mlp.fc.weight', [2, 2], [31, -31, 0, 1]),
    ...member('blocks.0.mlp.proj.weight', [2, 2], [2, 0, 0, 2]),
    // a gate with one head: their squeeze() leaves a 0-d scale
    ['blocks.0.attn.attn_gate_w.q', int8([1, 2], [127, -64])],
    ['blocks.0.attn.attn_gate_w.scale', half([], [HALF['1.5']])],
    ['blocks.0.attn.q_gain', half([1], [HALF['-1']])],
  ];
  // `drop` removes a stored tensor; `w` then adds (or replaces it with) others
  const stored = [...w.filter(([name]) => name !== overrides.drop), ...(overrides.w ?? [])];
  const m: [string, string][] = [
    ...['attn.c_q', 'attn.proj', 'attn.c_k', 'attn.c_v', 'mlp.fc', 'mlp.proj'].map((p): [string, string] => [`blocks.0.${p}.weight`, 'gptq (int6)']),
    ['blocks.0.attn.attn_gate_w', 'int8_per_row'],
    ['blocks.0.attn.q_gain', 'passthrough (float16)'],
    ...(overrides.m ?? []),
  ];
  return handArtifact(stored, m);
}

describe('parameter-golf .ptz: a hand-built artifact', () => {
  test('q × scale per row, a 0-d scale for the whole tensor, fp16 passthrough, and the bank layout', () => {
    const { stateDict, info } = decodePtzArtifact(oneBlock(), 'hand.ptz');
    const values = (n: string) => [...stateDict.get(n)!.values];
    // qo_bank = [c_q, proj]: rows scaled by 0.5 and 2
    assert.deepEqual(stateDict.get('qo_bank')!.shape, [2, 2, 2]);
    assert.deepEqual(values('qo_bank'), [0.5, 1, 6, 8, -0.5, -1, -6, -8]);
    assert.deepEqual(stateDict.get('kv_bank')!.shape, [2, 1, 2]);
    assert.deepEqual(values('kv_bank'), [1.25, 1.5, 1.75, -1.75]);
    assert.deepEqual(values('mlp_up_bank'), [15.5, -15.5, 0, 2]);
    assert.deepEqual(values('mlp_down_bank'), [1, 0, 0, 4]);
    assert.deepEqual(values('blocks.0.attn.attn_gate_w'), [190.5, -96]);
    assert.deepEqual(stateDict.get('blocks.0.attn.attn_gate_w')!.shape, [1, 2]);
    assert.deepEqual(values('blocks.0.attn.q_gain'), [-1]);
    assert.deepEqual([...stateDict.keys()], ['qo_bank', 'kv_bank', 'mlp_up_bank', 'mlp_down_bank', 'blocks.0.attn.attn_gate_w', 'blocks.0.attn.q_gain']);
    assert.deepEqual([info.numLayers, info.modelDim, info.kvDim, info.hiddenDim], [1, 2, 1, 2]);
  });

  test('an unknown kind is refused naming the tensor and the kind', () => {
    const f = put('kind.ptz', oneBlock({ w: [['extra', half([1], [HALF['2']])]], m: [['extra', 'nf4']] }));
    assertBad(() => readPtzArtifact(f), f, /tensor 'extra' has quantization kind 'nf4', which this reader does not know/);
    assertBad(() => decodePtzArtifact(oneBlock({ m: [['blocks.0.attn.c_q.weight', 'gptq (int9)']] }), 'bits.ptz'), 'bits.ptz', /kind 'gptq \(int9\)'/);
  });

  test('a q outside its kind\'s range, a missing scale, a scale per column instead of per row', () => {
    const wide = oneBlock({ w: [['blocks.0.attn.c_q.weight.q', int8([2, 2], [1, 32, 3, 4])]], drop: 'blocks.0.attn.c_q.weight.q' });
    assertBad(() => decodePtzArtifact(wide, 'wide.ptz'), 'wide.ptz', /'blocks\.0\.attn\.c_q\.weight\.q' holds 32 at element 1, outside ±31 for 'gptq \(int6\)'/);
    assertBad(() => decodePtzArtifact(oneBlock({ drop: 'blocks.0.mlp.fc.weight.scale' }), 'noscale.ptz'), 'noscale.ptz', /lists 'blocks\.0\.mlp\.fc\.weight' as 'gptq \(int6\)' but "w" has no 'blocks\.0\.mlp\.fc\.weight\.scale'/);
    const perColumn = oneBlock({ w: [['blocks.0.attn.c_k.weight.scale', half([2], [HALF['2'], HALF['2']])]], drop: 'blocks.0.attn.c_k.weight.scale' });
    assertBad(() => decodePtzArtifact(perColumn, 'cols.ptz'), 'cols.ptz', /'blocks\.0\.attn\.c_k\.weight\.scale' has shape \[2\] but .* needs one scale per row \(1\) or a scalar/);
    const floatQ = oneBlock({ w: [['blocks.0.attn.c_q.weight.q', half([2, 2], [0, 0, 0, 0])]], drop: 'blocks.0.attn.c_q.weight.q' });
    assertBad(() => decodePtzArtifact(floatQ, 'floatq.ptz'), 'floatq.ptz', /'blocks\.0\.attn\.c_q\.weight\.q' is stored as F16, not integers/);
  });

  test('a bank member missing for a block, or of the wrong shape', () => {
    const gap = oneBlock({ w: [['blocks.1.mlp.fc.weight', half([2, 2], [0, 0, 0, 0])]], m: [['blocks.1.mlp.fc.weight', 'passthrough (float16)']] });
    assertBad(() => decodePtzArtifact(gap, 'gap.ptz'), 'gap.ptz', /has no 'blocks\.1\.attn\.c_q\.weight', which the banks need/);
    const oddShape = oneBlock({ w: [['blocks.0.mlp.proj.weight.q', int8([2, 1], [1, 1])]], drop: 'blocks.0.mlp.proj.weight.q' });
    assertBad(() => decodePtzArtifact(oddShape, 'shape.ptz'), 'shape.ptz', /'blocks\.0\.mlp\.proj\.weight' is a float32 \[2,1\] tensor, but its bank needs float \[2,2\]/);
  });

  test('a pickle that is not {"w", "m"}', () => {
    const notDict = artifactOf(torchArchive(pickleOf(['w', 'm'])));
    assertBad(() => decodePtzArtifact(notDict, 'list.ptz'), 'list.ptz', /not \{"w": tensors, "m": kinds\}/);
    const noBanks = handArtifact([['skip_weights', half([1], [HALF['2']])]], [['skip_weights', 'passthrough (float16)']]);
    assertBad(() => decodePtzArtifact(noBanks, 'nobanks.ptz'), 'nobanks.ptz', /no blocks\.\{i\}\.attn\.c_q\.weight or other bank members/);
  });
});

describe('parameter-golf .ptz: bad files are refused with one line', () => {
  const good = fs.readFileSync(PTZ);

  test('a truncated artifact', () => {
    for (const cut of [good.length - 1, Math.floor(good.length / 2), 10]) {
      const f = put(`cut${cut}.ptz`, good.subarray(0, cut));
      assertBad(() => readPtzArtifact(f), f, /is truncated: its brotli stream ends early/);
    }
  });

  test('a file that is not brotli: garbage, a plain torch zip, an lzma artifact, an empty file', () => {
    const garbage = put('garbage.ptz', Buffer.from('this is a text file, not an artifact\n'.repeat(20)));
    assertBad(() => readPtzArtifact(garbage), garbage, /garbage\.ptz is not a brotli-compressed parameter-golf artifact/);
    const zip = put('zip.ptz', torchArchive(pickleOf(new Map())));
    assertBad(() => readPtzArtifact(zip), zip, /is not a brotli-compressed parameter-golf artifact but a plain zip/);
    const xz = put('xz.ptz', Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 1, 2, 3]));
    assertBad(() => readPtzArtifact(xz), xz, /is lzma-compressed \(COMPRESSOR=lzma\), not a brotli-compressed parameter-golf artifact/);
    const empty = put('empty.ptz', Buffer.alloc(0));
    assertBad(() => readPtzArtifact(empty), empty, /is empty, not a brotli-compressed parameter-golf artifact/);
  });

  test('brotli without the BSHF header', () => {
    const { bytes } = unshuffleBytes(zlib.brotliDecompressSync(good), 'x');
    const f = put('noshuffle.ptz', brotli(bytes));
    assertBad(() => readPtzArtifact(f), f, /after brotli there is no BSHF byte-shuffle header \(it starts with 50 4b 03 04\)/);
  });

  test('an artifact that decompresses beyond the limit', () => {
    assertBad(() => decodePtzArtifact(good, 'big.ptz', { maxDecompressedBytes: 100_000 }), 'big.ptz', /decompresses to more than 100000 bytes/);
  });

  test('a pickle global outside the allow-list is refused and nothing runs', () => {
    const marker = path.join(tmp, 'pwned');
    // {"w": {"x": posix.system("touch marker")}, "m": {}}
    const pkl = new PickleWriter().proto(2).op(0x7d).str('w').op(0x7d).str('x')
      .global('posix', 'system').value(`touch ${marker}`).op(0x85, 0x52) // TUPLE1, REDUCE
      .op(0x73).op(0x73).stop().bytes(); // SETITEM, SETITEM
    const f = put('evil.ptz', artifactOf(torchArchive(pkl)));
    assertBad(() => readPtzArtifact(f), f, /refused to load: the pickle calls 'posix\.system'/);
    assert.equal(fs.existsSync(marker), false);
  });

  test('a missing file', () => {
    const f = path.join(tmp, 'nope.ptz');
    assertBad(() => readPtzArtifact(f), f, /no such file/);
  });
});
