// `npm run package`: bundle (minified extension, engine unminified), then `vsce package` offline.
// The .vsix holds only dist/, media/, package.json, README.md and LICENSE (.vscodeignore).
import { spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const out = process.argv[2] ?? join(root, 'headlens.vsix');
const b = spawnSync(process.execPath, [join(root, 'scripts', 'build.mjs'), '--no-tests', '--release'], { stdio: 'inherit' });
if (b.status !== 0) process.exit(b.status ?? 1);
const vsce = join(root, 'node_modules', '@vscode', 'vsce', 'vsce');
const r = spawnSync(process.execPath, [vsce, 'package', '--no-dependencies', '--allow-missing-repository', '--skip-license', '-o', out], { cwd: root, encoding: 'utf8', input: 'y\n' });
if (r.status !== 0) {
  process.stderr.write(r.stdout + r.stderr);
  process.exit(r.status ?? 1);
}
const mb = statSync(out).size / 1e6;
console.log(`packaged ${out} (${mb.toFixed(1)} MB)`);
if (mb >= 25) {
  console.error(`the .vsix is ${mb.toFixed(1)} MB: it must stay under 25 MB`);
  process.exit(1);
}
