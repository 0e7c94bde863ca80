// The tests in a real VS Code (code-server 4.100.3 = VS Code 1.100.3, see scripts/e2e/tools.mjs):
//  1. the extension-host mocha suite (out/test/suite/index.js) in the VS Code server's extension
//     host, the workbench in chromium; results arrive through codeAutomationLog/codeAutomationExit;
//  2. the UI tests (out/test/ui/*.js, each exporting `tests`) with Playwright against code-server
//     with the packaged .vsix installed, one code-server per file.
// Logs and screenshots go to .e2e-out/. Every wait has a deadline; servers and browsers are killed
// on exit, failure or signal. The last line is "N passed, N failed".
// Env: HEADLENS_E2E_ONLY=host|ui runs one part; HEADLENS_E2E_TIMEOUT_S caps the whole run (default 1800).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, cpSync, writeFileSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ensureCodeServer, missingDebianPackages, root } from './e2e/tools.mjs';
import { installExitHandlers, tempDir, isolatedEnv, startServer, killGroup, freePort, waitHttp, withTimeout } from './e2e/procs.mjs';
import { launchBrowser, formatLog } from './e2e/browser.mjs';

const outDir = join(root, '.e2e-out');
const HOST_SUITE_MS = 10 * 60_000; // the whole extension-host suite (mocha's own per-test timeout is shorter)
const UI_TEST_MS = 4 * 60_000; // one UI test
const SERVER_START_MS = 90_000;
const RUN_MS = (Number(process.env.HEADLENS_E2E_TIMEOUT_S) || 1800) * 1000;

// ---- results: one entry per suite; an unfinished suite counts as one failure ----
const suites = [];
let summarised = false;
function summary() {
  if (summarised) return;
  summarised = true;
  for (const s of suites) if (!s.done) { s.failed += 1; console.log(`  ✖ ${s.name}: did not finish`); }
  const passed = suites.reduce((a, s) => a + s.passed, 0);
  const failed = suites.reduce((a, s) => a + s.failed, 0);
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed ? 1 : 0;
}
function suite(name) {
  const s = { name, passed: 0, failed: 0, done: false };
  suites.push(s);
  return s;
}
installExitHandlers((why) => {
  console.log(`e2e ${why}`);
  summary();
});
setTimeout(() => {
  console.log(`e2e: stopped after ${RUN_MS / 60_000} min (HEADLENS_E2E_TIMEOUT_S)`);
  summary();
  process.exit(1);
}, RUN_MS).unref();

const seconds = (t0) => `${((Date.now() - t0) / 1000).toFixed(1)} s`;
const firstLine = (e) => String(e?.message ?? e).split('\n')[0];

/** A fresh workspace: test/fixtures/workspace plus the demo's sample file as sample.py. */
function workspaceCopy(base) {
  const ws = join(base, 'workspace');
  cpSync(join(root, 'test', 'fixtures', 'workspace'), ws, { recursive: true });
  const sample = join(root, 'media', 'samples', 'attention.py');
  if (existsSync(sample)) cpSync(sample, join(ws, 'sample.py'));
  return ws;
}

