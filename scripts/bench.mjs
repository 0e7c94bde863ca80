// `npm run bench`: medians, side by side. Analysis of a 256-token window with full-size a-gpt
// models per backend that loads here, then training throughput. Benchmarks, not tests.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const engine = join(root, 'dist', 'engine.js');
if (!existsSync(engine)) spawnSync(process.execPath, [join(root, 'scripts', 'build.mjs'), '--no-tests'], { stdio: 'inherit' });
const extra = process.argv.slice(2);
const run = (args, env = {}) => spawnSync(process.execPath, [engine, ...args, ...extra], { stdio: 'inherit', env: { ...process.env, ...env } });
console.log('== analysis, WASM ==');
run(['bench', '--backend', 'wasm']);
if (existsSync(join(root, 'engine', 'train', 'bench.ts'))) {
  console.log('\n== training ==');
  run(['train-bench', '--backend', 'wasm']);
}
