/** Training from the extension: events reach the monitor's buffer; Stop Training ends a run early. */
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { HeadLensApi } from '../../extension/extension';
import type { ModelConfig } from '../../engine/protocol';
import { headLens, until } from './util';
import { sizeConfig } from '../../extension/training';

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

  test('the sidebar trains the new families with their knobs, and the checkpoint loads as that family', async () => {
    const folder = vscode.workspace.workspaceFolders![0].uri.fsPath;
    const tiny = { n_layer: 1, n_head: 4, n_embd: 32, hyper: { rank: 4, n_heads: 2, n_layers: 2, alpha: 1 } };
    const cases: [ModelConfig['family'], Partial<ModelConfig>][] = [
      ['gpt2', { gate: true }],
      ['autoresearch', { window_pattern: 'SL', attention: 'rms_head', value_net: 'relu' }],
      ['paramgolf', {}],
    ];
    const before = api.engine.model?.path;
    try {
      for (const [family, knobs] of cases) {
        const result = await api.training.start({ data: [folder], family, steps: 2, batchSize: 2, seqLen: 16, config: { ...sizeConfig(family, tiny), ...knobs } });
        assert.ok(result?.checkpoint, `${family}: training failed`);
        assert.ok(Number.isFinite(result.finalLoss), `${family}: loss ${result.finalLoss}`);
        const info = await api.engine.request('model/load', { path: result.checkpoint });
        assert.equal(info.config.family, family);
        for (const [k, v] of Object.entries(knobs)) assert.deepEqual((info.config as unknown as Record<string, unknown>)[k], v, `${family}: ${k}`);
      }
    } finally {
      if (before) await api.engine.request('model/load', { path: before });
    }
  });
});
