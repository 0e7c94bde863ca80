/**
 * Temporal LoRA in the editor. Compare Router Adapters: the selection (else the document) scored by
 * the loaded tlora model with the router's mixture, uniform weights, each adapter alone, no adapter
 * and the base alone (`tlora/losses`), shown as a table beside the editor, and the editor coloured by
 * the dominant adapter of each token (the analysis's `router` signal, categorical colours). Train
 * Temporal LoRA…: a base model, one or more adapters each with its files and folders, the number of
 * steps; the run (`tlora/train`) streams into the sidebar monitor; Cancel stops it after the current
 * step with a checkpoint, which a finished run offers to load.
 */
import * as vscode from 'vscode';
import * as path from 'node:path';
import type { TloraLossesResult, TloraTrainParams, TrainResult } from '../engine/protocol';
import { decodeArray } from '../engine/codec';
import type { AnalysisStore } from './analysis';
import { Command } from './commands';
import { describeError, type EngineClient } from './engineClient';
import { MonitorView } from './monitorView';

/** The colour override that shows the dominant adapter (the router signal is categorical). */
const ROUTER_COLOURS = { metric: 'router', title: 'the dominant Temporal LoRA adapter of each token' };

const num = (v: number | null, d = 3) => (v === null || !Number.isFinite(v) ? '—' : v.toFixed(d));

/** The losses as a Markdown report: one row per way of mixing, then each adapter's share of the tokens. */
export function routerLossesMarkdown(r: TloraLossesResult, source: string): string {
  const mixture = r.rows[0]?.nll_mean ?? null;
  const rows = r.rows.map((x) => {
    const delta = x.nll_mean !== null && mixture !== null && x !== r.rows[0] ? `${x.nll_mean - mixture >= 0 ? '+' : ''}${num(x.nll_mean - mixture)}` : '';
    return `| ${x.name} | ${num(x.nll_mean)} | ${x.ppl !== null && x.ppl >= 1e6 ? x.ppl.toExponential(2) : num(x.ppl, 2)} | ${delta} | ${x.tokens} |`;
  });
  const N = Math.max(1, r.dominant.length);
  const weights = decodeArray(r.weights), K = r.adapters.length;
  const shares = r.adapters.map((a, k) => {
    const tokens = r.dominant.filter((d) => d === k).length;
    let mean = 0;
    for (let t = 0; t < r.dominant.length; t++) mean += weights[t * K + k] / N;
    return `| ${a} | ${tokens} (${((100 * tokens) / N).toFixed(1)} %) | ${num(mean)} |`;
  });
  return [
    `# Temporal LoRA: router vs each adapter`,
    '',
    `${source}: ${r.tokens.length} tokens, windows of ${r.context} every ${r.stride}. Mean next-token NLL (nats) with each way of mixing the adapters; Δ is against the router's mixture (negative: better than the mixture).`,
    '',
    '| route | mean NLL | perplexity | Δ vs mixture | tokens |',
    '|---|---:|---:|---:|---:|',
    ...rows,
    '',
    '`no adapter` is their forward without adapters (ln_f skipped, as theirs); `base` is the GPT-2 alone, with ln_f.',
    '',
    '| adapter | dominant on | mean router weight |',
    '|---|---:|---:|',
    ...shares,
    '',
    'The router reads the token id only: its weights are the same at every layer and for every occurrence of a token.',
  ].join('\n');
}

/** Compare Router Adapters on the active editor. */
async function compareRouterAdapters(engine: EngineClient, store: AnalysisStore): Promise<void> {
  const editor = vscode.window.activeTextEditor;
  if (!editor) return void vscode.window.showInformationMessage('Head Lens: open the text to compare the router’s adapters on.');
  const doc = editor.document;
  const text = editor.selection.isEmpty ? doc.getText() : doc.getText(editor.selection);
  if (!text.trim()) return void vscode.window.showInformationMessage('Head Lens: there is no text to score.');
  try {
    const result = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'Head Lens: comparing router adapters', cancellable: true }, async (progress, token) => {
      const model = await engine.ensureModel(token);
      if (model.family !== 'tlora') throw new Error(`the loaded model is a ${model.family} model: load a Temporal LoRA checkpoint (its .pt or .safetensors, with its GPT-2 base named in a sidecar or in headlens.configPath)`);
      let last = 0;
      return engine.request('tlora/losses', { text }, token, (p) => {
        const pct = Math.floor((100 * p.done) / Math.max(1, p.total));
        progress.report({ increment: pct - last, message: `${pct} %` });
        last = pct;
      });
    });
    const report = await vscode.workspace.openTextDocument({ language: 'markdown', content: routerLossesMarkdown(result, path.basename(doc.fileName) + (editor.selection.isEmpty ? '' : ' (selection)')) });
    await vscode.window.showTextDocument(report, { viewColumn: vscode.ViewColumn.Beside, preview: true, preserveFocus: true });
    await colourByAdapter(store, doc.uri.toString());
  } catch (e) {
    const msg = describeError(e);
    if (msg) void vscode.window.showErrorMessage(`Head Lens: Compare Router Adapters failed: ${msg}`);
  }
}

