// `npm test`: builds, runs the engine/unit tests with node's test runner, then the tests in a real
// VS Code (extension host + UI) and the webview tests in chromium when their tools are installed.
// Ends with one line "N passed, N failed".
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
/**
 * Runs a child with its stdout streamed through as it comes (and kept, to read its counts); stderr
 * inherited. Resolves with { status, stdout }.
 */
function run(cmd, args) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    const chunks = [];
    child.stdout.on('data', (d) => {
      chunks.push(d);
      process.stdout.write(d);
    });
    child.on('error', (e) => resolve({ status: 1, stdout: `${e.message}\n` }));
    child.on('close', (code) => resolve({ status: code ?? 1, stdout: Buffer.concat(chunks).toString('utf8') }));
  });
}

const build = spawnSync(process.execPath, [join(root, 'scripts/build.mjs')], { cwd: root, stdio: 'inherit' });
if (build.status !== 0) {
  console.log('0 passed, 1 failed');
  process.exit(1);
}

function walk(dir, out = []) {
  if (!existsSync(dir)) return out;
  for (const n of readdirSync(dir)) {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) { if (n !== 'suite' && n !== 'ui') walk(p, out); }
    else if (p.endsWith('.test.js')) out.push(p);
  }
  return out;
}

let passed = 0, failed = 0;
const only = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const files = walk(join(root, 'out/test')).filter((f) => !only.length || only.some((o) => f.includes(o)));
if (files.length) {
  const r = await run(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...files]);
  const p = /^ℹ pass (\d+)/m.exec(r.stdout), f = /^ℹ fail (\d+)/m.exec(r.stdout);
  passed += p ? +p[1] : 0;
  failed += f ? +f[1] : r.status === 0 ? 0 : 1;
}

// Suites that need a real VS Code / chromium: each prints its own "N passed, N failed".
const extra = ['scripts/e2e.mjs'];
if (!only.length && !process.argv.includes('--unit')) {
  for (const s of extra) {
    if (!existsSync(join(root, s))) continue;
    const r = await run(process.execPath, [join(root, s)]);
    const m = [...r.stdout.matchAll(/^(\d+) passed, (\d+) failed/gm)].pop();
    if (m) { passed += +m[1]; failed += +m[2]; }
    else if (r.status !== 0) failed += 1;
  }
}
console.log(`${passed} passed, ${failed} failed`);
// not process.exit: output still queued for a pipe would be cut off
process.exitCode = failed ? 1 : 0;
