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

export function isCancelled(e: unknown): e is CancelledError {
  return e instanceof CancelledError;
}

/** A cancellation flag passed all the way down; checked between layers, windows and steps. */
export interface CancelToken {
  readonly cancelled: boolean;
}
export function throwIfCancelled(token: CancelToken | undefined): void {
  if (token?.cancelled) throw new CancelledError();
}
