// `npm run package [-- out.vsix]`: the release bundles (`build.mjs --no-tests --release`: the
// extension minified and without maps; the engine not minified, see build.mjs), then
// `vsce package --no-dependencies` (offline: everything the extension runs is bundled). The .vsix
// holds only what .vscodeignore lets in; this checks that it has what the extension needs, holds no
// sources, tests, maps or tooling, and stays under 25 MB.
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const out = resolve(process.argv[2] ?? join(root, 'headlens.vsix'));
const MAX_BYTES = 25e6;
const REQUIRED = [/^extension\/package\.json$/, /^extension\/readme\.md$/i, /^extension\/LICENSE(\.txt)?$/, /^extension\/dist\/extension\.js$/, /^extension\/dist\/engine\.js$/,
  /^extension\/dist\/tfjs-backend-wasm\.wasm$/, /^extension\/media\/dist\/[^/]+\.js$/, /^extension\/media\/models\/[^/]+\.safetensors$/];
const FORBIDDEN = [/\.map$/, /\.ts$/, /\/node_modules\//, /^extension\/(test|out|scripts|engine|extension|webview|\.e2e-tools|\.e2e-out|\.ci|\.git)\//, /\.vsix$/];

function fail(message) {
  console.error(`package: ${message}`);
  process.exit(1);
}

/** Names in a zip's central directory (the .vsix is a zip; no unzip needed). */
function zipEntries(file) {
  const buf = readFileSync(file);
  let eocd = buf.length - 22;
  while (eocd >= 0 && buf.readUInt32LE(eocd) !== 0x06054b50) eocd--;
  if (eocd < 0) fail(`${file} is not a zip archive`);
  const count = buf.readUInt16LE(eocd + 10);
  const names = [];
  for (let p = buf.readUInt32LE(eocd + 16), i = 0; i < count; i++) {
    const nameLen = buf.readUInt16LE(p + 28), extraLen = buf.readUInt16LE(p + 30), commentLen = buf.readUInt16LE(p + 32);
    names.push(buf.toString('utf8', p + 46, p + 46 + nameLen));
    p += 46 + nameLen + extraLen + commentLen;
  }
  return names;
}

const b = spawnSync(process.execPath, [join(root, 'scripts', 'build.mjs'), '--no-tests', '--release'], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'], timeout: 5 * 60_000 });
if (b.status !== 0) fail('the release build failed');

// no repository field: the extension is not published from a repository page
const vsce = join(root, 'node_modules', '@vscode', 'vsce', 'vsce');
const r = spawnSync(process.execPath, [vsce, 'package', '--no-dependencies', '--allow-missing-repository', '-o', out], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 5 * 60_000 });
if (r.status !== 0) fail(`vsce package failed: ${(r.stderr + r.stdout).trim() || r.error?.message}`);

const names = zipEntries(out);
const missing = REQUIRED.filter((re) => !names.some((n) => re.test(n)));
if (missing.length) fail(`the .vsix lacks ${missing.map(String).join(', ')} (see .vscodeignore)`);
const stray = names.filter((n) => FORBIDDEN.some((re) => re.test(n)));
if (stray.length) fail(`the .vsix must not hold ${stray.slice(0, 10).join(', ')}${stray.length > 10 ? ` and ${stray.length - 10} more` : ''} (see .vscodeignore)`);

const bytes = statSync(out).size;
console.log(`packaged ${out} (${names.length} files, ${(bytes / 1e6).toFixed(1)} MB)`);
if (bytes >= MAX_BYTES) fail(`the .vsix is ${(bytes / 1e6).toFixed(1)} MB: it must stay under ${MAX_BYTES / 1e6} MB`);
