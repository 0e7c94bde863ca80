/**
 * Checkpoint readers against the reference fixtures and against hand-built bad files: truncated
 * and garbage safetensors, a zip that is not a checkpoint, and a .pt whose pickle calls os.system
 * (built here from raw pickle opcodes) — refused without running anything.
 */
import { test, describe } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readSafetensors, writeSafetensors, encodeSafetensors, decodeSafetensors } from '../engine/io/safetensors';
import { loadTorchCheckpoint } from '../engine/io/torch';
import { BadInputError } from '../engine/errors';
import { FIXTURES } from './helpers/fixtures';
import { storedZip } from './helpers/zip';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'headlens-io-'));
const fx = (n: string) => path.join(FIXTURES, n);

function assertBad(fn: () => unknown, file: string, re?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof BadInputError, `not a BadInputError: ${e}`);
    assert.ok(e.message.includes(path.basename(file)), `message does not name ${path.basename(file)}: ${e.message}`);
    assert.ok(!e.message.includes('\n'), 'message is not one line');
    if (re) assert.match(e.message, re);
    return true;
  });
}

describe('safetensors', () => {
  test('every fixture model reads with its JSON param_count', () => {
    for (const fam of ['base', 'matched', 'adaptive', 'diffusion', 'adaptive_diffusion']) {
      const { tensors } = readSafetensors(fx(`tiny-${fam}.model.safetensors`));
      const meta = JSON.parse(fs.readFileSync(fx(`tiny-${fam}.json`), 'utf8'));
      let n = 0;
      for (const t of tensors.values()) n += t.values.length;
      assert.equal(n, meta.param_count, fam);
    }
  });

  test('known shapes and int64 inputs of the adaptive fixture', () => {
    const m = readSafetensors(fx('tiny-adaptive.model.safetensors')).tensors;
    assert.deepEqual(m.get('transformer.wte.weight')!.shape, [512, 32]);
    assert.deepEqual(m.get('transformer.h.0.attn.hyper_v.0.layers.0.in_proj_weight')!.shape, [24, 8]);
    const ex = readSafetensors(fx('tiny-adaptive.expected.safetensors')).tensors;
    const ids = ex.get('input_ids')!;
    assert.equal(ids.dtype, 'int32');
    assert.deepEqual(ids.shape, [2, 24]);
    assert.ok([...ids.values].every((v) => v >= 0 && v < 512));
  });

  test('F32 and F16 round trips (F16 within half precision), ints as I64', () => {
    const values = Float32Array.from({ length: 100 }, (_, i) => Math.sin(i) * 3);
    const ids = Int32Array.from({ length: 6 }, (_, i) => i * 1000);
    const f = path.join(tmp, 'rt.safetensors');
    writeSafetensors(f, { w: { shape: [10, 10], dtype: 'float32', values }, ids: { shape: [2, 3], dtype: 'int32', values: ids } }, { metadata: { a: 'b' } });
    const back = readSafetensors(f);
    assert.deepEqual([...back.tensors.get('w')!.values], [...values]);
    assert.deepEqual([...back.tensors.get('ids')!.values], [...ids]);
    assert.equal(back.metadata.a, 'b');
    const half = decodeSafetensors(encodeSafetensors({ w: { shape: [100], dtype: 'float32', values } }, { dtype: 'F16' }), 'h.safetensors');
    half.tensors.get('w')!.values.forEach((v, i) => assert.ok(Math.abs(v - values[i]) <= 2e-3, `${v} vs ${values[i]}`));
  });

  test('a truncated file is refused naming the file', () => {
    const cut = path.join(tmp, 'cut.safetensors');
    const buf = fs.readFileSync(fx('tiny-base.model.safetensors'));
    fs.writeFileSync(cut, buf.subarray(0, buf.length - 100));
    assertBad(() => readSafetensors(cut), cut, /truncated/);
  });

  test('garbage bytes are refused', () => {
    const g = path.join(tmp, 'garbage.safetensors');
    fs.writeFileSync(g, Buffer.from('\x00\x01\x02 garbage garbage garbage'));
    assertBad(() => readSafetensors(g), g);
  });

  test('a header length larger than the file is refused', () => {
    const g = path.join(tmp, 'biglen.safetensors');
    const b = Buffer.alloc(64);
    b.writeBigUInt64LE(1000n);
    fs.writeFileSync(g, b);
    assertBad(() => readSafetensors(g), g, /truncated/);
  });

  test('offsets beyond the data are refused', () => {
    const g = path.join(tmp, 'offsets.safetensors');
    const header = Buffer.from(JSON.stringify({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }).padEnd(64, ' '));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    fs.writeFileSync(g, Buffer.concat([len, header, Buffer.alloc(8)]));
    assertBad(() => readSafetensors(g), g, /'w'/);
  });

  test('a missing file', () => assertBad(() => readSafetensors(path.join(tmp, 'nope.safetensors')), 'nope.safetensors', /no such file/));
});