/** The dev build (extension, engine, tests) when it is missing; `npm test` and `npm run e2e` build first. */
function ensureBuilt() {
  if (existsSync(join(root, 'dist', 'extension.js')) && existsSync(join(root, 'out', 'test', 'suite', 'index.js'))) return;
  const b = spawnSync(process.execPath, [join(root, 'scripts', 'build.mjs')], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'], timeout: 5 * 60_000 });
  if (b.status !== 0) throw new Error('node scripts/build.mjs failed');
}

// ---- 1. extension-host suite ----

/**
 * Mocha's report out of the workbench log: what follows the suite's first line ("extension tests:
 * N files", test/suite/index.ts). The workbench's own messages before it are left in the log file.
 */
function mochaLines(entries) {
  const start = entries.findIndex((e) => e.text.startsWith('extension tests: '));
  return entries.slice(Math.max(0, start)).map((e) => e.text);
}

async function extensionHostSuite(codeServer, s) {
  const t0 = Date.now();
  const base = tempDir('headlens-e2e-host-');
  const env = isolatedEnv(base);
  const ws = workspaceCopy(base);
  const port = await freePort();
  const server = startServer(process.execPath, [join(codeServer, 'lib', 'vscode', 'out', 'server-main.js'),
    '--host', '127.0.0.1', '--port', String(port), '--without-connection-token', '--accept-server-license-terms',
    '--enable-smoke-test-driver', '--disable-telemetry', '--disable-workspace-trust',
    '--server-data-dir', join(base, 'server'), '--user-data-dir', join(base, 'user'), '--extensions-dir', join(base, 'ext')],
  { env, logFile: join(outDir, 'extension-host-server.log') });
  const entries = [];
  let browser;
  try {
    await waitHttp(`http://127.0.0.1:${port}/`, SERVER_START_MS, server);
    const remote = (p) => `vscode-remote://127.0.0.1:${port}${p}`;
    const payload = JSON.stringify([['extensionDevelopmentPath', remote(root)], ['extensionTestsPath', remote(join(root, 'out', 'test', 'suite', 'index.js'))]]);
    browser = await launchBrowser();
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    let exited;
    const exitCode = new Promise((resolve) => { exited = resolve; });
    await page.exposeFunction('codeAutomationLog', (type, args) => entries.push({ type, text: formatLog(Array.isArray(args) ? args : [args]) }));
    await page.exposeFunction('codeAutomationExit', (code) => exited(code));
    page.on('crash', () => exited('the workbench page crashed'));
    server.exited.then((code) => exited(`the VS Code server exited (${code})`));
    await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(ws)}&payload=${encodeURIComponent(payload)}`, { timeout: SERVER_START_MS });
    const code = await withTimeout(exitCode, HOST_SUITE_MS, 'the extension-host suite').catch((e) => e.message);
    await page.screenshot({ path: join(outDir, 'extension-host.png') }).catch(() => {});
    const text = mochaLines(entries);
    console.log(text.join('\n'));
    const counts = [...text.join('\n').matchAll(/^(\d+) passed, (\d+) failed/gm)].pop();
    if (counts) {
      s.passed += +counts[1];
      s.failed += +counts[2];
    }
    if (typeof code !== 'number') {
      console.log(`  ✖ extension-host suite: ${code}`);
      s.failed += 1;
    } else if (!counts) {
      console.log(`  ✖ extension-host suite exited with ${code} without its "N passed, N failed" line (see .e2e-out/extension-host.log)`);
      s.failed += 1;
    } else if (code !== 0 && +counts[2] === 0) {
      console.log(`  ✖ extension-host suite exited with ${code}`);
      s.failed += 1;
    }
  } finally {
    writeFileSync(join(outDir, 'extension-host.log'), entries.map((e) => `[${e.type}] ${e.text}`).join('\n') + '\n');
    await withTimeout(browser?.close() ?? Promise.resolve(), 20_000, 'closing chromium').catch(() => {});
    killGroup(server);
    s.done = true;
    console.log(`extension-host suite: ${seconds(t0)}`);
  }
}

// ---- 2. UI tests ----

async function uiModules() {
  const dir = join(root, 'out', 'test', 'ui');
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.js')).sort() : [];
  const mods = [];
  for (const f of files) {
    const mod = await import(join(dir, f));
    if (Array.isArray(mod.tests) && mod.tests.length) mods.push({ file: f, tests: mod.tests });
  }
  return mods;
}

/** Packages the .vsix (scripts/package.mjs) and installs it into a fresh extensions folder. */
function packageAndInstall(codeServer, env, common) {
  const t0 = Date.now();
  const vsix = join(outDir, 'headlens.vsix');
  const pk = spawnSync(process.execPath, [join(root, 'scripts', 'package.mjs'), vsix], { cwd: root, encoding: 'utf8', timeout: 5 * 60_000 });
  if (pk.status !== 0) throw new Error(`packaging failed: ${(pk.stderr + pk.stdout).trim().split('\n').slice(-5).join(' | ') || pk.error?.message}`);
  console.log(`${pk.stdout.trim().split('\n').pop()} in ${seconds(t0)}`);
  const t1 = Date.now();
  const inst = spawnSync(process.execPath, [join(codeServer, 'out', 'node', 'entry.js'), '--install-extension', vsix, ...common], { env, encoding: 'utf8', timeout: 120_000 });
  if (inst.status !== 0 || !/successfully installed/i.test(inst.stdout)) throw new Error(`installing the .vsix into code-server failed: ${(inst.stderr || inst.stdout || inst.error?.message || '').trim()}`);
  console.log(`installed into code-server in ${seconds(t1)}`);
}

async function runUiFile(codeServer, env, common, base, mod, s) {
  const ws = workspaceCopy(base);
  const port = await freePort();
  const name = mod.file.replace(/\.js$/, '');
  const server = startServer(process.execPath, [join(codeServer, 'out', 'node', 'entry.js'), '--auth', 'none', '--bind-addr', `127.0.0.1:${port}`,
    '--disable-telemetry', '--disable-update-check', '--disable-workspace-trust', '--disable-getting-started-override', ...common, ws],
  { env, logFile: join(outDir, `${name}-code-server.log`) });
  const consoleLog = [];
  let browser;
  let left = mod.tests.length;
  try {
    await waitHttp(`http://127.0.0.1:${port}/healthz`, SERVER_START_MS, server);
    browser = await launchBrowser();
    const page = await browser.newPage({ viewport: { width: 1500, height: 950 } });
    page.setDefaultTimeout(30_000);
    page.on('console', (m) => consoleLog.push(`[${m.type()}] ${m.text()}`));
    page.on('pageerror', (e) => consoleLog.push(`[pageerror] ${e.message}`));
    await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(ws)}`, { timeout: SERVER_START_MS });
    const ctx = { outDir, workspace: ws, shared: {} };
    for (const t of mod.tests) {
      const t0 = Date.now();
      try {
        await withTimeout(Promise.resolve().then(() => t.run(page, ctx)), UI_TEST_MS, t.name);
        s.passed++;
        console.log(`  ✔ ${t.name} (${Date.now() - t0} ms)`);
      } catch (e) {
        s.failed++;
        console.log(`  ✖ ${t.name}: ${firstLine(e)}`);
        await page.screenshot({ path: join(outDir, `failed-${t.name.replace(/\W+/g, '-').replace(/^-|-$/g, '')}.png`) }).catch(() => {});
        if (/no result within/.test(e.message)) { left--; break; } // the page is in an unknown state
      }
      left--;
    }
  } catch (e) {
    console.log(`  ✖ ${mod.file}: ${e.message}`);
  } finally {
    if (left > 0) { s.failed += left; console.log(`  ✖ ${left} test(s) of ${mod.file} not run`); }
    writeFileSync(join(outDir, `${name}-browser.log`), consoleLog.join('\n') + '\n');
    await withTimeout(browser?.close() ?? Promise.resolve(), 20_000, 'closing chromium').catch(() => {});
    killGroup(server);
  }
}

async function uiTests(codeServer, mods, ss) {
  const base = tempDir('headlens-e2e-ui-');
  const env = isolatedEnv(base);
  const common = ['--user-data-dir', join(base, 'user'), '--extensions-dir', join(base, 'ext')];
  try {
    packageAndInstall(codeServer, env, common);
  } catch (e) {
    console.log(`  ✖ ${firstLine(e)}`);
    mods.forEach((m, i) => { ss[i].failed += m.tests.length; ss[i].done = true; });
    return;
  }
  for (const [i, mod] of mods.entries()) {
    const t0 = Date.now();
    const runBase = join(base, `run-${i}`);
    mkdirSync(runBase);
    await runUiFile(codeServer, env, common, runBase, mod, ss[i]);
    ss[i].done = true;
    console.log(`${mod.file}: ${seconds(t0)}`);
  }
}

/** This script's logs and screenshots of an earlier run (other tools keep their own files in .e2e-out). */
function clearOldOutput() {
  mkdirSync(outDir, { recursive: true });
  for (const f of readdirSync(outDir)) {
    if (/^(failed-.*\.png|ui-.*\.png|extension-host.*|.*-code-server\.log|.*-browser\.log|code-server-install\.log|headlens\.vsix)$/.test(f)) rmSync(join(outDir, f), { force: true });
  }
}

async function main() {
  clearOldOutput();
  const only = process.env.HEADLENS_E2E_ONLY; // 'host' or 'ui' while working on one of them
  ensureBuilt();
  const host = only !== 'ui' && existsSync(join(root, 'out', 'test', 'suite', 'index.js')) ? suite('extension-host suite') : null;
  const mods = only !== 'host' ? await uiModules() : [];
  const ui = mods.map((m) => suite(`UI ${m.file}`));
  if (!host && !mods.length) { console.log('no extension-host suite or UI tests built'); return summary(); }
  const notRun = () => suites.forEach((s) => { if (!s.done) { s.failed += 1; s.done = true; console.log(`  ✖ ${s.name}: not run`); } });

  const need = missingDebianPackages();
  if (need.length) {
    console.log(`the tests in VS Code need Debian's ${need.join(' and ')}: apt-get install -y --no-install-recommends ${need.join(' ')} (.ci/run installs them)`);
    notRun();
    return summary();
  }
  let codeServer;
  try {
    const t0 = Date.now();
    codeServer = await ensureCodeServer({ log: console.log, logFile: join(outDir, 'code-server-install.log') });
    console.log(`code-server ready (${relative(root, codeServer)}) in ${seconds(t0)}`);
  } catch (e) {
    console.log(`code-server is not available: ${e.message}`);
    notRun();
    return summary();
  }
  if (host) {
    console.log('== extension host (VS Code 1.100.3 server) ==');
    await extensionHostSuite(codeServer, host).catch((e) => { console.log(`  ✖ extension-host suite: ${e.message}`); host.failed++; host.done = true; });
  }
  if (mods.length) {
    console.log('== UI (code-server + Playwright, packaged .vsix) ==');
    await uiTests(codeServer, mods, ui);
  }
  summary();
}

// exit once stdout has taken everything (a pipe's queued output would be cut off by process.exit)
const exitFlushed = (code) => process.stdout.write('', () => process.exit(code));
main().then(() => exitFlushed(), (e) => {
  console.log(`e2e crashed: ${e?.stack ?? e}`);
  summary();
  exitFlushed(1);
});
