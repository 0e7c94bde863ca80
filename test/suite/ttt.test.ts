/**
 * LoRA test-time training in a real VS Code: Analyze with Test-Time Training on sample.py with the
 * starter model (arguments instead of dialogs; a small rank and a large learning rate so that the
 * adapters visibly move). The editor's colours are the run's per-token NLL with TTT minus without,
 * token by token; the hover of a token names its chunk with the chunk's losses and the token's own
 * NLLs; the chunk timeline opens beside the editor; an edit takes the stale hover away.
 */
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { HeadLensApi } from '../../extension/extension';
import type { TttRunResult } from '../../engine/protocol';
import { decodeArray } from '../../engine/codec';
import { headLens, hoverText, openSample, until } from './util';

let api: HeadLensApi;
const OPTIONS = { chunk: 32, rank: 4, alpha: 4.5, lr: 1e-2, warmStart: false };

const f3 = (v: number) => v.toFixed(3);

suite('LoRA test-time training', () => {
  let doc: vscode.TextDocument;
  let r: TttRunResult;

  suiteSetup(async () => {
    api = await headLens();
    await vscode.commands.executeCommand('headlens.clearAnnotations');
    doc = (await openSample()).document;
    const got = await vscode.commands.executeCommand<TttRunResult | undefined>('headlens.analyzeTtt', doc.uri, OPTIONS);
    assert.ok(got, 'the command returned no result');
    r = got;
  });

  suiteTeardown(async () => {
    await vscode.commands.executeCommand('headlens.clearAnnotations');
  });

  test('the run: chunks of 32 predictions tile the document, the first scored by the base model alone', () => {
    const N = r.tokens.length;
    assert.equal(r.chunks.length, Math.ceil((N - 1) / 32));
    r.chunks.forEach((c, i) => assert.deepEqual([c.start, c.end, c.trained], [i * 32, Math.min((i + 1) * 32, N - 1), i < r.chunks.length - 1]));
    assert.ok(Math.abs(r.chunks[0].lossBefore - r.chunks[0].lossBase) < 1e-3, 'B starts at zero: chunk 0 is scored by the base model');
    assert.deepEqual(r.settings.modules, ['q', 'k', 'v', 'o', 'mlp', 'head']);
    assert.ok(r.chunks[0].deltaFro.layers.q!.every((v) => v > 0), 'every layer’s q adapter moved after chunk 0');
  });

  test('the editor is coloured by NLL with TTT − without, token by token', async () => {
    const a = await until(() => {
      const x = api.store.get(doc.uri.toString());
      return x?.metricOverride?.metric === 'tttDnll' ? x : undefined;
    }, 'the ΔNLL overlay');
    const nll = decodeArray(r.nll), base = decodeArray(r.nllBase);
    // the run's token t is predicted at position t − 1; the analysis has its own token list, matched by offset
    const want = new Map(r.tokens.slice(1).map((t, i) => [t.start, nll[i] - base[i]]));
    let compared = 0, nonzero = 0;
    a.record.tokens.forEach((tok, t) => {
      const w = want.get(tok.start);
      const got = a.record.metric('tttDnll', t);
      if (w === undefined) return assert.ok(Number.isNaN(got), `token ${t} has no TTT prediction but a value ${got}`);
      assert.ok(Math.abs(got - w) <= 1e-6, `token ${t} ${JSON.stringify(tok.text)}: overlay ${got}, nll − nllBase ${w}`);
      compared++;
      if (Math.abs(w) > 1e-4) nonzero++;
    });
    assert.ok(compared >= r.tokens.length - 1, `only ${compared} of ${r.tokens.length} tokens compared`);
    assert.ok(nonzero > compared / 2, `TTT changed only ${nonzero} of ${compared} tokens`);
    await until(() => api.decorations.legendText.includes('tttDnll'), `the legend to name tttDnll (it says ${api.decorations.legendText})`);
    const count = await until(() => api.decorationCount(doc.uri), 'decorations');
    assert.ok(count > 20, `only ${count} tokens coloured`);
  });

  test('the hover names the token’s chunk, the chunk’s losses and the token’s NLL with and without TTT', async () => {
    const nll = decodeArray(r.nll), base = decodeArray(r.nllBase);
    const c = r.chunks[Math.floor(r.chunks.length / 2)];
    const t = c.start + 5; // predicted at position c.start + 4, inside the chunk
    const md = await hoverText(doc.uri, doc.positionAt(r.tokens[t].start));
    assert.ok(md.includes(`**LoRA-TTT** · chunk #${c.chunk} of ${r.chunks.length} (tokens ${c.start + 1}–${c.end}) · loss before ${f3(c.lossBefore)} · after its update ${f3(c.lossAfter)} · base ${f3(c.lossBase)} nats`), md);
    assert.ok(md.includes(`this token: NLL ${f3(nll[t - 1])} with TTT, ${f3(base[t - 1])} without`), md);
    const last = r.chunks[r.chunks.length - 1];
    assert.match(await hoverText(doc.uri, doc.positionAt(r.tokens[last.end].start)), new RegExp(`chunk #${last.chunk} .*not trained \\(the last chunk\\)`));
  });

  test('the chunk timeline opens beside the editor', () => {
    const tabs = vscode.window.tabGroups.all.flatMap((g) => g.tabs);
    assert.ok(tabs.some((t) => t.input instanceof vscode.TabInputWebview && t.input.viewType.endsWith('headlens.tttTimeline') && t.label === 'TTT chunks: sample.py'), `tabs: ${tabs.map((t) => t.label).join(', ')}`);
  });

  test('an edit takes the stale hover away', async () => {
    const editor = await openSample();
    const pos = doc.positionAt(r.tokens[10].start);
    assert.match(await hoverText(doc.uri, pos), /LoRA-TTT/);
    await editor.edit((e) => e.insert(new vscode.Position(0, 0), '# edited\n'));
    assert.doesNotMatch(await hoverText(doc.uri, pos), /LoRA-TTT/);
    await vscode.commands.executeCommand('undo');
  });
});
