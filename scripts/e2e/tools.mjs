// What the tests in a real VS Code need: Debian's chromium and ripgrep, and code-server 4.100.3
// (a real VS Code 1.100.3: server + web workbench, runs on Node 20) installed into .e2e-tools and
// reused once complete. code-server's @vscode/ripgrep postinstall would download a binary: its
// cache is seeded with Debian's /usr/bin/rg first. Its kerberos module builds against
// libkrb5-dev's headers. Run alone (`node scripts/e2e/tools.mjs`) it installs and prints the path.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync, copyFileSync, rmSync, createWriteStream, statSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { tmpdir } from 'node:os';

export const root = new URL('../..', import.meta.url).pathname;
/** HEADLENS_E2E_TOOLS moves the install (a CI cache, or a second copy while one is in use). */
export const toolsDir = process.env.HEADLENS_E2E_TOOLS || join(root, '.e2e-tools');
export const codeServerDir = join(toolsDir, 'node_modules', 'code-server');
export const CHROMIUM = '/usr/bin/chromium';
const RG = '/usr/bin/rg';
export const CODE_SERVER_VERSION = '4.100.3';
const RIPGREP_CACHE = 'vscode-ripgrep-cache-1.15.11'; // @vscode/ripgrep 1.15.11, what code-server 4.100.3 pins
const RIPGREP_ASSET = 'ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz';
const INSTALL_TIMEOUT_MS = 15 * 60_000;
const marker = join(toolsDir, `.complete-${CODE_SERVER_VERSION}`);
const lockDir = `${toolsDir}.lock`; // one install at a time (two test runs in one checkout)
const LOCK_STALE_MS = INSTALL_TIMEOUT_MS + 60_000;

/** Debian packages the tests need and this machine lacks (`install`: also what installing code-server needs). */
export function missingDebianPackages({ install = false } = {}) {
  const need = [];
  if (!existsSync(CHROMIUM)) need.push('chromium');
  if (!existsSync(RG)) need.push('ripgrep');
  if (install && !existsSync('/usr/include/gssapi/gssapi.h') && !existsSync('/usr/include/gssapi.h')) need.push('libkrb5-dev');
  return need;
}

export function isInstalled() {
  return existsSync(marker) && existsSync(join(codeServerDir, 'lib', 'vscode', 'out', 'server-main.js')) && existsSync(join(codeServerDir, 'out', 'node', 'entry.js'));
}

/** A gzipped tar holding one file named `rg`: what @vscode/ripgrep's postinstall unpacks. */
function seedRipgrepCache(tmp) {
  const cache = join(tmp, RIPGREP_CACHE);
  const stage = join(tmp, 'rg-stage');
  mkdirSync(cache, { recursive: true });
  mkdirSync(stage, { recursive: true });
  copyFileSync(RG, join(stage, 'rg'));
  const tar = spawnSync('tar', ['-czf', join(cache, RIPGREP_ASSET), '-C', stage, 'rg'], { encoding: 'utf8' });
  if (tar.status !== 0) throw new Error(`could not seed the ripgrep cache: ${tar.stderr}`);
}

/**
 * Resolves to code-server's folder, installing it first when needed (≈1.5 min, ≈300 MiB).
 * npm runs with its own TMPDIR and XDG folders under a temp dir (the ripgrep cache is read from
 * $TMPDIR), as root (`unsafe_perm`) and without prompts (node-pty's postinstall runs npx).
 * Its output goes to `logFile`.
 */
export async function ensureCodeServer({ log = console.log, logFile } = {}) {
  if (isInstalled()) return codeServerDir;
  const need = missingDebianPackages({ install: true });
  if (need.length) throw new Error(`installing code-server needs Debian packages: apt-get install -y --no-install-recommends ${need.join(' ')}`);
  const release = await takeLock(log);
  try {
    if (isInstalled()) return codeServerDir; // another run installed it meanwhile
    return await install(log, logFile);
  } finally {
    release();
  }
}

