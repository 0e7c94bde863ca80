// The tests in a real VS Code (code-server 4.100.3 = VS Code 1.100.3) and in chromium:
//  1. the extension-host mocha suite (out/test/suite) under the VS Code server, driven by chromium;
//  2. UI tests (out/test/ui/*.ui.js) with Playwright against code-server with the packaged .vsix;
//  3. the webview unit tests run by node's test runner already (test/webview.test.ts).
// Prints "N passed, N failed" last. Screenshots go to .e2e-out/.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, cpSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { ensureCodeServer, root, CHROMIUM, missingDebianPackages } from './e2e/tools.mjs';

const outDir = join(root, '.e2e-out');
mkdirSync(outDir, { recursive: true });
let passed = 0, failed = 0;
const children = new Set();
const cleanup = () => children.forEach((c) => { try { process.kill(-c.pid, 'SIGKILL'); } catch { try { c.kill('SIGKILL'); } catch {} } });
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function isolatedEnv(base) {
  for (const d of ['config', 'data', 'cache', 'tmp', 'user', 'ext', 'server']) mkdirSync(join(base, d), { recursive: true });
  return { ...process.env, XDG_CONFIG_HOME: join(base, 'config'), XDG_DATA_HOME: join(base, 'data'), XDG_CACHE_HOME: join(base, 'cache'), TMPDIR: join(base, 'tmp') };
}

