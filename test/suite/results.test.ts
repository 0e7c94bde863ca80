/**
 * Evaluation, compare and ablation sweeps in a real VS Code, each command run with its arguments
 * (no dialogs) on the sample with the starter model, and checked against the engine's own answers
 * reached another way: the starter compared with itself (ΔNLL 0 everywhere, the summary 0); the
 * starter against a small GPT-2 made here (ΔNLL = NLL_A − NLL_B from each model's own analysis of the
 * document, the hover with both models' predictions and head codes); the sweep's L × H cells and a
 * clicked cell's colours against `ablate/run` for that head; adaptive-off on a family without an
 * adaptive path refused with the engine's one line; multiple choice on a jsonl written here against
 * `eval/mc` and the accuracies recomputed from the scores; perplexity of the file and of a folder.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { HeadLensApi } from '../../extension/extension';
import type { CompareResult, McResult, ModelConfig, PplResult, SweepResult, TokenInfo } from '../../engine/protocol';
import { decodeArray } from '../../engine/codec';
import { familyDef } from '../../engine/models/registry';
import { makeRng, normalSampler } from '../../engine/models/init';
import { writeSafetensors } from '../../engine/io/safetensors';
import { EXT_ID, headLens, hoverText, openSample, setSetting, until } from './util';

let api: HeadLensApi;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'headlens-results-e2e-'));

/** A GPT-2 with GPT-2's vocabulary and the starter's context (128), its own init nudged. */
function gpt2File(): string {
  const config = { family: 'gpt2', vocab_size: 50257, block_size: 128, n_layer: 1, n_head: 2, n_embd: 16, bias: true, activation: 'gelu' } as ModelConfig;
  const weights = familyDef('gpt2').init(config, 3);
  const normal = normalSampler(makeRng(5));
  for (const t of weights.values()) if (t.values instanceof Float32Array) for (let i = 0; i < t.values.length; i++) t.values[i] += 0.02 * normal();
  const file = path.join(dir, 'small-gpt2.safetensors');
  writeSafetensors(file, weights);
  fs.writeFileSync(path.join(dir, 'small-gpt2.json'), JSON.stringify(config));
  return file;
}

const starterPath = () => path.join(vscode.extensions.getExtension(EXT_ID)!.extensionPath, 'media', 'models', 'starter-adaptive.safetensors');

/** Per token (by start offset) of a document analysis: the NLL of predicting that token. */
function nllByStart(tokens: TokenInfo[], nextNll: Float32Array): Map<number, number> {
  const m = new Map<number, number>();
  for (let t = 1; t < tokens.length; t++) m.set(tokens[t].start, nextNll[t - 1]);
  return m;
}

async function analyseDocument(uri: vscode.Uri) {
  await vscode.commands.executeCommand('headlens.analyze', { scope: 'document' });
  const a = api.store.get(uri.toString());
  assert.ok(a?.complete, 'the document was not analysed');
  return a;
}

