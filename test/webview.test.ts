/**
 * The webviews in a real browser (Debian's chromium through playwright-core), on synthetic
 * analyses built here with the wire's own encoding (engine/codec.ts) and the engine's
 * sliding-window rule (engine/analysis/windows.ts), so every expected value is known:
 * the explorer's overview (thumbnails, any-signal colouring, keyboard), the virtualised matrix
 * (hover text and weight, labels of known tokens, clicks posting selectToken, the window picker,
 * selection from the host, GQA label, the sliding-window band, the theme), the head view, the
 * strips, the latent map and the probe (R² of a linear label, of a random one, logistic accuracy),
 * the state after a reload; a 4,096-token analysis (first draw and frames/s measured and
 * printed); the monitor; the standalone report offline with the annotated text first.
 */
import { test, describe, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { encodeArray, floatToHalf, halfToFloat } from '../engine/codec';
import { slidingWindows } from '../engine/analysis/windows';
import { signalsOf, type SignalName } from '../engine/models/signals';
import { renderReportHtml } from '../engine/analysis/report';
import type { AnalyzeEvent, ExplorerData, TokenInfo, TrainEvent } from '../engine/protocol';
import { WebviewPages, bundleSource, mediaCss } from './helpers/webviewPage';

interface Synth {
  L?: number;
  H?: number;
  Hkv?: number;
  N?: number;
  /** Sliding windows of `context` tokens every `stride` (default: one window). */
  context?: number;
  stride?: number;
  /** Layers whose attention maps are sent (default all). */
  attnLayers?: number[];
  attentionWindows?: (number | null | 'bidirectional')[];
  adaptive?: boolean;
  leak?: boolean;
  dNll?: boolean;
  text?: (i: number) => string;
  /** The latent code z[l][t][h] (default: head h's weight on the token itself). */
  code?: (l: number, t: number, h: number) => number;
}

/** The visible keys [k0, k1) of window-relative query q (causal; a number = keys back). */
function visible(q: number, T: number, w: number | null | 'bidirectional'): [number, number] {
  if (w === 'bidirectional') return [0, T];
  return [typeof w === 'number' ? Math.max(0, q - w) : 0, q + 1];
}

/** The synthetic attention weight: 0.5 on the query itself, 0.3 on key q − 1 − h, 0.2 spread over the visible keys. */
function weight(h: number, q: number, k: number, T: number, w: number | null | 'bidirectional'): number {
  const [k0, k1] = visible(q, T, w);
  if (k < k0 || k >= k1) return 0;
  const prev = q - 1 - h;
  const hasPrev = prev >= k0 && prev < k1 && prev !== q;
  return 0.2 / (k1 - k0) + (k === q ? (hasPrev ? 0.5 : 0.8) : 0) + (hasPrev && k === prev ? 0.3 : 0);
}
const asHalf = (v: number) => halfToFloat(floatToHalf(v));

function synthetic(o: Synth = {}): ExplorerData {
  const L = o.L ?? 2, H = o.H ?? 4, Hkv = o.Hkv ?? H, N = o.N ?? 30;
  const windowsOf = o.attentionWindows ?? Array<null>(L).fill(null);
  const text = o.text ?? ((i: number) => ` t${i}`);
  const tokens: TokenInfo[] = [];
  let at = 0;
  for (let i = 0; i < N; i++) {
    const t = text(i);
    tokens.push({ index: i, id: 100 + (i % 1000), text: t, start: at, end: at + t.length });
    at += t.length;
  }
  const context = o.context ?? N;
  const wins = slidingWindows(N, context, o.stride ?? context);
  const events: AnalyzeEvent[] = [];
  const names: SignalName[] = [...(o.adaptive ? (['loraFro', 'loraTok', 'loraRel'] as const) : []), ...(Hkv < H ? (['veGate'] as const) : []), ...(o.dNll ? (['dNll'] as const) : [])];
  wins.forEach((win, wi) => {
    const s = win.begin, T = win.end - win.begin;
    events.push({ kind: 'tokens', window: wi, windowCount: wins.length, tokenStart: s, tokens: tokens.slice(s, win.end), ownFrom: win.ownFrom, ownTo: win.ownTo });
    const ht = (f: (h: number, t: number) => number, rows = H) => encodeArray(Float32Array.from({ length: rows * T }, (_, i) => f(Math.floor(i / T), s + (i % T))), [rows, T]);
    for (let l = 0; l < L; l++) {
      const aw = windowsOf[l];
      let attn;
      if (!o.attnLayers || o.attnLayers.includes(l)) {
        const a = new Float32Array(H * T * T);
        for (let h = 0; h < H; h++) {
          for (let q = 0; q < T; q++) {
            const [k0, k1] = visible(q, T, aw);
            for (let k = k0; k < k1; k++) a[(h * T + q) * T + k] = weight(h, q, k, T, aw);
          }
        }
        attn = encodeArray(a, [H, T, T], 'f16');
      }
      const signals: Record<string, ReturnType<typeof encodeArray>> = {};
      if (o.adaptive) {
        signals.loraFro = encodeArray(Float32Array.from({ length: H }, (_, h) => 0.1 * (h + 1) + wi), [H]);
        signals.loraTok = ht((h, t) => 0.01 * (h + 1) + 0.0001 * (t % 7));
        signals.loraRel = ht((h) => 0.1 * (h + 1) + 0.01 * l);
      }
      if (Hkv < H) signals.veGate = ht((kv) => 1 + 0.1 * kv + 0.01 * l, Hkv);
      if (o.dNll && l === 0) signals.dNll = encodeArray(Float32Array.from({ length: T }, (_, i) => Math.sin(s + i)), [T]);
      events.push({
        kind: 'layer',
        window: wi,
        layer: l,
        tokenStart: s,
        ...(attn ? { attn } : {}),
        headMax: ht((h, t) => 1 / (1 + ((t + h) % 9))),
        headArgmax: encodeArray(Int32Array.from({ length: H * T }, (_, i) => i % T), [H, T], 'i32'),
        headEntropy: ht((h, t) => Math.log(1 + ((t * (h + 1)) % 11))),
        headDistance: ht((_, t) => (t % 13) / 2),
        latentKey: encodeArray(Int32Array.from({ length: T }, (_, i) => i), [T], 'i32'),
        latentCode: encodeArray(Float32Array.from({ length: T * H }, (_, i) => (o.code ? o.code(l, s + Math.floor(i / H), i % H) : weight(i % H, Math.floor(i / H), Math.floor(i / H), T, aw))), [T, H]),
        signals,
      });
    }
    const K = 5;
    events.push({
      kind: 'output',
      window: wi,
      tokenStart: s,
      nll: encodeArray(Float32Array.from({ length: T }, (_, i) => (s + i) % 5), [T]),
      topIds: encodeArray(Int32Array.from({ length: T * K }, (_, i) => 100 + ((Math.floor(i / K) + (i % K)) % 50)), [T, K], 'i32'),
      topProbs: encodeArray(Float32Array.from({ length: T * K }, (_, i) => [0.4, 0.3, 0.15, 0.1, 0.05][i % K]), [T, K]),
      ...(o.leak ? { leak: encodeArray(Float32Array.from({ length: T }, (_, i) => 0.001 * (s + i)), [T]) } : {}),
      vocabText: Object.fromEntries(Array.from({ length: 50 }, (_, j) => [100 + j, ` v${100 + j}`])),
    });
  });
  const family = o.adaptive ? ('adaptive' as const) : Hkv < H ? ('autoresearch' as const) : ('base' as const);
  const config = { family, vocab_size: 50257, block_size: context, n_layer: L, n_head: H, n_embd: 32 };
  return {
    documentUri: 'file:///tmp/x.py',
    model: {
      path: '/models/x.pt',
      family,
      config,
      paramCount: 1,
      configSources: {},
      tokenizer: { kind: 'gpt2', source: 'GPT-2 BPE (built in)', vocabSize: 50257 },
      causal: true,
      adaptive: !!o.adaptive,
      futureLeak: !!o.adaptive,
      layers: L,
      heads: H,
      kvHeads: Hkv,
      kvHeadOf: Array.from({ length: H }, (_, h) => Math.floor((h * Hkv) / H)),
      attentionWindows: windowsOf,
      signals: signalsOf(...names),
    },
    tokens,
    result: { tokenCount: N, windowCount: wins.length, layers: L, heads: H, meanNll: 2, maxLeak: o.leak ? 0.001 * (N - 1) : null, elapsedMs: 1, backend: 'wasm', vocabText: {} },
    events,
  };
}

type Posted = { type: string; layer?: number; head?: number; tokenIndex?: number; role?: string };
const pages = new WebviewPages<Posted>({
  bundle: 'explorer',
  css: ['explorer.css'],
  viewport: { width: 1100, height: 900 },
  // registered before the bundle's own listener: when a message reached the page (after its copy)
  prelude: `window.addEventListener('message', () => { window.__received = performance.now(); });`,
});
const { send, posted, pageState, errors } = pages;
/** The page of bundle `name` (every one with the explorer's style sheet), starting from `savedState` when given. */
const load = (name: string, savedState?: unknown) => pages.load(savedState, name);
const lastPosted = async (page: Page, type: string) => (await posted(page)).filter((m) => m.type === type).pop();
/** Wait until the explorer has drawn the data (the summary names the token count). */
async function sendData(page: Page, data: ExplorerData): Promise<void> {
  await send(page, { type: 'explorer/data', data });
  await page.waitForFunction((n) => document.querySelector('#summary p')?.textContent?.includes(`${n} tokens`), data.tokens.length);
}
const tipText = (page: Page) => page.locator('.hl-tooltip').innerText();
/** Page coordinates of a matrix cell's centre (the grid says its cell size on the canvas). */
async function matrixPoint(page: Page, r: number, c: number): Promise<{ x: number; y: number }> {
  return page.evaluate(
    ([r, c]) => {
      const vp = document.querySelector<HTMLElement>('#matrix .viewport')!;
      const cell = Number(document.querySelector<HTMLCanvasElement>('#matrix canvas.matrix')!.dataset.cell);
      const rect = vp.getBoundingClientRect();
      return { x: rect.left - vp.scrollLeft + (c + 0.5) * cell, y: rect.top - vp.scrollTop + (r + 0.5) * cell };
    },
    [r, c] as const,
  );
}

describe('webviews in chromium', () => {
  before(pages.launch);
  after(pages.close);

  test('the explorer says it is ready and draws the L × H overview with a thumbnail per head', async () => {
    const page = await load('explorer');
    assert.ok((await posted(page)).some((m) => m.type === 'ready'));
    await sendData(page, synthetic({ adaptive: true }));
    assert.equal(await page.locator('svg.overview g.cell').count(), 8);
    const drawn = await page.locator('svg.overview g.cell image').evaluateAll((els) => els.filter((e) => (e.getAttribute('href') ?? '').startsWith('data:image/')).length);
    assert.equal(drawn, 8);
    assert.equal(await page.locator('canvas.matrix').count(), 1);
    assert.equal(await page.locator('#strips div.bars[data-signal="loraFro"] g.bar').count(), 4);
    await page.close();
  });

  test('data joins keep element identity on update', async () => {
    const page = await load('explorer');
    await sendData(page, synthetic());
    await page.evaluate(() => document.querySelectorAll('svg.overview g.cell')[3].setAttribute('data-mark', 'kept'));
    await sendData(page, synthetic({ N: 20 }));
    assert.equal(await page.locator('svg.overview g.cell[data-mark="kept"]').count(), 1);
    await page.close();
  });

  test('clicking a cell focuses it and posts explorer/focus; the arrow keys and Enter move the focus', async () => {
    const page = await load('explorer');
    await sendData(page, synthetic());
    await page.locator('svg.overview g.cell').nth(5).click();
    const focus = await lastPosted(page, 'explorer/focus');
    assert.deepEqual([focus?.layer, focus?.head], [1, 1]);
    await page.locator('#summary p', { hasText: 'focus L1.H1' }).waitFor();
    await page.locator('svg.overview g.cell').nth(5).focus();
    await page.keyboard.press('ArrowRight');
    const moved = await lastPosted(page, 'explorer/focus');
    assert.deepEqual([moved?.layer, moved?.head], [1, 2]);
    await page.keyboard.press('ArrowUp');
    const up = await lastPosted(page, 'explorer/focus');
    assert.deepEqual([up?.layer, up?.head], [0, 2]);
    assert.equal(await page.evaluate(() => (document.activeElement as SVGGElement | null)?.getAttribute('aria-label')), 'layer 0 head 2');
    assert.equal(await page.locator('svg.overview g.cell.focused').getAttribute('aria-label'), 'layer 0 head 2');
    await page.close();
  });

  test('matrix hover names query → key and the weight; click posts selectToken, shift-click the key', async () => {
    const page = await load('explorer');
    await sendData(page, synthetic({ N: 30 }));
    const T = 30;
    // the focused head is H0: cell (q = 12, k = 11) carries 0.3 + 0.2 / 13, cell (12, 12) 0.5 + 0.2 / 13
    for (const [q, k] of [[12, 11], [12, 12], [12, 3]]) {
      const p = await matrixPoint(page, q, k);
      await page.mouse.move(p.x, p.y);
      const tip = await tipText(page);
      assert.match(tip, new RegExp(`^#${q} ·t${q} → #${k} ·t${k}`));
      assert.ok(tip.includes(`weight ${asHalf(weight(0, q, k, T, null)).toFixed(4)}`), tip);
    }
    const masked = await matrixPoint(page, 5, 20);
    await page.mouse.move(masked.x, masked.y);
    assert.match(await tipText(page), /weight 0\.0000 +\(masked/);
    const p = await matrixPoint(page, 17, 4);
    await page.mouse.click(p.x, p.y);
    assert.deepEqual(await lastPosted(page, 'explorer/selectToken'), { type: 'explorer/selectToken', tokenIndex: 17, role: 'query' });
    await page.keyboard.down('Shift');
    await page.mouse.click(p.x, p.y);
    await page.keyboard.up('Shift');
    assert.deepEqual(await lastPosted(page, 'explorer/selectToken'), { type: 'explorer/selectToken', tokenIndex: 4, role: 'key' });
    await page.locator('#summary p', { hasText: 'query #17 ·t17 · key #4 ·t4' }).waitFor();
    await page.close();
  });

  test('the matrix labels known tokens on both axes, and the label under the mouse is that token', async () => {
    const page = await load('explorer');
    const data = synthetic({ N: 600, L: 1, H: 2, text: (i) => (i % 3 ? ` w${i}` : `\n\tk${i}`) });
    await sendData(page, data);
    // zoom in until every row is labelled, then scroll to row 400
    for (let i = 0; i < 12; i++) await page.locator('#matrix button.zoom-in').click();
    await page.evaluate(() => {
      const vp = document.querySelector<HTMLElement>('#matrix .viewport')!;
      const cell = parseFloat((vp.firstElementChild as HTMLElement).style.height) / 600;
      vp.scrollTop = 400 * cell;
      vp.scrollLeft = 380 * cell;
    });
    await page.waitForFunction(() => document.querySelector<HTMLCanvasElement>('#matrix canvas.matrix')?.dataset.rows?.startsWith('400-'));
    const shown = (s: string) => s.replace(/\n/g, '↵').replace(/\t/g, '⇥').replace(/ /g, '·');
    const rows = await page.locator('#matrix .row-axis .label:not(.hover)').evaluateAll((els) => els.map((e) => [Number((e as HTMLElement).dataset.index), e.textContent ?? ''] as const));
    assert.ok(rows.length >= 10 && rows.every(([i]) => Number.isInteger(i)), `row labels: ${JSON.stringify(rows.slice(0, 5))}`);
    assert.ok(!rows.some(([, t]) => t.length === 0));
    for (const [i, text] of rows) assert.equal(text, shown(data.tokens[i].text), `row label ${i}`);
    assert.ok(rows.some(([i]) => i === 400));
    const cols = await page.locator('#matrix .col-axis .label:not(.hover)').evaluateAll((els) => els.map((e) => [Number((e as HTMLElement).dataset.index), e.textContent ?? ''] as const));
    assert.ok(cols.some(([i]) => i === 380));
    for (const [i, text] of cols) assert.equal(text, shown(data.tokens[i].text), `column label ${i}`);
    const p = await matrixPoint(page, 405, 390);
    await page.mouse.move(p.x, p.y);
    assert.equal(await page.locator('#matrix .row-axis .label.hover').innerText(), shown(data.tokens[405].text));
    assert.equal(await page.locator('#matrix .col-axis .label.hover').getAttribute('data-index'), '390');
    await page.close();
  });

  test('with several windows a picker switches them, the editor selection follows its owner, owned rows are marked', async () => {
    const page = await load('explorer');
    const data = synthetic({ N: 100, context: 40, stride: 20, L: 1, H: 2 });
    const wins = slidingWindows(100, 40, 20);
    await sendData(page, data);
    assert.equal(await page.locator('#matrix select.window-picker option').count(), wins.length);
    assert.match(await page.locator('#matrix h3').innerText(), new RegExp(`window 1/${wins.length}`));
    await page.locator('#matrix select.window-picker').selectOption('2');
    await page.locator('#matrix h3', { hasText: `window 3/${wins.length}` }).waitFor();
    // the first row of window 3 is token `begin`; its owned rows carry the bar
    const first = await matrixPoint(page, 0, 0);
    await page.mouse.move(first.x, first.y);
    assert.match(await tipText(page), new RegExp(`^#${wins[2].begin} ·t${wins[2].begin} →`));
    const bar = await page.evaluate(() => {
      const b = document.querySelector<HTMLElement>('#matrix .row-axis .owned')!;
      const vp = document.querySelector<HTMLElement>('#matrix .viewport')!;
      const cell = parseFloat((vp.firstElementChild as HTMLElement).style.height) / 40;
      return { top: new DOMMatrix(getComputedStyle(b).transform).m42 / cell, rows: parseFloat(b.style.height) / cell };
    });
    assert.ok(Math.abs(bar.top - (wins[2].ownFrom - wins[2].begin)) < 1e-6 && Math.abs(bar.rows - (wins[2].ownTo - wins[2].ownFrom)) < 1e-6, JSON.stringify(bar));
    // the editor selects token 75: the window that owns it comes up
    await send(page, { type: 'explorer/selection', tokenIndex: 75, role: 'query' });
    const owner = wins.findIndex((w) => 75 >= w.ownFrom && 75 < w.ownTo);
    await page.locator('#matrix h3', { hasText: `window ${owner + 1}/${wins.length}` }).waitFor();
    assert.equal(await page.locator('#matrix select.window-picker').inputValue(), String(owner));
    await page.close();
  });

  test('GQA: the label names the kv head the focused head reads; the sliding-window band is drawn', async () => {
    const page = await load('explorer');
    await sendData(page, synthetic({ N: 60, L: 3, H: 4, Hkv: 2, attentionWindows: [8, null, 'bidirectional'] }));
    await page.locator('svg.overview g.cell').nth(3).click(); // L0.H3
    await page.locator('#matrix span.gqa', { hasText: 'H3 reads kv head 1 of 2 (shared by H2, H3)' }).waitFor();
    assert.match(await page.locator('#matrix span.band').innerText(), /sliding window: a query sees itself and the 8 keys before it/);
    /** Pixels of the theme's green (the band's colour): the attention palette has none. */
    const green = () =>
      page.evaluate(() => {
        const c = document.querySelector<HTMLCanvasElement>('#matrix canvas.matrix')!;
        const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i + 1] > d[i] + 30 && d[i + 1] > d[i + 2] + 30) n++;
        return n;
      });
    const windowed = await green();
    await page.locator('svg.overview g.cell').nth(4 + 3).click(); // L1: causal, whole window
    await page.locator('#matrix span.band', { hasText: 'causal' }).waitFor();
    const causal = await green();
    await page.locator('svg.overview g.cell').nth(8 + 3).click(); // L2: bidirectional
    await page.locator('#matrix span.band', { hasText: 'bidirectional' }).waitFor();
    const none = await green();
    assert.ok(windowed > causal * 1.5 && causal > 0 && none === 0, `green pixels: window ${windowed}, causal ${causal}, bidirectional ${none}`);
    // the masked keys left of the window are background; the visible ones are not
    const masked = await matrixPoint(page, 40, 20);
    await page.locator('svg.overview g.cell').nth(3).click();
    await page.mouse.move(masked.x, masked.y);
    assert.match(await tipText(page), /masked/);
    await page.close();
  });

  test('the overview colours cells by any signal: per-head means, kv-head signals, a window’s per-head value', async () => {
    const page = await load('explorer');
    await sendData(page, synthetic({ adaptive: true, H: 4, Hkv: 2, N: 40, context: 20, stride: 10 }));
    const options = await page.locator('select.overview-metric option').evaluateAll((els) => els.map((e) => (e as HTMLOptionElement).value));
    for (const name of ['attention', 'attnMax', 'entropy', 'distance', 'loraTok', 'loraRel', 'veGate', 'loraFro']) assert.ok(options.includes(name), `${name} in ${options}`);
    const values = () => page.locator('svg.overview g.cell').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-value'))));
    const fills = () => page.locator('svg.overview g.cell rect.fill').evaluateAll((els) => els.map((e) => e.getAttribute('fill')));
    await page.locator('select.overview-metric').selectOption('loraRel');
    let v = await values();
    for (let l = 0; l < 2; l++) for (let h = 0; h < 4; h++) assert.ok(Math.abs(v[l * 4 + h] - (0.1 * (h + 1) + 0.01 * l)) < 1e-6, `loraRel L${l}.H${h}: ${v[l * 4 + h]}`);
    const f = await fills();
    assert.equal(new Set(f).size, 8, `eight values, eight colours: ${f}`);
    assert.equal(await page.locator('svg.overview g.cell image[href]').count(), 0);
    await page.locator('select.overview-metric').selectOption('veGate');
    v = await values();
    for (let h = 0; h < 4; h++) assert.ok(Math.abs(v[h] - (1 + 0.1 * Math.floor(h / 2))) < 1e-6, `veGate H${h} reads kv head ${Math.floor(h / 2)}: ${v[h]}`);
    await page.locator('select.overview-metric').selectOption('loraFro');
    v = await values();
    for (let h = 0; h < 4; h++) assert.ok(Math.abs(v[h] - (0.1 * (h + 1))) < 1e-6, `loraFro of window 1, H${h}: ${v[h]}`);
    await page.locator('#matrix select.window-picker').selectOption('2');
    await page.waitForFunction(() => Math.abs(Number(document.querySelector('svg.overview g.cell')?.getAttribute('data-value')) - 2.1) < 1e-6);
    await page.close();
  });

  test('the head view draws lines from queries to keys per head; a head can be switched off', async () => {
    const page = await load('explorer');
    await sendData(page, synthetic({ N: 30, H: 3, L: 1 }));
    await send(page, { type: 'explorer/selection', tokenIndex: 20, role: 'query' });
    await page.locator('#headview input.range-to').evaluate((e, v) => (e as HTMLInputElement).value === v, '20');
    assert.equal(await page.locator('#headview input.range-from').inputValue(), '13');
    assert.equal(await page.locator('#headview input.range-to').inputValue(), '20');
    // per query and head: the self key (0.5 + …) and key q − 1 − h (0.3 + …) pass MIN_WEIGHT; 0.2 / (q + 1) < 0.02 does not
    const count = () => page.locator('#headview g.links path').count();
    assert.equal(await count(), 8 * 3 * 2);
    assert.equal(await page.locator('#headview g.links path[data-head="0"]').count(), 16);
    await page.locator('#headview button.head-toggle[data-head="0"]').click();
    assert.equal(await page.locator('#headview g.links path[data-head="0"]').count(), 0);
    assert.equal(await page.locator('#headview button.head-toggle[data-head="0"]').getAttribute('aria-pressed'), 'false');
    assert.equal(await count(), 8 * 2 * 2);
    const keys = await page.locator('#headview g.keys text').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-index'))));
    assert.deepEqual(keys, [...new Set([...Array(8).keys()].flatMap((i) => [13 + i, 13 + i - 2, 13 + i - 3]))].sort((a, b) => a - b));
    await page.locator('#headview input.range-from').fill('2');
    await page.locator('#headview input.range-to').fill('4');
    await page.locator('#headview input.range-to').dispatchEvent('change');
    await page.waitForFunction(() => document.querySelectorAll('#headview g.queries text').length === 3);
    await page.close();
  });

  test('strips: any heads × tokens signal, kv-head rows, token signals (NLL, leak, ΔNLL diverging), hover and click', async () => {
    const page = await load('explorer');
    await sendData(page, synthetic({ adaptive: true, H: 4, Hkv: 2, N: 300, leak: true, dNll: true }));
    const rowLabels = (kind: string) => page.locator(`#strips .vgrid[data-strip="${kind}"] .row-axis .label:not(.hover)`).allInnerTexts();
    assert.deepEqual(await rowLabels('heads'), ['H0', 'H1', 'H2', 'H3']);
    const options = await page.locator('select.strip-signal option').evaluateAll((els) => els.map((e) => (e as HTMLOptionElement).value));
    assert.deepEqual(options.filter((o) => ['loraTok', 'loraRel', 'veGate', 'attnMax'].includes(o)).sort(), ['attnMax', 'loraRel', 'loraTok', 'veGate']);
    await page.locator('select.strip-signal').selectOption('veGate');
    await page.waitForFunction(() => document.querySelectorAll('#strips .vgrid[data-strip="heads"] .row-axis .label:not(.hover)').length === 2);
    assert.deepEqual(await rowLabels('heads'), ['kv0 (H0,H1)', 'kv1 (H2,H3)']);
    assert.deepEqual(await rowLabels('tokens'), ['dNll', 'NLL', 'leak']);
    assert.match(await page.locator('#strips .strip-box.tokens p.caption').innerText(), /dNll: .* \(diverging around 0\)/);
    // hover token 123 of the NLL row: (123 % 5) = 3
    await page.locator('#strips .vgrid[data-strip="tokens"]').scrollIntoViewIfNeeded();
    const at = await page.evaluate(() => {
      const vp = document.querySelector<HTMLElement>('#strips .vgrid[data-strip="tokens"] .viewport')!;
      const cell = parseFloat((vp.firstElementChild as HTMLElement).style.width) / 300;
      const r = vp.getBoundingClientRect();
      return { x: r.left - vp.scrollLeft + 123.5 * cell, y: r.top + 14 * 1.5, cell };
    });
    await page.mouse.move(at.x, at.y);
    assert.match(await tipText(page), /^NLL · #123 ·t123\nnll 3\.0000/);
    await page.mouse.click(at.x, at.y);
    assert.deepEqual(await lastPosted(page, 'explorer/selectToken'), { type: 'explorer/selectToken', tokenIndex: 123, role: 'query' });
    // the strips zoom together
    await page.locator('#strips button.zoom-in').click();
    const widths = await page.locator('#strips .vgrid .spacer').evaluateAll((els) => els.map((e) => (e as HTMLElement).style.width));
    assert.equal(new Set(widths).size, 1, `${widths}`);
    await page.close();
  });

  test('the latent-code map colours by head, token class or a signal; hover names the token and its code', async () => {
    const page = await load('explorer');
    const texts = ['def', ' f', '(', 'x', '):', '\n   ', ' return', ' 42', ' #', ' note'];
    await sendData(page, synthetic({ N: 200, H: 3, text: (i) => texts[i % texts.length] }));
    assert.equal(await page.locator('#latent canvas.pca').count(), 1);
    assert.deepEqual(await page.locator('#latent .legend span').allInnerTexts(), ['■ H0', '■ H1', '■ H2']);
    await page.locator('select.latent-colour').selectOption('class');
    await page.waitForFunction(() => document.querySelectorAll('#latent .legend span').length === 6);
    await page.locator('select.latent-colour').selectOption('signal');
    assert.equal(await page.locator('select.latent-signal').isVisible(), true);
    await page.locator('select.latent-layer').selectOption('1');
    await page.locator('#latent h3', { hasText: 'layer 1' }).waitFor();
    const hit = await page.evaluate(() => {
      const c = document.querySelector<HTMLCanvasElement>('#latent canvas.pca')!;
      const g = c.getContext('2d')!, d = g.getImageData(0, 0, c.width, c.height).data;
      const bg = [d[0], d[1], d[2]];
      for (let i = 0; i < d.length; i += 4) if (Math.abs(d[i] - bg[0]) + Math.abs(d[i + 1] - bg[1]) + Math.abs(d[i + 2] - bg[2]) > 60) return { x: (i / 4) % c.width, y: Math.floor(i / 4 / c.width) };
      return null;
    });
    assert.ok(hit, 'a point is drawn');
    await page.locator('#latent canvas.pca').scrollIntoViewIfNeeded();
    const box = (await page.locator('#latent canvas.pca').boundingBox())!;
    await page.mouse.move(box.x + hit.x + 1, box.y + hit.y + 1);
    assert.match(await tipText(page), /^#\d+ .* → k\* #\d+ .*\((identifier|keyword|number|punctuation|whitespace|string\/comment)\)\nz = \[[-\d., ]+\]$/);
    await page.close();
  });

  test('the probe: R² = 1 for a label linear in the codes, ≈ 0 for a random one; logistic accuracy ≈ 1 when separable', async () => {
    const page = await load('explorer');
    // tokens ' A…' have code z0 = 1, the others z0 = 0; the other components and the 'x' marks are random
    const rnd = seeded(7);
    const N = 800, H = 4, L = 2;
    const marked = Array.from({ length: N }, () => rnd() < 0.5);
    const random = Array.from({ length: N }, () => rnd() < 0.5);
    const noise = Array.from({ length: L * N * H }, () => rnd());
    const data = synthetic({ N, H, L, text: (i) => ` ${marked[i] ? 'A' : 'b'}${random[i] ? 'x' : 'y'}${i}`, code: (l, t, h) => (h === 0 ? (marked[t] ? 1 : 0) : noise[(l * N + t) * H + h]) });
    await sendData(page, data);
    const fit = async (kind: 'ridge' | 'logistic', regex: string) => {
      await page.locator('select.probe-kind').selectOption(kind);
      await page.locator('select.probe-label').selectOption('regex');
      await page.locator('input.probe-regex').fill(regex);
      await page.locator('input.probe-regex').dispatchEvent('change');
      await page.locator('button.probe-fit').click();
      await page.locator('p.probe-status', { hasText: 'test half' }).waitFor();
      return page.locator('table.probe-results tbody tr').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-value'))));
    };
    const linear = await fit('ridge', '^ A');
    assert.equal(linear.length, L);
    for (const r2 of linear) assert.ok(r2 >= 0.999, `R² of the linear label: ${linear}`);
    const noLabel = await fit('ridge', 'x');
    for (const r2 of noLabel) assert.ok(Math.abs(r2) <= 0.1, `R² of the random label: ${noLabel}`);
    const acc = await fit('logistic', '^ A');
    for (const a of acc) assert.ok(a >= 0.99, `logistic accuracy: ${acc}`);
    console.log(`# probe: ridge R² linear ${linear.map((v) => v.toFixed(5))}, random ${noLabel.map((v) => v.toFixed(4))}; logistic accuracy ${acc.map((v) => v.toFixed(4))}`);
    // a bad pattern says so instead of failing
    await page.locator('input.probe-regex').fill('(');
    await page.locator('input.probe-regex').dispatchEvent('change');
    await page.locator('button.probe-fit').click();
    await page.locator('p.probe-status', { hasText: 'Not a regular expression' }).waitFor();
    await page.close();
  });

  test('the view state survives a reload (focus, window, selects, matrix zoom)', async () => {
    const page = await load('explorer');
    const data = synthetic({ adaptive: true, N: 100, context: 40, stride: 20, L: 2, H: 4 });
    await sendData(page, data);
    await page.locator('svg.overview g.cell').nth(6).click();
    await page.locator('#matrix select.window-picker').selectOption('2');
    await page.locator('select.overview-metric').selectOption('loraTok');
    await page.locator('select.strip-signal').selectOption('loraRel');
    await page.locator('#matrix button.zoom-in').click();
    await page.waitForTimeout(400); // the state is saved a moment after the last change
    const saved = await pageState(page);
    const zoomed = await page.locator('#matrix .spacer').evaluate((e) => (e as HTMLElement).style.width);
    await page.close();
    const again = await load('explorer', saved);
    await again.locator('#summary p', { hasText: 'focus L1.H2' }).waitFor(); // drawn from the saved analysis
    assert.equal(await again.locator('select.overview-metric').inputValue(), 'loraTok');
    assert.equal(await again.locator('select.strip-signal').inputValue(), 'loraRel');
    assert.match(await again.locator('#matrix h3').innerText(), /window 3\//);
    assert.equal(await again.locator('#matrix .spacer').evaluate((e) => (e as HTMLElement).style.width), zoomed);
    await again.close();
  });

  test('colours follow the theme: a new background repaints the matrix', async () => {
    const page = await load('explorer');
    await sendData(page, synthetic({ N: 30 }));
    const corner = () =>
      page.evaluate(() => {
        const c = document.querySelector<HTMLCanvasElement>('#matrix canvas.matrix')!;
        const d = c.getContext('2d')!.getImageData(c.width - 3, 2, 1, 1).data; // a masked key: background
        return [d[0], d[1], d[2]];
      });
    assert.deepEqual(await corner(), [0x1e, 0x1e, 0x1e]);
    await page.evaluate(() => {
      document.documentElement.style.setProperty('--vscode-editor-background', '#ffffff');
      document.body.className = 'vscode-light';
    });
    await page.waitForFunction(() => {
      const c = document.querySelector<HTMLCanvasElement>('#matrix canvas.matrix')!;
      return c.getContext('2d')!.getImageData(c.width - 3, 2, 1, 1).data[0] === 255;
    });
    await page.close();
  });

  test('no exceptions on empty data, a base model without signals, a layer without maps, or clear', async () => {
    const page = await load('explorer');
    const empty = synthetic({ L: 1, H: 1, N: 1 });
    await send(page, { type: 'explorer/data', data: { ...empty, tokens: [], events: [] } });
    await page.waitForSelector('p.empty');
    await sendData(page, synthetic({ L: 2, H: 1, N: 10, attnLayers: [1] }));
    await page.locator('#matrix .hint', { hasText: 'not sent for layer 0' }).waitFor();
    await page.locator('svg.overview g.cell').nth(1).click();
    await page.locator('#matrix h3', { hasText: 'L1.H0' }).waitFor();
    await sendData(page, synthetic({ L: 2, H: 2, N: 10 }));
    assert.equal(await page.locator('#strips div.bars').count(), 0);
    await send(page, { type: 'explorer/clear' });
    await page.waitForSelector('p.empty');
    assert.deepEqual(errors.filter((e) => e.startsWith('explorer')), []);
    await page.close();
  });

  test('4,096 tokens: the first matrix view draws, scrolling and zooming respond (times printed)', async () => {
    const page = await load('explorer');
    const N = 4096;
    const t0 = Date.now();
    const data = synthetic({ N, L: 2, H: 2, Hkv: 1, attnLayers: [0], attentionWindows: [null, 512], leak: true, dNll: true });
    const sizeMb = data.events.reduce((n, e) => n + (e.kind === 'layer' && e.attn ? e.attn.data.length : 0), 0) / 1e6;
    const built = Date.now() - t0;
    const draw = await page.evaluate(async (msg) => {
      const start = performance.now();
      window.postMessage(msg, '*');
      await new Promise<void>((done) => {
        const check = () => (document.querySelector<HTMLCanvasElement>('#matrix canvas.matrix')?.dataset.complete === '1' ? done() : requestAnimationFrame(check));
        check();
      });
      const end = performance.now();
      return { posted: end - start, received: end - (window as unknown as { __received: number }).__received };
    }, { type: 'explorer/data', data } as object);
    const firstDraw = draw.received;
    assert.equal(await page.locator('#matrix canvas.matrix').getAttribute('data-complete'), '1');
    const scroll = await page.evaluate(async () => {
      const vp = document.querySelector<HTMLElement>('#matrix .viewport')!;
      const canvas = document.querySelector<HTMLCanvasElement>('#matrix canvas.matrix')!;
      const before = canvas.dataset.rows;
      const frames: number[] = [];
      const start = performance.now();
      await new Promise<void>((done) => {
        const step = (t: number) => {
          frames.push(t);
          vp.scrollTop += 37;
          vp.scrollLeft += 23;
          if (frames.length < 120) requestAnimationFrame(step);
          else done();
        };
        requestAnimationFrame(step);
      });
      const elapsed = (performance.now() - start) / 1000;
      let worst = 0;
      for (let i = 1; i < frames.length; i++) worst = Math.max(worst, frames[i] - frames[i - 1]);
      await new Promise((r) => requestAnimationFrame(r));
      return { fps: frames.length / elapsed, worst, before, after: canvas.dataset.rows };
    });
    assert.notEqual(scroll.after, scroll.before, 'the view moved with the scroll');
    const zoom = await page.evaluate(async () => {
      const start = performance.now();
      (document.querySelector('#matrix button.zoom-fit') as HTMLButtonElement).click();
      const canvas = document.querySelector<HTMLCanvasElement>('#matrix canvas.matrix')!;
      await new Promise<void>((done) => {
        const check = () => (canvas.dataset.complete === '1' ? done() : requestAnimationFrame(check));
        requestAnimationFrame(check);
      });
      return { ms: performance.now() - start, rows: canvas.dataset.rows };
    });
    assert.equal(zoom.rows, `0-${N - 1}`);
    // the strips over 4,096 tokens scroll too
    const strips = await page.evaluate(async () => {
      const vp = document.querySelector<HTMLElement>('#strips .vgrid[data-strip="tokens"] .viewport')!;
      (document.querySelector('#strips button.zoom-in') as HTMLButtonElement).click();
      (document.querySelector('#strips button.zoom-in') as HTMLButtonElement).click();
      const start = performance.now();
      let frames = 0;
      await new Promise<void>((done) => {
        const step = () => {
          frames++;
          vp.scrollLeft += 41;
          if (frames < 60) requestAnimationFrame(step);
          else done();
        };
        requestAnimationFrame(step);
      });
      return frames / ((performance.now() - start) / 1000);
    });
    console.log(
      `# 4,096 tokens (attention ${sizeMb.toFixed(0)} MB of base64, built in ${built} ms): first draw ${firstDraw.toFixed(0)} ms from the message's arrival (target ≤ 300; ${draw.posted.toFixed(0)} ms including the browser's copy of the message), ` +
        `matrix scrolling ${scroll.fps.toFixed(1)} frames/s (worst frame ${scroll.worst.toFixed(0)} ms; target ≥ 30), zoom to fit ${zoom.ms.toFixed(0)} ms, strips scrolling ${strips.toFixed(1)} frames/s`,
    );
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

  test('the standalone report renders offline: the annotated text first, with the hover’s head codes and top-k', async () => {
    const data = synthetic({ adaptive: true, N: 2000, L: 2, H: 4, context: 1024, stride: 512, attnLayers: [1], leak: true });
    const html = renderReportHtml(data, bundleSource('report'), mediaCss('report.css', 'explorer.css'));
    const page = await pages.newPage('report', { width: 1200, height: 900 });
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    await page.setContent(html);
    await page.waitForSelector('svg.overview g.cell');
    const sections = await page.locator('section').evaluateAll((els) => els.map((e) => e.id));
    assert.equal(sections[0], 'text', `sections: ${sections}`);
    for (const id of ['overview', 'matrix', 'strips', 'latent']) assert.ok(sections.includes(id), `${id} in ${sections}`);
    assert.equal(await page.locator('#text span.tok').count(), 2000);
    assert.equal(await page.locator('#text span.tok').nth(7).innerText(), ' t7');
    assert.ok((await page.locator('#text .legend .ramp').count()) === 1);
    await page.locator('#text span.tok').nth(7).hover();
    const card = page.locator('.hl-tooltip .token-card');
    assert.match(await card.locator('.head').innerText(), /^token #7 ·t7 · id 107/);
    assert.match(await card.locator('.preds').innerText(), /NLL of the next token 2\.000 — top 5: ·v107 40\.0 % · ·v108 30\.0 %/);
    assert.equal(await card.locator('table.head-codes tr').count(), 3); // a header and one row per layer
    assert.match(await card.locator('table.head-codes tr').nth(1).innerText(), /^L0/);
    assert.equal(await card.locator('table.latent-codes tr').count(), 2);
    assert.equal(await page.locator('canvas.matrix').count(), 1);
    assert.doesNotMatch(await page.locator('body').innerText(), /editor/i);
    assert.deepEqual(requests.filter((u) => !u.startsWith('data:') && !u.startsWith('about:')), []);
    assert.deepEqual(errors.filter((e) => e.startsWith('report')), []);
    console.log(`# report of 2,000 tokens (2 layers × 4 heads, attention for 1 layer in 3 windows): ${(html.length / 1e6).toFixed(1)} MB`);
    await page.close();
  });

  test('no page errors anywhere', () => {
    assert.deepEqual(errors, []);
  });
});

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 4294967296;
  };
}
