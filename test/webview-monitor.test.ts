/**
 * The training monitor's watched runs in a real browser (Debian's chromium through
 * playwright-core, as test/webview.test.ts drives the other views), on runs built here so every
 * expected line is known: two runs overlaid (one line each in every chart of a series both have,
 * in the legend's colours), live points extending a line, a run switched off and the choice kept
 * over a reload, checkpoint marks and buttons posting the checkpoint to analyse, remove, a grid
 * folder's files as separate lines, the probe curves (a chart per layer, a line per head), the
 * grid's table with its winner and checkpoint buttons.
 */
import { test, describe, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import type { GridTable, MonitorRunSnapshot, RunProbeResult, RunWatchEvent } from '../engine/protocol';
import { WebviewPages } from './helpers/webviewPage';

type Posted = { type: string; path?: string; runId?: string };
const pages = new WebviewPages<Posted>({ bundle: 'monitor', css: ['monitor.css'], viewport: { width: 420, height: 1400 } });
const { load, send, posted, pageState, errors } = pages;

/** `loss` and `lr` at steps 0, 10, …: run `r` is offset so the two are told apart. */
function pointsEvent(file: string, steps: number[], offset: number, series = ['loss', 'lr']): RunWatchEvent {
  return { kind: 'points', file, segment: 0, series: Object.fromEntries(series.map((s, k) => [s, { steps, values: steps.map((x) => offset + k + 5 / (1 + x)) }])) };
}

function run(id: string, label: string, events: RunWatchEvent[], probes: MonitorRunSnapshot['probes'] = []): MonitorRunSnapshot {
  return { id, label, path: `/runs/${label}`, events: [{ kind: 'file', file: 'train.log', path: `/runs/${label}/train.log`, format: 'log' }, ...events, { kind: 'caught-up', files: 1, points: 1 }], probes };
}

const STEPS_A = [0, 10, 20, 30, 40], STEPS_B = [0, 5, 10, 15, 20, 25, 30];
const twoRuns = () => [run('watch-1', 'nano', [pointsEvent('train.log', STEPS_A, 0)]), run('watch-2', 'auto', [pointsEvent('train.log', STEPS_B, 1, ['loss', 'val_loss'])])];

/** The loss chart's lines: their stroke and how many vertices each has. */
async function lines(page: Page, series: string): Promise<{ stroke: string; vertices: number; id: string }[]> {
  return page.locator(`div.chart[data-series="${series}"] path.line`).evaluateAll((els) => els.map((e) => ({ stroke: e.getAttribute('stroke') ?? '', vertices: (e.getAttribute('d')?.match(/[ML]/g) ?? []).length, id: e.getAttribute('data-id') ?? '' })));
}

function probe(step: number, value: number): RunProbeResult {
  const L = 2, H = 3;
  return { checkpoint: `/runs/auto/ckpt_${step}.pt`, step, family: 'autoresearch', layers: L, heads: H, tokens: 64, meanNll: 3 - step / 100, entropy: Array.from({ length: L * H }, (_, i) => value + i), signals: { veGate: Array.from({ length: L * H }, (_, i) => 1 + value / 10 + i / 100) } };
}

describe('the monitor webview in chromium: watched runs', () => {
  before(pages.launch);
  after(pages.close);

  test('two runs overlaid: a line each in the legend colours, a chart per series, live points extend a line', async () => {
    const page = await load();
    await send(page, { type: 'monitor/runs', runs: twoRuns(), grid: null });
    await page.locator('div.chart[data-series="loss"] path.line').nth(1).waitFor();
    assert.equal(await page.locator('.legend .run').count(), 2);
    const loss = await lines(page, 'loss');
    assert.deepEqual(loss.map((l) => l.vertices), [STEPS_A.length, STEPS_B.length]);
    const swatches = await page.locator('.legend .run .run-head .swatch').evaluateAll((els) => els.map((e) => getComputedStyle(e).backgroundColor));
    const strokes = await page.locator('div.chart[data-series="loss"] path.line').evaluateAll((els) => els.map((e) => getComputedStyle(e).stroke));
    assert.deepEqual(strokes, swatches, 'each line has its run\'s legend colour');
    assert.notEqual(strokes[0], strokes[1]);
    // a series only one run has gets a chart with its line alone
    assert.equal((await lines(page, 'lr')).length, 1);
    assert.equal((await lines(page, 'val_loss')).length, 1);
    const order = await page.locator('.watch-charts div.chart').evaluateAll((els) => els.map((e) => e.getAttribute('data-series')));
    assert.deepEqual(order.slice(0, 2), ['loss', 'val_loss'], `losses first: ${order}`);
    await send(page, { type: 'monitor/runEvent', runId: 'watch-1', event: pointsEvent('train.log', [50, 60], 0) });
    await page.waitForFunction((n) => (document.querySelector('div.chart[data-series="loss"] path.line')?.getAttribute('d')?.match(/[ML]/g) ?? []).length === n, STEPS_A.length + 2);
    await page.close();
  });

  test('a run switched off leaves the charts, and stays off after a reload', async () => {
    const page = await load();
    await send(page, { type: 'monitor/runs', runs: twoRuns(), grid: null });
    await page.locator('div.chart[data-series="loss"] path.line').nth(1).waitFor();
    await page.locator('.legend .run[data-run="watch-1"] input.toggle').uncheck();
    await page.waitForFunction(() => document.querySelectorAll('div.chart[data-series="loss"] path.line').length === 1);
    assert.equal((await lines(page, 'loss'))[0].vertices, STEPS_B.length);
    assert.equal(await page.locator('div.chart[data-series="lr"]').count(), 0, 'a chart of the hidden run alone goes');
    const saved = await pageState(page);
    assert.deepEqual((saved as { hidden: string[] }).hidden, ['watch-1']);
    await page.close();
    const again = await load(saved);
    await send(again, { type: 'monitor/runs', runs: twoRuns(), grid: null });
    await again.locator('div.chart[data-series="loss"] path.line').first().waitFor();
    assert.equal((await lines(again, 'loss')).length, 1);
    assert.equal(await again.locator('.legend .run[data-run="watch-1"] input.toggle').isChecked(), false);
    await again.close();
  });

  test('checkpoints: a mark under the curves and a button, each posting the checkpoint to analyse; remove posts the run', async () => {
    const page = await load();
    await send(page, { type: 'monitor/runs', runs: twoRuns(), grid: null });
    const ckpt = { path: '/runs/nano/ckpt_000020.pt', step: 20, mtimeMs: 1, size: 10, family: 'gpt2', layers: 2, heads: 2, paramCount: 1000 };
    await send(page, { type: 'monitor/runEvent', runId: 'watch-1', event: { kind: 'checkpoint', checkpoint: ckpt } });
    const mark = page.locator('div.chart[data-series="loss"] path.ckpt-mark');
    await mark.waitFor();
    assert.equal(await mark.count(), 1);
    // the mark sits at step 20 on the x axis: where run A's line has its step-20 vertex
    const xs = await page.evaluate(() => {
      const d = document.querySelector('div.chart[data-series="loss"] path.line[data-id^="watch-1"]')!.getAttribute('d')!;
      const markD = document.querySelector('div.chart[data-series="loss"] path.ckpt-mark')!.getAttribute('d')!;
      return { line: [...d.matchAll(/[ML]([-\d.]+),/g)].map((m) => Number(m[1])), mark: Number(/^M([-\d.]+),/.exec(markD)![1]) };
    });
    assert.ok(Math.abs(xs.mark - xs.line[STEPS_A.indexOf(20)]) < 0.01, `mark at ${xs.mark}, step 20 at ${xs.line[2]}`);
    await mark.click();
    assert.deepEqual((await posted(page)).filter((m) => m.type === 'monitor/analyzeCheckpoint').pop(), { type: 'monitor/analyzeCheckpoint', path: ckpt.path });
    await page.locator('.legend .run[data-run="watch-1"] button.ckpt').click();
    assert.equal((await posted(page)).filter((m) => m.type === 'monitor/analyzeCheckpoint').length, 2);
    assert.match(await page.locator('.legend .run[data-run="watch-1"] button.ckpt').innerText(), /step 20 · ckpt_000020\.pt/);
    await page.locator('.legend .run[data-run="watch-1"] button.across').click();
    assert.deepEqual((await posted(page)).filter((m) => m.type === 'monitor/analyzeAcross').pop(), { type: 'monitor/analyzeAcross', runId: 'watch-1' });
    await page.locator('.legend .run[data-run="watch-2"] button.remove').click();
    assert.deepEqual((await posted(page)).filter((m) => m.type === 'monitor/removeRun').pop(), { type: 'monitor/removeRun', runId: 'watch-2' });
    await send(page, { type: 'monitor/runRemoved', runId: 'watch-2' });
    await page.waitForFunction(() => document.querySelectorAll('.legend .run').length === 1);
    await page.close();
  });

  test("a grid folder's files are separate lines with their own colours and toggles", async () => {
    const page = await load();
    const events: RunWatchEvent[] = ['baseline', 'A', 'B'].flatMap((v, i) => [
      { kind: 'file', file: `${v}/metrics.jsonl`, path: `/g/${v}/metrics.jsonl`, format: 'jsonl' } as RunWatchEvent,
      pointsEvent(`${v}/metrics.jsonl`, [0, 1, 2], i, ['loss']),
    ]);
    await send(page, { type: 'monitor/runs', runs: [{ id: 'watch-3', label: 'grid: demo', path: '/g', events, probes: [] }], grid: null });
    await page.locator('div.chart[data-series="loss"] path.line').nth(2).waitFor();
    assert.equal(await page.locator('.legend .run[data-run="watch-3"] label.file').count(), 3);
    const strokes = (await lines(page, 'loss')).map((l) => l.stroke);
    assert.equal(new Set(strokes).size, 3);
    await page.locator('.legend label.file[data-key="watch-3|A/metrics.jsonl"] input').uncheck();
    await page.waitForFunction(() => document.querySelectorAll('div.chart[data-series="loss"] path.line').length === 2);
    await page.close();
  });

  test('probe curves: a chart per layer with a line per head over the checkpoints; the signal can be chosen', async () => {
    const page = await load();
    const runs = twoRuns();
    runs[1].probes = [{ probe: probe(10, 1), source: 'probe' }];
    await send(page, { type: 'monitor/runs', runs, grid: null });
    await send(page, { type: 'monitor/runProbe', runId: 'watch-2', probe: probe(20, 0.5), source: 'probe' });
    await page.locator('.probes div.chart[data-layer="1"]').waitFor();
    assert.equal(await page.locator('.probes select.probe-signal').inputValue(), 'veGate', 'the family\'s signal first');
    for (const layer of ['0', '1']) {
      const heads = await page.locator(`.probes div.chart[data-layer="${layer}"] path.line`).evaluateAll((els) => els.map((e) => (e.getAttribute('d')?.match(/[ML]/g) ?? []).length));
      assert.deepEqual(heads, [2, 2, 2], `layer ${layer}: 3 heads, 2 checkpoints`);
    }
    await page.locator('.probes select.probe-signal').selectOption('entropy');
    await page.locator('.probes div.chart[data-signal="entropy"]').first().waitFor();
    assert.equal(await page.locator('.probes div.chart#probe-nll path.line').count(), 1);
    await page.close();
  });

  test("the grid's table: a row per variant, the winner marked, a checkpoint one click from an analysis", async () => {
    const page = await load();
    const rowOf = (id: string, valLoss: number, winner = false) => ({ id, change: id === 'baseline' ? 'the base config' : `change ${id}`, wave: id === 'baseline' ? 0 : 1, priority: 'normal' as const, from: id === 'baseline' ? null : 'baseline', changes: {}, status: 'done' as const, seedsDone: 1, seeds: 1, valLoss, valLossStd: null, bpb: valLoss / 3, tokPerS: 1500, params: 4_850_000, wallS: 4.2, delta: valLoss - 3, deltaStd: null, winner, checkpoints: [`/g/${id}/last.safetensors`], dirs: [`/g/${id}`] });
    const table: GridTable = { name: 'demo', spec: '/g.json', out: '/g.grid', stateFile: '/g.state.json', exports: { json: '/g.results.json', csv: '/g.results.csv' }, rows: [rowOf('baseline', 3), rowOf('A', 2.5, true), rowOf('B', 2.75)], waves: [{ wave: 1, from: 'baseline', winner: 'A', reason: 'lowest val loss' }], notes: [], done: true };
    await send(page, { type: 'monitor/grid', table });
    await page.locator('table.grid-table tbody tr').nth(2).waitFor();
    assert.equal(await page.locator('table.grid-table tbody tr').count(), 3);
    assert.deepEqual(await page.locator('table.grid-table tr.winner').evaluateAll((els) => els.map((e) => e.getAttribute('data-id'))), ['A']);
    assert.match(await page.locator('table.grid-table tr[data-id="A"]').innerText(), /2\.5000[\s\S]*−0\.5000/);
    await page.locator('table.grid-table tr[data-id="B"] button.ckpt').click();
    assert.deepEqual((await posted(page)).filter((m) => m.type === 'monitor/analyzeCheckpoint').pop(), { type: 'monitor/analyzeCheckpoint', path: '/g/B/last.safetensors' });
    assert.match(await page.locator('.grid p.wave').innerText(), /wave 1 from baseline: winner A/);
    await page.close();
  });

  test('no page errors', () => {
    assert.deepEqual(errors, []);
  });
});
