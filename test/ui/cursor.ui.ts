/**
 * Follow Cursor in code-server with the packaged .vsix, driven like a person would: Analyze
 * Attention, Head Lens: Follow Cursor from the palette, a click on a token — the attended keys are
 * tinted and the top ones underlined, the legend names the query; a click elsewhere moves them;
 * Ctrl+Alt+] steps to the next head; the hover lists the keys. The tests run in order on one page.
 * Run by scripts/e2e.mjs; screenshots in .e2e-out/ (ui-cursor-*.png).
 */
import type { Locator, Page } from 'playwright-core';
import * as path from 'node:path';

interface Ctx {
  outDir: string;
  workspace: string;
  shared: { firstKeys?: string[] };
}

const QUICK_INPUT = '.quick-input-widget .quick-input-box input';

async function palette(page: Page, command: string): Promise<void> {
  const input = page.locator(QUICK_INPUT);
  for (let attempt = 0; ; attempt++) {
    await page.keyboard.press('F1');
    if (await input.waitFor({ state: 'visible', timeout: 3000 }).then(() => true, () => false)) break;
    if (attempt === 5) throw new Error('the command palette did not open');
    await page.keyboard.press('Escape');
  }
  await input.fill(`>${command}`);
  await page.locator('.quick-input-widget .monaco-list-row', { hasText: command.replace(/^.*?: /, '') }).first().waitFor({ state: 'visible' });
  await page.keyboard.press('Enter');
}

async function until(page: Page, fn: () => Promise<boolean>, what: string, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`${what} within ${ms / 1000} s`);
    await page.waitForTimeout(100);
  }
}

/** Follow Cursor's underlines of the top keys: overlay decorations with only a 2 px solid bottom border. Their boxes, as "x,y,w". */
async function underlinedKeys(page: Page): Promise<string[]> {
  return page.locator('.monaco-editor .view-overlays div[class*="ced-"]').evaluateAll((els) =>
    els
      .filter((el) => {
        const s = getComputedStyle(el);
        return (el as HTMLElement).offsetWidth > 0 && s.borderBottomStyle === 'solid' && s.borderBottomWidth === '2px' && s.borderTopStyle === 'none';
      })
      .map((el) => {
        const b = el.getBoundingClientRect();
        return `${Math.round(b.x)},${Math.round(b.y)},${Math.round(b.width)}`;
      })
      .sort(),
  );
}

/** Tokens tinted by the cursor's attention: overlay backgrounds of Follow Cursor's warm hue (red above blue). */
async function tintedTokens(page: Page): Promise<number> {
  return page.locator('.monaco-editor .view-overlays div[class*="ced-"]').evaluateAll((els) =>
    els.filter((el) => {
      const m = /rgba?\((\d+), (\d+), (\d+)(?:, ([\d.]+))?\)/.exec(getComputedStyle(el).backgroundColor);
      return (el as HTMLElement).offsetWidth > 0 && !!m && Number(m[4] ?? 1) > 0 && Number(m[1]) > Number(m[3]) + 60;
    }).length,
  );
}

function statusItem(page: Page, text: string): Locator {
  return page.locator('.statusbar-item', { hasText: text }).first();
}

/** A point inside a word's second character on the line that contains `line`. */
async function wordPoint(page: Page, line: string, word: string): Promise<{ x: number; y: number }> {
  const row = page.locator('.monaco-editor .view-line', { hasText: line }).first();
  const span = row.locator('span span', { hasText: word }).first();
  const box = await span.boundingBox();
  if (!box) throw new Error(`no '${word}' on the line '${line}'`);
  // the span may hold more than the word (a token of the syntax colouring): aim at the word's start
  const text = await span.innerText();
  const at = Math.max(0, text.indexOf(word));
  const charWidth = box.width / Math.max(1, text.length);
  return { x: box.x + (at + 1.5) * charWidth, y: box.y + box.height / 2 };
}

async function clickWord(page: Page, line: string, word: string): Promise<void> {
  const p = await wordPoint(page, line, word);
  await page.mouse.click(p.x, p.y);
}

