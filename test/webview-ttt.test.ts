/**
 * The LoRA-TTT chunk timeline (webview/tttTimeline.ts) in a real browser (Debian's chromium through
 * playwright-core, as the other webview tests), on a run built here so every expected mark is known:
 * a point per chunk for the score and the base loss and one per trained chunk for the loss after;
 * one heatmap row per module and layer plus the head, one cell per chunk, each module kind's largest ‖ΔW‖
 * in its scale's top colour and every cell titled with its value; the table's rows; a click on a chunk
 * asks the host to reveal it and the choice survives a reload.
 */
import { test, describe, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { encodeArray } from '../engine/codec';
import type { TttChunkEvent, TttRunResult } from '../engine/protocol';
import { WebviewPages } from './helpers/webviewPage';

// the theme's chart colours, as VS Code sets them on the body
const THEME = `--vscode-editor-background: #000000; --vscode-charts-blue: #0000ff; --vscode-charts-orange: #ff8000;`;

type Posted = { type: string; chunk?: number };
const pages = new WebviewPages<Posted>({ bundle: 'tttTimeline', css: ['tttTimeline.css'], viewport: { width: 640, height: 1000 }, bodyStyle: THEME });
const { send, posted, pageState, errors } = pages;

const LAYERS = 2, CHUNKS = 4;
/** ‖ΔW‖ of module m at layer l after chunk c: distinct everywhere, largest for mlp L1 at the last trained chunk. */
const dw = (m: number, l: number, c: number) => (c + 1) * 0.01 + m * 0.001 + l * 0.0001;

function run(): TttRunResult {
  const chunks: TttChunkEvent[] = Array.from({ length: CHUNKS }, (_, c) => ({
    chunk: c,
    chunks: CHUNKS,
    start: c * 5,
    end: c * 5 + 5,
    windowStart: 0,
    trained: c < CHUNKS - 1,
    lossBefore: 5 - c * 0.5,
    lossAfter: 4.5 - c * 0.5,
    lossBase: 5.2,
    deltaFro: { layers: Object.fromEntries(['q', 'k', 'v', 'o', 'mlp'].map((m, mi) => [m, Array.from({ length: LAYERS }, (_, l) => dw(mi, l, Math.min(c, CHUNKS - 2)))])), head: 0.005 * (c + 1) },
  }));
  const N = CHUNKS * 5 + 1;
  const tokens = Array.from({ length: N }, (_, i) => ({ index: i, id: i, text: ` t${i}`, start: 3 * i, end: 3 * i + 3 }));
  const zeros = encodeArray(new Float32Array(N), [N]);
  return {
    tokens,
    nll: zeros,
    nllBase: zeros,
    chunks,
    val_loss: 4.25,
    val_bpb: 1.5,
    val_loss_base: 5.2,
    settings: { chunk: 5, evalLen: 64, rank: 4, alpha: 4.5, lr: 0.01, betas: [0, 0.999], eps: 1e-10, weightDecay: 1, modules: ['q', 'k', 'v', 'o', 'mlp', 'head'] },
    layers: LAYERS,
    signal: { name: 'tttDelta', scope: 'chunk', label: 'LoRA-TTT ‖ΔW‖', description: '', mechanism: 'LoRA-TTT', perLayer: true },
    backend: 'wasm',
    family: 'gpt2',
  };
}

/** The timeline drawn from run(), starting from `savedState` when given. */
async function load(savedState?: unknown): Promise<Page> {
  const page = await pages.load(savedState);
  await send(page, { type: 'ttt/timeline', source: 'doc.py', result: run() });
  await page.locator('table.chunks tbody tr').nth(CHUNKS - 1).waitFor();
  return page;
}

const titles = (page: Page, sel: string) => page.locator(sel).evaluateAll((els) => els.map((e) => e.querySelector('title')?.textContent ?? ''));

describe('the LoRA-TTT chunk timeline in chromium', () => {
  before(pages.launch);
  after(pages.close);

  test('the page says ready, then draws the run’s summary', async () => {
    const page = await load();
    assert.deepEqual((await posted(page))[0], { type: 'ready' });
    const text = await page.locator('.summary').textContent();
    assert.match(text ?? '', /doc\.py: 21 tokens in 4 chunks of 5 on gpt2 \(wasm\) · val_loss 4\.2500 with TTT, 5\.2000 without · 1\.5000 bits per byte/);
    await page.close();
  });

  test('loss chart: a point per chunk for the score and the base, one per trained chunk after its update, each titled with its value', async () => {
    const page = await load();
    const before = await titles(page, 'g.series[data-series="before"] circle.point');
    assert.deepEqual(before, run().chunks.map((c) => `chunk ${c.chunk}: loss before its update (the score) ${c.lossBefore.toFixed(3)}`));
    const after = await titles(page, 'g.series[data-series="after"] circle.point');
    assert.deepEqual(after, run().chunks.filter((c) => c.trained).map((c) => `chunk ${c.chunk}: after its update ${c.lossAfter.toFixed(3)}`));
    assert.equal(await page.locator('g.series[data-series="base"] circle.point').count(), CHUNKS);
    // higher loss is drawn higher: the score falls chunk by chunk
    const cy = await page.locator('g.series[data-series="before"] circle.point').evaluateAll((els) => els.map((e) => Number(e.getAttribute('cy'))));
    for (let i = 1; i < cy.length; i++) assert.ok(cy[i] > cy[i - 1], `chunk ${i} is not drawn lower than chunk ${i - 1}: ${cy}`);
    await page.close();
  });

  test('‖ΔW‖ heatmap: a row per module and layer and the head, a cell per chunk, each module’s largest in the top colour', async () => {
    const page = await load();
    const rows = await page.locator('g.row').evaluateAll((els) => els.map((e) => e.getAttribute('data-key')));
    assert.deepEqual(rows, ['q.0', 'q.1', 'k.0', 'k.1', 'v.0', 'v.1', 'o.0', 'o.1', 'mlp.0', 'mlp.1', 'head']);
    assert.equal(await page.locator('rect.cell').count(), rows.length * CHUNKS);
    const cell = page.locator('g.row[data-key="mlp.1"] rect.cell[data-chunk="2"]');
    assert.equal(await cell.locator('title').textContent(), `mlp L1 · chunk 2: ‖ΔW‖ ${dw(4, 1, 2).toFixed(5)}`);
    const fill = (loc: ReturnType<Page['locator']>) => loc.evaluate((e) => getComputedStyle(e).fill);
    const TOP = 'rgb(255, 128, 0)';
    assert.equal(await fill(cell), TOP, 'the largest mlp value is its scale’s top (the theme’s orange)');
    assert.notEqual(await fill(page.locator('g.row[data-key="mlp.0"] rect.cell[data-chunk="2"]')), TOP);
    // every module kind has its own scale: q's largest and the head's largest are at the top of theirs
    assert.equal(await fill(page.locator('g.row[data-key="q.1"] rect.cell[data-chunk="2"]')), TOP);
    assert.equal(await fill(page.locator('g.row[data-key="head"] rect.cell[data-chunk="3"]')), TOP);
    assert.notEqual(await fill(page.locator('g.row[data-key="head"] rect.cell[data-chunk="0"]')), TOP);
    await page.close();
  });

  test('the table: one row per chunk, the last one not trained', async () => {
    const page = await load();
    const cells = await page.locator('table.chunks tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)));
    assert.equal(cells.length, CHUNKS);
    assert.deepEqual(cells[0].slice(0, 7), ['0', '1–5', '0', '5.000', '4.500', '5.200', '-0.200']);
    assert.equal(cells[CHUNKS - 1][4], 'not trained');
    assert.equal(cells[2][7], `${dw(4, 1, 2).toFixed(4)} (mlp L1)`);
    await page.close();
  });

  test('a click on a chunk asks the host to reveal it, selects it here, and the choice survives a reload', async () => {
    const page = await load();
    await page.locator('g.row[data-key="k.0"] rect.cell[data-chunk="1"]').click();
    assert.deepEqual((await posted(page)).at(-1), { type: 'ttt/revealChunk', chunk: 1 });
    assert.equal(await page.locator('table.chunks tbody tr.selected').getAttribute('data-chunk'), '1');
    await page.locator('g.series[data-series="base"] circle.point[data-chunk="3"]').click();
    assert.deepEqual((await posted(page)).at(-1), { type: 'ttt/revealChunk', chunk: 3 });
    const saved = await pageState(page);
    await page.close();
    const again = await load(saved);
    assert.equal(await again.locator('table.chunks tbody tr.selected').getAttribute('data-chunk'), '3');
    assert.equal(await again.locator('rect.cell.selected').count(), 11);
    await again.close();
    assert.deepEqual(errors, []);
  });
});
