/**
 * Watch Training Run… and Run Experiment Grid… in the extension host: the fixture nanoGPT log
 * (shared/fixtures/runs) watched through the command reaches the monitor's buffer point for
 * point — first what is written, then the lines appended while it is watched — and removing the
 * run empties it; a one-variant, two-step grid run through the command returns its table and
 * exports it beside the spec.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { GridTable } from '../../engine/protocol';
import type { WatchHandle } from '../../extension/watch';
import { headLens, until } from './util';

/** The checkout: up from out/test/suite to package.json; the shared fixtures beside it. */
function repoRoot(): string {
  let d = __dirname;
  while (!fs.existsSync(path.join(d, 'package.json'))) {
    const up = path.dirname(d);
    if (up === d) throw new Error(`no package.json above ${__dirname}`);
    d = up;
  }
  return d;
}
const REPO = repoRoot();
const RUNS = path.join(REPO, '..', 'shared', 'fixtures', 'runs');
type Row = Record<string, number>;

suite('watch training runs and the experiment grid', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'headlens-watch-'));
  suiteSetup(async () => {
    await headLens();
  });
  suiteTeardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('Watch Training Run on the fixture log: the monitor receives its points, and those appended later', async () => {
    const expected = JSON.parse(fs.readFileSync(path.join(RUNS, 'expected.json'), 'utf8'))['nanogpt.log'] as { iter_lines: Row[]; eval_lines: Row[] };
    const text = fs.readFileSync(path.join(RUNS, 'nanogpt.log'), 'utf8');
    const log = path.join(tmp, 'train.log');
    const cut = text.indexOf('iter 15:');
    fs.writeFileSync(log, text.slice(0, cut));
    const handle = await vscode.commands.executeCommand<WatchHandle>('headlens.watchRun', log, { preset: 'nanogpt' });
    assert.ok(handle?.id, 'the command returns the watched run');
    const loss = () => handle.series().loss ?? [];
    await until(() => loss().length === 15, 'iterations 0..14 in the monitor');
    fs.appendFileSync(log, text.slice(cut));
    await until(() => loss().length === expected.iter_lines.length, `all ${expected.iter_lines.length} iterations`);
    assert.deepEqual(loss(), expected.iter_lines.map((r) => [r.iter, r.loss]));
    await until(() => (handle.series().val_loss ?? []).length === expected.eval_lines.length, 'the evaluations');
    assert.deepEqual(handle.series().val_loss, expected.eval_lines.map((r) => [r.step, r.val_loss]));
    handle.remove();
    assert.deepEqual(handle.series(), {});
  });

  test('Run Experiment Grid on a one-variant, two-step spec returns its table and exports it', async () => {
    const corpus = path.join(tmp, 'corpus');
    fs.mkdirSync(corpus);
    fs.writeFileSync(path.join(corpus, 'sample.py'), fs.readFileSync(path.join(REPO, 'media', 'samples', 'attention.py'), 'utf8').repeat(4));
    const spec = path.join(tmp, 'grid.json');
    fs.writeFileSync(spec, JSON.stringify({
      family: 'autoresearch',
      base: { vocab_size: 50257, n_layer: 2, n_embd: 32, n_head: 2, sequence_len: 16, window_pattern: 'SL' },
      data: ['corpus'],
      budget: { steps: 2 },
      train: { batchSize: 2, seqLen: 16, warmup: 0, evalIters: 1 },
      variants: [{ id: 'A', change: 'softcap 30', wave: 1, config: { softcap: 30 } }],
    }));
    const table = await vscode.commands.executeCommand<GridTable | undefined>('headlens.runGrid', spec);
    assert.ok(table, 'the grid failed');
    assert.deepEqual(table.rows.map((r) => [r.id, r.status]), [['baseline', 'done'], ['A', 'done']]);
    for (const r of table.rows) assert.ok(Number.isFinite(r.valLoss), `${r.id} has a val loss`);
    assert.ok(fs.existsSync(path.join(tmp, 'grid.results.csv')));
    assert.ok(fs.existsSync(table.rows[1].checkpoints[0]), "A's checkpoint is on disk");
  });
});
