// `npm run demo`: the main job on the embedded starter model — analyse a sample file, print the
// per-token table, and write a standalone HTML report and the JSON record.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const engine = join(root, 'dist', 'engine.js');
if (!existsSync(engine) || !existsSync(join(root, 'media', 'dist', 'report.js'))) {
  const b = spawnSync(process.execPath, [join(root, 'scripts', 'build.mjs'), '--no-tests'], { stdio: 'inherit' });
  if (b.status !== 0) process.exit(b.status ?? 1);
}
const sample = process.argv[2] ?? join(root, 'media', 'samples', 'attention.py');
const html = join(root, 'headlens-demo.html');
const json = join(root, 'headlens-demo.json');
const args = [engine, 'info'];
spawnSync(process.execPath, args, { stdio: 'inherit' });
console.log(`\nAnalyze Attention on ${sample}\n`);
const r = spawnSync(process.execPath, [engine, 'analyze', '--text-file', sample, '--html', html, '--json', json], { stdio: 'inherit' });
if (r.status === 0) console.log(`\nreport: ${html}\nrecord: ${json}`);
process.exit(r.status ?? 1);
