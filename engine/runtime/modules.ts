/**
 * Optional native packages (onnxruntime-node, webgpu, tfjs-node[-gpu]): found beside the engine,
 * in the working folder, or in folders where Head Lens installed them on demand (the extension's
 * global storage), and probed in a child process so that a missing driver's native warnings never
 * reach this process's stderr.
 */
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { spawn } from 'node:child_process';

let extraModulePaths: string[] = [];

/** Folders (e.g. the extension's global storage) where packages were installed on demand. */
export function setModulePaths(paths: string[]): void {
  extraModulePaths = paths.filter(Boolean);
}

function bases(): string[] {
  return [...extraModulePaths.map((p) => path.join(p, 'node_modules')), __dirname, process.cwd()];
}

/** The resolved entry file of an optional package, or null when it is not installed. */
export function resolveOptional(name: string): string | null {
  for (const base of bases()) {
    try {
      return createRequire(path.join(base, 'noop.js')).resolve(name);
    } catch (e) {
      const msg = (e as Error).message ?? '';
      if (!/Cannot find module/.test(msg) || !msg.includes(name)) throw e;
    }
  }
  return null;
}

/** require() of an optional package; null when it is absent. */
export function optionalRequire(name: string): unknown | null {
  const file = resolveOptional(name);
  if (!file) return null;
  return createRequire(file)(file);
}

export interface ProbeResult {
  ok: boolean;
  /** What the child reported (JSON from its last stdout line). */
  value?: Record<string, unknown>;
  /** Why it failed: the child's own message, else the first stderr line. */
  reason?: string;
}

/**
 * Runs `script` (CommonJS source; `MODULE` holds the resolved package path) in a child Node
 * process and returns the JSON object it prints last. stderr is kept apart: native libraries
 * print there when a driver is missing.
 */
export function probeInChild(script: string, modulePath: string, timeoutMs = 30_000): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['-e', `const MODULE = ${JSON.stringify(modulePath)};\n${script}`], {
      env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
      windowsHide: true,
    });
    let out = '', err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ ok: false, reason: e.message });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const last = out.trim().split('\n').pop() ?? '';
      try {
        const value = JSON.parse(last) as Record<string, unknown>;
        if (value.error) resolve({ ok: false, value, reason: String(value.error) });
        else resolve({ ok: code === 0, value, reason: code === 0 ? undefined : firstLine(err) || `probe exited with ${code}` });
      } catch {
        resolve({ ok: false, reason: firstLine(err) || (code === null ? `probe timed out after ${timeoutMs / 1000} s` : `probe exited with ${code}`) });
      }
    });
  });
}

function firstLine(s: string): string {
  return s.split('\n').map((l) => l.trim()).find(Boolean)?.slice(0, 300) ?? '';
}
