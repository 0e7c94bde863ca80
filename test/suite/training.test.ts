/** Training from the extension: events reach the monitor's buffer; Stop Training ends a run early. */
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { HeadLensApi } from '../../extension/extension';
import type { ModelConfig } from '../../engine/protocol';
import { headLens, until } from './util';

let api: HeadLensApi;
const TINY: Partial<ModelConfig> = { n_layer: 1, n_head: 2, n_embd: 16, hyper: { rank: 2, n_heads: 2, n_layers: 1, alpha: 1 } };

suite('training', () => {
  suiteSetup(async () => {
    api = await headLens();
  });

  test('a short run streams its events to the monitor and resolves with its steps', async () => {
    const folder = vscode.workspace.workspaceFolders![0].uri.fsPath;
    const before = api.monitorEventCount();
    const result = await api.training.start({ data: [folder], family: 'adaptive', steps: 3, batchSize: 2, seqLen: 16, config: TINY });
    assert.ok(result, 'training failed');
    assert.equal(result.steps, 3);
    assert.equal(result.stoppedEarly, false);
    assert.ok(result.checkpoint, 'no checkpoint');
    assert.ok(api.monitorEventCount() - before >= 3, 'fewer events than steps reached the monitor');
    assert.equal(api.training.active, false);
  });

  test('Stop Training ends a long run early with a checkpoint', async () => {
    const folder = vscode.workspace.workspaceFolders![0].uri.fsPath;
    const run = api.training.start({ data: [folder], family: 'adaptive', steps: 10_000, batchSize: 2, seqLen: 16, config: TINY });
    const started = api.monitorEventCount();
    await until(() => api.monitorEventCount() > started + 2, 'the run to stream steps');
    await vscode.commands.executeCommand('headlens.stopTraining');
    const result = await run;
    assert.ok(result, 'the stopped run failed');
    assert.equal(result.stoppedEarly, true);
    assert.ok(result.steps < 10_000);
    assert.ok(result.checkpoint, 'a stopped run keeps a checkpoint');
  });
});
