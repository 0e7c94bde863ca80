/**
 * UI tests against code-server with the packaged .vsix installed, driven like a person would:
 * command palette → Analyze Attention → coloured tokens; hover → head-code grid; the Attention
 * Explorer's L×H overview; the sidebar monitor drawing a curve during a short training run.
 * Run by scripts/e2e.mjs; screenshots in .e2e-out/.
 */
import type { Page, FrameLocator } from 'playwright-core';
import * as path from 'node:path';

interface Ctx {
  outDir: string;
  workspace: string;
}

/** F1 opens the palette with '>'; the same box without '>' is Quick Open. */
async function quickInput(page: Page): Promise<void> {
  const input = page.locator('.quick-input-widget .quick-input-box input');
  for (let attempt = 0; attempt < 6; attempt++) {
    if (attempt) {
      await page.keyboard.press('Escape');
      await page.locator('.monaco-workbench .part.sidebar .pane-header').first().click().catch(() => {}); // focus the workbench
    }
    await page.keyboard.press('F1');
    if (await input.waitFor({ state: 'visible', timeout: 3000 }).then(() => true, () => false)) return;
  }
  throw new Error('the command palette did not open');
}

async function palette(page: Page, command: string): Promise<void> {
  await quickInput(page);
  const input = page.locator('.quick-input-widget .quick-input-box input');
  await input.waitFor({ state: 'visible' });
  await input.fill(`>${command}`);
  await page.locator('.quick-input-widget .monaco-list-row').first().waitFor({ state: 'visible' });
  await page.keyboard.press('Enter');
}

async function openFile(page: Page, name: string): Promise<void> {
  // the Explorer's row for the file: a double-click opens it as a pinned editor
  const row = page.locator('.explorer-folders-view .monaco-list-row', { hasText: name }).first();
  await row.waitFor({ state: 'visible', timeout: 60_000 });
  await row.dblclick();
  await page.locator('.tabs-container .tab', { hasText: name }).first().waitFor({ state: 'visible', timeout: 30_000 });
  await page.locator('.monaco-editor .view-line').first().waitFor({ state: 'visible' });
}

async function decorated(page: Page): Promise<number> {
  return page.locator('.monaco-editor .view-overlays div[class*="ced-"]').count();
}

async function webview(page: Page, srcPart: string): Promise<FrameLocator> {
  const outer = page.locator(`iframe.webview.ready[src*="${srcPart}"]`).last();
  await outer.waitFor({ state: 'attached', timeout: 60_000 });
  return page.frameLocator(`iframe.webview.ready[src*="${srcPart}"] >> nth=-1`).frameLocator('#active-frame');
}

export const tests = [
  {
    name: 'command palette → Analyze Attention colours the tokens',
    async run(page: Page, ctx: Ctx) {
      await page.locator('.monaco-workbench').waitFor({ state: 'visible', timeout: 60_000 });
      await page.locator('.statusbar-item', { hasText: 'no model' }).first().waitFor({ state: 'visible', timeout: 60_000 }); // Head Lens is active
      await openFile(page, 'sample.py');
      const before = await decorated(page);
      await palette(page, 'Head Lens: Analyze Attention');
      const end = Date.now() + 120_000;
      while ((await decorated(page)) <= before) {
        if (Date.now() > end) throw new Error('no token decorations appeared');
        await page.waitForTimeout(300);
      }
      await page.screenshot({ path: path.join(ctx.outDir, 'ui-analyzed.png') });
    },
  },
  {
    name: 'hover on a token shows the head-code grid',
    async run(page: Page, ctx: Ctx) {
      const token = page.locator('.monaco-editor .view-line span', { hasText: 'softmax' }).first();
      await token.hover();
      const hover = page.locator('.monaco-hover:not(.hidden)', { hasText: 'Head codes' });
      await hover.waitFor({ state: 'visible', timeout: 30_000 });
      const rows = await hover.locator('table tr').count();
      if (rows < 2) throw new Error(`the head-code table has ${rows} rows`);
      await page.screenshot({ path: path.join(ctx.outDir, 'ui-hover.png') });
      await page.keyboard.press('Escape');
    },
  },
  {
    name: 'the Attention Explorer draws L × H overview cells',
    async run(page: Page, ctx: Ctx) {
      await palette(page, 'Head Lens: Show Attention Explorer');
      const frame = await webview(page, 'extensionId=headlens.headlens');
      const cells = frame.locator('svg.overview g.cell');
      await cells.first().waitFor({ state: 'visible', timeout: 60_000 });
      const n = await cells.count();
      const summary = await frame.locator('#summary p').first().innerText();
      const m = /(\d+) layers × (\d+) heads/.exec(summary);
      if (!m) throw new Error(`no model summary: ${summary}`);
      if (n !== +m[1] * +m[2]) throw new Error(`${n} overview cells for ${m[1]} × ${m[2]}`);
      if ((await frame.locator('canvas.matrix').count()) !== 1) throw new Error('no attention matrix canvas');
      await page.screenshot({ path: path.join(ctx.outDir, 'ui-explorer.png') });
    },
  },
  {
    name: 'the sidebar monitor draws a loss curve during a short training run',
    async run(page: Page, ctx: Ctx) {
      await palette(page, 'View: Close All Editors');
      await palette(page, 'Head Lens: Train Model');
      const widget = page.locator('.quick-input-widget', { hasText: 'training data' });
      await widget.waitFor({ state: 'visible', timeout: 60_000 }).catch(async (e) => {
        await page.screenshot({ path: path.join(ctx.outDir, 'ui-train-pick.png') });
        throw e;
      });
      const input = widget.locator('.quick-input-box input');
      await input.fill('notes.md');
      const row = page.locator('.quick-input-widget .monaco-list-row', { hasText: 'notes.md' }).first();
      await row.waitFor();
      await row.locator('input[type=checkbox], .quick-input-list-checkbox, .monaco-checkbox').first().click(); // a multi-select pick: tick the row
      await input.press('Enter');
      const next = async (title: string, value: string) => {
        const w = page.locator('.quick-input-widget', { hasText: title });
        await w.waitFor({ state: 'visible', timeout: 30_000 });
        await w.locator('.quick-input-box input').fill(value);
        await page.keyboard.press('Enter');
      };
      await next('Model family', 'adaptive');
      await next('Model size', 'tiny');
      await next('Training steps', '6');
      const frame = await webview(page, 'purpose=webviewView');
      const curve = frame.locator('#loss path.line').first();
      await curve.waitFor({ state: 'attached', timeout: 180_000 });
      const end = Date.now() + 180_000;
      for (;;) {
        const d = (await curve.getAttribute('d')) ?? '';
        if ((d.match(/L/g) ?? []).length >= 2) break;
        if (Date.now() > end) throw new Error(`the loss curve has too few points: ${d}`);
        await page.waitForTimeout(500);
      }
      await page.screenshot({ path: path.join(ctx.outDir, 'ui-monitor.png') });
    },
  },
];
