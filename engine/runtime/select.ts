/**
 * Which runtime runs inference (analysis, evaluation, compare). `auto`: onnxruntime — CUDA, then
 * WebGPU on a hardware adapter, then CPU — else the TensorFlow.js chain. Explicit choices name one
 * (`onnx-cpu`, `wasm`, …). Training always runs on TensorFlow.js (autodiff).
 *
 * A runner whose onnxruntime session fails (a corrupt graph, a provider error) is replaced by the
 * TensorFlow.js runner for that model, with one line in the log; numbers from a failed run are
 * never returned.
 */
import type { BackendChoice, BackendInfo, BackendName, DeviceInfo, ModelConfig, TfjsBackendName } from '../protocol';
import type { HostTensor } from '../io/tensor';
import { BadInputError, DeviceError, type CancelToken } from '../errors';
import type { FamilyDef } from '../models/family';
import type { InferenceRuntime, NllRequest, WindowLayer, WindowOutput, WindowRequest } from './runner';
import { chooseOrt, ORT_VERSION, type OrtChoice, type OrtRequest } from './onnx/ort';
import { OrtRunner } from './onnx/runner';
import { initBackend, type TfjsChoice } from './tfjs/backend';
import { TfModel } from './tfjs/model';
import { TfRunner } from './tfjs/runner';

export interface RuntimeState {
  info: BackendInfo;
  device: DeviceInfo;
  ort?: OrtChoice;
}

const ONNX: BackendName[] = ['onnx-cuda', 'onnx-webgpu', 'onnx-cpu'];
let current: RuntimeState | null = null;
let currentKey = '';
let threadSetting = 0;
let logLine: (message: string) => void = (m) => process.stderr.write(`headlens: ${m}\n`);

/** Where fallbacks are reported (the server sends them to the extension's log). */
export function setRuntimeLog(fn: (message: string) => void): void {
  logLine = fn;
}

export function isBackendChoice(s: string): s is BackendChoice {
  return s === 'auto' || ONNX.includes(s as BackendName) || ['tensorflow-gpu', 'tensorflow', 'webgpu', 'wasm', 'cpu'].includes(s);
}

/** Chooses the inference runtime (once per choice; probes run in child processes). */
export async function initRuntime(choice: BackendChoice = 'auto', threads = 0): Promise<RuntimeState> {
  if (!isBackendChoice(choice)) throw new BadInputError(`unknown backend '${choice}': use auto, ${[...ONNX, 'tensorflow-gpu', 'tensorflow', 'webgpu', 'wasm', 'cpu'].join(', ')}`);
  const key = `${choice}:${threads}`;
  if (current && key === currentKey) return current;
  threadSetting = threads;
  const skipped: BackendInfo['skipped'] = [];
  if (choice === 'auto' || ONNX.includes(choice)) {
    const r = await chooseOrt(choice as OrtRequest, threads);
    skipped.push(...r.skipped.map((s) => ({ name: s.name as BackendName, reason: s.reason })));
    if ('provider' in r) {
      const name = `onnx-${r.provider}` as BackendName;
      current = { info: { name, version: ORT_VERSION, reason: choice === 'auto' ? (skipped.length ? 'first runtime that loaded' : 'preferred runtime') : 'requested', skipped, threads: r.threads }, device: r.device, ort: r };
      currentKey = key;
      return current;
    }
    if (choice !== 'auto') throw new BadInputError(`${choice} cannot run here: ${skipped.map((s) => s.reason).join('; ')}`);
  }
  const tf = await initBackend(choice as TfjsChoice);
  current = { info: { ...tf.info, skipped: [...skipped, ...tf.info.skipped] }, device: tf.device };
  currentKey = key;
  return current;
}

export function currentRuntime(): RuntimeState | null {
  return current;
}

/** A TensorFlow.js runner on the best tfjs backend (the fallback of an onnxruntime one). */
async function tfRunner(def: FamilyDef, config: ModelConfig, weights: Map<string, HostTensor>, choice: TfjsChoice = 'auto'): Promise<TfRunner> {
  const state = await initBackend(choice);
  return new TfRunner(new TfModel(config, weights), state.info.name, state.device);
  void def;
}

