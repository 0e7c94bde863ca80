/**
 * Analyze Across Checkpoints and the hover's adaptive-off action in a real VS Code. Three
 * checkpoints of one tiny a-gpt adaptive run are trained here through the engine (`train/start`,
 * then resumed twice), copied out under step names; the command (given the folder: no dialog)
 * analyses the sample with each: the steps arrive in step order, the slider's last step colours the
 * editor with exactly the NLL a plain analysis with the last checkpoint loaded gives, and moving the
 * slider changes the colours. On the starter model (adaptive) the head-code hover offers to switch
 * a head's adaptive path off; its command colours each token by ablate/run's nll − base, and the
 * same command again restores the analysis' own colours.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { HeadLensApi } from '../../extension/extension';
import type { TimelineHandle } from '../../extension/timeline';
import type { AdaptiveOffResult } from '../../extension/adaptiveOff';
import type { ModelConfig } from '../../engine/protocol';
import { decodeArray } from '../../engine/codec';
import { headLens, hoverText, openSample, setSetting, until } from './util';

let api: HeadLensApi;
let ckptDir = '';
const TINY: Partial<ModelConfig> = { n_layer: 2, n_head: 2, n_embd: 16, block_size: 64, hyper: { rank: 2, n_heads: 2, n_layers: 1, alpha: 1 } };
const STEPS = [2, 4, 6];

/** Equal within float32 rounding of two runs of the same graph; NaN matches NaN. */
function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string, tol = 1e-4): void {
  assert.equal(actual.length, expected.length, `${what}: lengths`);
  let finite = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i], e = expected[i];
    if (Number.isNaN(e)) {
      assert.ok(Number.isNaN(a), `${what}[${i}]: ${a}, expected NaN`);
      continue;
    }
    finite++;
    assert.ok(Math.abs(a - e) <= tol * Math.max(1, Math.abs(e)), `${what}[${i}]: ${a} vs ${e}`);
  }
  assert.ok(finite > 10, `${what}: only ${finite} values to compare`);
}

