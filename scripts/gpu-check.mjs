// `npm run gpu-check [-- --backend webgpu]`: on whatever GPU backend loads (default: auto), run the
// parity suite against ../shared/fixtures/agpt (forward tensors, gradient norms and, with the
// trainer, the AdamW loss trajectories), then the analysis and training benchmarks at full size.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
const backend = args[args.indexOf('--backend') + 1] && args.includes('--backend') ? args[args.indexOf('--backend') + 1] : 'webgpu';
const engine = join(root, 'dist', 'engine.js');
const node = process.execPath;
if (!existsSync(engine) || !existsSync(join(root, 'out', 'test'))) spawnSync(node, [join(root, 'scripts', 'build.mjs')], { stdio: 'inherit' });

const info = spawnSync(node, [engine, 'info', '--backend', backend, '--json'], { encoding: 'utf8' });
if (info.status !== 0) {
  process.stderr.write(info.stderr);
  process.exit(info.status ?? 1);
}
const b = JSON.parse(info.stdout).backend;
console.log(`backend ${b.name}: ${b.reason}`);

console.log('\n== parity against the a-gpt reference tensors ==');
const files = ['parity.test.js', 'train-parity.test.js'].map((f) => join(root, 'out', 'test', f)).filter(existsSync);
const t = spawnSync(node, ['--test', '--test-concurrency=1', ...files], { stdio: 'inherit', env: { ...process.env, HEADLENS_TEST_BACKENDS: backend } });

console.log('\n== analysis benchmark (full size) ==');
spawnSync(node, [engine, 'bench', '--backend', backend], { stdio: 'inherit' });
if (existsSync(join(root, 'engine', 'train', 'bench.ts'))) {
  console.log('\n== training benchmark (full size, 8×256) ==');
  spawnSync(node, [engine, 'train-bench', '--backend', backend], { stdio: 'inherit' });
}
process.exit(t.status ?? 1);
