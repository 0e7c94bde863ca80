/**
 * TensorFlow.js backend selection (training, and inference where onnxruntime is absent). `auto`
 * tries, in order: tfjs-node-gpu (CUDA) → tfjs-node (oneDNN) → WebGPU (npm `webgpu`, Dawn; a
 * hardware adapter only) → WASM (SIMD) → pure-JS cpu, and reports what it chose and why the others
 * were skipped. The native packages are optional dependencies (their install downloads
 * libtensorflow, which fails on machines without that access), detected here at run time.
 */
import * as tf from '@tensorflow/tfjs-core';
// tfjs-core alone registers neither chained ops nor gradients (see GPU.md); the bundle must keep these.
import '@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
// Named imports: the packages declare themselves side-effect free, so a bare import would be
// dropped by the bundler and the backends would never register.
import { version_cpu } from '@tensorflow/tfjs-backend-cpu';
import { version_wasm } from '@tensorflow/tfjs-backend-wasm';
import * as os from 'node:os';
import type { BackendInfo, DeviceInfo, TfjsBackendName } from '../../protocol';
import { BadInputError } from '../../errors';
import { optionalRequire } from '../modules';
import { probeWebGpuAdapter, setupWebGpu } from './webgpu';

type BackendName = TfjsBackendName;
export type TfjsChoice = 'auto' | TfjsBackendName;
export const BACKEND_ORDER: BackendName[] = ['tensorflow-gpu', 'tensorflow', 'webgpu', 'wasm', 'cpu'];
const TFJS_NAME: Record<BackendName, string> = {
  'tensorflow-gpu': 'tensorflow',
  tensorflow: 'tensorflow',
  webgpu: 'webgpu',
  wasm: 'wasm',
  cpu: 'cpu',
};

export interface BackendState {
  info: BackendInfo & { name: BackendName };
  device: DeviceInfo;
}
let current: BackendState | null = null;
/** Backends already initialised in this process: switching back is a plain setBackend. */
const ready = new Map<BackendName, BackendState>();
async function tryTensorflow(gpu: boolean): Promise<DeviceInfo> {
  const pkg = gpu ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node';
  if (!optionalRequire(pkg)) throw new Error(`${pkg} is not installed`);
  // tfjs-core keeps its engine and kernel registry on globalThis, so the package's own copy of
  // tfjs-core registers 'tensorflow' where ours finds it.
  if (!(await tf.setBackend('tensorflow'))) throw new Error(`${pkg} loaded but its backend did not initialise`);
  return { kind: gpu ? 'gpu' : 'cpu', name: gpu ? 'CUDA (libtensorflow)' : `${os.cpus()[0]?.model ?? 'CPU'} (libtensorflow)` };
}

/**
 * Single-threaded: tfjs disables WASM threads in Node (its pthread workers come from blob: URLs).
 * A shim that makes them files does start the workers here, but XNNPACK still reports one thread
 * and matMul speed is unchanged, so it is not worth patching tfjs internals for.
 */
async function tryWasm(): Promise<DeviceInfo> {
  if (!(await tf.setBackend('wasm'))) throw new Error('the WASM module did not initialise');
  return { kind: 'cpu', name: `${os.cpus()[0]?.model?.trim() ?? 'CPU'} (WASM SIMD)` };
}

async function tryCpu(): Promise<DeviceInfo> {
  if (!(await tf.setBackend('cpu'))) throw new Error('the cpu backend did not initialise');
  return { kind: 'cpu', name: `${os.cpus()[0]?.model?.trim() ?? 'CPU'} (JavaScript)` };
}

async function tryOne(name: BackendName, auto = false): Promise<DeviceInfo> {
  switch (name) {
    case 'tensorflow-gpu':
      return tryTensorflow(true);
    case 'tensorflow':
      return tryTensorflow(false);
    case 'webgpu':
      // probed in a child first: a missing driver makes Dawn print to stderr; `auto` wants a real GPU
      await probeWebGpuAdapter(!auto);
      return setupWebGpu(optionalRequire, !auto);
    case 'wasm':
      return tryWasm();
    case 'cpu':
      return tryCpu();
  }
}

/** Training runs on TensorFlow.js: an onnxruntime choice means the best TensorFlow.js backend. */
export function tfjsChoiceOf(choice: string): TfjsChoice {
  return choice.startsWith('onnx-') ? 'auto' : (choice as TfjsChoice);
}

/** Initialise the backend (once per process, or again to switch). */
export async function initBackend(choice: TfjsChoice = 'auto'): Promise<BackendState> {
  // Production mode: skips debug checks and the cpu backend's banner, which would go to stdout.
  tf.enableProdMode();
  if (current && (choice === 'auto' || choice === current.info.name)) return current;
  if (choice !== 'auto' && !BACKEND_ORDER.includes(choice)) {
    throw new BadInputError(`unknown backend '${choice}': use one of auto, ${BACKEND_ORDER.join(', ')}`);
  }
  const known = choice !== 'auto' ? ready.get(choice) : undefined;
  if (known && (await tf.setBackend(TFJS_NAME[known.info.name as BackendName]))) {
    current = known;
    return current;
  }
  const order = choice === 'auto' ? BACKEND_ORDER : [choice];
  const skipped: BackendInfo['skipped'] = [];
  for (const name of order) {
    try {
      const device = await tryOne(name, choice === 'auto');
      const info: BackendState['info'] = {
        name,
        version: name === 'cpu' ? version_cpu : name === 'wasm' ? version_wasm : tf.version_core,
        reason: choice === 'auto' ? (skipped.length ? 'first backend that loaded' : 'preferred backend') : 'requested',
        skipped,
      };
      if (name === 'wasm') Object.assign(info, { simd: true, threads: 1 });
      current = { info, device };
      ready.set(name, current);
      return current;
    } catch (e) {
      skipped.push({ name, reason: oneLine((e as Error).message) });
    }
  }
  const why = skipped.map((s) => `${s.name}: ${s.reason}`).join('; ');
  throw new BadInputError(`no compute backend could be loaded (${why})`);
}

/** After a device failure: drop the failed backend for the rest of the run and take the next one. */
export async function fallBackFrom(failed: BackendName, reason: string): Promise<BackendState> {
  const rest = BACKEND_ORDER.slice(BACKEND_ORDER.indexOf(failed) + 1);
  const skipped = [...(current?.info.skipped ?? []), { name: failed, reason: `failed during the run: ${oneLine(reason)}` }];
  for (const name of rest) {
    try {
      const device = await tryOne(name, true);
      current = { info: { name, reason: `fell back after ${failed} failed`, skipped }, device };
      return current;
    } catch (e) {
      skipped.push({ name, reason: oneLine((e as Error).message) });
    }
  }
  throw new Error(`no backend left after ${failed} failed`);
}

export function currentBackend(): BackendState | null {
  return current;
}

function oneLine(s: string): string {
  return s.split('\n')[0].slice(0, 300);
}
