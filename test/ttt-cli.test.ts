/**
 * LoRA-TTT through its two front doors:
 * - `headlens ttt` (the real CLI bundle): the fixture document with the fixture's starting adapters
 *   gives the authors' per-chunk losses and val_loss in --json, and --lora-out writes adapters that
 *   equal their `lora_final`; bad input is one line and exit 2 (a chunk size ≤ 0, a --lora-init
 *   tensor that does not fit the model, named);
 * - `ttt/run` over the protocol (in-memory streams, the starter model on WASM): one progress message
 *   per chunk, the result's shapes, the record's warm start of A from the previous document, and a
 *   cancelled run answered as cancelled with every tensor freed.
 */
import { test, describe, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { readSafetensors, writeSafetensors } from '../engine/io/safetensors';
import { EngineRequestError } from '../engine/server/client';
import { decodeArray } from '../engine/codec';
import { ErrorCode, type TttChunkEvent } from '../engine/protocol';
import { REPO, SHARED_FIXTURES, assertClose } from './helpers/fixtures';
import { cancelAtProgress, headlens, inMemoryEngine } from './helpers/engine';

const DIR = path.join(SHARED_FIXTURES, 'paramgolf');
const MODEL = path.join(DIR, 'tiny-gated.model.safetensors'), CONFIG = path.join(DIR, 'tiny-gated.json'), TTT_FILE = path.join(DIR, 'tiny-gated.ttt.safetensors');
const meta = JSON.parse(fs.readFileSync(path.join(DIR, 'tiny-gated.ttt.json'), 'utf8'));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'headlens-ttt-'));
const DOC = path.join(tmp, 'doc.json');
fs.writeFileSync(DOC, JSON.stringify(meta.document.tokens));

/** The fixture's settings as flags. */
const FIXTURE_FLAGS = ['--model', MODEL, '--config', CONFIG, '--ids', DOC, '--chunk', '8', '--eval-len', '32', '--alpha', '4.5', '--lr', '0.01'];

const close = (got: number, want: number, label: string) => assert.ok(Math.abs(got - want) <= 1e-3 * Math.max(1, Math.abs(want)), `${label}: ${got} vs ${want}`);

describe('headlens ttt', () => {
  test('the fixture document: the authors’ losses per chunk and val_loss; --lora-out holds their lora_final', () => {
    const json = path.join(tmp, 'out.json'), lora = path.join(tmp, 'lora.safetensors');
    const r = headlens(['ttt', ...FIXTURE_FLAGS, '--lora-init', TTT_FILE, '--json', json, '--lora-out', lora]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(fs.readFileSync(json, 'utf8'));
    assert.equal(out.chunks.length, meta.chunks.length);
    for (const [i, want] of (meta.chunks as { loss_before: number; loss_after: number }[]).entries()) {
      close(out.chunks[i].loss_before, want.loss_before, `chunk ${i} loss_before`);
      close(out.chunks[i].loss_after, want.loss_after, `chunk ${i} loss_after`);
    }
    close(out.val_loss, meta.summary.val_loss, 'val_loss');
    assert.deepEqual(Object.keys(out.chunks[0].delta_fro.layers).sort(), ['k', 'mlp', 'o', 'q', 'v']);
    assert.equal(out.chunks[0].delta_fro.layers.q.length, 9);
    const written = readSafetensors(lora).tensors, fixture = readSafetensors(TTT_FILE).tensors;
    for (const [name, exp] of fixture) {
      if (!name.startsWith('lora_final.')) continue;
      assertClose(written.get(name)!, exp, { rel: 1e-3 }, name);
      if (name.endsWith('.A')) assertClose(written.get(name.replace('lora_final.', 'lora_init.'))!, exp, { rel: 1e-3 }, `warm start ${name}`);
    }
    assert.ok(![...written.keys()].some((k) => k.startsWith('lora_init.') && k.endsWith('.B')), 'the warm start resets B');
  });

  for (const chunk of ['0', '-4']) {
    test(`--chunk ${chunk}: one line, exit 2`, () => {
      const r = headlens(['ttt', ...FIXTURE_FLAGS.slice(0, 6), '--chunk', chunk]);
      assert.equal(r.code, 2);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, /chunk size \(--chunk\) must be a positive integer/);
    });
  }

  test('a --lora-init tensor of the wrong width: one line naming it, exit 2', () => {
    const bad = path.join(tmp, 'bad.safetensors');
    const t = readSafetensors(TTT_FILE).tensors;
    const init = new Map([...t].filter(([k]) => k.startsWith('lora_init.')));
    init.set('lora_init.k_loras.3.A', { shape: [1, 4, 32], dtype: 'float32', values: new Float32Array(128) });
    writeSafetensors(bad, init);
    const r = headlens(['ttt', ...FIXTURE_FLAGS, '--lora-init', bad]);
    assert.equal(r.code, 2);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /tensor 'lora_init\.k_loras\.3\.A' has shape \[1,4,32\], expected \[1, 4, 64\]/);
  });

  test('a --lora-init adapter for a layer the model does not have: named, exit 2', () => {
    const bad = path.join(tmp, 'extra.safetensors');
    const init = new Map([...readSafetensors(TTT_FILE).tensors].filter(([k]) => k.startsWith('lora_init.')));
    init.set('lora_init.q_loras.9.A', { shape: [1, 4, 64], dtype: 'float32', values: new Float32Array(256) });
    writeSafetensors(bad, init);
    const r = headlens(['ttt', ...FIXTURE_FLAGS, '--lora-init', bad]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /tensor 'lora_init\.q_loras\.9\.A' does not fit the model: .*slots 0–8/);
  });
});

