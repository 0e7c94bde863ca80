// Bundles every part with esbuild: the engine CLI, the extension, the webviews and the tests.
// Usage: node scripts/build.mjs [--watch] [--no-tests] [--minify]
import * as esbuild from 'esbuild';
import { existsSync, mkdirSync, readdirSync, copyFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const args = new Set(process.argv.slice(2));
const minify = args.has('--minify');
// --release: no source maps; the extension minified. The engine is never minified: tfjs' WASM
// backend serialises one of its functions for its workers, which must keep its names.
const release = args.has('--release');
const optionalNative = ['@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu', 'webgpu', 'onnxruntime-node', 'vscode'];

function walk(dir, pred, out = []) {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, pred, out);
    else if (pred(p)) out.push(p);
  }
  return out;
}

const node = { bundle: true, platform: 'node', target: 'node20', format: 'cjs', sourcemap: !minify && !release, minify, logLevel: 'warning', external: optionalNative };
const builds = [];
const at = (p) => join(root, p);

// Engine CLI (also the `headlens serve` the extension spawns). tfjs is bundled; its .wasm files are copied beside it.
if (existsSync(at('engine/cli/main.ts'))) builds.push({ ...node, entryPoints: [at('engine/cli/main.ts')], outfile: at('dist/engine.js') });
if (existsSync(at('extension/extension.ts'))) builds.push({ ...node, minify: minify || release, entryPoints: [at('extension/extension.ts')], outfile: at('dist/extension.js') });
for (const f of walk(at('webview'), (p) => /webview[\\/][^\\/]+\.ts$/.test(p) && !p.endsWith('.d.ts') && !/[\\/](lib|common)[\\/]/.test(p))) {
  if (/(^|[\\/])_/.test(relative(at('webview'), f))) continue;
  const name = relative(at('webview'), f).replace(/\.ts$/, '');
  if (['protocol', 'types'].includes(name)) continue;
  builds.push({ bundle: true, platform: 'browser', target: 'es2022', format: 'iife', sourcemap: false, minify: minify || release, logLevel: 'warning', entryPoints: [f], outfile: at(`media/dist/${name}.js`) });
}
if (!args.has('--no-tests')) {
  const tests = walk(at('test'), (p) => p.endsWith('.ts') && !p.endsWith('.d.ts') && !p.includes('fixtures'));
  // Fully bundled like the engine (tfjs' deep ESM imports do not load unbundled in Node).
  if (tests.length) builds.push({ ...node, sourcemap: false, entryPoints: tests, outdir: at('out/test'), outbase: at('test'), external: [...optionalNative, 'mocha', 'playwright-core', 'esbuild'] });
}

// The WASM binaries are loaded from beside the bundle that contains the backend.
const wasmDir = at('node_modules/@tensorflow/tfjs-backend-wasm/dist');
for (const dir of ['dist', 'out/test']) {
  mkdirSync(at(dir), { recursive: true });
  for (const f of ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm', 'tfjs-backend-wasm-threaded-simd.wasm']) {
    if (existsSync(join(wasmDir, f))) copyFileSync(join(wasmDir, f), at(`${dir}/${f}`));
  }
}

if (args.has('--watch')) {
  for (const b of builds) (await esbuild.context(b)).watch();
  console.log(`watching ${builds.length} bundles`);
} else {
  await Promise.all(builds.map((b) => esbuild.build(b)));
  console.log(`built ${builds.length} bundles`);
}
