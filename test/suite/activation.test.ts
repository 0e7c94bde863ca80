/** Activation and contributions: the API is there, and package.json and the registered commands agree. */
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import { Command } from '../../extension/commands';
import { EXT_ID, headLens } from './util';

suite('activation', () => {
  test('activates and returns its API without starting the engine', async () => {
    const api = await headLens();
    assert.ok(vscode.extensions.getExtension(EXT_ID)?.isActive);
    assert.ok(api.store && api.training && api.explorer);
    // the engine starts on first use, not on activation (nothing has used it yet in this run)
    assert.equal(api.engine.pid, undefined);
  });

  test('every command of package.json is registered', async () => {
    const declared = (vscode.extensions.getExtension(EXT_ID)!.packageJSON.contributes.commands as { command: string }[]).map((c) => c.command);
    const registered = new Set(await vscode.commands.getCommands(true));
    for (const c of declared) assert.ok(registered.has(c), `${c} is declared but not registered`);
  });

  test('the command enum and package.json name the same commands', () => {
    const declared = (vscode.extensions.getExtension(EXT_ID)!.packageJSON.contributes.commands as { command: string }[]).map((c) => c.command).sort();
    assert.deepEqual(Object.values(Command).sort(), declared);
  });

  test('the seven commands of the palette are in the "Head Lens" category', () => {
    const commands = vscode.extensions.getExtension(EXT_ID)!.packageJSON.contributes.commands as { command: string; title: string; category: string }[];
    const titles = new Map(commands.map((c) => [c.command, c]));
    const expected: [string, string][] = [
      ['headlens.analyze', 'Analyze Attention'], ['headlens.loadModel', 'Load Model…'], ['headlens.showExplorer', 'Show Attention Explorer'],
      ['headlens.train', 'Train Model…'], ['headlens.stopTraining', 'Stop Training'], ['headlens.clearAnnotations', 'Clear Annotations'], ['headlens.export', 'Export Analysis'],
    ];
    for (const [id, title] of expected) {
      assert.equal(titles.get(id)?.title, title, id);
      assert.equal(titles.get(id)?.category, 'Head Lens', id);
    }
  });
});
