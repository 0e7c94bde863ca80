/**
 * The new families in the editor: a GPT-2 with the GatedAttn knob and an autoresearch GPT (GQA,
 * sliding windows, value embeddings, gate), each made here from its own initialisation with
 * GPT-2's vocabulary, loaded through `headlens.modelPath`. The model's signal catalogue reaches
 * the hover's head-code table (one value per signal in every cell) and Choose Colour Metric's
 * choices; picking a signal colours the editor by it and the legend says so.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { HeadLensApi } from '../../extension/extension';
import type { ModelConfig } from '../../engine/protocol';
import { familyDef } from '../../engine/models/registry';
import { makeRng, normalSampler } from '../../engine/models/init';
import { writeSafetensors } from '../../engine/io/safetensors';
import { headLens, hoverText, openSample, setSetting, until } from './util';

let api: HeadLensApi;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'headlens-families-e2e-'));

/** The family's own init, every tensor nudged (zero-initialised gates would give one flat colour). */
function modelFile(name: string, config: ModelConfig): string {
  const weights = familyDef(config.family).init(config, 7);
  const normal = normalSampler(makeRng(11));
  for (const t of weights.values()) if (t.values instanceof Float32Array) for (let i = 0; i < t.values.length; i++) t.values[i] += 0.05 * normal();
  const file = path.join(dir, `${name}.safetensors`);
  writeSafetensors(file, weights);
  fs.writeFileSync(path.join(dir, `${name}.json`), JSON.stringify(config));
  return file;
}

const CASES: { name: string; config: ModelConfig; signals: string[] }[] = [
  { name: 'gpt2-gated', config: { family: 'gpt2', vocab_size: 50257, block_size: 64, n_layer: 2, n_head: 2, n_embd: 16, bias: true, activation: 'gelu', gate: true } as ModelConfig, signals: ['gate'] },
  { name: 'autoresearch', config: { family: 'autoresearch', vocab_size: 50257, block_size: 64, n_layer: 2, n_head: 4, n_kv_head: 2, n_embd: 32, window_pattern: 'SL', gate: true } as ModelConfig, signals: ['veGate', 'gate'] },
];

suite('New families in the editor', () => {
  suiteSetup(async () => {
    api = await headLens();
  });

  suiteTeardown(async () => {
    await vscode.commands.executeCommand('headlens.clearAnnotations');
    await api.engine.ensureModel();
  });

  for (const c of CASES) {
    test(`${c.name}: the hover shows ${c.signals.join(' and ')} per head, and the colour metric picks ${c.signals[0]}`, async () => {
      const restoreModel = await setSetting('modelPath', modelFile(c.name, c.config));
      const restoreMetric = await setSetting('colorMetric', 'auto');
      try {
        const model = await api.engine.ensureModel();
        assert.equal(model.family, c.config.family);
        for (const s of c.signals) assert.ok(model.signals.some((x) => x.name === s), `the catalogue lacks ${s}: ${model.signals.map((x) => x.name)}`);
        const editor = await openSample();
        const doc = editor.document;
        await vscode.commands.executeCommand('headlens.analyze', { scope: 'document' });
        const a = api.store.get(doc.uri.toString());
        assert.ok(a, 'no analysis was stored');
        assert.equal(a.model.family, c.config.family);
        const md = await hoverText(doc.uri, doc.positionAt(doc.getText().indexOf('softmax') + 2));
        const title = /Head codes — (.*):/.exec(md)?.[1] ?? '';
        for (const s of c.signals) assert.ok(title.includes(` / ${s}`), `the head-code table does not name ${s}: '${title}'`);
        const row = md.split('\n').find((line) => line.startsWith('| L1 | '));
        assert.ok(row, 'no head-code row for layer 1');
        const cells = row.split(' | ').slice(1);
        assert.equal(cells.length, c.config.n_head);
        const values = 2 + a.record.headTokenSignals().length;
        for (const cell of cells) assert.equal(cell.replace(/ \|$/, '').split('\u00a0/\u00a0').length, values, `cell '${cell}'`);
        // the metric: auto is the first signal; choosing one by name colours by it
        assert.equal(a.record.resolveMetric('auto'), model.signals[0].name);
        await setSetting('colorMetric', c.signals[c.signals.length - 1]);
        await until(() => api.decorations.legendText.includes(c.signals[c.signals.length - 1]) && api.decorationCount(doc.uri) > 0, `the legend to name ${c.signals[c.signals.length - 1]} (it says '${api.decorations.legendText}')`, 20_000);
      } finally {
        await restoreMetric();
        await restoreModel();
      }
    });
  }
});
