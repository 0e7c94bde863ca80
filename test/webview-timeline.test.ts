/**
 * The checkpoint timeline webview in chromium on a hand-made timeline: a mean-NLL point per
 * analysed step at that step's value, one small multiple per layer and head carrying that head's
 * values over the steps, the signal picker, and the slider posting the step to colour the editor
 * by (snapping to an analysed one while the run is still streaming).
 */
import { test, describe, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { SignalSpec, TimelineData } from '../engine/protocol';
import { REPO } from './helpers/fixtures';

const CHROMIUM = '/usr/bin/chromium';
const TRANSPORT = `window.__headlensTransport = { posted: [], state: undefined, post(m) { this.posted.push(m); }, getState() { return this.state; }, setState(s) { this.state = s; } };`;
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

let browser: Browser;
const errors: string[] = [];

async function load(): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 900, height: 900 } });
  page.on('pageerror', (e) => errors.push(e.message));
  const css = fs.readFileSync(path.join(REPO, 'media', 'timeline.css'), 'utf8');
  await page.setContent(`<!DOCTYPE html><html><head><style>${css}</style></head><body><div id="app"></div><script>${TRANSPORT}</script><script>${fs.readFileSync(path.join(REPO, 'media', 'dist', 'timeline.js'), 'utf8')}</script></body></html>`);
  return page;
}
const send = (page: Page, data: TimelineData) => page.evaluate((m) => window.postMessage(m, '*'), { type: 'timeline/data', data } as object);
const posted = (page: Page) => page.evaluate(() => (window as unknown as { __headlensTransport: { posted: { type: string; index?: number }[] } }).__headlensTransport.posted);

describe('checkpoint timeline webview in chromium', () => {
  before(async () => {
    if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium`);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
  });
  after(async () => {
    await browser?.close();
  });

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
