/**
 * The client side of the engine protocol, free of `vscode` so that it is unit-testable and shared:
 * typed requests over any pair of streams (or a spawned `headlens serve`), `$/progress` routed to
 * the request's callback, cancellation as `$/cancel`, and — when the engine goes away — every
 * pending call resolved as cancelled (never left hanging).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import * as readline from 'node:readline';
import { ErrorCode, PROTOCOL_VERSION, type ErrorObject, type Method, type ParamsOf, type ProgressOf, type ResultOf } from '../protocol';

export class EngineRequestError extends Error {
  constructor(readonly code: ErrorCode, message: string, readonly data?: unknown) {
    super(message);
  }
  get cancelled(): boolean {
    return this.code === ErrorCode.Cancelled;
  }
}

interface Pending {
  method: string;
  resolve: (v: unknown) => void;
  reject: (e: EngineRequestError) => void;
  onProgress?: (v: unknown) => void;
}

/** Anything with `isCancellationRequested` + an event, or a plain AbortSignal. */
export interface CancellationLike {
  isCancellationRequested?: boolean;
  onCancellationRequested?: (fn: () => void) => { dispose(): void };
  aborted?: boolean;
  addEventListener?: (type: 'abort', fn: () => void) => void;
}

export class EngineConnection {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private closedReason: string | null = null;
  private readonly closeListeners: ((reason: string) => void)[] = [];

  /** `closeOnEnd`: release pending calls when the input ends (a spawned engine waits for its exit instead, to say why). */
  constructor(private readonly input: Readable, private readonly output: Writable, closeOnEnd = true) {
    const rl = readline.createInterface({ input, crlfDelay: Infinity });
    rl.on('line', (line) => this.onLine(line));
    if (closeOnEnd) rl.on('close', () => this.close('the engine closed its output'));
    output.on('error', (e) => this.close(`cannot write to the engine: ${e.message}`));
  }

  get closed(): boolean {
    return this.closedReason !== null;
  }

  onClose(fn: (reason: string) => void): void {
    this.closeListeners.push(fn);
  }

  request<M extends Method>(method: M, params: ParamsOf<M>, options: { token?: CancellationLike; onProgress?: (v: ProgressOf<M>) => void } = {}): Promise<ResultOf<M>> {
    if (this.closedReason) return Promise.reject(new EngineRequestError(ErrorCode.Cancelled, `the engine is not running (${this.closedReason})`));
    const id = this.nextId++;
    return new Promise<ResultOf<M>>((resolve, reject) => {
      this.pending.set(id, { method, resolve: resolve as (v: unknown) => void, reject, onProgress: options.onProgress as (v: unknown) => void });
      this.write({ id, method, params });
      this.wireCancellation(id, options.token);
    });
  }

  private wireCancellation(id: number, token: CancellationLike | undefined): void {
    if (!token) return;
    const cancel = () => {
      if (this.pending.has(id)) this.write({ method: '$/cancel', params: { id } });
    };
    if (token.isCancellationRequested || token.aborted) return cancel();
    token.onCancellationRequested?.(cancel);
    token.addEventListener?.('abort', cancel);
  }

  private write(msg: object): void {
    if (this.closedReason) return;
    this.output.write(JSON.stringify({ v: PROTOCOL_VERSION, ...msg }) + '\n');
  }

  private onLine(line: string): void {
    let msg: { id?: number | null; method?: string; params?: { id: number; value: unknown }; result?: unknown; error?: ErrorObject };
    try {
      msg = JSON.parse(line);
    } catch {
      return; // not protocol: ignore (the engine writes protocol only on stdout)
    }
    if (msg.method === '$/progress' && msg.params) {
      this.pending.get(msg.params.id)?.onProgress?.(msg.params.value);
      return;
    }
    if (typeof msg.id !== 'number') return;
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    if (msg.error) p.reject(new EngineRequestError(msg.error.code, msg.error.message, msg.error.data));
    else p.resolve(msg.result);
  }

  /** Release every pending call as cancelled. */
  close(reason: string): void {
    if (this.closedReason) return;
    this.closedReason = reason;
    for (const [, p] of this.pending) p.reject(new EngineRequestError(ErrorCode.Cancelled, `${p.method} was cancelled: ${reason}`));
    this.pending.clear();
    for (const fn of this.closeListeners) fn(reason);
  }
}

export interface SpawnedEngine {
  connection: EngineConnection;
  process: ChildProcess;
  /** Everything the engine wrote to stderr (logs), line by line. */
  onLog(fn: (line: string) => void): void;
  dispose(): void;
}

/** Spawn `node <engine.js> serve` and connect to it. */
export function spawnEngine(engineJs: string, options: { nodePath?: string; args?: string[]; env?: NodeJS.ProcessEnv; cwd?: string } = {}): SpawnedEngine {
  const child = spawn(options.nodePath ?? process.execPath, [engineJs, 'serve', ...(options.args ?? [])], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, ELECTRON_RUN_AS_NODE: '1', ...options.env },
    cwd: options.cwd,
  });
  const connection = new EngineConnection(child.stdout!, child.stdin!, false);
  const logListeners: ((l: string) => void)[] = [];
  readline.createInterface({ input: child.stderr!, crlfDelay: Infinity }).on('line', (l) => logListeners.forEach((fn) => fn(l)));
  child.on('exit', (code, signal) => connection.close(signal ? `the engine was killed (${signal})` : `the engine exited with code ${code}`));
  child.on('error', (e) => connection.close(`the engine could not start: ${e.message}`));
  return {
    connection,
    process: child,
    onLog: (fn) => logListeners.push(fn),
    dispose: () => {
      connection.close('the engine was stopped');
      if (child.exitCode === null) child.kill();
    },
  };
}
