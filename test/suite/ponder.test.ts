/**
 * PonderTTT in a real VS Code: a TTT layer trained on the loaded model through the engine
 * (`ponder/train`), then Analyze with PonderTTT… on sample.py — its chunks tile the tokens, the hover
 * of a token names its chunk's decision, signal and τ, and an edit takes the stale bands and hovers away.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { HeadLensApi } from '../../extension/extension';
import type { PonderRunResult, TrainResult } from '../../engine/protocol';
import { headLens, hoverText, openSample, until } from './util';

let api: HeadLensApi;
let ttt: string;

suite('PonderTTT', () => {
  suiteSetup(async () => {
    api = await headLens();
    const model = await api.engine.ensureModel();
    const folder = vscode.workspace.workspaceFolders![0].uri.fsPath;
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'headlens-ponder-e2e-'));
    const r = await api.engine.request('ponder/train', { data: [path.join(folder, 'sample.py')], steps: 2, base: model.path, tttConfig: { num_heads: 2, head_dim: 16, mini_batch_size: 4 }, chunk: 16, batchSize: 2, out });
    assert.ok(r.checkpoint, 'training left no TTT layer');
    ttt = r.checkpoint;
  });

  test('Analyze with PonderTTT… : chunks tile the tokens, and a token’s hover names its chunk’s decision, signal and τ', async () => {
    const editor = await openSample();
    const doc = editor.document;
    const r = await vscode.commands.executeCommand<PonderRunResult>('headlens.analyzePonder', doc.uri, ttt);
    assert.ok(r, 'the command returned no result');
    assert.equal(r.chunk, 16);
    r.chunks.forEach((c, i) => assert.equal(c.start, i * 16));
    assert.ok(r.chunks.slice(0, 16).every((c) => c.decision === 'UPDATE'), 'the calibration chunks update');
    const c = r.chunks[r.chunks.length - 1];
    const tok = r.tokens[c.start];
    const md = await hoverText(doc.uri, doc.positionAt(tok.start));
    assert.match(md, new RegExp(`chunk #${c.index} .*\\*\\*${c.decision}\\*\\*`));
    assert.match(md, /signal \d+\.\d{4} · τ /);
    assert.ok(Number.isFinite(r.ppl.gated) && Number.isFinite(r.ppl.always) && Number.isFinite(r.ppl.never));
  });

  test('an edit takes the stale PonderTTT hover away', async () => {
    const editor = await openSample();
    const doc = editor.document;
    const r = await vscode.commands.executeCommand<PonderRunResult>('headlens.analyzePonder', doc.uri, ttt);
    const pos = doc.positionAt(r.tokens[5].start);
    assert.match(await hoverText(doc.uri, pos), /PonderTTT/);
    await editor.edit((e) => e.insert(new vscode.Position(0, 0), '# edited\n'));
    assert.doesNotMatch(await hoverText(doc.uri, pos), /PonderTTT/);
    await vscode.commands.executeCommand('undo');
  });

  test('Stop Training (the monitor\'s Stop) ends a PonderTTT training run early with a checkpoint', async () => {
    const folder = vscode.workspace.workspaceFolders![0].uri.fsPath;
    const before = api.monitorEventCount();
    const run = vscode.commands.executeCommand<TrainResult | undefined>('headlens.trainPonder', {
      data: [path.join(folder, 'sample.py')], steps: 10_000, tttConfig: { num_heads: 2, head_dim: 16, mini_batch_size: 4 }, chunk: 16, batchSize: 2,
      out: fs.mkdtempSync(path.join(os.tmpdir(), 'headlens-ponder-stop-')),
    });
    await until(() => api.monitorEventCount() > before + 3, 'the PonderTTT run to stream steps into the monitor');
    assert.equal(api.training.active, false, 'train/start knows nothing of this run');
    await vscode.commands.executeCommand('headlens.stopTraining');
    const result = await run;
    assert.ok(result, 'the stopped run failed');
    assert.equal(result.stoppedEarly, true);
    assert.ok(result.steps < 10_000);
    assert.ok(result.checkpoint && fs.existsSync(result.checkpoint), 'a stopped run keeps its TTT layer');
  });
});
