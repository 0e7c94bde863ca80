/**
 * Errors meant for people. A `BadInputError` is the user's to fix (a wrong path, a garbage file,
 * a refused pickle global, ids ≥ vocab): the CLI prints its message as one line and exits 2; the
 * server answers it as ErrorCode.BadInput. Anything else is internal (exit 1, stack with --debug).
 */
export class BadInputError extends Error {
  override readonly name = 'BadInputError';
}

/** The request was cancelled (by `$/cancel`, a VS Code token, or the engine going away). */
export class CancelledError extends Error {
  override readonly name = 'CancelledError';
  constructor(message = 'cancelled') {
    super(message);
  }
}

/** The compute device failed (lost device, validation error): results must not be trusted. */
export class DeviceError extends Error {
  override readonly name = 'DeviceError';
}

export function bad(message: string): never {
  throw new BadInputError(message);
}

/** A cancellation flag passed all the way down; checked between layers, windows and steps. */
export interface CancelToken {
  readonly cancelled: boolean;
}
export function throwIfCancelled(token: CancelToken | undefined): void {
  if (token?.cancelled) throw new CancelledError();
}

/** CLI error reporting: bad input → one line, exit 2; anything else → exit 1 (stack with --debug). */
export function reportError(e: unknown, debug: boolean): number {
  if (e instanceof BadInputError) {
    process.stderr.write(`headlens: ${e.message}\n`);
    if (debug) process.stderr.write(`${e.stack}\n`);
    return 2;
  }
  const err = e as Error;
  process.stderr.write(`headlens: internal error: ${err?.message ?? String(e)}${debug ? '' : ' (run with --debug for details)'}\n`);
  if (debug) process.stderr.write(`${err?.stack}\n`);
  return 1;
}
