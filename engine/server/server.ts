/**
 * `headlens serve`: the JSON-lines protocol of protocol.ts on a pair of streams (stdio in
 * production, in-memory streams in tests). stdout carries protocol only; logs go to `log`.
 * A malformed line, an unknown method or a failing request answers an error and never stops the
 * server; `$/cancel` flips the request's token, checked between layers, windows and steps.
 */
import type { Readable, Writable } from 'node:stream';
import * as readline from 'node:readline';
import {
  ErrorCode,
  PROTOCOL_VERSION,
  type ErrorObject,
  type Method,
  type ParamsOf,
  type ResultOf,
} from '../protocol';
import { BadInputError, CancelledError, DeviceError, type CancelToken } from '../errors';

export const ENGINE_VERSION = '0.1.0';

export interface RequestContext {
  id: number;
  token: CancelToken;
  progress(value: unknown): void;
  log(message: string): void;
}

export type Handler<M extends Method> = (params: ParamsOf<M>, ctx: RequestContext) => Promise<ResultOf<M>>;

export interface ServerOptions {
  log?: (line: string) => void;
  onShutdown?: () => void;
}

class Token implements CancelToken {
  cancelled = false;
}

export class EngineServer {
  private readonly handlers = new Map<string, Handler<Method>>();
  private readonly pending = new Map<number, Token>();
  private closed = false;
  private finish: (() => void) | null = null;
  private readonly log: (line: string) => void;

  constructor(
    private readonly input: Readable,
    private readonly output: Writable,
    private readonly options: ServerOptions = {},
  ) {
    this.log = options.log ?? ((l) => process.stderr.write(l + '\n'));
  }

  on<M extends Method>(method: M, handler: Handler<M>): this {
    this.handlers.set(method, handler as unknown as Handler<Method>);
    return this;
  }

  /** Resolves when the input ends (the client went away) or after `shutdown` was answered. */
  listen(): Promise<void> {
    const rl = readline.createInterface({ input: this.input, crlfDelay: Infinity });
    return new Promise((resolve) => {
      this.finish = () => {
        for (const t of this.pending.values()) t.cancelled = true;
        this.closed = true;
        rl.close();
        resolve();
      };
      rl.on('line', (line) => this.onLine(line));
      rl.on('close', () => this.finish?.());
    });
  }

  private send(msg: object): void {
    if (this.closed && !('result' in msg)) return;
    this.output.write(JSON.stringify({ v: PROTOCOL_VERSION, ...msg }) + '\n');
  }

  private onLine(line: string): void {
    if (!line.trim()) return;
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line);
    } catch (e) {
      return this.send({ id: null, error: { code: ErrorCode.ParseError, message: `not a JSON line: ${(e as Error).message}` } });
    }
    if (!msg || typeof msg !== 'object' || Array.isArray(msg)) {
      return this.send({ id: null, error: { code: ErrorCode.InvalidRequest, message: 'a message must be a JSON object' } });
    }
    const { id, method, params } = msg as { id?: unknown; method?: unknown; params?: unknown };
    if (typeof method !== 'string') {
      return this.send({ id: typeof id === 'number' ? id : null, error: { code: ErrorCode.InvalidRequest, message: "missing 'method'" } });
    }
    if (method === '$/cancel') return this.cancel(params);
    if (id === undefined) {
      if (!method.startsWith('$/')) this.log(`ignored notification '${method}'`);
      return;
    }
    if (typeof id !== 'number' || !Number.isInteger(id)) {
      return this.send({ id: null, error: { code: ErrorCode.InvalidRequest, message: "'id' must be an integer" } });
    }
    void this.dispatch(id, method, params ?? {});
  }

  private cancel(params: unknown): void {
    const id = (params as { id?: unknown } | undefined)?.id;
    const t = typeof id === 'number' ? this.pending.get(id) : undefined;
    if (t) t.cancelled = true;
  }

  private async dispatch(id: number, method: string, params: unknown): Promise<void> {
    if (this.pending.has(id)) {
      return this.send({ id, error: { code: ErrorCode.InvalidRequest, message: `request id ${id} is already in use` } });
    }
    const handler = this.handlers.get(method);
    if (!handler) return this.send({ id, error: { code: ErrorCode.MethodNotFound, message: `unknown method '${method}'` } });
    if (typeof params !== 'object' || params === null || Array.isArray(params)) {
      return this.send({ id, error: { code: ErrorCode.InvalidParams, message: `'params' of '${method}' must be an object` } });
    }
    const token = new Token();
    this.pending.set(id, token);
    const ctx: RequestContext = {
      id,
      token,
      progress: (value) => {
        if (!token.cancelled) this.send({ method: '$/progress', params: { id, value } });
      },
      log: (m) => this.log(m),
    };
    try {
      const result = await handler(params as never, ctx);
      if (token.cancelled) throw new CancelledError();
      this.send({ id, result: result ?? null });
      if (method === 'shutdown') {
        this.options.onShutdown?.();
        this.finish?.();
      }
    } catch (e) {
      this.send({ id, error: toErrorObject(e, method) });
      if (!(e instanceof BadInputError) && !(e instanceof CancelledError)) this.log(`${method} failed: ${(e as Error).stack ?? e}`);
    } finally {
      this.pending.delete(id);
    }
  }
}

export function toErrorObject(e: unknown, method: string): ErrorObject {
  if (e instanceof CancelledError) return { code: ErrorCode.Cancelled, message: `${method} was cancelled` };
  if (e instanceof BadInputError) return { code: ErrorCode.BadInput, message: e.message };
  if (e instanceof DeviceError) return { code: ErrorCode.DeviceError, message: e.message };
  const err = e as { code?: unknown; message?: string };
  if (typeof err?.code === 'number' && Object.values(ErrorCode).includes(err.code)) return { code: err.code as ErrorCode, message: err.message ?? String(e) };
  return { code: ErrorCode.InternalError, message: `internal error in ${method}: ${err?.message ?? String(e)}` };
}

