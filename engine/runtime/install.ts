/**
 * `headlens install-gpu --dir DIR [--tfjs-node-gpu]`: installs the GPU backend packages on demand
 * into DIR (the extension's global storage), so the .vsix stays small: `webgpu` (Dawn, a prebuilt
 * binary for Linux/macOS/Windows inside the package) and, if asked, `@tensorflow/tfjs-node-gpu`
 * (whose own install downloads libtensorflow and needs CUDA 11.2 / cuDNN 8.1). Then it checks that
 * the backend really loads and names the adapter. Progress lines on stderr, one JSON line on stdout.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { BadInputError } from '../errors';
import { parseArgs } from '../cli/args';
import { initBackend } from './tfjs/backend';
import { setModulePaths } from './modules';

export const WEBGPU_PACKAGE = 'webgpu@0.6.2';
export const TFJS_NODE_GPU_PACKAGE = '@tensorflow/tfjs-node-gpu@4.22.0';

function npmCommand(): string {
  return process.platform === 'win32' ? 'npm.cmd' : 'npm';
}

function runNpm(dir: string, packages: string[], onLine: (l: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(npmCommand(), ['install', '--no-audit', '--no-fund', '--no-save', '--prefix', dir, ...packages], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
      shell: process.platform === 'win32',
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

export async function runInstallGpu(argv: string[]): Promise<number> {
  const opts = parseArgs(argv, { dir: 'string', 'tfjs-node-gpu': 'boolean', debug: 'boolean', 'skip-install': 'boolean' }, 'install-gpu');
  const dir = opts.dir as string | undefined;
  if (!dir) throw new BadInputError('install-gpu needs --dir DIR (where to install the GPU packages)');
  fs.mkdirSync(dir, { recursive: true });
  const pkgJson = path.join(dir, 'package.json');
  if (!fs.existsSync(pkgJson)) fs.writeFileSync(pkgJson, JSON.stringify({ name: 'headlens-gpu-backends', private: true }, null, 2));
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
