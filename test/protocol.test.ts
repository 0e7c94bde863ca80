/**
 * The engine protocol over two in-memory streams: one behaviour per test (single request,
 * streaming order, cancel before/while running, malformed line, unknown method, bad input,
 * no tensor leak over repeated analyses).
 */
import { test, describe, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import * as readline from 'node:readline';
import * as tf from '@tensorflow/tfjs-core';
import { EngineServer } from '../engine/server/server';
import { EngineService } from '../engine/server/service';
import { EngineConnection, EngineRequestError } from '../engine/server/client';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ErrorCode, PROTOCOL_VERSION, type AnalyzeEvent, type TrainEvent } from '../engine/protocol';
import { REPO } from './helpers/fixtures';

const SAMPLE = 'def add(a, b):\n    return a + b\n\nprint(add(2, 3))\n';

function harness() {
  const c2s = new PassThrough(), s2c = new PassThrough();
  const service = new EngineService('wasm');
  const server = service.attach(new EngineServer(c2s, s2c, { log: () => {} }));
  const done = server.listen();
  const client = new EngineConnection(s2c, c2s);
  const raw: Record<string, unknown>[] = [];
  readline.createInterface({ input: s2c }).on('line', (l) => raw.push(JSON.parse(l)));
  return { c2s, s2c, service, client, raw, done, end: () => c2s.end() };
}

async function expectError(p: Promise<unknown>, code: ErrorCode, re?: RegExp): Promise<EngineRequestError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof EngineRequestError, `expected an engine error, got ${e}`);
    assert.equal(e.code, code, `code ${e.code} (${e.message})`);
    if (re) assert.match(e.message, re);
    return e;
  }
  assert.fail(`expected error ${code}, the request succeeded`);
}

describe('protocol over in-memory streams', () => {
  const h = harness();
  before(async () => {
    await h.client.request('initialize', { clientName: 'test', protocolVersion: PROTOCOL_VERSION, backend: 'wasm' });
  });
  after(() => h.end());

  test('initialize answers the protocol version and the backend it chose', async () => {
    const r = await h.client.request('initialize', { clientName: 'test', protocolVersion: PROTOCOL_VERSION });
    assert.equal(r.protocolVersion, PROTOCOL_VERSION);
    assert.equal(r.backend.name, 'wasm');
    assert.equal(r.device.kind, 'cpu');
  });

  test('a protocol version mismatch is refused with a clear error', async () => {
    await expectError(h.client.request('initialize', { clientName: 'test', protocolVersion: 999 }), ErrorCode.BadInput, /protocol version mismatch/);
  });

  test('analyze before any model is loaded answers NoModel', async () => {
    await expectError(h.client.request('analyze', { text: 'x' }), ErrorCode.NoModel, /model\/load/);
  });

  test('model/load of a missing file answers BadInput naming the file', async () => {
    await expectError(h.client.request('model/load', { path: '/nonexistent/model.safetensors' }), ErrorCode.BadInput, /\/nonexistent\/model\.safetensors/);
  });

  test('analyze streams tokens, then each layer in order, then the output, then the result', async () => {
    const info = await h.client.request('model/load', { path: '' });
    const events: AnalyzeEvent[] = [];
    const result = await h.client.request('analyze', { text: SAMPLE }, { onProgress: (e) => events.push(e) });
    const kinds = events.map((e) => (e.kind === 'layer' ? `layer${e.layer}` : e.kind));
    const expected = ['tokens', ...Array.from({ length: info.config.n_layer }, (_, l) => `layer${l}`), 'output'];
    assert.deepEqual(kinds, expected);
    assert.equal(result.tokenCount, (events[0] as Extract<AnalyzeEvent, { kind: 'tokens' }>).tokens.length);
    assert.equal(result.layers, info.config.n_layer);
  });

  test('a long text is analysed window by window, each window complete before the next', async () => {
    const events: AnalyzeEvent[] = [];
    const result = await h.client.request('analyze', { text: SAMPLE.repeat(6), window: 32 }, { onProgress: (e) => events.push(e) });
    assert.ok(result.windowCount >= 3, `windows: ${result.windowCount}`);
    const order = events.map((e) => e.window);
    assert.deepEqual(order, [...order].sort((a, b) => a - b), 'windows interleaved');
    assert.equal(events.filter((e) => e.kind === 'output').length, result.windowCount);
  });

  test('cancel before the request runs answers Cancelled', async () => {
    const ac = new AbortController();
    ac.abort();
    await expectError(h.client.request('analyze', { text: SAMPLE }, { token: ac.signal }), ErrorCode.Cancelled);
  });

  test('cancel while running stops streaming and answers Cancelled', async () => {
    const ac = new AbortController();
    const events: AnalyzeEvent[] = [];
    const p = h.client.request('analyze', { text: SAMPLE.repeat(20), window: 16 }, {
      token: ac.signal,
      onProgress: (e) => {
        events.push(e);
        if (events.length === 2) ac.abort();
      },
    });
    await expectError(p, ErrorCode.Cancelled);
    assert.ok(events.length < 20, `${events.length} events after cancel`);
  });

  test('a malformed line answers a parse error and the engine keeps serving', async () => {
    const before = h.raw.length;
    h.c2s.write('{this is not json\n');
    await new Promise((r) => setTimeout(r, 50));
    const reply = h.raw.slice(before).find((m) => (m.error as { code?: number } | undefined)?.code === ErrorCode.ParseError);
    assert.ok(reply, 'no parse error reply');
    assert.equal(reply.id, null);
    const r = await h.client.request('model/info', {});
    assert.ok(r === null || typeof r.family === 'string');
  });

  test('an unknown method answers MethodNotFound', async () => {
    await expectError(h.client.request('no/such/method' as 'shutdown', {}), ErrorCode.MethodNotFound, /no\/such\/method/);
  });

  test('analyze with an empty text answers BadInput', async () => {
    await expectError(h.client.request('analyze', { text: '' }), ErrorCode.BadInput, /empty/);
  });

  test('train/start streams records; train/stop ends the run promptly with a checkpoint', async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'headlens-proto-train-'));
    const events: TrainEvent[] = [];
    let stopped = false;
    const run = h.client.request('train/start', {
      data: [path.join(REPO, 'engine', 'models')], family: 'adaptive', steps: 1000, batchSize: 2, seqLen: 16, out, probeInterval: 2, evalInterval: 0,
      config: { n_layer: 1, n_head: 2, n_embd: 16, hyper: { rank: 2, n_heads: 2, n_layers: 1, alpha: 1 } },
    }, {
      onProgress: (e) => {
        events.push(e);
        if (e.kind === 'step' && e.step === 2 && !stopped) {
          stopped = true;
          void h.client.request('train/stop', {});
        }
      },
    });
    const result = await run;
    assert.equal(result.stoppedEarly, true);
    assert.ok(result.steps >= 3 && result.steps <= 4, `stopped after ${result.steps} steps`);
    assert.ok(result.checkpoint && fs.existsSync(result.checkpoint), 'no checkpoint');
    assert.ok(events.some((e) => e.kind === 'probe' && e.loraFro !== null), 'no probe records');
    assert.equal(events.filter((e) => e.kind === 'status').pop()?.state, 'stopped');
    await expectError(h.client.request('train/pause', {}), ErrorCode.TrainingState, /no training run/);
  });

  test('tensor count stays flat over 20 analyses', async () => {
    await h.client.request('analyze', { text: SAMPLE });
    const start = tf.memory().numTensors;
    for (let i = 0; i < 20; i++) await h.client.request('analyze', { text: SAMPLE });
    assert.equal(tf.memory().numTensors, start);
  });
});
