// Child processes and temp folders of the e2e run: every server starts in its own process group,
// so killing the group also ends what it started (extension host, engine, ptys). All of them are
// killed and the temp folders removed on exit, on a signal and on a crash.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';

const groups = new Set();
const tempDirs = new Set();
const cleanups = [];

export function killGroup(child) {
  if (!child?.pid) return;
  try { process.kill(-child.pid, 'SIGKILL'); } catch { try { child.kill('SIGKILL'); } catch {} }
  groups.delete(child);
}

function cleanupAll() {
  for (const c of [...groups]) killGroup(c);
  for (const fn of cleanups.splice(0)) { try { fn(); } catch {} }
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
}

/** Kill everything on exit; signals and crashes exit through it (128 + signal number, as shells do). */
export function installExitHandlers(onFatal) {
  process.on('exit', cleanupAll);
  for (const [sig, n] of [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1]]) process.on(sig, () => { onFatal?.(`stopped by ${sig}`); process.exit(128 + n); });
  process.on('uncaughtException', (e) => { onFatal?.(`crashed: ${e?.stack ?? e}`); process.exit(1); });
  process.on('unhandledRejection', (e) => { onFatal?.(`crashed: ${e?.stack ?? e}`); process.exit(1); });
}

/** Something to run at exit as well (e.g. closing a browser's process). */
export function onCleanup(fn) {
  cleanups.push(fn);
}

/** A temp folder removed at exit. */
export function tempDir(prefix) {
  const d = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(d);
  return d;
}

/** The environment of a VS Code server with its own state: XDG folders and TMPDIR under `base`. */
export function isolatedEnv(base) {
  for (const d of ['config', 'data', 'cache', 'tmp', 'user', 'ext', 'server']) mkdirSync(join(base, d), { recursive: true });
  return {
    ...process.env,
    XDG_CONFIG_HOME: join(base, 'config'),
    XDG_DATA_HOME: join(base, 'data'),
    XDG_CACHE_HOME: join(base, 'cache'),
    TMPDIR: join(base, 'tmp'),
  };
}

/**
 * Starts a server in its own process group, its output appended to `logFile`. `child.tail(n)`:
 * its last lines; `child.exited`: resolves with the exit code.
 */
export function startServer(cmd, args, { env, logFile }) {
  const child = spawn(cmd, args, { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  groups.add(child);
  const out = createWriteStream(logFile, { flags: 'a' });
  const lines = [];
  const keep = (d) => {
    out.write(d);
    lines.push(...d.toString().split('\n').filter(Boolean));
    if (lines.length > 400) lines.splice(0, lines.length - 200);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  child.exited = new Promise((resolve) => child.on('exit', (code, signal) => {
    groups.delete(child);
    out.end();
    resolve(code ?? signal);
  }));
  child.on('error', (e) => lines.push(`could not start ${cmd}: ${e.message}`));
  child.tail = (n = 10) => lines.slice(-n).join('\n');
  return child;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Polls `url` until it answers below 500 (no event to wait for), or the server exits, or `ms` pass. */
export async function waitHttp(url, ms, server) {
  const end = Date.now() + ms;
  let exited = null;
  server?.exited.then((code) => { exited = code; });
  while (Date.now() < end) {
    if (exited !== null) throw new Error(`the server exited (${exited}) before ${url} answered:\n${server.tail()}`);
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(5000) });
      if (r.status < 500) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url} did not answer within ${ms / 1000} s${server ? `:\n${server.tail()}` : ''}`);
}

/** `promise`, or a rejection saying `what` took longer than `ms`. */
export function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no result within ${Math.round(ms / 1000)} s`)), ms); }),
  ]);
}
