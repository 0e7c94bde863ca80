/** The real spawned `headlens serve`: handshake, analysis, crash releases pending calls, shutdown. */
import { test, describe } from 'node:test';
import * as assert from 'node:assert/strict';
import { once } from 'node:events';
import { spawnEngine, EngineRequestError } from '../engine/server/client';
import { PROTOCOL_VERSION } from '../engine/protocol';
import { ENGINE_JS } from './helpers/fixtures';

const TEXT = 'for i in range(10):\n    print(i * i)\n';

describe('spawned headlens serve', () => {
  test('initialize, model/load and analyze over stdio', async () => {
    const e = spawnEngine(ENGINE_JS, { args: ['--backend', 'wasm'] });
    try {
      const init = await e.connection.request('initialize', { clientName: 'test', protocolVersion: PROTOCOL_VERSION });
      assert.equal(init.backend.name, 'wasm');
      await e.connection.request('model/load', { path: '' });
      let layers = 0;
      const r = await e.connection.request('analyze', { text: TEXT }, { onProgress: (ev) => (layers += ev.kind === 'layer' ? 1 : 0) });
      assert.ok(r.tokenCount > 5);
      assert.equal(layers, r.layers * r.windowCount);
    } finally {
      e.dispose();
    }
  });

  test('killing the engine releases every pending call as cancelled', async () => {
    const e = spawnEngine(ENGINE_JS, { args: ['--backend', 'wasm'] });
    await e.connection.request('initialize', { clientName: 'test', protocolVersion: PROTOCOL_VERSION });
    await e.connection.request('model/load', { path: '' });
    const pending = e.connection.request('analyze', { text: TEXT.repeat(50), window: 16 }, { onProgress: () => e.process.kill('SIGKILL') });
    await assert.rejects(pending, (err: unknown) => err instanceof EngineRequestError && err.cancelled && /killed/.test(err.message));
    await assert.rejects(e.connection.request('model/info', {}), (err: unknown) => err instanceof EngineRequestError && err.cancelled);
  });

  test('shutdown answers and the process exits with code 0', async () => {
    const e = spawnEngine(ENGINE_JS, { args: ['--backend', 'wasm'] });
    await e.connection.request('initialize', { clientName: 'test', protocolVersion: PROTOCOL_VERSION });
    const exited = once(e.process, 'exit');
    assert.equal(await e.connection.request('shutdown', {}), null);
    const [code] = await exited;
    assert.equal(code, 0);
  });

  test('stdout carries protocol lines only', async () => {
    const e = spawnEngine(ENGINE_JS, { args: ['--backend', 'cpu'] });
    const lines: string[] = [];
    e.process.stdout!.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
    await e.connection.request('initialize', { clientName: 'test', protocolVersion: PROTOCOL_VERSION });
    await e.connection.request('model/load', { path: '' });
    await e.connection.request('shutdown', {});
    await once(e.process, 'exit');
    for (const l of lines) assert.doesNotThrow(() => JSON.parse(l), `not JSON on stdout: ${l}`);
  });
});