type MakeOrt = (def: FamilyDef, config: ModelConfig, weights: Map<string, HostTensor>, choice: OrtChoice) => Promise<InferenceRuntime>;

/** The runner a loaded model analyses with (`makeOrt` builds the onnxruntime one: tests swap it). */
export async function createRunner(def: FamilyDef, config: ModelConfig, weights: Map<string, HostTensor>, state: RuntimeState, makeOrt: MakeOrt = OrtRunner.create): Promise<InferenceRuntime> {
  if (state.ort) {
    try {
      return new FallbackRunner(await makeOrt(def, config, weights, state.ort), () => tfRunner(def, config, weights));
    } catch (e) {
      logLine(`onnxruntime could not run this ${config.family} model (${(e as Error).message.split('\n')[0]}); using TensorFlow.js`);
    }
  }
  return tfRunner(def, config, weights, ONNX.includes(state.info.name) ? 'auto' : (state.info.name as TfjsBackendName));
}

/** onnxruntime first; after a device failure, the TensorFlow.js runner for good. */
export class FallbackRunner implements InferenceRuntime {
  private fallback: InferenceRuntime | null = null;

  constructor(private primary: InferenceRuntime, private readonly makeFallback: () => Promise<InferenceRuntime>) {}

  get name(): string {
    return (this.fallback ?? this.primary).name;
  }
  get device(): DeviceInfo {
    return (this.fallback ?? this.primary).device;
  }

  private async switchOver(e: unknown): Promise<InferenceRuntime> {
    logLine(`${(e as Error).message}; falling back to TensorFlow.js for this model`);
    this.fallback = await this.makeFallback();
    await this.primary.dispose().catch(() => undefined);
    return this.fallback;
  }

  async *analyzeWindow(req: WindowRequest, token?: CancelToken): AsyncGenerator<WindowLayer, WindowOutput> {
    if (this.fallback) return yield* this.fallback.analyzeWindow(req, token);
    const gen = this.primary.analyzeWindow(req, token);
    let first: IteratorResult<WindowLayer, WindowOutput>;
    try {
      first = await gen.next(); // the whole onnxruntime run happens here, before anything is yielded
    } catch (e) {
      if (!(e instanceof DeviceError)) throw e;
      return yield* (await this.switchOver(e)).analyzeWindow(req, token);
    }
    if (first.done) return first.value;
    yield first.value;
    return yield* gen;
  }

  async nll(req: NllRequest, token?: CancelToken) {
    if (this.fallback) return this.fallback.nll(req, token);
    try {
      return await this.primary.nll(req, token);
    } catch (e) {
      if (!(e instanceof DeviceError)) throw e;
      return (await this.switchOver(e)).nll(req, token);
    }
  }

  async lens(rows: Float32Array, M: number, targets: Int32Array, topK: number) {
    if (this.fallback) return this.fallback.lens(rows, M, targets, topK);
    try {
      return await this.primary.lens(rows, M, targets, topK);
    } catch (e) {
      if (!(e instanceof DeviceError)) throw e;
      return (await this.switchOver(e)).lens(rows, M, targets, topK);
    }
  }

  async forwardTensors(ids: Int32Array, B: number, T: number, t?: Int32Array) {
    if (this.fallback) return this.fallback.forwardTensors(ids, B, T, t);
    try {
      return await this.primary.forwardTensors(ids, B, T, t);
    } catch (e) {
      return (await this.switchOver(new DeviceError(`onnxruntime failed: ${(e as Error).message.split('\n')[0]}`))).forwardTensors(ids, B, T, t);
    }
  }

  async dispose(): Promise<void> {
    await this.primary.dispose().catch(() => undefined);
    await this.fallback?.dispose();
  }
}

export function runtimeThreads(): number {
  return threadSetting;
}
