// `npm run bench`: medians, side by side, in one run on this machine. Analysis of one window with
// full-size models on onnxruntime (CPU, 1 and 2 threads) and TensorFlow.js WASM, with and without the
// causality audit; the authors' own PyTorch forward of the same models (scripts/reference/pytorch_bench.py,
// when Debian's python3-torch and checkouts of a-gpt / nanoGPT are at hand: AGPT_DIR, NANOGPT_DIR or
// .bench-out/); then training throughput. Benchmarks, not tests: nothing here asserts a time.
//   npm run bench -- [--runs N] [--models base,adaptive,gpt2,…] [--no-train] [--no-pytorch]
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const engine = join(root, 'dist', 'engine.js');
const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const value = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
if (!existsSync(engine)) spawnSync(process.execPath, [join(root, 'scripts', 'build.mjs'), '--no-tests'], { stdio: 'inherit' });

const runs = value('--runs', '5');
const models = value('--models', 'base,adaptive,gpt2,autoresearch');

let pytorch = null;
if (!flag('--no-pytorch')) {
  const py = '/usr/bin/python3';
  const r = existsSync(py) ? spawnSync(py, [join(root, 'scripts', 'reference', 'pytorch_bench.py')], { encoding: 'utf8', env: { ...process.env, BENCH_RUNS: runs }, timeout: 30 * 60_000 }) : null;
  if (r && r.status === 0) {
    try {
      pytorch = JSON.parse(r.stdout.trim().split('\n').pop());
    } catch {
      pytorch = null;
    }
  }
  if (!pytorch) console.log(`(no PyTorch reference: ${r ? (r.stderr || '').trim().split('\n').pop() : 'no /usr/bin/python3'} — needs python3-torch, libopenblas0-pthread and checkouts of a-gpt and nanoGPT in .bench-out/)\n`);
  else if (!/openblas|mkl|blis/i.test(pytorch.blas ?? '')) console.log(`(warning: PyTorch runs on ${pytorch.blas}: install libopenblas0-pthread for a fair reference)\n`);
}

console.log('== analysis ==');
const bench = spawnSync(process.execPath, [engine, 'bench', '--runs', runs, '--models', models, '--runtimes', 'onnx-cpu:1,onnx-cpu:2,wasm'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
const lines = bench.stdout.trimEnd().split('\n');
for (const line of lines) {
  const name = line.split(/\s+/)[0];
  const isHeader = line.startsWith('model ');
  const row = pytorch?.rows?.[name];
  const analysisRow = /\banalysis\b/.test(line);
  let extra = '';
  if (pytorch && isHeader) extra = `${'torch fwd 1t'.padStart(14)}${'torch fwd 2t'.padStart(14)}`;
  else if (pytorch && analysisRow) extra = row ? `${String(row['1']).padStart(14)}${String(row['2']).padStart(14)}` : `${'—'.padStart(14)}${'—'.padStart(14)}`;
  console.log(line + extra);
}
if (pytorch) console.log(`(torch ${pytorch.torch} on ${pytorch.blas}: the authors' forward alone, full logits, no head codes; analysis = forward + every head code, NLL and top-k)`);

if (!flag('--no-train')) {
  console.log('\n== training ==');
  spawnSync(process.execPath, [engine, 'train-bench', '--backend', 'wasm'], { stdio: 'inherit' });
}

console.log('\n== run monitor readers ==');
spawnSync(process.execPath, [engine, 'readers-bench'], { stdio: 'inherit' });
