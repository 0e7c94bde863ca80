/**
 * UI tests against code-server with the packaged .vsix installed, driven like a person would:
 * command palette → Analyze Attention → coloured tokens; hover → head-code grid; the Attention
 * Explorer's L×H overview; the sidebar monitor drawing a curve during a short training run.
 * The tests run in order on one page (each starts where the previous one left off).
 * Run by scripts/e2e.mjs; screenshots in .e2e-out/.
 */
import type { Page, FrameLocator, Locator } from 'playwright-core';
import * as path from 'node:path';

interface Ctx {
  outDir: string;
  workspace: string;
  /** What one test measured for the next: the model's layers × heads as the hover shows them. */
  shared: { layers?: number; heads?: number };
}

const QUICK_INPUT = '.quick-input-widget .quick-input-box input';

/** F1 opens the palette with '>'; when a webview or the sidebar holds the keys, focus the workbench and retry. */
async function openPalette(page: Page): Promise<Locator> {
  const input = page.locator(QUICK_INPUT);
  for (let attempt = 0; attempt < 6; attempt++) {
    if (attempt) {
      await page.keyboard.press('Escape');
      await page.locator('.monaco-workbench .part.statusbar').click({ position: { x: 5, y: 5 } }).catch(() => {});
    }
    await page.keyboard.press('F1');
    if (await input.waitFor({ state: 'visible', timeout: 3000 }).then(() => true, () => false)) return input;
  }
  throw new Error('the command palette did not open');
}

async function palette(page: Page, command: string): Promise<void> {
  const input = await openPalette(page);
  await input.fill(`>${command}`);
  await page.locator('.quick-input-widget .monaco-list-row', { hasText: command.replace(/^.*?: /, '') }).first().waitFor({ state: 'visible' });
  await page.keyboard.press('Enter');
}

async function openFile(page: Page, name: string): Promise<void> {
  // the Explorer's row for the file: a double-click opens it as a pinned editor
  const row = page.locator('.explorer-folders-view .monaco-list-row', { hasText: name }).first();
  await row.waitFor({ state: 'visible', timeout: 60_000 });
  await row.dblclick();
  await page.locator('.tabs-container .tab.active', { hasText: name }).waitFor({ state: 'visible' });
  await page.locator('.monaco-editor .view-line').first().waitFor({ state: 'visible' });
}

/** Token colours: background decorations (`ced-…` classes) drawn in the editor's overlay layer with a visible colour. */
async function colouredTokens(page: Page): Promise<number> {
  return page.locator('.monaco-editor .view-overlays div[class*="ced-"]').evaluateAll((els) =>
    els.filter((el) => {
      const bg = getComputedStyle(el).backgroundColor;
      return (el as HTMLElement).offsetWidth > 0 && bg !== 'transparent' && !/rgba\(.*, 0\)$/.test(bg);
    }).length,
  );
}

/** Until `fn` holds (the page has no event for it); `what` says what did not happen. */
async function until(page: Page, fn: () => Promise<boolean>, what: string, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`${what} within ${ms / 1000} s`);
    await page.waitForTimeout(250);
  }
}

/** The hover fades in: wait for its animations so the screenshot shows it opaque. */
async function settled(el: Locator): Promise<void> {
  await el.evaluate(async (node) => {
    const nodes: Element[] = [];
    for (let n: Element | null = node; n && nodes.length < 4; n = n.parentElement) nodes.push(n);
    const anims = [...node.getAnimations({ subtree: true }), ...nodes.slice(1).flatMap((n) => n.getAnimations())];
    await Promise.all(anims.filter((a) => a.effect?.getComputedTiming().iterations !== Infinity).map((a) => a.finished.catch(() => {})));
  });
}

