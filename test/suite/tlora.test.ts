/**
 * Temporal LoRA in a real VS Code: a tlora model trained through the engine (`tlora/train`) on a tiny
 * GPT-2, loaded from its `.pt` (the sidecar names the base); Analyze Attention shows the router —
 * the hover lists each adapter's weight by name, the editor is coloured by the dominant adapter —
 * and Compare Router Adapters opens the mixture-vs-each-adapter losses beside the editor.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { HeadLensApi } from '../../extension/extension';
import type { ModelConfig } from '../../engine/protocol';
import { gpt2Init } from '../../engine/models/gpt2';
import { writeSafetensors } from '../../engine/io/safetensors';
import { headLens, hoverText, openSample, setSetting, until } from './util';

let api: HeadLensApi;
let restoreModel: (() => Promise<void>) | null = null;

/** A tiny GPT-2 with GPT-2's vocabulary (nanoGPT's init), n_head in its sidecar. */
function tinyBase(dir: string): string {
  const config = { family: 'gpt2', vocab_size: 50257, block_size: 64, n_layer: 1, n_head: 2, n_embd: 16, bias: true, activation: 'gelu' } as ModelConfig;
  const file = path.join(dir, 'base.safetensors');
  writeSafetensors(file, gpt2Init(config, 1));
  fs.writeFileSync(path.join(dir, 'base.json'), JSON.stringify({ n_head: 2 }));
  return file;
}

suite('Temporal LoRA', () => {
  suiteSetup(async () => {
    api = await headLens();
    const folder = vscode.workspace.workspaceFolders![0].uri.fsPath;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'headlens-tlora-e2e-'));
    const adapters = [{ name: 'code', data: [path.join(folder, 'sample.py')] }, { name: 'notes', data: [path.join(folder, 'notes.md')] }];
    const r = await api.engine.request('tlora/train', { base: tinyBase(dir), adapters, steps: 2, routerSteps: 2, batchSize: 2, routerBatchSize: 2, seqLen: 16, routerSeqLen: 16, out: path.join(dir, 'run') });
    assert.ok(r.checkpoint && fs.existsSync(r.checkpoint), 'training left no checkpoint');
    restoreModel = await setSetting('modelPath', r.checkpoint);
    const model = await api.engine.ensureModel();
    assert.equal(model.family, 'tlora');
  });

  suiteTeardown(async () => {
    await vscode.commands.executeCommand('headlens.clearAnnotations');
    await restoreModel?.();
  });

  test('Analyze Attention: the hover lists the router weight of each adapter by name; the colours are the dominant adapter', async () => {
    const editor = await openSample();
    const doc = editor.document;
    await vscode.commands.executeCommand('headlens.analyze', { scope: 'document' });
    const a = api.store.get(doc.uri.toString());
    assert.ok(a, 'no analysis was stored');
    assert.deepEqual(a.record.channelSignals().map((s) => s.channels), [['code', 'notes']]);
    assert.equal(a.record.resolveMetric('auto'), 'router');
    const t = a.record.tokenAt(doc.getText().indexOf('softmax') + 2);
    const md = await hoverText(doc.uri, doc.positionAt(a.record.tokens[t].start));
    const weights = a.record.channelsAt('router', t)!;
    const shown = /Temporal LoRA router: (.*)/.exec(md)?.[1] ?? '';
    for (const w of weights) assert.ok(shown.includes(`${w.label} ${w.value.toFixed(3)}`), `the hover does not list ${w.label} ${w.value.toFixed(3)}: ${shown}`);
    assert.match(shown, new RegExp(`\\*\\*${weights[a.record.dominantChannel('router', t)].label} `), 'the dominant adapter is in bold');
    const count = await until(() => api.decorationCount(doc.uri), 'decorations');
    assert.ok(count > 20, `only ${count} tokens coloured`);
  });

  test('Compare Router Adapters: the losses of the mixture, uniform, each adapter, no adapter and the base beside the editor', async () => {
    const editor = await openSample();
    await vscode.commands.executeCommand('headlens.routerLosses');
    const report = await until(() => vscode.workspace.textDocuments.find((d) => d.languageId === 'markdown' && d.getText().startsWith('# Temporal LoRA')), 'the losses report');
    const text = report.getText();
    for (const row of ['mixture', 'uniform', 'adapter:code', 'adapter:notes', 'no adapter', 'base']) assert.match(text, new RegExp(`^\\| ${row} \\| \\d+\\.\\d{3} \\|`, 'm'), `no row for ${row}`);
    assert.match(text, /^\| code \| \d+ \(/m);
    const a = api.store.get(editor.document.uri.toString());
    assert.equal(a?.metricOverride?.metric, 'router', 'the editor is not coloured by the dominant adapter');
  });
});