/**
 * mkdir is atomic: the run that creates the lock folder installs; others wait for it (no event to
 * await: poll). Returns the release function (also run at exit while held).
 */
async function takeLock(log) {
  const end = Date.now() + LOCK_STALE_MS;
  mkdirSync(dirname(lockDir), { recursive: true });
  for (let said = false; ; said = true) {
    try {
      mkdirSync(lockDir);
      const release = () => {
        process.off('exit', release);
        rmSync(lockDir, { recursive: true, force: true });
      };
      process.on('exit', release);
      return release;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
    }
    const age = Date.now() - (statSync(lockDir, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
    if (age > LOCK_STALE_MS) { rmSync(lockDir, { recursive: true, force: true }); continue; }
    if (Date.now() > end) throw new Error(`${lockDir} is held by another install for more than ${LOCK_STALE_MS / 60_000} min`);
    if (!said) log(`waiting for another run's install of code-server (${lockDir})…`);
    await new Promise((r) => setTimeout(r, 2000));
  }
}

async function install(log, logFile) {
  // a partial install (interrupted, or an older version) is started over
  rmSync(join(toolsDir, 'node_modules'), { recursive: true, force: true });
  rmSync(join(toolsDir, 'package-lock.json'), { force: true });
  mkdirSync(toolsDir, { recursive: true });
  writeFileSync(join(toolsDir, 'package.json'), JSON.stringify({ name: 'headlens-e2e-tools', private: true }, null, 2) + '\n');
  const tmp = mkdtempSync(join(tmpdir(), 'headlens-e2e-install-'));
  try {
    for (const d of ['tmp', 'config', 'data', 'cache']) mkdirSync(join(tmp, d));
    seedRipgrepCache(join(tmp, 'tmp'));
    const env = {
      ...process.env,
      TMPDIR: join(tmp, 'tmp'),
      XDG_CONFIG_HOME: join(tmp, 'config'),
      XDG_DATA_HOME: join(tmp, 'data'),
      XDG_CACHE_HOME: join(tmp, 'cache'),
      npm_config_unsafe_perm: 'true',
      npm_config_yes: 'true',
      npm_config_audit: 'false',
      npm_config_fund: 'false',
      npm_config_update_notifier: 'false',
    };
    const t0 = Date.now();
    log(`installing code-server@${CODE_SERVER_VERSION} into ${toolsDir} (once, ≈1.5 min)…`);
    const { code, tail } = await runLogged('npm', ['install', '--no-save', `code-server@${CODE_SERVER_VERSION}`], { cwd: toolsDir, env, logFile, timeoutMs: INSTALL_TIMEOUT_MS });
    if (code !== 0) throw new Error(`npm install code-server@${CODE_SERVER_VERSION} failed (${code === null ? 'timed out' : `exit ${code}`}): ${tail}`);
    if (!existsSync(join(codeServerDir, 'lib', 'vscode', 'out', 'server-main.js'))) throw new Error('code-server installed without its VS Code server (lib/vscode)');
    writeFileSync(marker, new Date().toISOString() + '\n');
    log(`code-server installed in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    return codeServerDir;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Runs a command in its own process group, output to `logFile`; killed (the whole group) after `timeoutMs`. */
function runLogged(cmd, args, { cwd, env, logFile, timeoutMs }) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const out = logFile ? createWriteStream(logFile) : null;
    const last = [];
    const keep = (d) => {
      out?.write(d);
      last.push(...d.toString().split('\n').filter(Boolean));
      last.splice(0, Math.max(0, last.length - 3));
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const killGroup = () => { try { process.kill(-child.pid, 'SIGKILL'); } catch {} };
    process.on('exit', killGroup);
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; killGroup(); }, timeoutMs);
    child.on('error', (e) => last.push(e.message));
    child.on('close', (code) => {
      clearTimeout(timer);
      process.off('exit', killGroup);
      out?.end();
      resolve({ code: timedOut ? null : code, tail: last.join(' | ') });
    });
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  ensureCodeServer().then((dir) => console.log(dir), (e) => {
    console.error(e.message);
    process.exit(1);
  });
}