export const tests = [
  {
    name: 'Follow Cursor: a click on a token tints the keys it attends to and underlines the top ones',
    async run(page: Page, ctx: Ctx) {
      await page.locator('.monaco-workbench').waitFor({ state: 'visible', timeout: 60_000 });
      await statusItem(page, 'no model').waitFor({ state: 'visible', timeout: 60_000 });
      const row = page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'sample.py' }).first();
      await row.waitFor({ state: 'visible', timeout: 60_000 });
      await row.dblclick();
      await page.locator('.monaco-editor .view-line').first().waitFor({ state: 'visible' });
      await palette(page, 'Head Lens: Analyze Attention');
      // the switch appears once there is an analysis to follow
      await statusItem(page, 'Follow').waitFor({ state: 'visible', timeout: 120_000 });
      await until(page, async () => (await page.locator('.notification-toast', { hasText: 'analysing attention' }).count()) === 0, 'the analysis did not finish', 120_000);
      await palette(page, 'Head Lens: Follow Cursor');
      await statusItem(page, 'Follow: attends to').waitFor({ state: 'visible', timeout: 10_000 });
      await clickWord(page, 'weights = softmax(scores)', 'softmax');
      // GPT-2's tokenizer cuts ' softmax' into ' soft' + 'max': the query is the token under the cursor
      await statusItem(page, 'attention from “soft').waitFor({ state: 'visible', timeout: 10_000 });
      await until(page, async () => (await underlinedKeys(page)).length > 0, 'no key was underlined', 10_000);
      const keys = await underlinedKeys(page);
      if (keys.length > 5) throw new Error(`${keys.length} underlined keys for a top 5`);
      const tinted = await tintedTokens(page);
      if (tinted < keys.length) throw new Error(`only ${tinted} tokens tinted by the cursor's attention`);
      ctx.shared.firstKeys = keys;
      await page.screenshot({ path: path.join(ctx.outDir, 'ui-cursor-softmax.png') });
    },
  },
  {
    name: 'Follow Cursor: moving the cursor to another token changes the highlighted keys',
    async run(page: Page, ctx: Ctx) {
      const before = ctx.shared.firstKeys ?? [];
      await clickWord(page, 'for w, value in zip(weights, values):', 'values');
      await statusItem(page, 'attention from “values”').waitFor({ state: 'visible', timeout: 10_000 });
      await until(page, async () => {
        const now = await underlinedKeys(page);
        return now.length > 0 && now.join(' ') !== before.join(' ');
      }, 'the underlined keys did not change', 10_000);
      await page.screenshot({ path: path.join(ctx.outDir, 'ui-cursor-moved.png') });
    },
  },
  {
    name: 'Follow Cursor: Ctrl+Alt+] steps to the next head and the hover lists the top keys',
    async run(page: Page, ctx: Ctx) {
      // the focus starts at the mean of every head; the first step picks L0.H0
      await page.keyboard.press('Control+Alt+BracketRight');
      await statusItem(page, 'Follow: attends to · L0.H0').waitFor({ state: 'visible', timeout: 10_000 });
      await page.keyboard.press('Control+Alt+BracketRight');
      await statusItem(page, 'Follow: attends to · L0.H1').waitFor({ state: 'visible', timeout: 10_000 });
      // the hover of the query (the token under the cursor) lists its keys
      const query = await wordPoint(page, 'for w, value in zip(weights, values):', 'values');
      await page.mouse.move(query.x, query.y);
      const hover = page.locator('.monaco-hover:not(.hidden)', { hasText: 'Follow Cursor' });
      await hover.waitFor({ state: 'visible', timeout: 30_000 });
      const title = await hover.locator('p', { hasText: 'Follow Cursor' }).first().innerText();
      if (!/values/.test(title) || !/L0\.H1/.test(title)) throw new Error(`the hover is not the query's at L0.H1: ${title}`);
      const rows = await hover.locator('table', { hasText: 'weight' }).first().locator('tr').allInnerTexts();
      const listed = rows.filter((r) => /#\d+/.test(r)).length;
      if (listed < 1 || listed > 5) throw new Error(`the hover lists ${listed} keys: ${rows.join(' / ')}`);
      await page.screenshot({ path: path.join(ctx.outDir, 'ui-cursor-hover.png') });
      await page.keyboard.press('Escape');
    },
  },
];