describe('ttt/run over the protocol', () => {
  const TEXT = fs.readFileSync(path.join(REPO, 'media', 'samples', 'attention.py'), 'utf8').slice(0, 500);
  const PARAMS = { text: TEXT, chunk: 24, rank: 4, alpha: 4.5, lr: 1e-2 };
  const engine = inMemoryEngine();
  const { client } = engine;
  before(() => engine.start(''));
  after(() => engine.end());

  test('one progress message per chunk; per-token NLL with and without TTT; the chunks tile the predictions', async () => {
    const progress: TttChunkEvent[] = [];
    const r = await client.request('ttt/run', { ...PARAMS, warmStart: false }, { onProgress: (c) => progress.push(c) });
    const N = r.tokens.length;
    assert.equal(progress.length, Math.ceil((N - 1) / 24));
    assert.deepEqual(r.chunks, progress);
    r.chunks.forEach((c, i) => assert.deepEqual([c.start, c.end, c.trained], [i * 24, Math.min((i + 1) * 24, N - 1), i < r.chunks.length - 1]));
    const nll = decodeArray(r.nll), base = decodeArray(r.nllBase);
    assert.deepEqual([nll.length, base.length], [N, N]);
    assert.ok(Number.isNaN(nll[N - 1]));
    for (const c of r.chunks) {
      let sum = 0, sumBase = 0;
      for (let t = c.start; t < c.end; t++) (sum += nll[t]), (sumBase += base[t]);
      close(sum / (c.end - c.start), c.lossBefore, `chunk ${c.chunk} lossBefore from the per-token NLL`);
      close(sumBase / (c.end - c.start), c.lossBase, `chunk ${c.chunk} lossBase`);
    }
    close(r.chunks[0].lossBefore, r.chunks[0].lossBase, 'the first chunk is scored by the base model (B = 0)');
    assert.deepEqual(Object.keys(r.chunks[0].deltaFro.layers).sort(), ['k', 'mlp', 'o', 'q', 'v']);
    assert.equal(r.signal.name, 'tttDelta');
    assert.equal(r.settings.evalLen, 128, 'the record’s 2048 capped at the model’s context');
  });

  test('A is warm-started from the previous document (warmStart: false draws it again)', async () => {
    const fresh1 = await client.request('ttt/run', { ...PARAMS, warmStart: false });
    const fresh2 = await client.request('ttt/run', { ...PARAMS, warmStart: false });
    const warm = await client.request('ttt/run', PARAMS);
    assert.deepEqual(fresh1.chunks.map((c) => c.lossAfter), fresh2.chunks.map((c) => c.lossAfter), 'a fresh start is reproducible');
    assert.notDeepEqual(warm.chunks.map((c) => c.lossAfter), fresh1.chunks.map((c) => c.lossAfter));
    close(warm.chunks[0].lossBefore, fresh1.chunks[0].lossBefore, 'B starts at 0 either way, so the first chunk is the base model’s');
  });

  test('cancelled mid-document: answered Cancelled, every tensor freed', async () => {
    await client.request('ttt/run', { ...PARAMS, text: TEXT.slice(0, 100) }); // the training model is built and kept
    const start = tf.memory().numTensors;
    const p = client.request('ttt/run', PARAMS, cancelAtProgress(1));
    await assert.rejects(p, (e) => e instanceof EngineRequestError && e.code === ErrorCode.Cancelled);
    assert.equal(tf.memory().numTensors, start);
  });

  test('a chunk size of 0 answers BadInput', async () => {
    await assert.rejects(client.request('ttt/run', { ...PARAMS, chunk: 0 }), (e) => e instanceof EngineRequestError && e.code === ErrorCode.BadInput && /chunk size/.test(e.message));
  });
});
