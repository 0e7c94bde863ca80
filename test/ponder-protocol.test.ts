/**
 * PonderTTT over the protocol (in-memory streams, wasm): `ponder/run` on the loaded model as the base
 * streams one progress message per chunk and answers what `headlens ponder` computes on the same
 * text (the real CLI, another process); the per-token tttUpdate / tttSignal follow the chunks; a TTT
 * layer that does not fit the base answers BadInput naming the tensor; `ponder/train` streams the
 * trainer's records and `$/cancel` stops it with a checkpoint.
 */
import { test, describe, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EngineRequestError } from '../engine/server/client';
import { decodeArray } from '../engine/codec';
import { writeSafetensors } from '../engine/io/safetensors';
import { GPT2 } from '../engine/models/gpt2';
import { ErrorCode, type PonderChunkInfo, type TrainEvent } from '../engine/protocol';
import { REPO, SHARED_FIXTURES } from './helpers/fixtures';
import { headlens, inMemoryEngine } from './helpers/engine';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'headlens-ponder-protocol-'));
const TTT = path.join(SHARED_FIXTURES, 'methods', 'tiny-ttt.model.safetensors');
const TTT_JSON = path.join(SHARED_FIXTURES, 'methods', 'tiny-ttt.json');
const TEXT = fs.readFileSync(path.join(REPO, 'media', 'samples', 'attention.py'), 'utf8').slice(0, 1500);

/** A seeded GPT-2 32 wide with GPT-2's vocabulary, so that text tokenises into it. */
const BASE = path.join(tmp, 'base.safetensors');
const baseConfig = GPT2.defaults('gpt2', { vocab_size: 50257, block_size: 64, n_layer: 2, n_head: 2, n_embd: 32 });
writeSafetensors(BASE, GPT2.init(baseConfig, 3), { metadata: { format: 'headlens-model-1', config: JSON.stringify(baseConfig) } });

describe('ponder/run and ponder/train', () => {
  const engine = inMemoryEngine();
  const { client } = engine;
  before(() => engine.start(BASE));
  after(async () => {
    await client.request('shutdown', {});
  });

  test('one progress message per chunk, and the same chunks and perplexities as headlens ponder', async () => {
    const progress: PonderChunkInfo[] = [];
    const r = await client.request('ponder/run', { text: TEXT, ttt: TTT, tttConfig: TTT_JSON }, { onProgress: (c) => progress.push(c) });
    assert.deepEqual(progress, r.chunks);
    assert.ok(r.chunks.length > 16 && r.chunks.some((c) => c.decision === 'SKIP'));
    const file = path.join(tmp, 'doc.txt'), json = path.join(tmp, 'cli.json');
    fs.writeFileSync(file, TEXT);
    const cli = headlens(['ponder', '--model', BASE, '--ttt', TTT, '--ttt-config', TTT_JSON, '--text-file', file, '--json', json, '--backend', 'wasm']);
    assert.equal(cli.code, 0, cli.stderr);
    const theirs = JSON.parse(fs.readFileSync(json, 'utf8'));
    assert.deepEqual(r.chunks.map((c) => c.decision), theirs.chunks.map((c: PonderChunkInfo) => c.decision));
    r.chunks.forEach((c, i) => assert.ok(Math.abs(c.signal - theirs.chunks[i].signal) <= 1e-6 * c.signal, `chunk ${i} signal`));
    for (const k of ['gated', 'always', 'never'] as const) assert.ok(Math.abs(r.ppl[k] - theirs.ppl[k]) <= 1e-6 * r.ppl[k], `${k} ppl`);
    assert.deepEqual(r.tokens.map((t) => t.id), theirs.tokens.map((t: { id: number }) => t.id));
  });

  test('tttUpdate and tttSignal: each token carries its chunk’s decision and signal', async () => {
    const r = await client.request('ponder/run', { text: TEXT, ttt: TTT, tttConfig: TTT_JSON, chunk: 8, targetRate: 0.3 });
    assert.equal(r.chunk, 8);
    const upd = decodeArray(r.signals.tttUpdate), sig = decodeArray(r.signals.tttSignal), nll = decodeArray(r.nll.gated);
    assert.equal(upd.length, r.tokens.length);
    for (const c of r.chunks) {
      for (let t = c.start; t < c.end; t++) {
        assert.equal(upd[t], c.decision === 'UPDATE' ? 1 : 0);
        assert.equal(sig[t], Math.fround(c.signal));
      }
      assert.ok(Number.isNaN(nll[c.end - 1]), 'a chunk’s last position is not scored');
    }
    for (let t = r.chunks[r.chunks.length - 1].end; t < r.tokens.length; t++) assert.ok(Number.isNaN(upd[t]));
  });

  test('a TTT layer for another width: BadInput naming the tensor, and the engine stays up', async () => {
    const hf = path.join(SHARED_FIXTURES, 'gpt2', 'tiny-hf');
    await client.request('model/load', { path: hf });
    await assert.rejects(client.request('ponder/run', { text: TEXT, ttt: TTT }), (e: EngineRequestError) => e.code === ErrorCode.BadInput && /tensor 'fast_norm\.scale'/.test(e.message));
    await client.request('model/load', { path: BASE });
    const r = await client.request('ponder/run', { text: TEXT.slice(0, 200), ttt: TTT });
    assert.ok(r.chunks.length > 0);
  });

  test('ponder/train streams steps and a finished status; $/cancel stops a long run with a checkpoint', async () => {
    const events: TrainEvent[] = [];
    const data = path.join(tmp, 'data.txt');
    fs.writeFileSync(data, TEXT.repeat(4));
    const done = await client.request('ponder/train', { data: [data], steps: 3, ttt: TTT, chunk: 16, batchSize: 2, out: path.join(tmp, 'short') }, { onProgress: (e) => events.push(e) });
    assert.equal(done.steps, 3);
    assert.deepEqual(events.filter((e) => e.kind === 'step').map((e) => e.step), [0, 1, 2]);
    const last = events.at(-1);
    assert.equal(last?.kind === 'status' ? last.state : last?.kind, 'finished');
    assert.ok(done.checkpoint && fs.existsSync(done.checkpoint));

    const abort = new AbortController();
    const out = path.join(tmp, 'long');
    const steps: number[] = [];
    const long = client.request('ponder/train', { data: [data], steps: 10_000, ttt: TTT, chunk: 16, batchSize: 2, out }, { token: abort.signal, onProgress: (e) => {
      if (e.kind === 'step') {
        steps.push(e.step);
        if (steps.length === 2) abort.abort();
      }
    } });
    await assert.rejects(long, (e: EngineRequestError) => e.cancelled);
    await waitFor(() => fs.existsSync(path.join(out, 'last.safetensors')));
    const again = await client.request('ponder/train', { data: [data], steps: 1, ttt: TTT, chunk: 16, batchSize: 2 });
    assert.equal(again.steps, 1, 'the cancelled run released the trainer');
  });
});

async function waitFor(cond: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}
