/**
 * The engine as the tests drive it: the real CLI bundle in another process, or a server and its
 * client over two in-memory streams (the protocol exactly as the extension speaks it, one process).
 */
import { spawnSync } from 'node:child_process';
import { PassThrough } from 'node:stream';
import { EngineServer } from '../../engine/server/server';
import { EngineService } from '../../engine/server/service';
import { EngineConnection, type CancellationLike } from '../../engine/server/client';
import { PROTOCOL_VERSION, type BackendName } from '../../engine/protocol';
import { ENGINE_JS } from './fixtures';

/** `headlens ARGS` (dist/engine.js) on WASM: exit code and both streams. */
export function headlens(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [ENGINE_JS, ...args], { encoding: 'utf8', timeout: 300_000, env: { ...process.env, HEADLENS_BACKEND: 'wasm' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

export interface InMemoryEngine {
  client: EngineConnection;
  service: EngineService;
  /** `initialize`, then `model/load` of `model` ('' loads the starter model). */
  start(model: string): Promise<void>;
  /** Ends the client's stream: the server stops listening. */
  end(): void;
}

/** A server on `backend` and a client connected to it over in-memory streams. */
export function inMemoryEngine(backend: BackendName = 'wasm'): InMemoryEngine {
  const c2s = new PassThrough(), s2c = new PassThrough();
  const service = new EngineService(backend);
  void service.attach(new EngineServer(c2s, s2c, { log: () => {} })).listen();
  const client = new EngineConnection(s2c, c2s);
  return {
    client,
    service,
    async start(model) {
      await client.request('initialize', { clientName: 'test', protocolVersion: PROTOCOL_VERSION, backend });
      await client.request('model/load', { path: model });
    },
    end: () => c2s.end(),
  };
}

/** Request options whose token is cancelled when the `n`-th progress message arrives. */
export function cancelAtProgress(n: number): { token: CancellationLike; onProgress: () => void } {
  const listeners: (() => void)[] = [];
  const token = { isCancellationRequested: false, onCancellationRequested: (fn: () => void) => (listeners.push(fn), { dispose: () => {} }) };
  let seen = 0;
  return {
    token,
    onProgress: () => {
      if (++seen === n) {
        token.isCancellationRequested = true;
        listeners.forEach((fn) => fn());
      }
    },
  };
}