describe('PyTorch checkpoints', () => {
  for (const fam of ['adaptive', 'adaptive_diffusion']) {
    test(`${fam}: a-gpt save_checkpoint dict with AdamW state`, () => {
      const ck = loadTorchCheckpoint(fx(`tiny-${fam}.ckpt.pt`));
      const ref = readSafetensors(fx(`tiny-${fam}.model.safetensors`)).tensors;
      assert.equal(ck.kind, 'agpt-checkpoint');
      assert.equal(ck.step, 3);
      assert.deepEqual(ck.config, { model_name: fam });
      assert.deepEqual([...ck.stateDict.keys()].sort(), [...ref.keys()].sort());
      let maxDiff = 0;
      for (const [k, t] of ck.stateDict) {
        assert.deepEqual(t.shape, ref.get(k)!.shape, k);
        t.values.forEach((v, i) => (maxDiff = Math.max(maxDiff, Math.abs(v - ref.get(k)!.values[i]))));
      }
      // three AdamW steps at lr 1e-3 move each weight by at most ~3·lr (plus decay)
      assert.ok(maxDiff > 0 && maxDiff < 5e-3, `weights moved by ${maxDiff}`);
      assert.equal(ck.optimizer!.state.size, ck.stateDict.size);
      ck.stateDictOrder.forEach((name, i) => {
        const s = ck.optimizer!.state.get(i)!;
        assert.deepEqual((s.exp_avg as { shape: number[] }).shape, ck.stateDict.get(name)!.shape, name);
        assert.deepEqual((s.exp_avg_sq as { shape: number[] }).shape, ck.stateDict.get(name)!.shape, name);
      });
      assert.equal(ck.optimizer!.paramGroups[0].lr, 0.001);
    });
  }

  test('a zip that is not a checkpoint is refused', () => {
    const z = path.join(tmp, 'notckpt.pt');
    fs.writeFileSync(z, storedZip([['archive/hello.txt', Buffer.from('hi')]]));
    assertBad(() => loadTorchCheckpoint(z), z, /data\.pkl/);
  });

  test('a pickle calling os.system is refused and nothing runs', () => {
    const marker = path.join(tmp, 'pwned');
    // PROTO 2; GLOBAL 'posix system'; BINUNICODE cmd; TUPLE1; REDUCE; STOP
    const cmd = Buffer.from(`touch ${marker}`);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(cmd.length);
    const pkl = Buffer.concat([Buffer.from([0x80, 0x02]), Buffer.from('cposix\nsystem\n', 'latin1'), Buffer.from([0x58]), len, cmd, Buffer.from([0x85, 0x52, 0x2e])]);
    const evil = path.join(tmp, 'evil.pt');
    fs.writeFileSync(evil, storedZip([['archive/data.pkl', pkl]]));
    assertBad(() => loadTorchCheckpoint(evil), evil, /refused.*posix\.system/);
    assert.equal(fs.existsSync(marker), false);
  });

  test('builtins.eval through STACK_GLOBAL is refused too', () => {
    const pkl = Buffer.concat([
      Buffer.from([0x80, 0x04, 0x8c, 8]), Buffer.from('builtins'), Buffer.from([0x8c, 4]), Buffer.from('eval'),
      Buffer.from([0x93, 0x8c, 1]), Buffer.from('1'), Buffer.from([0x85, 0x52, 0x2e]),
    ]);
    const evil = path.join(tmp, 'eval.pt');
    fs.writeFileSync(evil, storedZip([['archive/data.pkl', pkl]]));
    assertBad(() => loadTorchCheckpoint(evil), evil, /builtins\.eval/);
  });

  test('a truncated .pt is refused', () => {
    const cut = path.join(tmp, 'cut.pt');
    const buf = fs.readFileSync(fx('tiny-adaptive.ckpt.pt'));
    fs.writeFileSync(cut, buf.subarray(0, buf.length >> 1));
    assertBad(() => loadTorchCheckpoint(cut), cut);
  });
});
