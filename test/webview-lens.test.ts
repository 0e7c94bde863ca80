/**
 * Head-role badges on the layers × heads overview and the logit-lens strip, in a real browser
 * (Debian's chromium through playwright-core), on hand-made analyses encoded with the wire's own
 * codec: a head given a known induction score shows the induction badge with that score in its
 * tooltip and no other head shows one; the lens strip has a row per layer and a column per token,
 * its hover names the layer's top-k and the rank of the actual next token as the data says; an
 * analysis without a lens says how to turn it on. The standalone report shares the views.
 */
import { test, describe, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { encodeArray } from '../engine/codec';
import { renderReportHtml } from '../engine/analysis/report';
import type { AnalyzeEvent, ExplorerData, TokenInfo } from '../engine/protocol';
import { WebviewPages, bundleSource, mediaCss } from './helpers/webviewPage';

const pages = new WebviewPages({ bundle: 'explorer', css: ['explorer.css'], viewport: { width: 1100, height: 1400 } });
const { send, errors } = pages;

const L = 3, H = 4, N = 14, K = 3;
/** The lens's made-up prediction at (layer, position): ids, probabilities, and the next token's rank. */
const lensTop = (l: number, t: number) => [0, 1, 2].map((k) => 200 + ((l * 7 + t + k) % 20));
const lensProbs = [0.5, 0.25, 0.125];
const lensRank = (l: number, t: number) => (t + 1 < N ? 1 + ((t * (L - l)) % 9) : 0);
const lensProb = (l: number, t: number) => (t + 1 < N ? 1 / (1 + lensRank(l, t)) : NaN);

function analysis(o: { roles?: Record<'previous' | 'duplicate' | 'induction', number[]>; lens?: boolean; windows?: number } = {}): ExplorerData {
  const tokens: TokenInfo[] = [];
  let at = 0;
  for (let i = 0; i < N; i++) {
    const text = ` w${i}`;
    tokens.push({ index: i, id: 100 + i, text, start: at, end: at + text.length });
    at += text.length;
  }
  // two windows that overlap: the second owns its tail only, so stitching must follow ownership
  const wins = o.windows === 2 ? [{ begin: 0, end: 10, ownFrom: 0, ownTo: 10 }, { begin: 4, end: N, ownFrom: 10, ownTo: N }] : [{ begin: 0, end: N, ownFrom: 0, ownTo: N }];
  const events: AnalyzeEvent[] = [];
  wins.forEach((w, wi) => {
    const s = w.begin, T = w.end - w.begin;
    const ht = (f: (h: number, t: number) => number) => encodeArray(Float32Array.from({ length: H * T }, (_, i) => f(Math.floor(i / T), s + (i % T))), [H, T]);
    events.push({ kind: 'tokens', window: wi, windowCount: wins.length, tokenStart: s, tokens: tokens.slice(s, w.end), ownFrom: w.ownFrom, ownTo: w.ownTo });
    for (let l = 0; l < L; l++) {
      events.push({
        kind: 'layer', window: wi, layer: l, tokenStart: s,
        headMax: ht(() => 0.5), headArgmax: encodeArray(Int32Array.from({ length: H * T }, (_, i) => i % T), [H, T], 'i32'),
        headEntropy: ht(() => 1), headDistance: ht(() => 1),
        latentKey: encodeArray(Int32Array.from({ length: T }, (_, i) => i), [T], 'i32'),
        latentCode: encodeArray(new Float32Array(T * H).fill(0.25), [T, H]),
      });
    }
    // a window that does not own a position reports nonsense there: the stitched lens must not show it
    const owns = (t: number) => t >= w.ownFrom && t < w.ownTo;
    const lens = o.lens
      ? {
          topIds: encodeArray(Int32Array.from({ length: L * T * K }, (_, i) => { const l = Math.floor(i / (T * K)), t = s + (Math.floor(i / K) % T); return owns(t) ? lensTop(l, t)[i % K] : 999; }), [L, T, K], 'i32'),
          topProbs: encodeArray(Float32Array.from({ length: L * T * K }, (_, i) => lensProbs[i % K]), [L, T, K]),
          rank: encodeArray(Int32Array.from({ length: L * T }, (_, i) => { const l = Math.floor(i / T), t = s + (i % T); return owns(t) ? lensRank(l, t) : 77; }), [L, T], 'i32'),
          prob: encodeArray(Float32Array.from({ length: L * T }, (_, i) => lensProb(Math.floor(i / T), s + (i % T))), [L, T]),
        }
      : undefined;
    events.push({
      kind: 'output', window: wi, tokenStart: s,
      nll: encodeArray(new Float32Array(T).fill(2), [T]),
      topIds: encodeArray(Int32Array.from({ length: T * K }, (_, i) => 200 + (i % 20)), [T, K], 'i32'),
      topProbs: encodeArray(Float32Array.from({ length: T * K }, (_, i) => lensProbs[i % K]), [T, K]),
      vocabText: Object.fromEntries(Array.from({ length: 20 }, (_, j) => [200 + j, ` p${200 + j}`])),
      ...(lens ? { lens } : {}),
    });
  });
  return {
    documentUri: 'file:///tmp/lens.py',
    model: {
      path: '/models/tiny.pt', family: 'base', config: { family: 'base', vocab_size: 1000, block_size: N, n_layer: L, n_head: H, n_embd: 16 }, paramCount: 1, configSources: {},
      tokenizer: { kind: 'gpt2', source: 'GPT-2 BPE (built in)', vocabSize: 1000 }, causal: true, adaptive: false, futureLeak: false,
      layers: L, heads: H, kvHeads: H, kvHeadOf: [...Array(H).keys()], attentionWindows: Array<null>(L).fill(null), signals: [],
    },
    tokens,
    result: { tokenCount: N, windowCount: wins.length, layers: L, heads: H, meanNll: 2, maxLeak: null, elapsedMs: 1, backend: 'wasm', vocabText: {}, ...(o.roles ? { headRoles: o.roles } : {}) },
    events,
  };
}

/** Role scores with one clear head per role: L2.H1 induction 0.85, L0.H3 previous-token 0.62, L1.H0 duplicate 0.41; the rest small. */
function roles(): Record<'previous' | 'duplicate' | 'induction', number[]> {
  const small = (seed: number) => Array.from({ length: L * H }, (_, i) => ((i * 37 + seed) % 10) / 100); // < 0.1
  const r = { previous: small(1), duplicate: small(3), induction: small(7) };
  r.induction[2 * H + 1] = 0.85;
  r.previous[0 * H + 3] = 0.62;
  r.duplicate[1 * H + 0] = 0.41;
  return r;
}

const explorer = () => pages.load();
async function show(page: Page, data: ExplorerData): Promise<void> {
  await send(page, { type: 'explorer/data', data });
  await page.waitForFunction((n) => document.querySelector('#summary p')?.textContent?.includes(`${n} tokens`), data.tokens.length);
}
const cellSel = (l: number, h: number) => `svg.overview g.cell[aria-label^="layer ${l} head ${h}"]`;

/** Hover cell (layer, t) of the lens strip and return the tooltip. */
async function hoverLens(page: Page, layer: number, t: number): Promise<string> {
  await page.locator('#lens .vgrid').scrollIntoViewIfNeeded();
  const at = await page.evaluate(([layer, t]) => {
    const vp = document.querySelector<HTMLElement>('#lens .vgrid .viewport')!;
    const cell = parseFloat((vp.firstElementChild as HTMLElement).style.width) / Number(vp.closest<HTMLElement>('.vgrid')!.dataset.tokens);
    const r = vp.getBoundingClientRect();
    return { x: r.left - vp.scrollLeft + (t + 0.5) * cell, y: r.top - vp.scrollTop + 14 * (layer + 0.5) };
  }, [layer, t] as const);
  await page.mouse.move(at.x, at.y);
  await page.waitForFunction(() => getComputedStyle(document.querySelector('.hl-tooltip')!).display !== 'none');
  return page.locator('.hl-tooltip').innerText();
}

describe('role badges and the logit-lens strip in chromium', () => {
  before(pages.launch);
  after(pages.close);

  test('a head with a known induction score carries the induction badge, its score in the tooltip; heads below the threshold none', async () => {
    const page = await explorer();
    await show(page, analysis({ roles: roles() }));
    const induction = page.locator(`${cellSel(2, 1)} g.role`);
    assert.equal(await induction.count(), 1);
    assert.equal(await induction.getAttribute('data-role'), 'induction');
    assert.equal(await induction.locator('text').textContent(), 'I');
    assert.match((await induction.locator('title').textContent()) ?? '', /^induction head: score 0\.850/);
    assert.equal(await page.locator(`${cellSel(0, 3)} g.role`).getAttribute('data-role'), 'previous');
    assert.equal(await page.locator(`${cellSel(1, 0)} g.role`).getAttribute('data-role'), 'duplicate');
    assert.equal(await page.locator('svg.overview g.role').count(), 3, 'only the three heads past the threshold have badges');
    // the cell's own tooltip lists every role's score
    const title = await page.locator(`${cellSel(2, 1)} > title`).textContent();
    assert.ok(title?.includes('induction 0.850'), title ?? '');
    assert.ok(title?.includes(`previous-token ${roles().previous[2 * H + 1].toFixed(3)}`), title ?? '');
    // a new analysis without roles takes the badges away
    await show(page, analysis());
    assert.equal(await page.locator('svg.overview g.role').count(), 0);
    await page.close();
  });

  test('the lens strip: a row per layer, a column per token; hover names the layer’s top-k and the next token’s rank', async () => {
    const page = await explorer();
    await show(page, analysis({ lens: true, windows: 2 }));
    const grid = page.locator('#lens .vgrid[data-strip="lens"]');
    assert.equal(await grid.getAttribute('data-layers'), String(L));
    assert.equal(await grid.getAttribute('data-tokens'), String(N));
    assert.deepEqual(await page.locator('#lens .row-axis .label:not(.hover)').allInnerTexts(), ['L0', 'L1', 'L2']);
    const spacer = await page.locator('#lens .vgrid .spacer').evaluate((e) => ({ w: parseFloat((e as HTMLElement).style.width), h: parseFloat((e as HTMLElement).style.height) }));
    assert.equal(spacer.h, L * 14, 'one 14-pixel row per layer');
    // position 6 lies in both windows and is owned by the first; 11 by the second
    for (const [l, t] of [[1, 6], [2, 11], [0, 3]]) {
      const tip = await hoverLens(page, l, t);
      const top = lensTop(l, t).map((id, k) => `·p${id} ${lensProbs[k].toFixed(3)}`).join('  ');
      assert.ok(tip.startsWith(`L${l} · #${t} ·w${t}\nnext ·w${t + 1}: rank ${lensRank(l, t)}, p ${lensProb(l, t).toFixed(4)}\ntop 3: ${top}`), tip);
      const entry = [0, 1, 2].find((x) => lensRank(x, t) <= 5);
      assert.ok(tip.includes(entry === undefined ? 'in no layer’s top 5' : `enters the top 5 at layer ${entry}`), tip);
    }
    // the last token has nothing to predict
    assert.match(await hoverLens(page, 0, N - 1), /no next token/);
    assert.equal(await page.locator('#lens p.none').count(), 0);
    await page.close();
  });

  test('without a lens the section says how to turn it on', async () => {
    const page = await explorer();
    await show(page, analysis());
    assert.match(await page.locator('#lens p.none').innerText(), /headlens\.logitLens setting/);
    assert.equal(await page.locator('#lens .vgrid').count(), 0);
    await page.close();
  });

  test('the standalone report shares the views: badges and the lens strip', async () => {
    const data = analysis({ roles: roles(), lens: true });
    const html = renderReportHtml(data, bundleSource('report'), mediaCss('report.css', 'explorer.css'));
    const page = await pages.newPage('report');
    await page.setContent(html);
    await page.locator(`${cellSel(2, 1)} g.role[data-role="induction"]`).waitFor();
    assert.equal(await page.locator('#lens .vgrid').getAttribute('data-layers'), String(L));
    await page.close();
  });

  test('no page errors', () => {
    assert.deepEqual(errors, []);
  });
});
