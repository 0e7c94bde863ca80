/**
 * The `headlens` CLI as scripts use it: exact contracts, exit codes (0 ok, 2 bad input with one
 * line on stderr, 1 internal), and the outputs checked against the reference fixtures.
 */
import { test, describe } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readSafetensors } from '../engine/io/safetensors';
import { ENGINE_JS, FIXTURES, assertClose } from './helpers/fixtures';
import { storedZip } from './helpers/zip';

function headlens(args: string[], opts: { input?: string } = {}) {
  // WASM unless a test says otherwise: probing a software Vulkan adapter (CI) prints driver warnings.
  const env = { ...process.env, HEADLENS_BACKEND: process.env.HEADLENS_BACKEND ?? 'wasm' };
  const r = spawnSync(process.execPath, [ENGINE_JS, ...args], { encoding: 'utf8', input: opts.input, timeout: 120_000, env });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'headlens-cli-'));
const fx = (n: string) => path.join(FIXTURES, n);

/** A bad-input run: exit 2, exactly one line on stderr, no stack trace. */
function assertBadInput(r: ReturnType<typeof headlens>, re: RegExp): void {
  assert.equal(r.code, 2, `exit ${r.code}; stderr: ${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `stderr has ${lines.length} lines: ${r.stderr}`);
  assert.match(lines[0], re);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'stack trace printed');
}

describe('headlens info', () => {
  test('infers family and config of an adaptive checkpoint, with --json', () => {
    const r = headlens(['info', '--model', fx('tiny-adaptive.model.safetensors'), '--json', '--backend', 'wasm']);
    assert.equal(r.code, 0, r.stderr);
    const info = JSON.parse(r.stdout);
    assert.equal(info.family, 'adaptive');
    assert.equal(info.config.n_embd, 32);
    assert.equal(info.config.n_head, 4);
    assert.equal(info.config.hyper.rank, 8);
    assert.equal(info.paramCount, JSON.parse(fs.readFileSync(fx('tiny-adaptive.json'), 'utf8')).param_count);
    assert.equal(info.backend.name, 'wasm');
  });

  test('reads the diffusion steps from the time embedding of a diffusion model', () => {
    const r = headlens(['info', '--model', fx('tiny-diffusion.model.safetensors'), '--json', '--backend', 'wasm']);
    assert.equal(r.code, 0, r.stderr);
    const info = JSON.parse(r.stdout);
    assert.equal(info.family, 'diffusion');
    const rows = readSafetensors(fx('tiny-diffusion.model.safetensors')).tensors.get('time_emb.weight')!.shape[0];
    assert.equal(info.config.num_diffusion_steps, rows - 1);
    assert.equal(info.causal, false);
  });
});

describe('headlens forward', () => {
  for (const fam of ['adaptive', 'adaptive_diffusion']) {
    test(`${fam}: writes logits, hidden, attn and LoRA tensors that match PyTorch`, () => {
      const ex = readSafetensors(fx(`tiny-${fam}.expected.safetensors`)).tensors;
      const ids = ex.get('input_ids')!;
      const [B, T] = ids.shape;
      const rows = Array.from({ length: B }, (_, b) => Array.from(ids.values.slice(b * T, (b + 1) * T)));
      const idsFile = path.join(tmp, `${fam}-ids.json`);
      fs.writeFileSync(idsFile, JSON.stringify(rows));
      const out = path.join(tmp, `${fam}-out.safetensors`);
      const args = ['forward', '--model', fx(`tiny-${fam}.model.safetensors`), '--config', fx(`tiny-${fam}.json`), '--ids', idsFile, '--out', out, '--backend', 'wasm'];
      if (ex.has('t')) args.push('--t', JSON.stringify(Array.from(ex.get('t')!.values)));
      const r = headlens(args);
      assert.equal(r.code, 0, r.stderr);
      const got = readSafetensors(out).tensors;
      for (const [name, exp] of ex) {
        if (['input_ids', 'targets', 'mask', 't'].includes(name)) continue;
        assert.ok(got.has(name), `missing ${name}`);
        assertClose(got.get(name)!, exp, name.startsWith('attn.') ? { abs: 1e-4 } : { rel: 1e-3 }, name);
      }
    });
  }

  test('ids ≥ vocab are bad input naming the value', () => {
    const idsFile = path.join(tmp, 'big-ids.json');
    fs.writeFileSync(idsFile, JSON.stringify([[1, 2, 512]]));
    assertBadInput(headlens(['forward', '--model', fx('tiny-base.model.safetensors'), '--ids', idsFile, '--out', path.join(tmp, 'x.safetensors')]), /512.*\[0, 512\)/);
  });

  test('a sequence longer than the block size is bad input', () => {
    const idsFile = path.join(tmp, 'long-ids.json');
    fs.writeFileSync(idsFile, JSON.stringify([Array(40).fill(1)]));
    assertBadInput(headlens(['forward', '--model', fx('tiny-base.model.safetensors'), '--config', fx('tiny-base.json'), '--ids', idsFile, '--out', path.join(tmp, 'x.safetensors')]), /block size 32/);
  });
});

describe('headlens analyze', () => {
  test('prints a per-token table with NLL and writes the JSON record', () => {
    const json = path.join(tmp, 'a.json');
    const r = headlens(['analyze', '--text', 'The quick brown fox jumps over the lazy dog.', '--json', json, '--backend', 'wasm']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /token\s+NLL/);
    assert.match(r.stdout, /quick/);
    const rec = JSON.parse(fs.readFileSync(json, 'utf8'));
    assert.equal(rec.tokens.length, 10);
    assert.equal(rec.tokens[1].text, ' quick');
    assert.deepEqual([rec.tokens[1].start, rec.tokens[1].end], [3, 9]);
  });

  test('a text longer than any window is analysed window by window', () => {
    const file = path.join(tmp, 'long.txt');
    fs.writeFileSync(file, 'x = 1\n'.repeat(200));
    const json = path.join(tmp, 'long.json');
    const r = headlens(['analyze', '--text-file', file, '--json', json, '--window', '64', '--backend', 'wasm']);
    assert.equal(r.code, 0, r.stderr);
    const rec = JSON.parse(fs.readFileSync(json, 'utf8'));
    assert.ok(rec.result.windowCount >= 10, `${rec.result.windowCount} windows`);
    assert.equal(rec.result.tokenCount, rec.tokens.length);
  });

  test('an empty text is bad input', () => {
    assertBadInput(headlens(['analyze', '--text', '']), /empty/);
  });

  test('a missing text file is bad input naming it', () => {
    assertBadInput(headlens(['analyze', '--text-file', '/no/such/file.txt']), /\/no\/such\/file\.txt/);
  });
});

describe('bad checkpoints', () => {
  test('a missing model file', () => {
    assertBadInput(headlens(['info', '--model', '/no/such/model.safetensors']), /no such file: \/no\/such\/model\.safetensors/);
  });

  test('a truncated safetensors file', () => {
    const cut = path.join(tmp, 'truncated.safetensors');
    const buf = fs.readFileSync(fx('tiny-base.model.safetensors'));
    fs.writeFileSync(cut, buf.subarray(0, Math.floor(buf.length / 2)));
    assertBadInput(headlens(['info', '--model', cut]), /truncated\.safetensors/);
  });

  test('a garbage safetensors file', () => {
    const g = path.join(tmp, 'garbage.safetensors');
    fs.writeFileSync(g, Buffer.from('this is not a safetensors file at all, just text'.repeat(10)));
    assertBadInput(headlens(['info', '--model', g]), /garbage\.safetensors/);
  });

  test('a zip that is not a checkpoint', () => {
    const z = path.join(tmp, 'notackpt.pt');
    fs.writeFileSync(z, storedZip([['hello.txt', Buffer.from('hello')]]));
    assertBadInput(headlens(['info', '--model', z]), /notackpt\.pt/);
  });

  test('an unknown option is bad input', () => {
    assertBadInput(headlens(['info', '--modle', 'x']), /unknown option --modle/);
  });

  test('an unknown command is bad input', () => {
    assertBadInput(headlens(['frobnicate']), /unknown command 'frobnicate'/);
  });
});
