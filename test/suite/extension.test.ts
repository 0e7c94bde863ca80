/** The extension inside a real VS Code: activation, commands, analysis → hover and decorations, engine restart, training. */
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { HeadLensApi } from '../../extension/extension';

const EXT_ID = 'headlens.headlens';
let api: HeadLensApi;

async function openSample(): Promise<vscode.TextEditor> {
  const folder = vscode.workspace.workspaceFolders![0].uri;
  const doc = await vscode.workspace.openTextDocument(vscode.Uri.joinPath(folder, 'sample.py'));
  return vscode.window.showTextDocument(doc);
}

async function until<T>(fn: () => T | undefined | false, what: string, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

suite('Head Lens extension', () => {
  suiteSetup(async () => {
    const ext = vscode.extensions.getExtension<HeadLensApi>(EXT_ID);
    assert.ok(ext, `extension ${EXT_ID} is not installed`);
    api = await ext.activate();
  });

  test('activates and returns its API', () => {
    assert.ok(api.engine);
    assert.ok(api.store);
  });

  test('every command of package.json is registered', async () => {
    const ext = vscode.extensions.getExtension(EXT_ID)!;
    const declared = (ext.packageJSON.contributes.commands as { command: string }[]).map((c) => c.command);
    const all = new Set(await vscode.commands.getCommands(true));
    for (const c of declared) assert.ok(all.has(c), `${c} is not registered`);
    assert.ok(declared.length >= 8);
  });

  test('Analyze Attention decorates tokens and the hover shows the head codes', async () => {
    const editor = await openSample();
    await vscode.commands.executeCommand('headlens.analyze', true);
    const a = api.store.get(editor.document.uri.toString());
    assert.ok(a, 'no analysis stored');
    assert.ok(a.record.N > 20, `${a.record.N} tokens`);
    const count = await until(() => api.decorationCount(editor.document.uri) || undefined, 'decorations');
    assert.ok(count > 10, `${count} decorated tokens`);
    const text = editor.document.getText();
    const pos = editor.document.positionAt(text.indexOf('softmax') + 2);
    const hovers = await vscode.commands.executeCommand<vscode.Hover[]>('vscode.executeHoverProvider', editor.document.uri, pos);
    const md = hovers.flatMap((h) => h.contents.map((c) => (typeof c === 'string' ? c : (c as vscode.MarkdownString).value))).join('\n');
    assert.match(md, /Head codes/);
    assert.match(md, /\| L0 \|/);
    assert.match(md, new RegExp(`\\| L${a.model.config.n_layer - 1} \\|`));
    assert.match(md, /Latent code/);
    assert.match(md, /Top next tokens/);
    assert.match(md, /Open in Attention Explorer/);
  });

  test('Clear Annotations removes the decorations', async () => {
    const editor = await openSample();
    await vscode.commands.executeCommand('headlens.clearAnnotations');
    await until(() => api.decorationCount(editor.document.uri) === 0, 'cleared decorations');
  });

  test('the engine restarts after it is killed', async () => {
    const editor = await openSample();
    await vscode.commands.executeCommand('headlens.analyze', true);
    const pid = api.engine.pid;
    assert.ok(pid);
    process.kill(pid, 'SIGKILL');
    await until(() => api.engine.pid === undefined, 'the engine to be gone');
    await vscode.commands.executeCommand('headlens.analyze', true);
    assert.ok(api.engine.pid && api.engine.pid !== pid, 'no new engine process');
    assert.ok(api.store.get(editor.document.uri.toString()), 'no analysis after the restart');
  });

  test('a short training run streams events to the monitor', async () => {
    const folder = vscode.workspace.workspaceFolders![0].uri.fsPath;
    const before = api.monitorEventCount();
    const result = await api.training.start({ data: [folder], family: 'adaptive', steps: 3, batchSize: 2, seqLen: 16, config: { n_layer: 1, n_head: 2, n_embd: 16, hyper: { rank: 2 } } });
    assert.ok(result, 'training failed');
    assert.equal(result.steps, 3);
    assert.ok(api.monitorEventCount() - before >= 3, 'no training events reached the monitor');
  });
});
