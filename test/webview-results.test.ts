/**
 * The results panel in a real browser (Debian's chromium through playwright-core), on results built
 * here so every number shown is known: the compare summary (verdict, one row per token class with
 * its interval, both models' layers × heads side by side), perplexity per source, multiple choice
 * (accuracies, the ending each scoring chose, the per-token log-probs), and a sweep streamed cell by
 * cell whose clicks post the cell to the host; the last view drawn again after a reload.
 */
import { test, describe, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import type { CompareResult, Interval, McResult, PplResult, ResultsView } from '../engine/protocol';
import { WebviewPages } from './helpers/webviewPage';

type Posted = { type: string; layer?: number; head?: number };
const pages = new WebviewPages<Posted>({ bundle: 'results', css: ['results.css'], viewport: { width: 900, height: 1400 } });
const { load, send, posted, errors } = pages;
const show = (page: Page, view: ResultsView) => send(page, { type: 'results/show', view });
const iv = (mean: number, half: number, n: number): Interval => ({ mean, lo: mean - half, hi: mean + half, n });

function compareResult(): CompareResult {
  const heads = (L: number, H: number, base: number) => ({
    layers: L,
    heads: H,
    signals: [],
    means: { attnMax: Array.from({ length: L * H }, (_, i) => base + i / 100), entropy: Array.from({ length: L * H }, (_, i) => 1 + i / 10) },
    attnMax: { dtype: 'f32' as const, shape: [L, H, 0], data: '' },
    entropy: { dtype: 'f32' as const, shape: [L, H, 0], data: '' },
    topIds: { dtype: 'i32' as const, shape: [0, 3], data: '' },
    topProbs: { dtype: 'f32' as const, shape: [0, 3], data: '' },
    vocabText: {},
  });
  return {
    model_a: '/m/adaptive.safetensors',
    model_b: '/m/base.safetensors',
    context: 128,
    stride: 64,
    tokens: [],
    summary: {
      overall: iv(-0.125, 0.05, 200),
      by_class: { identifier: iv(-0.2, 0.1, 80), keyword: iv(0.05, 0.2, 20), number: { mean: 0, lo: 0, hi: 0, n: 0 }, punctuation: iv(-0.1, 0.02, 60), whitespace: iv(0.01, 0.05, 30), 'string/comment': iv(-0.3, 0.4, 10) },
      repeated: iv(-0.25, 0.1, 90),
      first: iv(-0.03, 0.05, 110),
      mean_nll_a: 4.5,
      mean_nll_b: 4.625,
    },
    heads: { a: heads(2, 4, 0.5), b: heads(3, 2, 0.3) },
  };
}

describe('the results webview in chromium', () => {
  before(pages.launch);
  after(async () => {
    await pages.close();
    assert.deepEqual(errors, [], 'page errors');
  });

  test('says ready, and draws nothing but a hint before a result', async () => {
    const page = await load();
    assert.deepEqual(await posted(page), [{ type: 'ready' }]);
    assert.match(await page.locator('#app').innerText(), /Compare Models…/);
    await page.close();
  });

  test('compare: the verdict, one row per class with its interval, both models’ heads side by side', async () => {
    const page = await load();
    await show(page, { kind: 'compare', source: 'sample.py', result: compareResult() });
    assert.equal(await page.locator('p.verdict').innerText(), 'A is better: its NLL is lower by 0.1250 nats per token on average.');
    const rows = await page.locator('table.compare-summary tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)));
    assert.equal(rows.length, 1 + 6 + 2);
    assert.deepEqual(rows[0], ['all tokens', '200', '-0.1250', '[-0.1750, -0.0750]', 'A better']);
    assert.deepEqual(rows.find((r) => r[0] === 'keyword'), ['keyword', '20', '+0.0500', '[-0.1500, +0.2500]', '']);
    assert.deepEqual(rows.find((r) => r[0] === 'number'), ['number', '0', '—', '—', '']);
    assert.deepEqual(rows.find((r) => r[0] === 'repeated'), ['repeated', '90', '-0.2500', '[-0.3500, -0.1500]', 'A better']);
    assert.equal(await page.locator('svg.interval-chart g.row').count(), 8, 'a bar per row with tokens');
    assert.equal(await page.locator('.grid-box[data-model="A"] td.cell').count(), 8);
    assert.equal(await page.locator('.grid-box[data-model="B"] td.cell').count(), 6);
    assert.equal(await page.locator('.grid-box[data-model="B"] tbody tr:nth-child(3) td.cell').nth(1).innerText(), '0.350');
    await page.selectOption('select.head-metric', 'entropy');
    assert.equal(await page.locator('.grid-box[data-model="A"] tbody tr:nth-child(2) td.cell').nth(3).innerText(), '1.700');
    await page.close();
  });

  test('perplexity: the totals and each source', async () => {
    const page = await load();
    const src = { tokens: 10, nll_sum: 30, nll_mean: 3, ppl: Math.exp(3), bytes: 40, bpb: 30 / (Math.LN2 * 40), documents: 2 };
    const r: PplResult = { tokens: 10, nll_sum: 30, nll_mean: 3, ppl: Math.exp(3), bytes: 40, bpb: 30 / (Math.LN2 * 40), context: 128, stride: 64, documents: 2, by_source: { '/corpus': src } };
    await show(page, { kind: 'ppl', source: '/corpus', result: r });
    const rows = await page.locator('table.ppl tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)));
    assert.deepEqual(rows[0], ['all', '2', '10', '3.0000', Math.exp(3).toFixed(3), '40', (30 / (Math.LN2 * 40)).toFixed(4)]);
    assert.deepEqual(rows[1].slice(0, 3), ['/corpus', '2', '10']);
    assert.match(await page.locator('#app').innerText(), /windows of 128 every 64/);
    await page.close();
  });

  test('multiple choice: accuracies, the ending each scoring chose, per-token log-probs', async () => {
    const page = await load();
    const r: McResult = {
      items: [
        { index: 0, label: 1, sum: [-5, -3], per_token: [-2.5, -1.5], per_byte: [-0.5, -0.6], logprobs: [[-2, -3], [-1, -2]], tokens: [[' a', ' b'], [' c', ' d']], truncated: 0 },
        { index: 1, label: 0, sum: [-4, -2, -6], per_token: [-1, -2, -3], per_byte: [-0.2, -0.1, -0.9], logprobs: [[-1, -1, -1, -1], [-2], [-3, -3]], tokens: [['w', 'x', 'y', 'z'], ['q'], ['r', 's']], truncated: 3 },
      ],
      acc_sum: 0.5,
      acc_per_token: 1,
      acc_per_byte: 0,
      truncated_items: 1,
      context: 128,
    };
    await show(page, { kind: 'mc', source: 'items.jsonl', result: r });
    assert.deepEqual(await page.locator('td.acc').allInnerTexts(), ['50.0 %', '100.0 %', '0.0 %']);
    const chosen = async (i: number) => page.locator(`details.item[data-index="${i}"] summary .chosen`).allInnerTexts();
    assert.deepEqual((await chosen(0)).map((s) => s.trim()), ['sum: 1 ✓', 'per token: 1 ✓', 'per byte: 0 ✗']);
    assert.deepEqual((await chosen(1)).map((s) => s.trim()), ['sum: 1 ✗', 'per token: 0 ✓', 'per byte: 1 ✗']);
    await page.locator('details.item[data-index="1"] summary').click();
    const toks = await page.locator('details.item[data-index="1"] tbody tr').nth(0).locator('span.tok').evaluateAll((s) => s.map((e) => [e.textContent, e.getAttribute('title')]));
    assert.deepEqual(toks, [['w', 'w: -1.0000'], ['x', 'x: -1.0000'], ['y', 'y: -1.0000'], ['z', 'z: -1.0000']]);
    assert.match(await page.locator('details.item[data-index="1"] summary').innerText(), /context cut by 3 tokens/);
    await page.close();
  });

  test('sweep: cells arrive one by one, a click posts the cell, the selection is outlined, a reload draws it again', async () => {
    const page = await load();
    const base = { kind: 'sweep' as const, source: 'sample.py', mode: 'zero' as const, unit: 'head' as const, layers: 2, heads: 2, selected: null };
    const cells = [
      { layer: 0, head: 0, ...iv(0.2, 0.05, 100) },
      { layer: 0, head: 1, ...iv(-0.01, 0.02, 100) },
      { layer: 1, head: 0, ...iv(0.5, 0.1, 100) },
      { layer: 1, head: 1, ...iv(0.001, 0.01, 100) },
    ];
    await show(page, { ...base, cells: cells.slice(0, 1), state: 'running' });
    assert.equal(await page.locator('table.sweep-grid td.cell').count(), 4);
    assert.equal(await page.locator('table.sweep-grid td.pending').count(), 3);
    assert.match(await page.locator('#app').innerText(), /running: 1 of 4 cells/);
    await show(page, { ...base, cells, state: 'done' });
    assert.equal(await page.locator('table.sweep-grid td.pending').count(), 0);
    assert.equal(await page.locator('td.cell[data-layer="1"][data-head="0"] .mean').innerText(), '+0.5000');
    assert.equal(await page.locator('td.cell[data-layer="1"][data-head="0"] .iv').innerText(), '[+0.400, +0.600]');
    assert.equal(await page.locator('td.cell.significant').count(), 2, 'intervals that exclude 0');
    await page.locator('td.cell[data-layer="1"][data-head="0"]').click();
    assert.deepEqual((await posted(page)).at(-1), { type: 'results/selectCell', layer: 1, head: 0 });
    const selectedView = { ...base, cells, state: 'done' as const, selected: { layer: 1, head: 0 } };
    await show(page, selectedView);
    assert.equal(await page.locator('td.cell.selected').getAttribute('data-layer'), '1');
    const state = await page.evaluate(() => (window as unknown as { __headlensTransport: { state: unknown } }).__headlensTransport.state);
    await page.close();
    const again = await load(state);
    assert.equal(await again.locator('td.cell.selected[data-layer="1"][data-head="0"]').count(), 1);
    await again.close();
  });

  test('a failed sweep shows the engine’s line', async () => {
    const page = await load();
    await show(page, { kind: 'sweep', source: 'x.py', mode: 'adaptive-off', unit: 'head', layers: 0, heads: 0, cells: [], state: 'failed', error: 'adaptive-off needs an adaptive mechanism' });
    assert.equal(await page.locator('p.error').innerText(), 'adaptive-off needs an adaptive mechanism');
    await page.close();
  });
});