/** The document's colours → the dominant adapter (after an analysis, which brings the router signal). */
async function colourByAdapter(store: AnalysisStore, uri: string): Promise<void> {
  if (!store.get(uri)) await vscode.commands.executeCommand(Command.Analyze);
  const a = store.get(uri);
  if (!a || !a.record.hasTokenSignal('router')) return;
  a.metricOverride = ROUTER_COLOURS;
  store.put(a);
}

/** The adapters of a training run: a name and its files or folders, one adapter after another. */
async function pickAdapters(): Promise<TloraTrainParams['adapters'] | undefined> {
  const adapters: TloraTrainParams['adapters'] = [];
  for (;;) {
    const name = await vscode.window.showInputBox({
      title: `Head Lens: adapter ${adapters.length + 1} (a domain)${adapters.length ? ' — leave empty when done' : ''}`,
      placeHolder: adapters.length ? 'empty: start training' : 'e.g. python, shakespeare',
      validateInput: (v) => (!v.trim() ? (adapters.length ? undefined : 'at least one adapter') : /^[A-Za-z0-9_-]+$/.test(v.trim()) ? (adapters.some((a) => a.name === v.trim()) ? 'that adapter exists already' : undefined) : 'letters, digits, _ and -'),
    });
    if (name === undefined) return undefined;
    if (!name.trim()) return adapters;
    const data = await vscode.window.showOpenDialog({ canSelectFiles: true, canSelectFolders: true, canSelectMany: true, title: `Head Lens: the text of adapter '${name.trim()}'`, openLabel: 'Train on these' });
    if (!data?.length) return undefined;
    adapters.push({ name: name.trim(), data: data.map((u) => u.fsPath) });
  }
}

/** Train Temporal LoRA…: the pickers, then the run into the monitor. */
async function trainTlora(engine: EngineClient, monitor: MonitorView, runsDir: vscode.Uri): Promise<TrainResult | undefined> {
  const configured = vscode.workspace.getConfiguration('headlens').get<string>('modelPath');
  const base = await vscode.window.showOpenDialog({ canSelectFiles: true, canSelectFolders: true, canSelectMany: false, title: 'Head Lens: the GPT-2 base (frozen)', openLabel: 'Use as base', defaultUri: configured ? vscode.Uri.file(configured) : undefined });
  if (!base?.length) return undefined;
  const adapters = await pickAdapters();
  if (!adapters?.length) return undefined;
  const stepsText = await vscode.window.showInputBox({ title: 'Steps per adapter (the router trains as many)', value: '100', validateInput: (v) => (/^[1-9]\d*$/.test(v.trim()) ? undefined : 'a whole number of steps, at least 1') });
  if (!stepsText) return undefined;
  const out = vscode.Uri.joinPath(runsDir, `tlora-${new Date().toISOString().replace(/[:.]/g, '-')}`).fsPath;
  const params: TloraTrainParams = { base: base[0].fsPath, adapters, steps: Number(stepsText.trim()), out };
  void vscode.commands.executeCommand(`${MonitorView.viewId}.focus`); // show the curves
  const cts = new vscode.CancellationTokenSource();
  try {
    const result = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'Head Lens: Temporal LoRA training', cancellable: true }, (progress, token) => {
      token.onCancellationRequested(() => cts.cancel());
      return engine.request('tlora/train', params, cts.token, (e) => {
        if (e.kind === 'status' && e.message) progress.report({ message: e.message });
        monitor.add(e);
      });
    });
    const pick = await vscode.window.showInformationMessage(`Head Lens: Temporal LoRA ${result.stoppedEarly ? 'stopped' : 'trained'} after ${result.steps} steps: ${result.checkpoint}`, 'Load Checkpoint');
    if (pick && result.checkpoint) await vscode.commands.executeCommand(Command.LoadModel, result.checkpoint);
    return result;
  } catch (e) {
    const msg = describeError(e);
    if (msg) void vscode.window.showErrorMessage(`Head Lens: Temporal LoRA training failed: ${msg}`);
    else void vscode.window.showInformationMessage(`Head Lens: Temporal LoRA training stopped; what it trained is in ${out}.`);
    return undefined;
  } finally {
    cts.dispose();
  }
}

export function register(engine: EngineClient, store: AnalysisStore, monitor: MonitorView, runsDir: vscode.Uri): vscode.Disposable {
  return vscode.Disposable.from(
    vscode.commands.registerCommand(Command.RouterLosses, () => compareRouterAdapters(engine, store)),
    vscode.commands.registerCommand(Command.TrainTlora, () => trainTlora(engine, monitor, runsDir)),
  );
}