/** The webview's inner document: outer `iframe.webview.ready`, inner `#active-frame`. */
async function webview(page: Page, srcPart: string): Promise<FrameLocator> {
  const selector = `iframe.webview.ready[src*="${srcPart}"]`;
  await page.locator(selector).last().waitFor({ state: 'attached', timeout: 60_000 });
  return page.frameLocator(`${selector} >> nth=-1`).frameLocator('#active-frame');
}

export const tests = [
  {
    name: 'command palette → Analyze Attention colours the tokens',
    async run(page: Page, ctx: Ctx) {
      await page.locator('.monaco-workbench').waitFor({ state: 'visible', timeout: 60_000 });
      // the status-bar item says Head Lens is active (its engine starts on first use)
      await page.locator('.statusbar-item', { hasText: 'no model' }).first().waitFor({ state: 'visible', timeout: 60_000 });
      await openFile(page, 'sample.py');
      const before = await colouredTokens(page);
      await palette(page, 'Head Lens: Analyze Attention');
      await until(page, async () => (await colouredTokens(page)) > before + 20, 'no coloured tokens appeared', 120_000);
      // the decorations sit on the text: some of them overlap the 'softmax' token on screen
      const token = await page.locator('.monaco-editor .view-line span', { hasText: 'softmax' }).first().boundingBox();
      const boxes = await page.locator('.monaco-editor .view-overlays div[class*="ced-"]').evaluateAll((els) => els.map((el) => el.getBoundingClientRect().toJSON()));
      const overlaps = boxes.filter((b) => token && b.x < token.x + token.width && b.x + b.width > token.x && b.y < token.y + token.height && b.y + b.height > token.y);
      if (!overlaps.length) throw new Error(`no decoration lies on the 'softmax' token (${boxes.length} decorations)`);
      await page.screenshot({ path: path.join(ctx.outDir, 'ui-analyzed.png') });
    },
  },
  {
    name: 'hover on a token shows the head-code grid (layers × heads)',
    async run(page: Page, ctx: Ctx) {
      const token = page.locator('.monaco-editor .view-line span', { hasText: 'softmax' }).first();
      await token.hover();
      const hover = page.locator('.monaco-hover:not(.hidden)', { hasText: 'Head codes' });
      await hover.waitFor({ state: 'visible', timeout: 30_000 });
      await settled(hover);
      // first table: header "| | H0 … H(H-1) |" and one row per layer; second: one latent code (H numbers) per layer
      const grid = hover.locator('table').first();
      const header = await grid.locator('tr').first().locator('th, td').allInnerTexts();
      const rows = await grid.locator('tr').allInnerTexts();
      const heads = header.filter((c) => /^H\d+$/.test(c.trim())).length;
      const layers = rows.filter((r) => /^\s*L\d+/.test(r)).length;
      if (heads < 1 || layers < 1) throw new Error(`the head-code grid is ${layers} × ${heads}: ${rows.join(' / ')}`);
      const cells = await grid.locator('tr').nth(1).locator('td').count();
      if (cells !== heads + 1) throw new Error(`layer row has ${cells - 1} cells for ${heads} heads`);
      const codes = await hover.locator('table').nth(1).locator('tr').allInnerTexts();
      const z = codes.map((r) => /\[([^\]]*)\]/.exec(r)?.[1]).filter((s): s is string => !!s);
      if (z.length !== layers || z.some((s) => s.split(',').length !== heads)) throw new Error(`latent codes do not have ${heads} components per layer: ${codes.join(' / ')}`);
      ctx.shared.layers = layers;
      ctx.shared.heads = heads;
      await page.screenshot({ path: path.join(ctx.outDir, 'ui-hover.png') });
      await page.keyboard.press('Escape');
    },
  },
  {
    name: 'the Attention Explorer draws L × H overview cells; clicking one focuses that head',
    async run(page: Page, ctx: Ctx) {
      await palette(page, 'Head Lens: Show Attention Explorer');
      const frame = await webview(page, 'extensionId=headlens.headlens');
      const cells = frame.locator('svg.overview g.cell');
      await cells.first().waitFor({ state: 'visible', timeout: 60_000 });
      const summary = await frame.locator('#summary p').first().innerText();
      const m = /(\d+) layers × (\d+) heads/.exec(summary);
      if (!m) throw new Error(`no model summary: ${summary}`);
      const [L, H] = [+m[1], +m[2]];
      if (ctx.shared.layers !== undefined && (ctx.shared.layers !== L || ctx.shared.heads !== H)) throw new Error(`the hover showed ${ctx.shared.layers} × ${ctx.shared.heads}, the explorer ${L} × ${H}`);
      const n = await cells.count();
      if (n !== L * H) throw new Error(`${n} overview cells for ${L} × ${H}`);
      const drawn = await cells.locator('image').evaluateAll((els) => els.filter((e) => (e.getAttribute('href') ?? '').startsWith('data:image/')).length);
      if (drawn !== L * H) throw new Error(`${drawn} of ${L * H} overview thumbnails drawn`);
      if ((await frame.locator('canvas.matrix').count()) !== 1) throw new Error('no attention matrix canvas');
      // click the last head: the summary and the matrix follow
      await cells.last().click();
      const focus = `focus L${L - 1}.H${H - 1}`;
      await frame.locator('#summary p', { hasText: focus }).waitFor({ state: 'visible', timeout: 10_000 });
      await frame.locator('svg.overview g.cell.focused').last().waitFor({ state: 'visible' });
      if ((await cells.nth(L * H - 1).getAttribute('class'))?.includes('focused') !== true) throw new Error(`the clicked cell is not marked focused (${focus})`);
      await page.screenshot({ path: path.join(ctx.outDir, 'ui-explorer.png') });
    },
  },
  {
    name: 'the sidebar monitor draws a loss curve during a short training run',
    async run(page: Page, ctx: Ctx) {
      await palette(page, 'View: Close All Editors');
      await palette(page, 'Head Lens: Train Model');
      const widget = page.locator('.quick-input-widget', { hasText: 'training data' });
      await widget.waitFor({ state: 'visible', timeout: 60_000 });
      const input = widget.locator('.quick-input-box input');
      await input.fill('notes.md');
      const row = page.locator('.quick-input-widget .monaco-list-row', { hasText: 'notes.md' }).first();
      await row.waitFor();
      await row.locator('input[type=checkbox], .quick-input-list-checkbox, .monaco-checkbox').first().click(); // a multi-select pick: tick the row
      await input.press('Enter');
      const next = async (title: string, value: string) => {
        const w = page.locator('.quick-input-widget', { hasText: title });
        await w.waitFor({ state: 'visible' });
        await w.locator('.quick-input-box input').fill(value);
        await page.keyboard.press('Enter');
      };
      await next('Model family', 'adaptive');
      await next('Model size', 'tiny');
      // the config step shows the size's config as JSON: accept it as it is
      const config = page.locator('.quick-input-widget', { hasText: 'Config of the adaptive model' });
      await config.waitFor({ state: 'visible' });
      const json = JSON.parse(await config.locator('.quick-input-box input').inputValue()) as { n_embd?: number };
      if (json.n_embd !== 32) throw new Error(`the config step shows ${JSON.stringify(json)}, not the tiny size`);
      await page.keyboard.press('Enter');
      await next('Training steps', '6');
      const frame = await webview(page, 'purpose=webviewView');
      const curve = frame.locator('#loss path.line').first();
      await curve.waitFor({ state: 'attached', timeout: 180_000 });
      const points = async () => ((await curve.getAttribute('d')) ?? '').split(/[ML]/).filter((s) => s.trim()).length;
      await until(page, async () => (await points()) >= 3, 'the loss curve did not reach 3 points', 180_000);
      await page.screenshot({ path: path.join(ctx.outDir, 'ui-monitor.png') });
    },
  },
];
