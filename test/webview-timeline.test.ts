/**
 * The checkpoint timeline webview in chromium on a hand-made timeline: a mean-NLL point per
 * analysed step at that step's value, one small multiple per layer and head carrying that head's
 * values over the steps, the signal picker, and the slider posting the step to colour the editor
 * by (snapping to an analysed one while the run is still streaming).
 */
import { test, describe, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import type { SignalSpec, TimelineData } from '../engine/protocol';
import { WebviewPages } from './helpers/webviewPage';

const L = 2, H = 3;
const STEPS = [100, 200, 300, 400];
const loraRel = (i: number, l: number, h: number) => 0.01 * (i + 1) * (l * H + h + 1);
const entropy = (i: number, l: number, h: number) => 2 - 0.1 * i - 0.01 * (l * H + h);
const meanNll = (i: number) => 5 - 0.5 * i;
const SIGNAL: SignalSpec = { name: 'loraRel', scope: 'head×token', label: 'dynamic LoRA, relative', description: '', mechanism: 'a-gpt hypernetwork', perLayer: true };

function timeline(analysed: number, selected: number | null): TimelineData {
  return {
    documentUri: 'file:///tmp/x.py', documentLabel: 'x.py', runLabel: 'runs/a', layers: L, heads: H,
    checkpoints: STEPS.map((s) => ({ path: `/runs/a/model_${s}.safetensors`, step: s, mtimeMs: 0 })),
    steps: STEPS.slice(0, analysed).map((step, i) => ({
      index: i, path: `/runs/a/model_${step}.safetensors`, step, meanNll: meanNll(i),
      headSignals: { loraRel: Array.from({ length: L * H }, (_, j) => loraRel(i, Math.floor(j / H), j % H)) },
      entropy: Array.from({ length: L * H }, (_, j) => entropy(i, Math.floor(j / H), j % H)),
    })),
    signals: [SIGNAL], selected, state: analysed === STEPS.length ? 'done' : 'running',
  };
}

const pages = new WebviewPages<{ type: string; index?: number }>({ bundle: 'timeline', css: ['timeline.css'], viewport: { width: 900, height: 900 } });
const { posted, errors } = pages;
const load = () => pages.load();
const send = (page: Page, data: TimelineData) => pages.send(page, { type: 'timeline/data', data });

describe('checkpoint timeline webview in chromium', () => {
  before(pages.launch);
  after(pages.close);

  test('a mean-NLL point per step, a small multiple per head with its values over the steps, the signal picker', async () => {
    const page = await load();
    assert.ok((await posted(page)).some((m) => m.type === 'ready'));
    await send(page, timeline(4, 3));
    await page.locator('p.status', { hasText: '4 checkpoints analysed' }).waitFor();
    const points = await page.locator('svg.mean circle.point').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-nll'))));
    assert.deepEqual(points, STEPS.map((_, i) => meanNll(i)));
    assert.equal(await page.locator('svg.mean circle.point.selected').getAttribute('data-index'), '3');
    assert.equal(await page.locator('div.multiples div.cell.chart').count(), L * H);
    const values = (l: number, h: number) => page.locator(`div.multiples div.cell[data-head="${l}.${h}"]`).getAttribute('data-values');
    assert.equal(await values(1, 2), STEPS.map((_, i) => loraRel(i, 1, 2)).join(','));
    await page.locator('select.head-signal').selectOption('entropy');
    assert.equal(await values(0, 1), STEPS.map((_, i) => entropy(i, 0, 1)).join(','));
    assert.match(await page.locator('p.current').innerText(), /^4 \/ 4: step 400 \(model_400\.safetensors\) — mean NLL 3\.500 nats/);
    await page.close();
  });

  test('the slider posts the step to colour the editor by; while streaming it snaps to an analysed step', async () => {
    const page = await load();
    await send(page, timeline(2, 1));
    await page.locator('p.status', { hasText: 'analysing: 2 of 4' }).waitFor();
    const slider = page.locator('input.step');
    await slider.focus();
    await page.keyboard.press('ArrowLeft');
    assert.deepEqual((await posted(page)).filter((m) => m.type === 'timeline/selectStep').pop(), { type: 'timeline/selectStep', index: 0 });
    await slider.fill('3'); // not analysed yet: the nearest analysed step
    assert.deepEqual((await posted(page)).filter((m) => m.type === 'timeline/selectStep').pop(), { type: 'timeline/selectStep', index: 1 });
    await page.close();
  });

  test('no page errors', () => {
    assert.deepEqual(errors, []);
  });
});
