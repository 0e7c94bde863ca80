/**
 * onnxruntime-node: finding it, choosing an execution provider, creating sessions.
 *
 * `auto` order: CUDA (when the user's install has the provider library) → WebGPU (ORT's own Dawn:
 * Vulkan / Metal / D3D12) when it beats the CPU on a probe product, so CPU-emulated adapters such
 * as Mesa's lavapipe are skipped → CPU. Every GPU probe runs in a child process: a missing driver
 * makes Dawn print to stderr, and that must not reach the user's terminal or log. The package is an
 * optional dependency (installed on demand by the extension); without it the engine runs on
 * TensorFlow.js.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { DeviceInfo } from '../../protocol';
import { optionalRequire, probeInChild, resolveOptional } from '../modules';
import { GraphOps } from './builder';
import { cacheFolder } from '../../io/cache';

export type OrtProvider = 'cuda' | 'webgpu' | 'cpu';
export const ORT_PACKAGE = 'onnxruntime-node';
export const ORT_VERSION = '1.30.0';

/** The parts of onnxruntime-node's API that Head Lens uses. */
export interface OrtTensor {
  readonly type: string;
  readonly dims: readonly number[];
  readonly data: Float32Array | Int32Array | Uint16Array | Uint8Array | BigInt64Array;
  dispose?(): void;
}
export interface OrtSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  run(feeds: Record<string, OrtTensor>, fetches?: string[]): Promise<Record<string, OrtTensor>>;
  release(): Promise<void>;
}
export interface OrtModule {
  Tensor: new (type: string, data: unknown, dims: readonly number[]) => OrtTensor;
  InferenceSession: { create(bytes: Uint8Array, options: Record<string, unknown>): Promise<OrtSession> };
  listSupportedBackends?: () => { name: string; bundled: boolean }[];
  env?: { versions?: Record<string, string> };
}

let ortModule: OrtModule | null | undefined;

/** The onnxruntime-node module, or null (with why) when it is not installed or does not load. */
export function loadOrt(): { ort: OrtModule | null; reason?: string } {
  if (ortModule !== undefined) return { ort: ortModule, reason: ortModule ? undefined : 'onnxruntime-node does not load' };
  try {
    ortModule = optionalRequire(ORT_PACKAGE) as OrtModule | null;
    return { ort: ortModule, reason: ortModule ? undefined : 'onnxruntime-node is not installed (Head Lens: Install Native Runtime)' };
  } catch (e) {
    ortModule = null;
    return { ort: null, reason: `onnxruntime-node does not load: ${(e as Error).message.split('\n')[0]}` };
  }
}

/** Physical cores (Linux: distinct (package, core) pairs; elsewhere the logical count). */
export function physicalCores(): number {
  try {
    const root = '/sys/devices/system/cpu';
    const seen = new Set<string>();
    for (const d of fs.readdirSync(root)) {
      if (!/^cpu\d+$/.test(d)) continue;
      const t = path.join(root, d, 'topology');
      if (!fs.existsSync(t)) continue;
      seen.add(`${fs.readFileSync(path.join(t, 'physical_package_id'), 'utf8').trim()}:${fs.readFileSync(path.join(t, 'core_id'), 'utf8').trim()}`);
    }
    if (seen.size) return seen.size;
  } catch {
    // not Linux, or no sysfs: fall through
  }
  return Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
}

export interface OrtChoice {
  provider: OrtProvider;
  threads: number;
  device: DeviceInfo;
  skipped: { name: string; reason: string }[];
}

/** The folder holding the binding and, when installed, the CUDA provider library. */
function bindingDir(): string | null {
  const entry = resolveOptional(ORT_PACKAGE);
  if (!entry) return null;
  const dir = path.join(path.dirname(entry), '..', 'bin', 'napi-v6', process.platform, process.arch);
  return fs.existsSync(dir) ? dir : null;
}

function hasCudaLibrary(): boolean {
  const dir = bindingDir();
  return !!dir && fs.readdirSync(dir).some((f) => /onnxruntime_providers_cuda\.(so|dll)$/.test(f));
}

/** Linux needs the Vulkan loader for Dawn; without it WebGPU cannot work (and would print why). */
function vulkanLoaderPresent(): boolean {
  if (process.platform !== 'linux') return true;
  const dirs = [...(process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean), '/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib/x86_64-linux-gnu', '/usr/local/lib'];
  return dirs.some((d) => fs.existsSync(path.join(d, 'libvulkan.so.1')));
}

