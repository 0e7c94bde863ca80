/**
 * The D3 views in a real browser (Debian's chromium through playwright-core): the explorer's L×H
 * overview, keyed joins keeping element identity on update, clicks posting messages, no
 * exceptions on empty data; the monitor's curves and replay; the standalone report offline.
 */
import { test, describe, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { encodeArray } from '../engine/codec';
import { signalsOf } from '../engine/models/signals';
import { renderReportHtml } from '../engine/analysis/report';
import type { AnalyzeEvent, ExplorerData, TokenInfo, TrainEvent } from '../engine/protocol';
import { REPO } from './helpers/fixtures';

const CHROMIUM = '/usr/bin/chromium';
const bundle = (n: string) => fs.readFileSync(path.join(REPO, 'media', 'dist', `${n}.js`), 'utf8');

/** Synthetic analysis: L layers × H heads × T tokens, rows of attention summing to 1 (causal). */
function synthetic(L = 2, H = 4, T = 30, adaptive = true): ExplorerData {
  const tokens: TokenInfo[] = Array.from({ length: T }, (_, i) => ({ index: i, id: 100 + i, text: ` t${i}`, start: i * 3, end: i * 3 + 3 }));
  const events: AnalyzeEvent[] = [{ kind: 'tokens', window: 0, windowCount: 1, tokenStart: 0, tokens }];
  for (let l = 0; l < L; l++) {
    const attn = new Float32Array(H * T * T);
    for (let h = 0; h < H; h++) for (let q = 0; q < T; q++) for (let k = 0; k <= q; k++) attn[(h * T + q) * T + k] = 1 / (q + 1);
    const ht = (f: (h: number, t: number) => number) => Float32Array.from({ length: H * T }, (_, i) => f(Math.floor(i / T), i % T));
    events.push({
      kind: 'layer', window: 0, layer: l, tokenStart: 0,
      attn: encodeArray(attn, [H, T, T], 'f16'),
      headMax: encodeArray(ht((_, t) => 1 / (t + 1)), [H, T]),
      headArgmax: encodeArray(Int32Array.from({ length: H * T }), [H, T], 'i32'),
      headEntropy: encodeArray(ht((_, t) => Math.log(t + 1)), [H, T]),
      headDistance: encodeArray(ht((_, t) => t / 2), [H, T]),
      latentKey: encodeArray(Int32Array.from({ length: T }), [T], 'i32'),
      latentCode: encodeArray(Float32Array.from({ length: T * H }, (_, i) => 1 / (Math.floor(i / H) + 1)), [T, H]),
      ...(adaptive ? { signals: { loraFro: encodeArray(Float32Array.from({ length: H }, (_, h) => 0.1 * (h + 1)), [H]), loraTok: encodeArray(ht((h, t) => 0.01 * (h + t)), [H, T]), loraRel: encodeArray(ht(() => 0.02), [H, T]) } } : {}),
    });
  }
  events.push({ kind: 'output', window: 0, tokenStart: 0, nll: encodeArray(Float32Array.from({ length: T }, (_, i) => i % 5), [T]), topIds: encodeArray(Int32Array.from({ length: T * 5 }), [T, 5], 'i32'), topProbs: encodeArray(new Float32Array(T * 5).fill(0.2), [T, 5]) });
  const config = { family: adaptive ? ('adaptive' as const) : ('base' as const), vocab_size: 50257, block_size: 64, n_layer: L, n_head: H, n_embd: 32 };
  return {
    documentUri: 'file:///tmp/x.py',
    model: {
      path: 'x',
      family: config.family,
      config,
      paramCount: 1,
      configSources: {},
      tokenizer: { kind: 'gpt2', source: 'GPT-2 BPE (built in)', vocabSize: 50257 },
      causal: true,
      adaptive,
      futureLeak: adaptive,
      layers: L,
      heads: H,
      kvHeads: H,
      kvHeadOf: [...Array(H).keys()],
      attentionWindows: Array(L).fill(null),
      signals: adaptive ? signalsOf('loraFro', 'loraTok', 'loraRel') : [],
    },
    tokens,
    result: { tokenCount: T, windowCount: 1, layers: L, heads: H, meanNll: 2, maxLeak: null, elapsedMs: 1, backend: 'wasm', vocabText: {} },
    events,
  };
}

let browser: Browser;
const errors: string[] = [];

async function load(name: string): Promise<Page> {
  const page = await browser.newPage();
  page.on('pageerror', (e) => errors.push(`${name}: ${e.message}`));
  await page.setContent(`<!DOCTYPE html><html><body><div id="app"></div>
<script>window.__headlensTransport = { posted: [], state: undefined, post(m) { this.posted.push(m); }, getState() { return this.state; }, setState(s) { this.state = s; } };</script>
<script>${bundle(name)}</script></body></html>`);
  return page;
}
const send = (page: Page, msg: unknown) => page.evaluate((m) => window.postMessage(m, '*'), msg as object);
const posted = (page: Page) => page.evaluate(() => (window as unknown as { __headlensTransport: { posted: { type: string }[] } }).__headlensTransport.posted);

describe('webviews in chromium', () => {
  before(async () => {
    if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium (the CI script installs it)`);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
  });
  after(async () => {
    await browser?.close();
  });

  test('the explorer says it is ready and draws L × H overview cells', async () => {
    const page = await load('explorer');
    assert.ok((await posted(page)).some((m) => m.type === 'ready'));
    await send(page, { type: 'explorer/data', data: synthetic(2, 4) });
    await page.waitForSelector('svg.overview g.cell');
    assert.equal(await page.locator('svg.overview g.cell').count(), 8);
    assert.equal(await page.locator('canvas.matrix').count(), 1);
    assert.equal(await page.locator('#lora svg.fro g.bar').count(), 4);
    await page.close();
  });

  test('data joins keep element identity on update', async () => {
    const page = await load('explorer');
    await send(page, { type: 'explorer/data', data: synthetic(2, 4) });
    await page.waitForSelector('svg.overview g.cell');
    await page.evaluate(() => document.querySelectorAll('svg.overview g.cell')[3].setAttribute('data-mark', 'kept'));
    await send(page, { type: 'explorer/data', data: synthetic(2, 4, 20) });
    await page.waitForFunction(() => document.querySelector('#summary p')?.textContent?.includes('20 tokens'));
    assert.equal(await page.locator('svg.overview g.cell[data-mark="kept"]').count(), 1);
    await page.close();
  });

  test('clicking a cell focuses it and posts explorer/focus; clicking the matrix selects a token', async () => {
    const page = await load('explorer');
    await send(page, { type: 'explorer/data', data: synthetic(2, 4) });
    await page.locator('svg.overview g.cell').nth(5).click();
    const focus = (await posted(page)).find((m) => m.type === 'explorer/focus') as unknown as { layer: number; head: number };
    assert.deepEqual([focus.layer, focus.head], [1, 1]);
    await page.locator('canvas.matrix').click({ position: { x: 2, y: 40 } });
    assert.ok((await posted(page)).some((m) => m.type === 'explorer/selectToken'));
    await page.close();
  });

  test('no exceptions on empty data, a base model without LoRA, or clear', async () => {
    const page = await load('explorer');
    const empty = synthetic(1, 1, 1, false);
    await send(page, { type: 'explorer/data', data: { ...empty, tokens: [], events: [] } });
    await send(page, { type: 'explorer/data', data: synthetic(2, 2, 10, false) });
    await page.waitForSelector('#lora .hint');
    await send(page, { type: 'explorer/clear' });
    await page.waitForSelector('p.empty');
    assert.deepEqual(errors.filter((e) => e.startsWith('explorer')), []);
    await page.close();
  });

  test('the monitor draws one point per step and survives a replay', async () => {
    const page = await load('monitor');
    const events: TrainEvent[] = [{ kind: 'status', runId: 'r1', state: 'running', step: 0, totalSteps: 5 }];
    for (let s = 0; s < 5; s++) events.push({ kind: 'step', runId: 'r1', step: s, loss: 5 - s * 0.1, lr: 1e-3, grad_norm: 1, tokens_per_s: 100, elapsed_s: 1 });
    for (const e of events) await send(page, { type: 'monitor/event', event: e });
    await page.waitForFunction(() => (document.querySelector('#loss path.line')?.getAttribute('d')?.match(/L/g) ?? []).length === 4);
    await send(page, { type: 'monitor/replay', events: [...events, { kind: 'eval', runId: 'r1', step: 5, val_loss: 4.4 }] });
    await page.waitForFunction(() => document.querySelectorAll('#loss path.line').length === 2);
    assert.deepEqual(errors.filter((e) => e.startsWith('monitor')), []);
    await page.close();
  });

  test('the standalone report renders offline', async () => {
    const html = renderReportHtml(synthetic(2, 4), bundle('report'), fs.readFileSync(path.join(REPO, 'media', 'explorer.css'), 'utf8'));
    const page = await browser.newPage();
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    page.on('pageerror', (e) => errors.push(`report: ${e.message}`));
    await page.setContent(html);
    await page.waitForSelector('svg.overview g.cell');
    assert.equal(await page.locator('svg.overview g.cell').count(), 8);
    assert.deepEqual(requests.filter((u) => !u.startsWith('data:') && !u.startsWith('about:')), []);
    assert.deepEqual(errors.filter((e) => e.startsWith('report')), []);
    await page.close();
  });
});
