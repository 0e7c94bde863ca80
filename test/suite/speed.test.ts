/**
 * End to end in the real editor: a 2048-token document analysed with the full-size adaptive model
 * (a-gpt's defaults, seeded random weights), from the command to the first colours on screen and to
 * the last window. Printed, not asserted — a benchmark, not a test of speed; what is asserted is
 * the document is analysed in windows (the first ones are shown while the rest are
 * computed) and that the whole document gets analysed and coloured.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { HeadLensApi } from '../../extension/extension';
import { familyDef } from '../../engine/models/registry';
import { defaultConfig } from '../../engine/models/config';
import { writeSafetensors } from '../../engine/io/safetensors';
import { tokenize } from '../../engine/tokenizers/gpt2';
import { headLens, setSetting, until } from './util';

let api: HeadLensApi;
const TOKENS = 2048;

function fullSizeModel(dir: string): string {
  const config = defaultConfig('adaptive', {}); // 4 layers, 256 wide, 4 heads, block 256, vocab 50257
  const file = path.join(dir, 'full-adaptive.safetensors');
  writeSafetensors(file, familyDef('adaptive').init(config, 3), { metadata: { config: JSON.stringify(config) }, dtype: 'F16' });
  return file;
}

function longDocument(sample: string): string {
  let text = sample;
  while (tokenize(text).length <= TOKENS) text += '\n' + sample;
  return text.slice(0, tokenize(text)[TOKENS - 1].end);
}

suite('speed (printed, not asserted)', () => {
  suiteSetup(async () => {
    api = await headLens();
  });

  test(`a ${TOKENS}-token document with the full-size adaptive model: the first colours, then the rest`, async function () {
    this.timeout(300_000);
    const folder = vscode.workspace.workspaceFolders![0].uri.fsPath;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'headlens-speed-'));
    const model = fullSizeModel(dir);
    const file = path.join(folder, 'long.py');
    fs.writeFileSync(file, longDocument(fs.readFileSync(path.join(folder, 'sample.py'), 'utf8')));
    const restore = await setSetting('modelPath', model);
    try {
      const t0 = Date.now();
      const info = await api.engine.ensureModel(undefined, true);
      const loadMs = Date.now() - t0;
      const doc = await vscode.workspace.openTextDocument(file);
      await vscode.window.showTextDocument(doc, { preview: false });
      const start = Date.now();
      let firstMs = 0;
      const done = vscode.commands.executeCommand('headlens.analyze', { scope: 'document' }).then(() => Date.now() - start);
      await until(() => api.decorationCount(doc.uri) > 0, 'the first colours', 120_000);
      firstMs = Date.now() - start;
      const allMs = await done;
      const a = api.store.get(doc.uri.toString());
      assert.ok(a?.complete, 'the analysis did not finish');
      assert.equal(a.record.N, TOKENS);
      console.log(`    speed: ${TOKENS} tokens, ${info.family} ${info.paramCount.toLocaleString('en')} parameters on ${api.engine.init?.backend.name}: model load ${loadMs} ms, first colours ${firstMs} ms, whole document ${allMs} ms (${a.result.windowCount} windows)`);
    } finally {
      await vscode.commands.executeCommand('workbench.action.closeActiveEditor');
      await restore();
      fs.rmSync(file, { force: true });
      fs.rmSync(dir, { recursive: true, force: true });
      await api.engine.ensureModel(); // the starter model again
    }
  });
});
