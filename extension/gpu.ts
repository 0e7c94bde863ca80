/**
 * Optional runtimes, installed on demand into the extension's global storage with progress:
 * - Install Native Runtime: the engine's `install-native` (onnxruntime-node: native CPU kernels,
 *   WebGPU, CUDA) — the inference runtime; offered once when the engine starts without it;
 * - Install GPU Backend: `install-gpu` (the `webgpu` package, or tfjs-node-gpu) for training on a GPU.
 * Then the engine restarts on it — or one line says why it could not.
 */
import * as vscode from 'vscode';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { Command } from './commands';
import { describeError, type EngineClient } from './engineClient';
import type { SettingsWatcher } from './settings';

const CHOICES = [
  { label: 'WebGPU (Dawn: Vulkan / Metal / D3D12)', detail: 'npm package "webgpu": no CUDA toolkit needed', id: 'webgpu', backend: 'webgpu' },
  { label: 'TensorFlow CUDA (tfjs-node-gpu)', detail: 'downloads libtensorflow; needs CUDA 11.2 and cuDNN 8.1', id: 'tfjs-node-gpu', backend: 'tensorflow-gpu' },
] as const;

export interface GpuPaths {
  extensionPath: string;
  /** Where the optional GPU packages go (the engine is told about it at `initialize`). */
  modulePath: string;
}

/** Run the installer; resolves true when it exited 0. Its stderr goes to the log and the progress. */
function runInstaller(args: string[], runtime: string, engine: EngineClient, progress: vscode.Progress<{ message?: string }>, token: vscode.CancellationToken): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const child = spawn(runtime, args, { env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' } });
    const sub = token.onCancellationRequested(() => child.kill());
    let lastLine = '';
    child.stderr.on('data', (d: Buffer) => {
      for (const line of d.toString().split('\n').filter(Boolean)) {
        lastLine = line;
        engine.log.info(`[install] ${line}`);
        progress.report({ message: line.slice(0, 80) });
      }
    });
    child.on('error', (e) => {
      sub.dispose();
      void vscode.window.showErrorMessage(`Head Lens: the installer did not start (${e.message}): check headlens.engine.nodePath`);
      resolve(false);
    });
    child.on('exit', (code) => {
      sub.dispose();
      if (code !== 0 && !token.isCancellationRequested) {
        void vscode.window.showErrorMessage(`Head Lens: ${lastLine.replace(/^headlens: /, '') || `the installer exited with code ${code}`} (details in the Head Lens output)`);
      }
      resolve(code === 0);
    });
  });
}

/** Installs onnxruntime-node and restarts the engine on `auto` (which then picks it). */
export async function installNativeRuntime(paths: GpuPaths, engine: EngineClient, settings: SettingsWatcher): Promise<boolean> {
  const args = [path.join(paths.extensionPath, 'dist', 'engine.js'), 'install-native', '--dir', paths.modulePath];
  const runtime = settings.current.nodePath || process.execPath;
  const ok = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'Head Lens: installing the native runtime (onnxruntime-node)', cancellable: true }, (progress, token) =>
    runInstaller(args, runtime, engine, progress, token),
  );
  if (!ok) return false;
  if (settings.current.backend !== 'auto' && !settings.current.backend.startsWith('onnx-')) {
    await vscode.workspace.getConfiguration('headlens').update('backend', 'auto', vscode.ConfigurationTarget.Global);
    settings.refresh();
  }
  try {
    await engine.restart();
    void vscode.window.showInformationMessage(`Head Lens: analysis runs on ${engine.init?.backend.name} (${engine.init?.device.name}).`);
  } catch (e) {
    void vscode.window.showErrorMessage(`Head Lens: ${describeError(e)}`);
  }
  return true;
}

const OFFER_KEY = 'headlens.nativeRuntimeOffer';

/**
 * Once per installation: when the engine came up without onnxruntime because it is not installed,
 * offer to install it (Not Now asks again next session; Don't Ask Again never does).
 */
export async function offerNativeRuntime(state: vscode.Memento, paths: GpuPaths, engine: EngineClient, settings: SettingsWatcher): Promise<void> {
  const init = engine.init;
  if (!init || init.backend.name.startsWith('onnx-') || !settings.current.offerNativeRuntime || state.get(OFFER_KEY) === 'never' || offered) return;
  const missing = init.backend.skipped.some((s) => s.name === 'onnx' && /not installed/.test(s.reason));
  if (!missing) return;
  offered = true;
  const pick = await vscode.window.showInformationMessage(
    `Head Lens analyses on ${init.backend.name} (TensorFlow.js). The native runtime (onnxruntime-node, installed from npm into the extension's storage, ≈ 50 MB) makes analysis several times faster.`,
    'Install',
    'Not Now',
    "Don't Ask Again",
  );
  if (pick === 'Install') await installNativeRuntime(paths, engine, settings);
  else if (pick === "Don't Ask Again") await state.update(OFFER_KEY, 'never');
}
let offered = false;

export async function installGpuBackend(paths: GpuPaths, engine: EngineClient, settings: SettingsWatcher): Promise<void> {
  const choice = await vscode.window.showQuickPick(CHOICES, { title: 'Head Lens: install a GPU backend' });
  if (!choice) return;
  const args = [path.join(paths.extensionPath, 'dist', 'engine.js'), 'install-gpu', '--dir', paths.modulePath, ...(choice.id === 'tfjs-node-gpu' ? ['--tfjs-node-gpu'] : [])];
  const runtime = settings.current.nodePath || process.execPath;
  const ok = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'Head Lens: installing the GPU backend', cancellable: true }, (progress, token) =>
    runInstaller(args, runtime, engine, progress, token),
  );
  if (!ok) return;
  await vscode.workspace.getConfiguration('headlens').update('backend', choice.backend, vscode.ConfigurationTarget.Global);
  settings.refresh();
  try {
    await engine.restart();
    void vscode.window.showInformationMessage(`Head Lens: the engine runs on ${engine.init?.backend.name} (${engine.init?.device.name}).`);
  } catch (e) {
    void vscode.window.showErrorMessage(`Head Lens: ${describeError(e)}`);
  }
}

export function register(paths: GpuPaths, engine: EngineClient, settings: SettingsWatcher, state: vscode.Memento): vscode.Disposable {
  return vscode.Disposable.from(
    vscode.commands.registerCommand(Command.InstallGpu, () => installGpuBackend(paths, engine, settings)),
    vscode.commands.registerCommand(Command.InstallNative, () => installNativeRuntime(paths, engine, settings)),
    engine.onDidChange(() => void offerNativeRuntime(state, paths, engine, settings)),
  );
}