/** A product big enough that a real GPU beats the CPU and an emulated one does not. */
function probeGraph(): Uint8Array {
  const n = 1024;
  const g = new GraphOps(() => {
    throw new Error('the probe graph has no weights');
  });
  const x = g.input('x', 'float32', [n, n]), w = g.input('w', 'float32', [n, n]);
  const y = g.matmul(g.matmul(x, w), w);
  return g.build([{ sym: g.sum(y, [0, 1]), name: 'y' }], 'headlens-probe', '1');
}

const PROBE = `
const ort = require(MODULE);
const [provider, threads, model] = JSON.parse(process.argv[1]);
(async () => {
  const bytes = Buffer.from(model, 'base64');
  const time = async (ep) => {
    const s = await ort.InferenceSession.create(bytes, { executionProviders: [ep], intraOpNumThreads: threads, logSeverityLevel: 3 });
    const x = new ort.Tensor('float32', new Float32Array(1024 * 1024).fill(1), [1024, 1024]);
    const w = new ort.Tensor('float32', new Float32Array(1024 * 1024).fill(0.001), [1024, 1024]);
    await s.run({ x, w });
    const t0 = performance.now();
    for (let i = 0; i < 3; i++) await s.run({ x, w });
    const ms = (performance.now() - t0) / 3;
    await s.release();
    return ms;
  };
  const gpuMs = await time(provider);
  const cpuMs = provider === 'cpu' ? gpuMs : await time('cpu');
  console.log(JSON.stringify({ gpuMs, cpuMs }));
})().catch((e) => { console.log(JSON.stringify({ error: String(e && e.message || e).split('\\n')[0] })); });
`;

interface ProbeOutcome {
  ok: boolean;
  reason?: string;
  gpuMs?: number;
  cpuMs?: number;
}
const probed = new Map<string, Promise<ProbeOutcome>>();
/** Probe results are kept a week per machine and driver set (a probe costs seconds). */
const PROBE_TTL_MS = 7 * 24 * 3600 * 1000;

/** What a probe's answer depends on: the package, the CPU, the GPU drivers installed. */
function machineFingerprint(provider: OrtProvider, threads: number): string {
  const icds: string[] = [];
  for (const dir of ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d']) {
    try {
      for (const f of fs.readdirSync(dir)) icds.push(`${f}:${fs.statSync(path.join(dir, f)).size}`);
    } catch {
      // no such folder
    }
  }
  const env = ['VK_ICD_FILENAMES', 'VK_DRIVER_FILES', 'CUDA_VISIBLE_DEVICES'].map((k) => process.env[k] ?? '').join('|');
  return [ORT_VERSION, provider, threads, process.platform, process.arch, os.cpus()[0]?.model ?? '', icds.sort().join(','), env, hasCudaLibrary()].join(';');
}

function readProbeCache(): Record<string, ProbeOutcome & { at: number }> {
  try {
    return JSON.parse(fs.readFileSync(path.join(cacheFolder('runtime'), 'probes.json'), 'utf8'));
  } catch {
    return {};
  }
}

function writeProbeCache(key: string, r: ProbeOutcome): void {
  try {
    const dir = cacheFolder('runtime');
    fs.mkdirSync(dir, { recursive: true });
    const all = readProbeCache();
    all[key] = { ...r, at: Date.now() };
    fs.writeFileSync(path.join(dir, 'probes.json'), JSON.stringify(all, null, 1));
  } catch {
    // an unwritable cache only costs the next probe
  }
}

/** Can the provider run here (in a child process), and how fast is it against the CPU? */
function probeProvider(provider: OrtProvider, threads: number): Promise<ProbeOutcome> {
  const key = machineFingerprint(provider, threads);
  let p = probed.get(key);
  if (!p) {
    const cached = readProbeCache()[key];
    if (cached && Date.now() - cached.at < PROBE_TTL_MS) p = Promise.resolve(cached);
    else {
      const entry = resolveOptional(ORT_PACKAGE)!;
      const arg = JSON.stringify([provider, threads, Buffer.from(probeGraph()).toString('base64')]);
      p = probeInChild(PROBE.replace('process.argv[1]', JSON.stringify(arg)), entry, 60_000).then((r) => {
        const out: ProbeOutcome = { ok: r.ok, reason: r.reason, gpuMs: r.value?.gpuMs as number | undefined, cpuMs: r.value?.cpuMs as number | undefined };
        writeProbeCache(key, out);
        return out;
      });
    }
    probed.set(key, p);
  }
  return p;
}

