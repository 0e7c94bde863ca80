/**
 * The experiment grid (engine/grid): the spec's checks (one line naming the field), the wave rules
 * on synthetic results (the winner by lowest val loss or as chosen, later waves from it, `=`
 * expressions on the winner's config, winners combined one per group, shared runs, low priority
 * skipped, seed spreads computed by hand), the seed's template, CSV; then a 2-variant, 3-step grid
 * end to end through the real CLI bundle: its table lists both variants with the val losses their
 * runs wrote, and after the process is killed during the last variant a second start runs only
 * that one.
 */
import { test, describe, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BadInputError } from '../engine/errors';
import { parseGridSpec, type GridSpec } from '../engine/grid/spec';
import { checkVariants, planGrid, sampleStd } from '../engine/grid/plan';
import { emptyState, type GridState, type RunOutcome } from '../engine/grid/state';
import { gridTemplate } from '../engine/grid/template';
import { gridCsv } from '../engine/grid/table';
import type { GridRow, GridTable } from '../engine/protocol';
import { ENGINE_JS, REPO } from './helpers/fixtures';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'headlens-grid-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const SPEC_FILE = path.join(tmp, 'specs', 'g.json');

const BASE = { vocab_size: 50257, n_layer: 2, n_embd: 32, n_head: 4, sequence_len: 16, window_pattern: 'SL' };

function spec(extra: Record<string, unknown> = {}): GridSpec {
  return parseGridSpec({ family: 'autoresearch', base: BASE, data: ['../corpus'], budget: { steps: 3 }, train: { seqLen: 16 }, variants: [], ...extra }, SPEC_FILE);
}

/** Pretends the runs finished with these val losses (per variant: one per seed), replanning as waves open. */
function finish(s: GridSpec, state: GridState, losses: Record<string, number | number[]>): GridTable {
  for (;;) {
    const plan = planGrid(s, state);
    const todo = plan.next.filter((r) => losses[r.variant] !== undefined);
    if (!todo.length) return plan.table;
    for (const r of todo) {
      const l = losses[r.variant];
      const valLoss = Array.isArray(l) ? l[s.seeds.indexOf(r.seed)] : l;
      const result: RunOutcome = { valLoss, bpb: valLoss / Math.LN2 / 4, tokPerS: 100, params: 1, wallS: 1, steps: 3, timeLimited: false, checkpoint: path.join(r.dir, 'last.safetensors') };
      state.runs[r.key] = { key: r.key, variant: r.variant, seed: r.seed, dir: r.dir, status: 'done', config: r.config, result, startedAt: '' };
    }
  }
}

const row = (t: GridTable, id: string): GridRow => {
  const r = t.rows.find((x) => x.id === id);
  assert.ok(r, `no row ${id} in ${t.rows.map((x) => x.id)}`);
  return r;
};

const WAVES = [
  { id: 'W1', change: 'window LL', wave: 1, config: { window_pattern: 'LL' } },
  { id: 'W2', change: 'window L', wave: 1, config: { window_pattern: 'L' } },
  { id: 'S1', change: 'softcap 30', wave: 1, config: { softcap: 30 } },
  { id: 'G', change: 'GQA', wave: 2, config: { n_kv_head: '=n_head/2' } },
  { id: 'C', change: 'combine', wave: 3, combine: true },
];

