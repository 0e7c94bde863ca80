/** The Attention Explorer panel host and Export Analysis (JSON from the host, SVG/PNG from the webview). */
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import * as os from 'node:os';
import * as path from 'node:path';
import * as fs from 'node:fs';
import type { ExplorerData } from '../../engine/protocol';
import type { HeadLensApi } from '../../extension/extension';
import { headLens, openSample, until } from './util';

let api: HeadLensApi;
const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'headlens-export-'));

suite('Attention Explorer and export', () => {
  suiteSetup(async () => {
    api = await headLens();
    const editor = await openSample();
    await vscode.commands.executeCommand('headlens.analyze', { scope: 'document' });
    assert.ok(api.store.get(editor.document.uri.toString()), 'no analysis to explore');
  });

  suiteTeardown(async () => {
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
    await vscode.commands.executeCommand('headlens.clearAnnotations');
  });

  test('Show Attention Explorer opens the panel and its page says ready', async () => {
    await vscode.commands.executeCommand('headlens.showExplorer');
    await until(() => api.explorer.isReady, 'the explorer page to load', 30_000);
    assert.ok(api.explorer.visible);
  });

  test('the hover link opens the explorer at a token', async () => {
    const editor = await openSample();
    await vscode.commands.executeCommand('headlens.openExplorerAt', editor.document.uri.toString(), 5);
    await until(() => api.explorer.isReady, 'the explorer page', 30_000);
  });

  test('Export Analysis as JSON writes the tokens and every streamed event', async () => {
    const editor = await openSample();
    const a = api.store.get(editor.document.uri.toString())!;
    const target = vscode.Uri.file(path.join(outDir, 'analysis.json'));
    const written = await vscode.commands.executeCommand<vscode.Uri>('headlens.export', 'json', target);
    assert.equal(written?.fsPath, target.fsPath);
    const data = JSON.parse(fs.readFileSync(target.fsPath, 'utf8')) as ExplorerData;
    assert.equal(data.documentUri, editor.document.uri.toString());
    assert.equal(data.tokens.length, a.record.N);
    assert.equal(data.events.filter((e) => e.kind === 'layer').length, a.result.windowCount * a.model.config.n_layer);
  });

  test('Export Analysis as an HTML report: one offline file with the analysis and its tokens', async () => {
    const editor = await openSample();
    const a = api.store.get(editor.document.uri.toString())!;
    const target = vscode.Uri.file(path.join(outDir, 'analysis.html'));
    assert.equal((await vscode.commands.executeCommand<vscode.Uri>('headlens.export', 'html', target))?.fsPath, target.fsPath);
    const html = fs.readFileSync(target.fsPath, 'utf8');
    assert.doesNotMatch(html, /<script[^>]+src=|<link[^>]+href=/, 'the report must not load anything');
    const json = /<script type="application\/json" id="headlens-data">([\s\S]*?)<\/script>/.exec(html);
    assert.ok(json, 'the report carries its analysis');
    const data = JSON.parse(json[1]) as ExplorerData;
    assert.equal(data.tokens.length, a.record.N);
    const doc = editor.document.getText();
    assert.equal(data.tokens.map((t) => doc.slice(t.start, t.end)).join(''), doc, 'the tokens tile the document');
  });

  test('Export Analysis as SVG and PNG comes back from the explorer webview', async () => {
    await openSample();
    const svg = vscode.Uri.file(path.join(outDir, 'analysis.svg'));
    assert.ok(await vscode.commands.executeCommand('headlens.export', 'svg', svg), 'the SVG export failed');
    assert.match(fs.readFileSync(svg.fsPath, 'utf8').slice(0, 300), /<svg/);
    const png = vscode.Uri.file(path.join(outDir, 'analysis.png'));
    assert.ok(await vscode.commands.executeCommand('headlens.export', 'png', png), 'the PNG export failed');
    assert.deepEqual([...fs.readFileSync(png.fsPath).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], 'not a PNG');
  });
});
