/**
 * Install GPU Backend: installs `webgpu` (and, if asked, tfjs-node-gpu) into the extension's global
 * storage with progress, checks that it loads, restarts the engine on it, or explains in one line.
 */
import * as vscode from 'vscode';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import type { EngineManager } from './engine';

export async function installGpuBackend(ctx: vscode.ExtensionContext, engine: EngineManager): Promise<void> {
  const choice = await vscode.window.showQuickPick(
    [
      { label: 'WebGPU (Dawn: Vulkan / Metal / D3D12)', detail: 'npm package "webgpu" — no CUDA toolkit needed', id: 'webgpu' },
      { label: 'TensorFlow CUDA (tfjs-node-gpu)', detail: 'downloads libtensorflow; needs CUDA 11.2 and cuDNN 8.1', id: 'tfjs-node-gpu' },
    ],
    { title: 'Head Lens: install a GPU backend' },
  );
  if (!choice) return;
  const dir = path.join(ctx.globalStorageUri.fsPath, 'gpu');
  const args = [path.join(ctx.extensionPath, 'dist', 'engine.js'), 'install-gpu', '--dir', dir, ...(choice.id === 'tfjs-node-gpu' ? ['--tfjs-node-gpu'] : [])];
  const ok = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'Head Lens: installing the GPU backend', cancellable: true }, (progress, token) =>
    new Promise<boolean>((resolve) => {
      const child = spawn(process.execPath, args, { env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' } });
      token.onCancellationRequested(() => child.kill());
      let lastLine = '';
      child.stderr.on('data', (d: Buffer) => {
        for (const l of d.toString().split('\n').filter(Boolean)) {
          lastLine = l;
          engine.log.info(`[install-gpu] ${l}`);
          progress.report({ message: l.slice(0, 80) });
        }
      });
      child.on('exit', (code) => {
        if (code === 0) resolve(true);
        else {
          void vscode.window.showErrorMessage(`Head Lens: ${lastLine.replace(/^headlens: /, '') || `the installer exited with code ${code}`}`);
          resolve(false);
        }
      });
    }),
  );
  if (!ok) return;
  await vscode.workspace.getConfiguration('headlens').update('backend', choice.id === 'webgpu' ? 'webgpu' : 'tensorflow-gpu', vscode.ConfigurationTarget.Global);
  await engine.restart();
  void vscode.window.showInformationMessage(`Head Lens: engine running on ${engine.init?.backend.name} (${engine.init?.device.name}).`);
}