export type OrtRequest = 'auto' | 'onnx-cuda' | 'onnx-webgpu' | 'onnx-cpu';

/** Picks the execution provider for `request`; null with the reasons when onnxruntime cannot run. */
export async function chooseOrt(request: OrtRequest, threads = 0): Promise<OrtChoice | { skipped: { name: string; reason: string }[] }> {
  const skipped: { name: string; reason: string }[] = [];
  const { ort, reason } = loadOrt();
  const n = threads > 0 ? threads : physicalCores();
  if (!ort) return { skipped: [{ name: 'onnx', reason: reason! }] };
  const cpuName = `${os.cpus()[0]?.model?.trim() ?? 'CPU'} (onnxruntime, ${n} thread${n === 1 ? '' : 's'})`;
  const order: OrtProvider[] = request === 'auto' ? ['cuda', 'webgpu', 'cpu'] : [request.slice(5) as OrtProvider];
  for (const provider of order) {
    if (provider === 'cpu') return { provider, threads: n, device: { kind: 'cpu', name: cpuName }, skipped };
    if (provider === 'cuda' && !hasCudaLibrary()) {
      skipped.push({ name: 'onnx-cuda', reason: 'the CUDA execution provider library is not installed (it needs CUDA 12 and cuDNN 9)' });
      continue;
    }
    if (provider === 'webgpu' && !vulkanLoaderPresent()) {
      skipped.push({ name: 'onnx-webgpu', reason: 'no Vulkan loader (libvulkan.so.1) on this machine' });
      continue;
    }
    const r = await probeProvider(provider, n);
    if (!r.ok) {
      skipped.push({ name: `onnx-${provider}`, reason: r.reason ?? 'did not start' });
      continue;
    }
    if (request === 'auto' && r.gpuMs !== undefined && r.cpuMs !== undefined && r.gpuMs >= r.cpuMs) {
      skipped.push({ name: `onnx-${provider}`, reason: `slower than the CPU on a probe product (${r.gpuMs.toFixed(0)} vs ${r.cpuMs.toFixed(0)} ms: a CPU-emulated adapter?)` });
      continue;
    }
    return { provider, threads: n, device: { kind: 'gpu', name: provider === 'cuda' ? 'CUDA (onnxruntime)' : 'WebGPU (onnxruntime, Dawn)' }, skipped };
  }
  return { skipped };
}

let dumped = 0;

/**
 * A session for a traced graph on the chosen provider (logs at error level only: no warnings on
 * stderr). For looking into the runtime: HEADLENS_ONNX_DUMP=DIR writes each traced graph (and
 * onnxruntime's optimised one) there; HEADLENS_ORT_PROFILE=PREFIX turns on onnxruntime's per-op
 * profiler (a JSON trace per session, written when the session is released).
 */
export async function createSession(bytes: Uint8Array, choice: { provider: OrtProvider; threads: number }, label = 'graph'): Promise<OrtSession> {
  const { ort } = loadOrt();
  if (!ort) throw new Error('onnxruntime-node is not available');
  const options: Record<string, unknown> = {
    executionProviders: [choice.provider],
    intraOpNumThreads: choice.threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
  };
  const dump = process.env.HEADLENS_ONNX_DUMP;
  if (dump) {
    fs.mkdirSync(dump, { recursive: true });
    const base = path.join(dump, `${label}-${process.pid}-${dumped++}`);
    fs.writeFileSync(`${base}.onnx`, bytes);
    options.optimizedModelFilePath = `${base}.optimized.onnx`;
  }
  if (process.env.HEADLENS_ORT_PROFILE) Object.assign(options, { enableProfiling: true, profileFilePrefix: process.env.HEADLENS_ORT_PROFILE });
  return ort.InferenceSession.create(bytes, options);
}

export function ortTensor(type: 'float32' | 'int32' | 'bool', data: Float32Array | Int32Array | Uint8Array, dims: number[]): OrtTensor {
  const { ort } = loadOrt();
  return new ort!.Tensor(type, data, dims);
}
