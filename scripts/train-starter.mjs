// Reproduces the embedded starter model (media/models/starter-adaptive.safetensors) and its
// same-size base twin for comparison, with the engine's own trainer on WASM.
// Corpus: the unminified d3 module sources from node_modules (d3 v7 packages, ISC licence), pinned
// by package-lock.json. Sizes: d 48, 2 layers, 4 heads, block 128, hypernetwork rank 4 — small
// enough that the fp16 file stays under 10 MB with a-gpt's untied GPT-2-vocabulary embeddings.
//   node scripts/train-starter.mjs [--steps 400]
import { spawnSync } from 'node:child_process';
import { writeFileSync, mkdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
const steps = args.includes('--steps') ? args[args.indexOf('--steps') + 1] : '300';
const engine = join(root, 'dist', 'engine.js');
if (!existsSync(engine)) spawnSync(process.execPath, [join(root, 'scripts', 'build.mjs'), '--no-tests'], { stdio: 'inherit' });
const work = join(root, '.starter-run');
mkdirSync(work, { recursive: true });
const corpus = join(root, 'node_modules', 'd3-*', 'dist', 'd3-*[!n].js'); // d3-x.js, not d3-x.min.js
const common = ['--data', corpus, '--steps', steps, '--batch-size', '4', '--seq-len', '128', '--lr', '3e-3', '--min-lr', '3e-4',
  '--warmup', '20', '--eval-interval', '50', '--eval-iters', '8', '--seed', '7', '--backend', 'wasm', '--probe-interval', '50'];
const results = {};
for (const family of ['adaptive', 'base']) {
  const config = join(work, `${family}.config.json`);
  writeFileSync(config, JSON.stringify({ family, n_layer: 2, n_head: 4, n_embd: 48, block_size: 128, hyper: { rank: 4, n_heads: 2, n_layers: 2, alpha: 1 } }));
  const out = join(work, family);
  const r = spawnSync(process.execPath, [engine, 'train', '--config', config, '--out', out, '--metrics-jsonl', join(work, `${family}.jsonl`), ...common], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
  results[family] = JSON.parse(readFileSync(join(out, 'best.json'), 'utf8')).bestValLoss;
}
const note = `trained by scripts/train-starter.mjs (${steps} steps on the d3 v7 sources, ISC licence); best val loss ${results.adaptive.toFixed(4)} (same-size base: ${results.base.toFixed(4)})`;
const e = spawnSync(process.execPath, [engine, 'export', '--model', join(work, 'adaptive', 'best.safetensors'), '--out', join(root, 'media', 'models', 'starter-adaptive.safetensors'), '--fp16', '--note', note, '--backend', 'wasm'], { stdio: 'inherit' });
console.log(note);
process.exit(e.status ?? 1);