async function waitHttp(url, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try {
      const r = await fetch(url);
      if (r.status < 500) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${url} did not answer within ${ms / 1000} s`);
}

function start(cmd, args, env, logName) {
  const c = spawn(cmd, args, { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(c);
  const lines = [];
  const keep = (d) => lines.push(...d.toString().split('\n').filter(Boolean));
  c.stdout.on('data', keep);
  c.stderr.on('data', keep);
  c.on('exit', () => children.delete(c));
  c.lines = lines;
  c.logName = logName;
  return c;
}

/** console-style format strings (%s, %d) filled in, as mocha's reporter logs them. */
function formatLog(args) {
  const [first, ...rest] = args.map(String);
  return first.replace(/%[sdio]/g, () => rest.shift() ?? '') + (rest.length ? ' ' + rest.join(' ') : '');
}

async function launchBrowser() {
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
}

/** A fresh workspace: test/fixtures/workspace plus the sample file the demo uses, as sample.py. */
function workspaceCopy() {
  const ws = mkdtempSync(join(tmpdir(), 'headlens-ws-'));
  cpSync(join(root, 'test', 'fixtures', 'workspace'), ws, { recursive: true });
  cpSync(join(root, 'media', 'samples', 'attention.py'), join(ws, 'sample.py'));
  return ws;
}

/** 1. The extension-host suite: results arrive through codeAutomationLog / codeAutomationExit. */
async function extensionHostSuite(codeServer) {
  const base = mkdtempSync(join(tmpdir(), 'headlens-eh-'));
  const env = isolatedEnv(base);
  const port = await freePort();
  const server = start(process.execPath, [join(codeServer, 'lib', 'vscode', 'out', 'server-main.js'), '--host', '127.0.0.1', '--port', String(port), '--without-connection-token',
    '--accept-server-license-terms', '--enable-smoke-test-driver', '--disable-telemetry', '--disable-workspace-trust', '--server-data-dir', join(base, 'server'),
    '--user-data-dir', join(base, 'user'), '--extensions-dir', join(base, 'ext')], env, 'server');
  await waitHttp(`http://127.0.0.1:${port}/`, 60_000);
  const ws = workspaceCopy();
  const remote = (p) => `vscode-remote://127.0.0.1:${port}${p}`;
  const payload = JSON.stringify([['extensionDevelopmentPath', remote(root)], ['extensionTestsPath', remote(join(root, 'out', 'test', 'suite', 'index.js'))]]);
  const browser = await launchBrowser();
  const page = await browser.newPage();
  const log = [];
  let exitCode = null;
  await page.exposeFunction('codeAutomationLog', (type, args) => log.push(formatLog(Array.isArray(args) ? args : [args])));
  await page.exposeFunction('codeAutomationExit', (code) => { exitCode = code; });
  await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(ws)}&payload=${encodeURIComponent(payload)}`);
  const end = Date.now() + 8 * 60_000;
  while (exitCode === null && Date.now() < end) await new Promise((r) => setTimeout(r, 250));
  await page.screenshot({ path: join(outDir, 'extension-host.png') }).catch(() => {});
  await browser.close();
  process.kill(-server.pid, 'SIGKILL');
  const text = log.join('\n');
  console.log(text.split('\n').filter((l) => /✔|✓|passing|failing|\d+\) |Error|passed|failed|^\s+at /.test(l)).slice(0, 80).join('\n'));
  const m = [...text.matchAll(/(\d+) passed, (\d+) failed/g)].pop();
  if (exitCode === null) {
    console.log('extension-host suite: no result within 8 minutes');
    return [m ? +m[1] : 0, (m ? +m[2] : 0) + 1];
  }
  if (!m) return [0, 1];
  return [+m[1], +m[2] + (exitCode !== 0 && +m[2] === 0 ? 1 : 0)];
}

/** 2. UI tests: the packaged .vsix installed into code-server, driven with Playwright. */
async function uiTests(codeServer) {
  const files = existsSync(join(root, 'out', 'test', 'ui')) ? readdirSync(join(root, 'out', 'test', 'ui')).filter((f) => f.endsWith('.ui.js')).sort() : [];
  if (!files.length) return [0, 0];
  const vsix = join(outDir, 'headlens.vsix');
  const pk = spawnSync(process.execPath, [join(root, 'scripts', 'package.mjs'), vsix], { encoding: 'utf8' });
  if (pk.status !== 0) {
    console.log(`packaging failed: ${pk.stderr || pk.stdout}`);
    return [0, files.length];
  }
  const base = mkdtempSync(join(tmpdir(), 'headlens-ui-'));
  const env = isolatedEnv(base);
  const cs = join(codeServer, 'out', 'node', 'entry.js');
  const common = ['--user-data-dir', join(base, 'user'), '--extensions-dir', join(base, 'ext')];
  const inst = spawnSync(process.execPath, [cs, '--install-extension', vsix, ...common], { env, encoding: 'utf8', timeout: 120_000 });
  if (inst.status !== 0) {
    console.log(`installing the .vsix into code-server failed: ${inst.stderr || inst.stdout}`);
    return [0, files.length];
  }
  let p = 0, f = 0;
  for (const file of files) {
    const port = await freePort();
    const ws = workspaceCopy();
    const server = start(process.execPath, [cs, '--auth', 'none', '--bind-addr', `127.0.0.1:${port}`, '--disable-telemetry', '--disable-update-check', '--disable-workspace-trust',
      '--disable-getting-started-override', ...common, ws], env, 'code-server');
    const browser = await launchBrowser();
    const page = await browser.newPage({ viewport: { width: 1500, height: 950 } });
    try {
      await waitHttp(`http://127.0.0.1:${port}/healthz`, 60_000);
      const mod = await import(join(root, 'out', 'test', 'ui', file));
      const tests = mod.tests ?? [];
      await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(ws)}`);
      for (const t of tests) {
        const t0 = Date.now();
        try {
          await t.run(page, { outDir, workspace: ws });
          p++;
          console.log(`  ✔ ${t.name} (${Date.now() - t0} ms)`);
        } catch (e) {
          f++;
          console.log(`  ✖ ${t.name}: ${e.message.split('\n')[0]}`);
          await page.screenshot({ path: join(outDir, `failed-${t.name.replace(/\W+/g, '-')}.png`) }).catch(() => {});
        }
      }
    } catch (e) {
      f++;
      console.log(`  ✖ ${file}: ${e.message.split('\n')[0]}\n${server.lines.slice(-10).join('\n')}`);
    } finally {
      await browser.close();
      try { process.kill(-server.pid, 'SIGKILL'); } catch {}
      rmSync(ws, { recursive: true, force: true });
    }
  }
  return [p, f];
}

async function main() {
  const need = missingDebianPackages();
  if (need.length) {
    console.log(`the VS Code tests need Debian packages: apt-get install ${need.join(' ')}`);
    console.log('0 passed, 2 failed');
    process.exit(1);
  }
  let codeServer;
  try {
    codeServer = ensureCodeServer((l) => console.log(l));
  } catch (e) {
    console.log(`code-server is not available: ${e.message}`);
    console.log('0 passed, 2 failed');
    process.exit(1);
  }
  const only = process.env.HEADLENS_E2E_ONLY; // 'host' or 'ui' while working on one of them
  if (only !== 'ui') {
    console.log('== extension host (VS Code 1.100.3 server) ==');
    const [a, b] = await extensionHostSuite(codeServer).catch((e) => (console.log(`extension-host suite: ${e.message}`), [0, 1]));
    passed += a; failed += b;
  }
  if (only !== 'host') {
    console.log('== UI (code-server + Playwright, packaged .vsix) ==');
    const [c, d] = await uiTests(codeServer).catch((e) => (console.log(`UI tests: ${e.message}`), [0, 1]));
    passed += c; failed += d;
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}
main();
