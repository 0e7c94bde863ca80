// `npm test`: builds, runs the engine/unit tests with node's test runner, then the tests in a real
// VS Code (extension host + UI) and the webview tests in chromium when their tools are installed.
// Ends with one line "N passed, N failed".
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const run = (cmd, args, opts = {}) => spawnSync(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', maxBuffer: 1 << 28, ...opts });

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
  const r = run(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...files], { stdio: ['ignore', 'pipe', 'inherit'] });
  process.stdout.write(r.stdout);
  const p = /^ℹ pass (\d+)/m.exec(r.stdout), f = /^ℹ fail (\d+)/m.exec(r.stdout);
  passed += p ? +p[1] : 0;
  failed += f ? +f[1] : r.status === 0 ? 0 : 1;
}

// Suites that need a real VS Code / chromium: each prints its own "N passed, N failed".
const extra = ['scripts/e2e.mjs'];
if (!only.length && !process.argv.includes('--unit')) {
  for (const s of extra) {
    if (!existsSync(join(root, s))) continue;
    const r = run(process.execPath, [join(root, s)], { stdio: ['ignore', 'pipe', 'inherit'] });
    process.stdout.write(r.stdout);
    const m = [...r.stdout.matchAll(/^(\d+) passed, (\d+) failed/gm)].pop();
    if (m) { passed += +m[1]; failed += +m[2]; }
    else if (r.status !== 0) failed += 1;
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
