/**
 * Multi-threaded WASM in Node. tfjs-backend-wasm turns threads off in Node (its pthread workers
 * are created from `blob:` URLs, which Node's Worker refuses) — TFJS.md measured +30–70 % on the
 * forward pass with 2 threads once the worker scripts are real files. This shim, active only while
 * the backend initialises, makes the Blobs it creates files and their object URLs file paths; the
 * worker script gets a prelude doing the same inside each worker. It touches nothing else.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';

const WORKER_PRELUDE =
  'var __hlOrigCreate = URL.createObjectURL; URL.createObjectURL = function (b) { return b && b.__headlensPath ? b.__headlensPath : __hlOrigCreate(b); };' +
  'URL.revokeObjectURL = function () {};\n';

/**
 * The factory's source refers to the Node modules tfjs-backend-wasm 4.22's own build bound at its
 * top (`var require$$0 = require('fs')` …); evaluated alone in a worker they must be bound again.
 */
const MODULE_PRELUDE =
  "var require$$0 = require('fs'), require$$1 = require('path'), require$$2 = require('worker_threads'), " +
  "require$$3 = require('perf_hooks'), require$$4 = require('os'), commonjsGlobal = globalThis;\n";

let dir: string | null = null;
function scratchDir(): string {
  if (!dir) {
    const made = fs.mkdtempSync(path.join(os.tmpdir(), 'headlens-wasm-'));
    process.once('exit', () => fs.rmSync(made, { recursive: true, force: true }));
    dir = made;
  }
  return dir;
}

/** Stand-in for Blob while the backend initialises: keeps the text, becomes a file on demand. */
class FileBlob {
  __headlensPath: string;
  constructor(parts: unknown[]) {
    const text = parts.map(String).join('');
    const isWorker = !text.startsWith('var WasmBackendModuleThreadedSimd');
    const file = path.join(scratchDir(), `${isWorker ? 'worker' : 'module'}-${Math.random().toString(36).slice(2)}.js`);
    fs.writeFileSync(file, (isWorker ? WORKER_PRELUDE : MODULE_PRELUDE) + text);
    this.__headlensPath = file;
  }
}

/**
 * Initialise the 'wasm' backend with `threads` pthreads (1 = the stock single-threaded module).
 * Returns the thread count actually in use.
 */
export async function initWasm(threads: number, setThreadsCount: (n: number) => void, getThreadsCount: () => number): Promise<number> {
  if (threads <= 1) {
    if (!(await tf.setBackend('wasm'))) throw new Error('the WASM module did not initialise');
    return 1;
  }
  const g = globalThis as unknown as { Blob: unknown; URL: { createObjectURL: (b: unknown) => string } };
  const origBlob = g.Blob, origCreate = g.URL.createObjectURL;
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  setThreadsCount(threads);
  g.Blob = FileBlob;
  g.URL.createObjectURL = (b: unknown) => ((b as FileBlob)?.__headlensPath ? (b as FileBlob).__headlensPath : origCreate(b));
  try {
    if (!(await tf.setBackend('wasm'))) throw new Error('the threaded WASM module did not initialise');
  } finally {
    g.Blob = origBlob;
    g.URL.createObjectURL = origCreate;
  }
  return getThreadsCount();
}

/** Threads to use by default: every core, at most 4 (more gives little on these matrix sizes). */
export function defaultWasmThreads(): number {
  const env = process.env.HEADLENS_WASM_THREADS;
  if (env !== undefined && /^\d+$/.test(env)) return Math.max(1, +env);
  return Math.max(1, Math.min(4, os.cpus().length));
}
