/** Analyze Attention in the editor: what gets analysed, the colours, the hover's head codes, edits, cancellation. */
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { HeadLensApi } from '../../extension/extension';
import { headLens, hoverText, openSample, setSetting, until } from './util';

let api: HeadLensApi;

suite('Analyze Attention', () => {
  suiteSetup(async () => {
    api = await headLens();
  });

  teardown(async () => {
    await vscode.commands.executeCommand('headlens.clearAnnotations');
  });

  test('the whole document: its tokens cover the text exactly, and the visible ones are coloured', async () => {
    const editor = await openSample();
    const doc = editor.document;
    await vscode.commands.executeCommand('headlens.analyze', { scope: 'document' });
    const a = api.store.get(doc.uri.toString());
    assert.ok(a, 'no analysis was stored');
    assert.equal(a.scope, 'document');
    assert.equal(a.record.tokens.map((t) => t.text).join(''), doc.getText(), 'the tokens do not spell the document');
    assert.equal(a.record.tokens[0].start, 0);
    assert.equal(a.record.tokens[a.record.N - 1].end, doc.getText().length);
    const count = await until(() => api.decorationCount(doc.uri), 'decorations');
    assert.ok(count > 20, `only ${count} tokens coloured`);
    assert.ok(count <= a.record.N);
  });

  test('the hover on a token shows its head codes: a layer × head table, latent codes, predictions, the explorer link', async () => {
    const editor = await openSample();
    const doc = editor.document;
    await vscode.commands.executeCommand('headlens.analyze', { scope: 'document' });
    const a = api.store.get(doc.uri.toString())!;
    const { n_layer: L, n_head: H } = a.model.config;
    const md = await hoverText(doc.uri, doc.positionAt(doc.getText().indexOf('softmax') + 2));
    assert.match(md, /Head codes/);
    assert.match(md, /token #\d+ `[^`]*soft[^`]*`/, 'the hovered token is named');
    const lines = md.split('\n');
    const header = lines.find((line) => line.startsWith('| | H0 |'));
    assert.equal(header, `| | ${Array.from({ length: H }, (_, h) => `H${h}`).join(' | ')} |`, 'a header with every head');
    for (let l = 0; l < L; l++) {
      const row = lines.find((line) => line.startsWith(`| L${l} | `) && /\s\/\s/.test(line));
      assert.ok(row, `no head-code row for layer ${l}`);
      const cells = row.split(' | ').slice(1);
      assert.equal(cells.length, H, `layer ${l}: ${cells.length} cells for ${H} heads`);
      // attention max, then each per-head signal of the model (loraRel, loraTok for the starter), then entropy
      const values = 2 + a.record.headTokenSignals().length;
      for (const c of cells) assert.match(c.replace(/ \|$/, ''), new RegExp(`^[\\d.e+-]+(\\s\\/\\s[\\d.e+—-]+){${values - 1}}$`), `cell '${c}'`);
    }
    assert.match(md, /Latent code/);
    assert.match(md, /top 5: /);
    // the context each position had, by Hugging Face's sliding-window rule (windows at 0, stride, …;
    // a window scores the targets from the previous window's end): position p predicts target p + 1
    // with ids[begin : p + 1] before it
    const N = a.record.N, ctxLen = a.model.config.block_size, stride = ctxLen >> 1;
    const want = new Int32Array(N);
    for (let begin = 0, prevEnd = 0; prevEnd < N; begin += stride) {
      const end = Math.min(begin + ctxLen, N);
      for (let j = Math.max(prevEnd, 1); j < end; j++) want[j - 1] = j - begin;
      prevEnd = end;
      if (end === N) break;
    }
    assert.ok(N > ctxLen, `the sample spans several windows (${N} tokens)`);
    for (let p = 0; p < N - 1; p++) assert.equal(a.record.context[p], want[p], `context of position ${p}`);
    const t = a.record.tokens.findIndex((k) => k.end > doc.getText().indexOf('softmax') + 2);
    assert.match(md, new RegExp(`\\(context ${want[t]} tokens?\\)`), 'the hover says how much context the token had');
    assert.match(md, /command:headlens\.openExplorerAt\?/);
    assert.match(md, /Open in Attention Explorer/);
  });

  test('no hover outside an analysed document or after Clear Annotations', async () => {
    const editor = await openSample();
    const doc = editor.document;
    await vscode.commands.executeCommand('headlens.analyze', { scope: 'document' });
    await vscode.commands.executeCommand('headlens.clearAnnotations');
    assert.equal(api.store.get(doc.uri.toString()), undefined);
    await until(() => api.decorationCount(doc.uri) === 0, 'the colours to go');
    assert.doesNotMatch(await hoverText(doc.uri, doc.positionAt(10)), /Head codes/);
  });

  test('a selection analyses only the selected text', async () => {
    const editor = await openSample();
    const doc = editor.document;
    const start = doc.getText().indexOf('def attend');
    const end = doc.getText().indexOf('return out, weights');
    editor.selection = new vscode.Selection(doc.positionAt(start), doc.positionAt(end));
    await vscode.commands.executeCommand('headlens.analyze');
    const a = api.store.get(doc.uri.toString());
    assert.ok(a, 'no analysis was stored');
    assert.equal(a.scope, 'selection');
    assert.equal(a.record.tokens[0].start, start);
    assert.equal(a.record.tokens[a.record.N - 1].end, end);
    assert.equal(a.record.tokens.map((t) => t.text).join(''), doc.getText().slice(start, end));
    editor.selection = new vscode.Selection(0, 0, 0, 0);
  });

  test('another colour metric, or a focus beyond the model, still colours the tokens', async () => {
    const editor = await openSample();
    await vscode.commands.executeCommand('headlens.analyze', { scope: 'document' });
    await until(() => api.decorationCount(editor.document.uri), 'decorations');
    const restore = [await setSetting('colorMetric', 'entropy'), await setSetting('focusLayer', 99), await setSetting('focusHead', 0)];
    try {
      await until(() => api.decorations.focus.layer === 99 || undefined, 'the new focus');
      api.decorations.update();
      assert.ok(api.decorationCount(editor.document.uri) > 20, 'entropy at an out-of-range layer falls back to the mean');
    } finally {
      for (const r of restore) await r();
    }
  });

  test('an edit drops the stale colours; with analyzeOnEdit a new analysis follows', async () => {
    const editor = await openSample();
    const doc = editor.document;
    await vscode.commands.executeCommand('headlens.analyze', { scope: 'document' });
    const before = api.store.get(doc.uri.toString())!;
    const restore = await setSetting('analyzeOnEdit', true);
    try {
      await editor.edit((b) => b.insert(new vscode.Position(doc.lineCount - 1, 0), '# edited\n'));
      assert.equal(api.store.get(doc.uri.toString()), undefined, 'the stale analysis is still there');
      const after = await until(() => api.store.get(doc.uri.toString())?.complete && api.store.get(doc.uri.toString()), 'the re-analysis');
      assert.equal(after.version, doc.version);
      assert.equal(after.scope, 'document', 'a whole-document analysis is redone as one');
      assert.ok(after.record.N > before.record.N, 'the new analysis does not have the added tokens');
      assert.ok(after.record.tokens.map((t) => t.text).join('').includes('# edited'));
    } finally {
      await restore();
      await vscode.commands.executeCommand('undo');
      await doc.save();
    }
  });

  test('a newer analysis cancels the running one; the engine keeps running', async () => {
    const editor = await openSample();
    await vscode.commands.executeCommand('headlens.analyze', { scope: 'document' }); // engine and model ready
    const pid = api.engine.pid;
    const first = api.store.analyze(editor, 'document', { silent: true });
    const second = api.store.analyze(editor, 'document', { silent: true });
    assert.equal(await first, undefined, 'the cancelled analysis still produced a result');
    assert.ok(await second, 'the second analysis failed');
    assert.equal(api.engine.pid, pid, 'cancelling restarted the engine');
  });
});
