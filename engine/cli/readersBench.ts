/**
 * `headlens readers-bench`: how fast the run monitor reads big training logs — a 50 MB JSONL file
 * and a 50 MB nanoGPT stdout log written here, each read whole; MB/s and the heap afterwards.
 * A benchmark (npm run bench), not a test.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readJsonl } from '../monitor/jsonl';
import { readLog } from '../monitor/logs';
import { parseArgs } from './args';

function writeUntil(file: string, bytes: number, line: (i: number) => string): void {
  const fd = fs.openSync(file, 'w');
  try {
    let written = 0;
    let batch: string[] = [];
    for (let i = 0; written < bytes; i++) {
      const l = line(i);
      batch.push(l);
      written += l.length;
      if (batch.length === 10000) {
        fs.writeSync(fd, batch.join(''));
        batch = [];
      }
    }
    fs.writeSync(fd, batch.join(''));
  } finally {
    fs.closeSync(fd);
  }
}

export async function runReadersBench(argv: string[]): Promise<number> {
  const opts = parseArgs(argv, { mb: 'int', debug: 'boolean' }, 'readers-bench');
  const bytes = ((opts.mb as number | undefined) ?? 50) << 20;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'headlens-readers-'));
  try {
    const jsonl = path.join(dir, 'metrics.jsonl');
    const log = path.join(dir, 'train.log');
    writeUntil(jsonl, bytes, (i) => JSON.stringify({ step: i, loss: 6 * Math.exp(-i / 1e5) + 1, lr: 3e-4, tokens_per_sec: 1.5e6 + i }) + '\n');
    writeUntil(log, bytes, (i) => `iter ${i}: loss ${(4 - i * 1e-6).toFixed(4)}, time 27.${i % 100}ms, mfu ${(13 + (i % 7) / 10).toFixed(2)}%\n`);
    for (const [file, read] of [[jsonl, () => readJsonl(jsonl)], [log, () => readLog(log)]] as const) {
      const t0 = performance.now();
      const r = read();
      const ms = performance.now() - t0;
      const mb = fs.statSync(file).size / (1 << 20);
      process.stdout.write(`${path.basename(file).padEnd(16)}${mb.toFixed(1).padStart(7)} MB${String(r.points.length).padStart(11)} points${ms.toFixed(0).padStart(8)} ms${(mb / (ms / 1000)).toFixed(0).padStart(6)} MB/s   heap ${(process.memoryUsage().heapUsed / (1 << 20)).toFixed(0)} MB${r.warnings.length ? `   ${r.warnings.length} warnings` : ''}\n`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return 0;
}