suite('checkpoint timeline and adaptive-off', () => {
  suiteSetup(async function () {
    this.timeout(300_000);
    api = await headLens();
    const folder = vscode.workspace.workspaceFolders![0].uri.fsPath;
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'headlens-timeline-e2e-'));
    ckptDir = path.join(work, 'checkpoints');
    fs.mkdirSync(ckptDir);
    let previous: string | undefined;
    for (const steps of STEPS) {
      const r = await api.engine.request('train/start', { data: [folder], family: 'adaptive', steps, batchSize: 2, seqLen: 16, config: TINY, evalInterval: 1000, out: path.join(work, `run${steps}`), ...(previous ? { resume: previous } : {}) });
      assert.ok(r.checkpoint && fs.existsSync(r.checkpoint), `training to step ${steps} left no checkpoint`);
      previous = r.checkpoint;
      fs.copyFileSync(r.checkpoint, path.join(ckptDir, `model_${String(steps).padStart(6, '0')}.safetensors`));
    }
    // the later the step, the older the file: only the names can put them in order
    STEPS.forEach((s, i) => {
      const when = new Date(Date.now() - (i + 1) * 3600_000);
      fs.utimesSync(path.join(ckptDir, `model_${String(s).padStart(6, '0')}.safetensors`), when, when);
    });
  });

  suiteTeardown(async () => {
    await vscode.commands.executeCommand('headlens.clearAnnotations');
  });

  test('Analyze Across Checkpoints: steps in order; the last step colours the editor with the last checkpoint’s own NLL; the slider recolours', async function () {
    this.timeout(300_000);
    const editor = await openSample();
    const uri = editor.document.uri.toString();
    const handle = await vscode.commands.executeCommand<TimelineHandle | undefined>('headlens.analyzeAcrossCheckpoints', { folder: ckptDir, uri: editor.document.uri });
    assert.ok(handle, 'the command returned no timeline');
    const run = handle.run;
    assert.equal(run.state, 'done');
    assert.deepEqual(run.checkpoints.map((c) => c.step), STEPS, 'checkpoints ordered by step');
    assert.deepEqual(run.checkpoints.map((c) => path.basename(c.path)), STEPS.map((s) => `model_${String(s).padStart(6, '0')}.safetensors`));
    assert.deepEqual(run.steps.map((s) => s?.step), STEPS, 'every step analysed, in order');
    assert.ok(run.steps.every((s) => s && (s.headSignals.loraRel?.length ?? 0) === 2 * 2), 'per-head loraRel of every layer and head at each step');
    assert.equal(run.selected, STEPS.length - 1, 'the slider ends on the last step');
    await until(() => handle.panelReady(), 'the timeline panel to load');
    const a = api.store.get(uri);
    assert.equal(a?.metricOverride?.metric, 'checkpointNll', 'the editor is not coloured by the step’s NLL');
    assert.match(a!.metricOverride!.title, /step 6/);
    const last = handle.overlay();
    assert.ok(last, 'no overlay');
    assertClose(last, decodeArray(run.steps[2]!.nll), 'overlay vs the timeline event');

    // moving the slider changes the colours: step 2's NLL is another model's
    assert.ok(await handle.select(0));
    const first = handle.overlay()!;
    assertClose(first, decodeArray(run.steps[0]!.nll), 'overlay at step 2');
    let differ = 0;
    for (let i = 0; i < first.length; i++) if (Number.isFinite(first[i]) && Math.abs(first[i] - last[i]) > 1e-3) differ++;
    assert.ok(differ > first.length / 2, `only ${differ} of ${first.length} tokens changed between steps 2 and 6`);
    assert.match(api.store.get(uri)!.metricOverride!.title, /step 2/);
    assert.ok(await handle.select(2));
    const back = handle.overlay()!;

    // independent truth: the last checkpoint loaded as the model and analysed as usual
    const restore = await setSetting('modelPath', run.checkpoints[2].path);
    try {
      const model = await api.engine.ensureModel();
      assert.equal(model.path, run.checkpoints[2].path);
      await vscode.commands.executeCommand('headlens.analyze', { scope: 'document' });
      const plain = api.store.get(uri);
      assert.ok(plain && plain.model.path === run.checkpoints[2].path, 'no plain analysis with the last checkpoint');
      assertClose(back, plain.record.nll, 'the last step’s NLL vs a plain analysis of the last checkpoint');
    } finally {
      await vscode.commands.executeCommand('headlens.clearAnnotations');
      await restore();
    }
  });

  test('hover: switch a head’s adaptive path off colours each token by ablate/run’s nll − base; again restores', async function () {
    this.timeout(300_000);
    const editor = await openSample();
    const doc = editor.document;
    const uri = doc.uri.toString();
    const model = await api.engine.ensureModel();
    assert.equal(model.adaptive, true, 'the starter model is adaptive');
    await vscode.commands.executeCommand('headlens.analyze', { scope: 'document' });
    const a = api.store.get(uri);
    assert.ok(a, 'no analysis');
    const t = a.record.tokenAt(doc.getText().indexOf('softmax') + 2);
    const md = await hoverText(doc.uri, doc.positionAt(a.record.tokens[t].start));
    const link = /\[\$\(debug-disconnect\) Switch (L(\d+)\.H(\d+))’s adaptive path off\]\(command:headlens\.adaptiveOff\?([^ )]+)/.exec(md);
    assert.ok(link, `no adaptive-off link in the hover:\n${md.slice(0, 600)}`);
    const [arg] = JSON.parse(decodeURIComponent(link[4])) as [{ uri: string; layer: number; head: number }];
    assert.deepEqual([arg.uri, arg.layer, arg.head], [uri, Number(link[2]), Number(link[3])]);

    const shown = await vscode.commands.executeCommand<AdaptiveOffResult | undefined>('headlens.adaptiveOff', arg);
    assert.ok(shown?.shown, 'the command showed nothing');
    const after = api.store.get(uri)!;
    assert.equal(after.metricOverride?.metric, 'dNll');
    assert.match(after.metricOverride!.title, new RegExp(`L${arg.layer}\\.H${arg.head}’s adaptive path off`));
    // independent truth: ablate/run asked here, nll − base per position
    const truth = await api.engine.request('ablate/run', { text: doc.getText(), ablations: [{ layer: arg.layer, head: arg.head, mode: 'adaptive-off' }] });
    assert.deepEqual(truth.tokens.map((x) => x.start), after.record.tokens.map((x) => x.start), 'same tokens');
    const nll = decodeArray(truth.nll), base = decodeArray(truth.base);
    const expected = Float32Array.from(nll, (v, i) => v - base[i]);
    const overlay = Float32Array.from(after.record.tokens, (_, i) => after.record.signalAt('dNll', i, 0, 0));
    assertClose(overlay, expected, 'overlay ΔNLL vs ablate/run', 1e-6);
    assert.ok(expected.some((v) => Math.abs(v) > 1e-6), 'switching the adaptive path off changed nothing: the test could not fail');
    const md2 = await hoverText(doc.uri, doc.positionAt(a.record.tokens[t].start));
    assert.match(md2, /Switch L\d+\.H\d+’s adaptive path back on/);

    const restored = await vscode.commands.executeCommand<AdaptiveOffResult | undefined>('headlens.adaptiveOff', arg);
    assert.equal(restored?.shown, false);
    assert.equal(api.store.get(uri)?.metricOverride, undefined, 'the analysis’ own colours are back');
  });
});
