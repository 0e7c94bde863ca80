/**
 * Optional runtimes installed on demand into DIR (the extension's global storage), so the .vsix
 * stays small and one package serves every platform:
 *   `headlens install-native --dir DIR`: onnxruntime-node (native CPU kernels with threads, its
 *     WebGPU provider; CUDA when the user adds the provider library) — the inference runtime;
 *   `headlens install-gpu --dir DIR [--tfjs-node-gpu]`: `webgpu` (Dawn, a prebuilt binary for
 *     Linux/macOS/Windows inside the package) for TensorFlow.js training on a GPU and, if asked,
 *     `@tensorflow/tfjs-node-gpu` (whose own install downloads libtensorflow and needs CUDA 11.2 /
 *     cuDNN 8.1).
 * Each then checks that what it installed really loads. Progress lines on stderr, one JSON line on
 * stdout. Install scripts do not run (onnxruntime-node's only fetches the CUDA provider).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { BadInputError } from '../errors';
import { parseArgs } from '../cli/args';
import { initBackend } from './tfjs/backend';
import { setModulePaths } from './modules';
import { ORT_PACKAGE, ORT_VERSION } from './onnx/ort';
import { initRuntime } from './select';

export const WEBGPU_PACKAGE = 'webgpu@0.6.2';
export const TFJS_NODE_GPU_PACKAGE = '@tensorflow/tfjs-node-gpu@4.22.0';

function npmCommand(): string {
  return process.platform === 'win32' ? 'npm.cmd' : 'npm';
}

function runNpm(dir: string, packages: string[], onLine: (l: string) => void, extra: string[] = []): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(npmCommand(), ['install', '--no-audit', '--no-fund', '--no-save', '--prefix', dir, ...extra, ...packages], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
      shell: process.platform === 'win32',
      env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' },
    });
    const tail: string[] = [];
    const collect = (d: Buffer) => {
      for (const l of d.toString().split('\n').filter(Boolean)) {
        tail.push(l);
        if (tail.length > 20) tail.shift();
        onLine(l);
      }
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.on('error', (e) => reject(new BadInputError(`cannot run npm (${e.message}): install Node.js with npm, then run Install GPU Backend again`)));
    child.on('exit', (code) => {
      if (code === 0) return resolve();
      const reason = tail.reverse().find((l) => /ERR!|error/i.test(l)) ?? tail[0] ?? `exit code ${code}`;
      reject(new BadInputError(`npm install ${packages.join(' ')} failed: ${reason.replace(/^npm (ERR!|error)\s*/, '')}`));
    });
  });
}

function prepareDir(dir: string | undefined, what: string): string {
  if (!dir) throw new BadInputError(`${what} needs --dir DIR (where to install the packages)`);
  fs.mkdirSync(dir, { recursive: true });
  const pkgJson = path.join(dir, 'package.json');
  if (!fs.existsSync(pkgJson)) fs.writeFileSync(pkgJson, JSON.stringify({ name: 'headlens-optional-runtimes', private: true }, null, 2));
  return dir;
}

export async function runInstallNative(argv: string[]): Promise<number> {
  const opts = parseArgs(argv, { dir: 'string', debug: 'boolean', 'skip-install': 'boolean' }, 'install-native');
  const dir = prepareDir(opts.dir as string | undefined, 'install-native');
  const pkg = `${ORT_PACKAGE}@${ORT_VERSION}`;
  if (!opts['skip-install']) {
    process.stderr.write(`installing ${pkg} into ${dir}\n`);
    await runNpm(dir, [pkg], (l) => process.stderr.write(`npm: ${l}\n`), ['--ignore-scripts']);
  }
  setModulePaths([dir]);
  process.stderr.write('checking onnxruntime…\n');
  try {
    const state = await initRuntime('onnx-cpu');
    process.stdout.write(JSON.stringify({ ok: true, backend: state.info.name, device: state.device }) + '\n');
    process.stderr.write(`ok: ${state.info.name} on ${state.device.name}\n`);
    return 0;
  } catch (e) {
    throw new BadInputError(`onnxruntime-node was installed but does not load here: ${(e as Error).message}`);
  }
}

export async function runInstallGpu(argv: string[]): Promise<number> {
  const opts = parseArgs(argv, { dir: 'string', 'tfjs-node-gpu': 'boolean', debug: 'boolean', 'skip-install': 'boolean' }, 'install-gpu');
  const dir = prepareDir(opts.dir as string | undefined, 'install-gpu');
  const packages = [WEBGPU_PACKAGE, ...(opts['tfjs-node-gpu'] ? [TFJS_NODE_GPU_PACKAGE] : [])];
  if (!opts['skip-install']) {
    process.stderr.write(`installing ${packages.join(', ')} into ${dir}\n`);
    await runNpm(dir, packages, (l) => process.stderr.write(`npm: ${l}\n`));
  }
  setModulePaths([dir]);
  const choice = opts['tfjs-node-gpu'] ? 'tensorflow-gpu' : 'webgpu';
  process.stderr.write(`checking the ${choice} backend…\n`);
  try {
    const state = await initBackend(choice);
    process.stdout.write(JSON.stringify({ ok: true, backend: state.info.name, device: state.device }) + '\n');
    process.stderr.write(`ok: ${state.info.name} on ${state.device.name}${state.device.vendor ? ` (${state.device.vendor})` : ''}\n`);
    return 0;
  } catch (e) {
    const why = (e as Error).message.replace(/^no compute backend could be loaded \((.*)\)$/, '$1');
    throw new BadInputError(`the ${choice} backend was installed but does not load here: ${why}`);
  }
}