suite('Results: compare, evaluation and ablation sweeps', () => {
  suiteSetup(async () => {
    api = await headLens();
    await api.engine.ensureModel();
  });

  suiteTeardown(async () => {
    await vscode.commands.executeCommand('headlens.clearAnnotations');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('Compare Models with itself: ΔNLL is 0 at every token, the summary is 0, the editor is coloured by dNll', async () => {
    const editor = await openSample();
    const doc = editor.document;
    const r = await vscode.commands.executeCommand<CompareResult>('headlens.compareModels', { modelB: starterPath() });
    assert.ok(r, 'compare returned nothing');
    const scored = r.tokens.filter((t) => t.dnll !== null);
    assert.equal(scored.length, r.tokens.length - 1, 'every token after the first is scored');
    for (const t of scored) assert.equal(t.dnll, 0, `token #${t.index} ${JSON.stringify(t.text)}`);
    assert.deepEqual([r.summary.overall.mean, r.summary.overall.lo, r.summary.overall.hi], [0, 0, 0]);
    assert.equal(r.summary.repeated.n + r.summary.first.n, scored.length);
    const a = api.store.get(doc.uri.toString());
    assert.equal(a?.metricOverride?.metric, 'dNll', 'the colours are not the compare');
    let coloured = 0;
    for (let t = 1; t < a!.record.N; t++) {
      const v = a!.record.signalAt('dNll', t, -1, -1);
      if (Number.isFinite(v)) (assert.equal(v, 0), coloured++);
    }
    assert.ok(coloured >= scored.length - 2, `only ${coloured} of ${scored.length} tokens carry the dNll signal`);
    await until(() => api.decorationCount(doc.uri) > 0 || undefined, 'decorations');
    assert.equal(api.results.current?.kind, 'compare');
    await until(() => api.results.isReady, 'the results panel to load');
  });

  test('Compare Models with another model: ΔNLL = NLL_A − NLL_B of each model’s own analysis; the hover shows both models', async () => {
    const editor = await openSample();
    const doc = editor.document;
    const bFile = gpt2File();
    const r = await vscode.commands.executeCommand<CompareResult>('headlens.compareModels', { modelB: bFile });
    assert.ok(r?.heads, 'compare returned no heads');
    assert.deepEqual([r.heads.a.layers, r.heads.a.heads, r.heads.b.layers, r.heads.b.heads], [2, 4, 1, 2]);
    assert.ok(r.summary.overall.n > 100 && r.summary.overall.mean < 0, `the trained starter should beat a random GPT-2: mean ΔNLL ${r.summary.overall.mean}`);
    // the hover part: this token's ΔNLL, both NLLs, both models' expectations and head codes
    const t = r.tokens.find((x) => x.dnll !== null && x.text.trim().length > 2)!;
    const md = await hoverText(doc.uri, doc.positionAt(t.start + 1));
    assert.match(md, /\*\*Compare\*\*/);
    assert.ok(md.includes(`ΔNLL (A − B) **${t.dnll! > 0 ? '+' : ''}${t.dnll!.toFixed(3)}**`), `the hover lacks ΔNLL ${t.dnll}: ${md.slice(0, 400)}`);
    assert.ok(md.includes(`NLL A ${t.nll_a!.toFixed(3)}`) && md.includes(`NLL B ${t.nll_b!.toFixed(3)}`));
    assert.match(md, /A expected here: `[^`]*` \d+\.\d %/);
    assert.match(md, /B expected here: `[^`]*` \d+\.\d %/);
    assert.match(md, /\| A \| H0 \| H1 \| H2 \| H3 \|/);
    assert.match(md, /\| B \| H0 \| H1 \|\n/);
    const nllA = nllByStart(api.store.get(doc.uri.toString())!.record.tokens, Float32Array.from(api.store.get(doc.uri.toString())!.record.nll));
    // B's own analysis of the document, with B loaded as the model
    const restore = await setSetting('modelPath', bFile);
    try {
      const model = await api.engine.ensureModel();
      assert.equal(model.family, 'gpt2');
      const b = await analyseDocument(doc.uri);
      const nllB = nllByStart(b.record.tokens, Float32Array.from(b.record.nll));
      let checked = 0;
      for (const x of r.tokens) {
        if (x.dnll === null) continue;
        const ea = nllA.get(x.start), eb = nllB.get(x.start);
        assert.ok(ea !== undefined && eb !== undefined, `token at ${x.start} missing from an analysis`);
        assert.ok(Math.abs(x.nll_a! - ea) < 2e-3, `NLL_A at ${x.start}: ${x.nll_a} vs analysis ${ea}`);
        assert.ok(Math.abs(x.nll_b! - eb) < 2e-3, `NLL_B at ${x.start}: ${x.nll_b} vs analysis ${eb}`);
        assert.ok(Math.abs(x.dnll - (ea - eb)) < 4e-3, `ΔNLL at ${x.start}: ${x.dnll} vs ${ea - eb}`);
        checked++;
      }
      assert.equal(checked, r.tokens.length - 1);

      // adaptive-off on a GPT-2 without an adaptive path: the engine's one line, in the panel and as the failure
      const engineError = await api.engine.request('ablate/sweep', { text: doc.getText(), mode: 'adaptive-off' }).then(() => null, (e: Error) => e.message);
      assert.ok(engineError, 'the engine accepted adaptive-off on a plain GPT-2');
      const none = await vscode.commands.executeCommand('headlens.ablateHeads', { mode: 'adaptive-off', unit: 'head' });
      assert.equal(none, undefined);
      const v = api.results.current;
      assert.ok(v?.kind === 'sweep' && v.state === 'failed', 'the panel does not show the failed sweep');
      assert.ok(v.error?.includes(engineError), `the panel says ${v.error}, the engine said ${engineError}`);
      assert.ok(!engineError.includes('\n'), 'the refusal is one line');
    } finally {
      await restore();
      await api.engine.ensureModel();
    }
  });

  test('Ablate Heads: L × H cells, and a clicked cell colours the editor with ablate/run’s ΔNLL of that head', async () => {
    const editor = await openSample();
    const doc = editor.document;
    const model = await api.engine.ensureModel();
    const sweep = await vscode.commands.executeCommand<SweepResult>('headlens.ablateHeads', { mode: 'zero', unit: 'head' });
    assert.ok(sweep, 'the sweep returned nothing');
    assert.equal(sweep.cells.length, model.layers * model.heads);
    const v = api.results.current;
    assert.ok(v?.kind === 'sweep' && v.state === 'done');
    assert.deepEqual([v.layers, v.heads, v.cells.length], [model.layers, model.heads, model.layers * model.heads]);
    assert.deepEqual(new Set(v.cells.map((c) => `${c.layer}.${c.head}`)).size, model.layers * model.heads, 'every (layer, head) once');
    const layer = 1, head = 2;
    assert.equal(await vscode.commands.executeCommand('headlens.showAblation', { layer, head }), true);
    const run = await api.engine.request('ablate/run', { text: doc.getText(), ablations: [{ layer, head, mode: 'zero' }] });
    const nll = decodeArray(run.nll), base = decodeArray(run.base);
    const expected = new Map(run.tokens.map((t, i) => [t.start, nll[i] - base[i]]));
    const a = api.store.get(doc.uri.toString())!;
    assert.equal(a.metricOverride?.metric, 'dNll');
    assert.match(a.metricOverride!.title, /L1\.H2 zeroed/);
    let checked = 0, moved = 0;
    for (let t = 1; t < a.record.N; t++) {
      const want = expected.get(a.record.tokens[t].start);
      const got = a.record.signalAt('dNll', t, -1, -1);
      if (want === undefined || !Number.isFinite(want)) continue;
      assert.ok(Math.abs(got - want) < 1e-5, `token ${t}: overlay ${got}, ablate/run ${want}`);
      checked++;
      if (Math.abs(want) > 1e-4) moved++;
    }
    assert.ok(checked > 100 && moved > 10, `${checked} tokens checked, ${moved} moved by the ablation`);
    const cell = sweep.cells.find((c) => c.layer === layer && c.head === head)!;
    const diffs = [...expected.values()].filter(Number.isFinite);
    assert.ok(Math.abs(cell.mean - diffs.reduce((s, x) => s + x, 0) / diffs.length) < 1e-5, 'the cell’s mean is the mean per-token ΔNLL');
    assert.deepEqual((api.results.current as { selected?: unknown }).selected, { layer, head });
    await until(() => api.decorationCount(doc.uri) > 0 || undefined, 'decorations');
  });

  test('Evaluate Multiple Choice: the accuracies are eval/mc’s and follow from the scores', async () => {
    const file = path.join(dir, 'items.jsonl');
    const items = [
      { ctx: 'def add(a, b):\n    return', endings: [' a + b', ' the moon is made of cheese', ' ((((', ' import'], label: 0 },
      { ctx: 'import numpy as', endings: [' np', ' elephants dancing', ' 42 42 42'], label: 0, extra: 'ignored' },
      { ctx: 'for i in range(10):\n   ', endings: [' print(i)', ' }}}}}}', ' class'], label: 1 },
    ];
    fs.writeFileSync(file, items.map((x) => JSON.stringify(x)).join('\n') + '\n');
    const r = await vscode.commands.executeCommand<McResult>('headlens.evaluateMultipleChoice', { file });
    assert.ok(r, 'no result');
    const direct = await api.engine.request('eval/mc', { file });
    assert.deepEqual([r.acc_sum, r.acc_per_token, r.acc_per_byte], [direct.acc_sum, direct.acc_per_token, direct.acc_per_byte]);
    const argmax = (v: number[]) => v.indexOf(Math.max(...v));
    for (const key of ['sum', 'per_token', 'per_byte'] as const) {
      const acc = r.items.filter((it) => argmax(it[key]) === it.label).length / r.items.length;
      assert.equal(r[`acc_${key}`], acc, `acc_${key}`);
    }
    r.items.forEach((it, i) => {
      assert.equal(it.logprobs.length, items[i].endings.length);
      it.logprobs.forEach((lp, e) => assert.ok(Math.abs(lp.reduce((s, x) => s + x, 0) - it.sum[e]) < 1e-4, `item ${i} ending ${e}: the token log-probs sum to the score`));
    });
    assert.equal(api.results.current?.kind, 'mc');
  });

  test('Evaluate Perplexity: the open file (every token after the first), and folders (per folder: its files’ totals)', async () => {
    const editor = await openSample();
    const r = await vscode.commands.executeCommand<PplResult>('headlens.evaluatePerplexity', { scope: 'file' });
    assert.ok(r, 'no result');
    const a = await analyseDocument(editor.document.uri);
    assert.equal(r.tokens, a.record.N - 1);
    assert.ok(Math.abs(r.ppl! - Math.exp(r.nll_mean!)) < 1e-6 * r.ppl!);
    assert.ok(Math.abs(r.bpb! - r.nll_sum / (Math.LN2 * r.bytes)) < 1e-9);
    const folder = path.join(dir, 'corpus');
    fs.mkdirSync(folder);
    fs.writeFileSync(path.join(folder, 'one.txt'), 'The quick brown fox jumps over the lazy dog.\n');
    fs.writeFileSync(path.join(folder, 'two.py'), 'def square(x):\n    return x * x\n');
    const other = path.join(dir, 'more');
    fs.mkdirSync(other);
    fs.writeFileSync(path.join(other, 'three.md'), '# Notes\n\nAttention is a weighted average of values.\n');
    const f = await vscode.commands.executeCommand<PplResult>('headlens.evaluatePerplexity', { scope: 'folder', folder: [folder, other] });
    assert.ok(f?.by_source, 'no per-source results');
    assert.deepEqual(Object.keys(f.by_source).sort(), [other, folder].sort());
    assert.equal(f.documents, 3);
    assert.equal(f.by_source[folder].documents, 2);
    // each file scored alone gives its folder's totals
    const alone = await Promise.all(['one.txt', 'two.py'].map((n) => api.engine.request('eval/ppl', { texts: [{ name: n, text: fs.readFileSync(path.join(folder, n), 'utf8') }] })));
    const first = f.by_source[folder];
    assert.equal(first.tokens, alone[0].tokens + alone[1].tokens);
    assert.equal(first.bytes, alone[0].bytes + alone[1].bytes);
    assert.ok(Math.abs(first.nll_sum - (alone[0].nll_sum + alone[1].nll_sum)) < 1e-3);
    assert.equal(f.tokens, first.tokens + f.by_source[other].tokens);
    assert.equal(api.results.current?.kind, 'ppl');
  });
});
