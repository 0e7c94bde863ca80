/**
 * WebGPU in Node through the npm package `webgpu` (Dawn: Vulkan / Metal / D3D12).
 * `navigator.gpu` must exist before @tensorflow/tfjs-backend-webgpu is first evaluated: it
 * registers itself only then (GPU.md). We create the device ourselves so that we can ask for the
 * adapter's real limits (tfjs' defaults are the WebGPU minimums, and exceeding them produced
 * `[Invalid CommandBuffer]` and garbage numbers on an H100).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { DeviceInfo } from '../../protocol';
import { probeInChild, resolveOptional } from '../modules';

type OptionalRequire = (name: string) => unknown | null;

interface GpuAdapterLike {
  limits: Record<string, number>;
  features: Set<string>;
  info?: { vendor?: string; architecture?: string; device?: string; description?: string };
  requestAdapterInfo?: () => Promise<{ vendor?: string; device?: string; description?: string }>;
  requestDevice(desc: unknown): Promise<GpuDeviceLike>;
}
interface GpuDeviceLike {
  lost: Promise<{ message: string; reason?: string }>;
  addEventListener?: (type: string, fn: (ev: { error: { message: string } }) => void) => void;
  onuncapturederror?: ((ev: { error: { message: string } }) => void) | null;
}

/** Errors the device reported since the last check; a request fails if any arrived during it. */
const deviceErrors: string[] = [];
export function takeDeviceErrors(): string[] {
  return deviceErrors.splice(0, deviceErrors.length);
}

const LIMITS = [
  'maxComputeWorkgroupStorageSize',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeInvocationsPerWorkgroup',
  'maxStorageBuffersPerShaderStage',
];

/** CPU-emulated adapters (Mesa lavapipe/llvmpipe, SwiftShader): correct but slower than WASM. */
export function isSoftwareAdapter(info: { vendor?: string; architecture?: string; device?: string; description?: string }, fallback?: boolean): boolean {
  if (fallback) return true;
  return /llvmpipe|lavapipe|swiftshader|software/i.test([info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' '));
}

const ADAPTER_PROBE = `
const g = require(MODULE);
Object.assign(globalThis, g.globals);
g.create([]).requestAdapter({ powerPreference: 'high-performance' }).then(async (a) => {
  if (!a) return console.log(JSON.stringify({ error: 'no WebGPU adapter (no Vulkan/Metal/D3D12 driver found)' }));
  const info = a.info || (a.requestAdapterInfo ? await a.requestAdapterInfo() : {}) || {};
  console.log(JSON.stringify({ vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description, fallback: !!a.isFallbackAdapter }));
  process.exit(0);
}, (e) => { console.log(JSON.stringify({ error: String(e && e.message || e) })); process.exit(0); });
`;

let adapterProbe: Promise<void> | null = null;
let adapterProbeSoftware = false;

/**
 * Asks a child process whether a WebGPU adapter exists (and whether it is a software one) before
 * this process loads Dawn: on a machine without a driver Dawn prints a two-line warning to
 * stderr, and lavapipe prints two "artificially reduced" lines.
 */
export async function probeWebGpuAdapter(allowSoftware: boolean): Promise<void> {
  const entry = resolveOptional('webgpu');
  if (!entry) throw new Error("the 'webgpu' package is not installed (Head Lens: Install GPU Backend)");
  adapterProbe ??= probeInChild(ADAPTER_PROBE, entry).then((r) => {
    if (!r.ok) throw new Error(r.reason ?? 'the WebGPU probe failed');
    adapterProbeSoftware = isSoftwareAdapter(r.value as Record<string, string>, r.value?.fallback === true);
  });
  await adapterProbe;
  if (!allowSoftware && adapterProbeSoftware) throw new Error('the only WebGPU adapter is a software one (CPU-emulated); ask for --backend webgpu to use it anyway');
}

export async function setupWebGpu(optionalRequire: OptionalRequire, allowSoftware = true): Promise<DeviceInfo> {
  const webgpu = optionalRequire('webgpu') as { create: (flags: string[]) => unknown; globals: object } | null;
  if (!webgpu) throw new Error("the 'webgpu' package is not installed (Head Lens: Install GPU Backend)");
  const g = globalThis as unknown as { navigator?: { gpu?: unknown } };
  if (!g.navigator) Object.defineProperty(globalThis, 'navigator', { value: {}, writable: true, configurable: true });
  Object.assign(globalThis, webgpu.globals);
  const gpu = webgpu.create([]) as { requestAdapter(o?: unknown): Promise<GpuAdapterLike | null> };
  (g.navigator as { gpu?: unknown }).gpu = gpu;
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new Error('no WebGPU adapter (no Vulkan/Metal/D3D12 driver found)');
  const adapterInfo = adapter.info ?? (await adapter.requestAdapterInfo?.()) ?? {};
  if (!allowSoftware && isSoftwareAdapter(adapterInfo, (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter)) {
    throw new Error(`the only WebGPU adapter is a software one (${adapterInfo.description || adapterInfo.device || adapterInfo.vendor}); ask for --backend webgpu to use it anyway`);
  }
  const requiredLimits: Record<string, number> = {};
  for (const k of LIMITS) if (typeof adapter.limits[k] === 'number') requiredLimits[k] = adapter.limits[k];
  const requiredFeatures = ['timestamp-query', 'shader-f16'].filter((f) => adapter.features.has(f));
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  watchDevice(device);
  const info = adapterInfo;
  // Bundled, but evaluated only now that navigator.gpu exists (it registers itself at import).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const mod = require('@tensorflow/tfjs-backend-webgpu') as { WebGPUBackend: new (device: unknown, adapterInfo?: unknown) => tf.KernelBackend };
  tf.removeBackend('webgpu');
  tf.registerBackend('webgpu', () => new mod.WebGPUBackend(device, info), 3);
  if (!(await tf.setBackend('webgpu'))) throw new Error('the WebGPU backend did not initialise');
  const name = info.description || info.device || 'WebGPU adapter';
  return { kind: 'gpu', name, vendor: info.vendor };
}

function watchDevice(device: GpuDeviceLike): void {
  const onError = (ev: { error: { message: string } }) => deviceErrors.push(ev.error.message.split('\n')[0]);
  if (device.addEventListener) device.addEventListener('uncapturederror', onError);
  else device.onuncapturederror = onError;
  device.lost.then((l) => deviceErrors.push(`device lost: ${l.message || l.reason || 'unknown reason'}`));
}