describe('grid spec checks', () => {
  const bad: [string, Record<string, unknown>, RegExp][] = [
    ['an unknown top-level field', { varients: [] }, /g\.json: varients: unknown field/],
    ['no steps in the budget', { budget: { seconds: 10 } }, /budget\.steps: expected a whole number/],
    ['a variant id used twice', { variants: [WAVES[0], { ...WAVES[1], id: 'W1' }] }, /variants\[1\]\.id: 'W1' is used twice/],
    ['a variant named baseline', { variants: [{ ...WAVES[0], id: 'baseline' }] }, /variants\[0\]\.id: 'baseline' is the base config's own row/],
    ['a variant that changes nothing', { variants: [{ id: 'X', wave: 1, config: {} }] }, /variants\[0\]\.config: changes nothing/],
    ['a broken expression', { variants: [{ id: 'X', wave: 1, config: { n_kv_head: '=n_head/' } }] }, /variants\[0\]\.config\.n_kv_head: '=n_head\/' is not arithmetic/],
    ['a choice of a variant of another wave', { variants: WAVES, choose: { wave1: 'G' } }, /choose\.wave1: expected one of W1, W2, S1 or "none", got "G"/],
    ['a wave rule for a wave nobody is in', { variants: WAVES, waves: { 7: { from: 'winner' } } }, /waves\.7: no variant is in wave 7/],
    ['a priority that is not normal/low', { variants: [{ ...WAVES[0], priority: 'urgent' }] }, /variants\[0\]\.priority: expected "normal" or "low"/],
    ['data that holds the spec itself', { data: ['.'], variants: WAVES }, /data\[0\]: .* holds the grid's own files \(g\.json\)/],
    ['seeds listed twice', { seeds: [1, 1], variants: WAVES }, /seeds: lists a seed twice/],
  ];
  for (const [label, extra, message] of bad) {
    test(label, () => {
      assert.throws(() => spec({ variants: WAVES, ...extra }), (e: unknown) => e instanceof BadInputError && message.test(e.message) && !e.message.includes('\n'));
    });
  }

  test('a config key the family does not have, and a config the family refuses, name the variant', () => {
    assert.throws(() => checkVariants(spec({ variants: [{ id: 'T', wave: 1, config: { window_patern: 'SL' } }] })), /variants\[0\] \(T\)\.window_patern: not a config key of the autoresearch family/);
    assert.throws(() => checkVariants(spec({ variants: [{ id: 'K', wave: 1, config: { n_kv_head: 3 } }] })), /variants\[0\] \(K\): .*n_head 4 must be a multiple of n_kv_head 3/);
  });

  test('paths are relative to the spec; the state file lies beside it; out defaults to <spec>.grid', () => {
    const s = spec({ variants: WAVES });
    assert.deepEqual(s.data, [path.join(tmp, 'corpus')]);
    assert.equal(s.stateFile, path.join(tmp, 'specs', 'g.state.json'));
    assert.equal(s.out, path.join(tmp, 'specs', 'g.grid'));
  });
});

describe('grid waves on synthetic results', () => {
  test('the lowest val loss below the baseline wins; wave 2 starts from it with its expressions on the winner', () => {
    const s = spec({ variants: WAVES });
    const state = emptyState(s);
    const t = finish(s, state, { baseline: 3, W1: 2.9, W2: 2.8, S1: 2.95, G: 2.7 });
    assert.equal(row(t, 'W2').winner, true);
    assert.deepEqual(t.waves[0], { wave: 1, from: 'baseline', winner: 'W2', reason: 'lowest val loss (2.8000 vs 3.0000 for baseline)' });
    const g = row(t, 'G');
    assert.equal(g.from, 'W2');
    assert.deepEqual(g.changes, { n_kv_head: 2 });
    const run = Object.values(state.runs).find((r) => r.variant === 'G')!;
    assert.equal(run.config.window_pattern, 'L', "wave 2 carries wave 1's winner");
    assert.ok(Math.abs(g.delta! - -0.3) < 1e-12);
  });

  test('choose overrides the lowest loss, and the next wave follows the choice', () => {
    const s = spec({ variants: WAVES, choose: { wave1: 'S1' } });
    const t = finish(s, emptyState(s), { baseline: 3, W1: 2.9, W2: 2.8, S1: 2.95, G: 2.7 });
    assert.equal(t.waves[0].winner, 'S1');
    assert.match(t.waves[0].reason, /chosen in the spec/);
    assert.equal(row(t, 'G').from, 'S1');
    assert.equal(row(t, 'W2').winner, false);
  });

  test('when nothing beats the baseline the next wave starts from it', () => {
    const s = spec({ variants: WAVES });
    const t = finish(s, emptyState(s), { baseline: 2, W1: 2.9, W2: 2.8, S1: 2.95, G: 1.9 });
    assert.equal(t.waves[0].winner, null);
    assert.match(t.waves[0].reason, /none beat baseline \(best: W2/);
    assert.equal(row(t, 'G').from, 'baseline');
  });

  test('later waves wait for the earlier ones; the combination merges the best of each group', () => {
    const s = spec({ variants: WAVES });
    const state = emptyState(s);
    const partial = finish(s, state, { baseline: 3, W1: 2.9 });
    assert.equal(row(partial, 'G').status, 'waiting');
    assert.equal(row(partial, 'C').status, 'waiting');
    const t = finish(s, state, { W2: 2.8, S1: 2.95, G: 2.7, C: 2.6 });
    // improvers: G (0.1 over W2), W2 (0.2), W1 (0.1), S1 (0.05); one per group: W2 then G then S1 (W1 shares W2's group)
    assert.equal(row(t, 'C').change, 'combine (W2 + G + S1)');
    const c = Object.values(state.runs).find((r) => r.variant === 'C')!.config;
    assert.deepEqual([c.window_pattern, c.n_kv_head, c.softcap], ['L', 2, 30]);
    assert.equal(t.done, true);
  });

  test('two variants with the same full config share one run', () => {
    const s = spec({ variants: [WAVES[0], { id: 'same', wave: 1, config: { window_pattern: 'LL' } }] });
    const t = finish(s, emptyState(s), { baseline: 3, W1: 2.5 });
    assert.equal(row(t, 'same').valLoss, 2.5);
    assert.match(row(t, 'same').note ?? '', /the same config as W1/);
  });

  test('low-priority variants run after the others of their wave, or not at all with lowPriority "skip"', () => {
    const variants = [{ ...WAVES[0], priority: 'low' }, WAVES[1]];
    const s = spec({ variants });
    const plan = planGrid(s, emptyState(s));
    const state = emptyState(s);
    finish(s, state, { baseline: 3 });
    assert.deepEqual(planGrid(s, state).next.map((r) => r.variant), ['W2', 'W1']);
    assert.equal(plan.next.length, 1);
    const skip = spec({ variants, lowPriority: 'skip' });
    const t = finish(skip, emptyState(skip), { baseline: 3, W2: 2 });
    assert.equal(row(t, 'W1').status, 'skipped');
    assert.equal(t.done, true);
  });

  test('with three seeds: the mean, the sample standard deviation, and Δ ± √(std² + std_baseline²)', () => {
    const s = spec({ variants: [WAVES[0]], seeds: [1, 2, 3] });
    const t = finish(s, emptyState(s), { baseline: [3.0, 3.2, 3.1], W1: [2.9, 2.7, 2.8] });
    const b = row(t, 'baseline'), w = row(t, 'W1');
    assert.ok(Math.abs(b.valLoss! - 3.1) < 1e-12 && Math.abs(w.valLoss! - 2.8) < 1e-12);
    assert.ok(Math.abs(b.valLossStd! - 0.1) < 1e-12 && Math.abs(w.valLossStd! - 0.1) < 1e-12); // √((0.01+0.01+0)/2)
    assert.ok(Math.abs(w.deltaStd! - Math.SQRT2 * 0.1) < 1e-12);
    assert.ok(Math.abs(w.delta! - -0.3) < 1e-12);
    assert.equal(sampleStd([1]), null);
    assert.deepEqual(w.dirs.map((d) => path.basename(d)), ['W1-seed1', 'W1-seed2', 'W1-seed3']);
  });
});

describe('the built-in template and the exports', () => {
  test("the template is the seed's table on a model that checks", () => {
    const s = parseGridSpec(JSON.parse(JSON.stringify(gridTemplate('autoresearch', ['../corpus']))), SPEC_FILE);
    checkVariants(s);
    assert.deepEqual(s.variants.map((v) => `${v.id}:${v.wave}${v.priority === 'low' ? 'L' : ''}`), ['2A:1', '2C:1', '5A:1', '5B:1', '6A:1', '6B:1', '2B:1L', '2D:1L', '5C:1L', '7A:2', '4A:2', '4B:2L', '4C:2', '3A:3']);
    const t = planGrid(s, emptyState(s)).table;
    assert.equal(row(t, 'baseline').params! > 0, true);
    assert.deepEqual(row(t, '6B').changes, { softcap: null });
    assert.throws(() => gridTemplate('nanogpt'), /unknown grid template 'nanogpt'/);
  });

  test('CSV: a header, one line per row, commas and quotes quoted, CRLF', () => {
    const s = spec({ variants: [{ id: 'Q', change: 'a "quoted", changed thing', wave: 1, config: { softcap: 30 } }] });
    const csv = gridCsv(finish(s, emptyState(s), { baseline: 3, Q: 2.5 }));
    const lines = csv.split('\r\n');
    assert.equal(lines[0].split(',')[0], 'id');
    assert.equal(lines.length, 4); // header, 2 rows, the final empty string
    assert.ok(lines[2].startsWith('Q,"a ""quoted"", changed thing",1,normal,baseline,done,1,1,2.5,'), lines[2]);
  });
});

// ---------------------------------------------------------------------------------------------
// Through the CLI

const CORPUS = path.join(tmp, 'cli', 'corpus');
const CLI_SPEC = path.join(tmp, 'cli', 'spec.json');

function writeCliSpec(): void {
  fs.mkdirSync(CORPUS, { recursive: true });
  // text enough for 16-token windows in both splits: the sample the extension ships, many times
  const text = fs.readFileSync(path.join(REPO, 'media', 'samples', 'attention.py'), 'utf8').repeat(4);
  fs.writeFileSync(path.join(CORPUS, 'notes.txt'), text);
  fs.writeFileSync(CLI_SPEC, JSON.stringify({
    name: 'two variants',
    family: 'autoresearch',
    base: BASE,
    data: ['corpus'],
    budget: { steps: 3 },
    train: { batchSize: 2, seqLen: 16, lr: 0.003, warmup: 0, evalIters: 1 },
    variants: [
      { id: 'A', change: 'no value embeddings', wave: 1, config: { value_embeds: 'none' } },
      { id: 'B', change: 'softcap 30', wave: 1, config: { softcap: 30 } },
    ],
  }));
}

/** The last val_loss a run's metrics.jsonl holds (what the trainer measured). */
function lastValLoss(dir: string): number {
  const rows = fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { kind?: string; val_loss?: number });
  return rows.filter((r) => r.kind === 'eval').pop()!.val_loss!;
}

describe('headlens grid through the CLI bundle', () => {
  test('a bad spec is one line naming the field, exit 2', () => {
    fs.mkdirSync(path.dirname(CLI_SPEC), { recursive: true });
    const bad = path.join(tmp, 'cli', 'bad.json');
    fs.writeFileSync(bad, JSON.stringify({ base: BASE, data: ['corpus'], budget: { steps: 0 }, variants: [WAVES[0]] }));
    const r = spawnSync(process.execPath, [ENGINE_JS, 'grid', bad], { encoding: 'utf8' });
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /bad\.json: budget\.steps: expected a whole number of optimizer steps/);
  });

  test('--template prints a spec that the grid reads', () => {
    const r = spawnSync(process.execPath, [ENGINE_JS, 'grid', '--template', 'autoresearch', '--data', 'text/'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const s = parseGridSpec(JSON.parse(r.stdout), SPEC_FILE);
    assert.deepEqual(s.data, [path.join(tmp, 'specs', 'text')]);
    assert.equal(s.variants.length, 14);
  });

  test('a time budget stops each run after that many training seconds and still measures it', () => {
    const dir = path.join(tmp, 'timed');
    fs.mkdirSync(dir, { recursive: true });
    writeCliSpec();
    const spec = JSON.parse(fs.readFileSync(CLI_SPEC, 'utf8')) as Record<string, unknown>;
    const file = path.join(dir, 'timed.json');
    fs.writeFileSync(file, JSON.stringify({ ...spec, data: [CORPUS], budget: { steps: 10_000, seconds: 0.5 }, variants: [(spec.variants as unknown[])[0]] }));
    const r = spawnSync(process.execPath, [ENGINE_JS, 'grid', file, '--backend', 'wasm'], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, r.stderr);
    const table = JSON.parse(fs.readFileSync(path.join(dir, 'timed.results.json'), 'utf8')) as GridTable;
    for (const id of ['baseline', 'A']) {
      const rows = fs.readFileSync(path.join(dir, 'timed.grid', id, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { kind?: string; step: number; elapsed_s?: number; val_loss?: number });
      const steps = rows.filter((x) => x.kind === undefined);
      assert.ok(steps.length >= 1 && steps.length < 10_000, `${id}: ${steps.length} steps`);
      // it stops at the first step that reaches the budget: the steps before it had less
      assert.ok(steps.slice(0, -1).reduce((a, x) => a + x.elapsed_s!, 0) < 0.5);
      const last = rows[rows.length - 1];
      assert.equal(last.kind, 'eval');
      assert.equal(last.step, steps.length);
      assert.equal(row(table, id).valLoss, last.val_loss);
      assert.match(row(table, id).note ?? '', new RegExp(`stopped by the time budget at step ${steps.length}`));
    }
  });

  test('2 variants × 3 steps: the table lists both with their losses; killed during the last variant, it resumes with that one only', async () => {
    writeCliSpec();
    // first start: killed as soon as B has started (baseline and A finished)
    const first = spawn(process.execPath, [ENGINE_JS, 'grid', CLI_SPEC, '--backend', 'wasm'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    await new Promise<void>((resolve, reject) => {
      first.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        if (/\] B \(seed 1337\): started/.test(stderr)) {
          first.kill('SIGKILL');
          resolve();
        }
      });
      first.on('exit', (code) => reject(new Error(`the grid ended (${code}) before B started:\n${stderr}`)));
    });
    await new Promise((r) => first.once('exit', r));
    assert.match(stderr, /baseline \(seed 1337\): finished/);
    assert.match(stderr, /\] A \(seed 1337\): finished/);
    const out = path.join(path.dirname(CLI_SPEC), 'spec.grid');
    const aCheckpoint = path.join(out, 'A', 'last.safetensors');
    const aMtime = fs.statSync(aCheckpoint).mtimeMs;
    const state = JSON.parse(fs.readFileSync(path.join(path.dirname(CLI_SPEC), 'spec.state.json'), 'utf8')) as GridState;
    assert.deepEqual(Object.values(state.runs).map((r) => `${r.variant}:${r.status}`).sort(), ['A:done', 'B:running', 'baseline:done']);

    // second start: only B runs
    const second = spawnSync(process.execPath, [ENGINE_JS, 'grid', CLI_SPEC, '--backend', 'wasm'], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(second.status, 0, second.stderr);
    const started = [...second.stderr.matchAll(/\] (\S+) \(seed 1337\): started/g)].map((m) => m[1]);
    assert.deepEqual(started, ['B'], second.stderr);
    assert.equal(fs.statSync(aCheckpoint).mtimeMs, aMtime, "A's checkpoint is not rewritten");

    // the table: every row with the val loss its run measured
    const lines = second.stdout.trim().split('\n');
    for (const id of ['baseline', 'A', 'B']) {
      const line = lines.find((l) => new RegExp(`^[ *]${id} `).test(l));
      assert.ok(line, `no table line for ${id}:\n${second.stdout}`);
      assert.ok(line.includes(lastValLoss(path.join(out, id)).toFixed(4)), `${id}'s val loss in: ${line}`);
      assert.match(line, /\bdone\b/);
    }
    const table = JSON.parse(fs.readFileSync(path.join(path.dirname(CLI_SPEC), 'spec.results.json'), 'utf8')) as GridTable;
    for (const id of ['A', 'B']) assert.equal(row(table, id).valLoss, lastValLoss(path.join(out, id)));
    assert.equal(row(table, 'A').params! < row(table, 'B').params!, true, 'without value embeddings A has fewer parameters');
    assert.ok(fs.readFileSync(path.join(path.dirname(CLI_SPEC), 'spec.results.csv'), 'utf8').split('\r\n')[2].startsWith('A,no value embeddings,1,'));

    // a third start does nothing at all
    const third = spawnSync(process.execPath, [ENGINE_JS, 'grid', CLI_SPEC, '--backend', 'wasm'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(third.status, 0, third.stderr);
    assert.doesNotMatch(third.stderr, /started/);
  });
});
