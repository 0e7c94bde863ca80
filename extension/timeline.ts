/**
 * Analyze Across Checkpoints…: one run's checkpoints (a folder, listed and ordered by step by the
 * engine's `checkpoints/list`, or the paths a caller gives, e.g. a watched run's) analysed in turn
 * on the active document with `checkpoints/analyze`, streamed checkpoint by checkpoint with a
 * cancellable progress notification. A timeline panel beside the editor (webview/timeline.ts)
 * draws the mean NLL over steps and every per-head signal over steps; its step slider recolours
 * the editor by that step's per-token NLL through the document's analysis overlay
 * (AnalysisRecord.setTokenSignal + metricOverride, as compare and the ablations do). The engine
 * caches each (checkpoint, text): moving back and forth or running the timeline again is free.
 */
import * as vscode from 'vscode';
import * as path from 'node:path';
import type { CheckpointEntry, HostToWebview, SignalSpec, TimelineData, TimelineEvent, TokenInfo, WebviewToHost } from '../engine/protocol';
import { decodeArray } from '../engine/codec';
import type { AnalysisStore } from './analysis';
import { Command } from './commands';
import { describeError, type EngineClient } from './engineClient';
import { webviewHtml, webviewOptions } from './webviewHtml';

const VIEW_TYPE = 'headlens.timeline';

/** The signal the editor is coloured by: the NLL of the next token under the chosen checkpoint. */
export const CHECKPOINT_NLL: SignalSpec = {
  name: 'checkpointNll',
  scope: 'token',
  label: 'NLL at the chosen checkpoint',
  unit: 'nats',
  description: 'negative log-likelihood of the next token under the checkpoint the timeline’s slider is on',
  mechanism: 'checkpoint timeline',
  perLayer: false,
};

/** What the command takes from code (tests, the run monitor): no dialog when given. */
export interface AnalyzeAcrossArgs {
  folder?: string;
  /** Checkpoints already in order (a watched run's). */
  paths?: string[];
  /** The document (default: the active editor's). */
  uri?: vscode.Uri | string;
}

/** One timeline: the document, the run's checkpoints and what has been analysed. */
export interface TimelineRun {
  uri: string;
  version: number;
  documentLabel: string;
  runLabel: string;
  checkpoints: CheckpointEntry[];
  /** By checkpoint index; undefined until analysed. */
  steps: (TimelineEvent | undefined)[];
  tokens: TokenInfo[] | null;
  selected: number | null;
  state: TimelineData['state'];
  message?: string;
}

/** What the command returns (the tests read and move it like the slider does). */
export interface TimelineHandle {
  run: TimelineRun;
  /** Move the slider: the editor shows that step's NLL. */
  select(index: number): Promise<boolean>;
  /** The values the editor is coloured by now, per token of the document's analysis (null: not this timeline's). */
  overlay(): Float32Array | null;
  /** True once the panel's webview has loaded. */
  panelReady(): boolean;
}

const fmt = (v: number | null | undefined, d = 3) => (v === null || v === undefined || !Number.isFinite(v) ? '—' : v.toFixed(d));
const stepName = (c: CheckpointEntry) => (c.step !== null ? `step ${c.step}` : path.basename(c.path));

export class TimelineController implements vscode.Disposable {
  private panel: vscode.WebviewPanel | null = null;
  private ready = false;
  private queue: HostToWebview[] = [];
  private current: TimelineRun | null = null;
  private running: vscode.CancellationTokenSource | null = null;
  private readonly subs: vscode.Disposable[] = [];

  constructor(private readonly extensionUri: vscode.Uri, private readonly engine: EngineClient, private readonly store: AnalysisStore) {}

  /** Analyze Across Checkpoints… on the document; resolves when every checkpoint is done, or on cancel. */
  async analyzeAcross(args: AnalyzeAcrossArgs = {}): Promise<TimelineHandle | undefined> {
    const doc = await this.documentOf(args.uri);
    if (!doc) return void vscode.window.showWarningMessage('Head Lens: open the document to analyse across checkpoints first.');
    const text = doc.getText();
    if (!text.trim()) return void vscode.window.showInformationMessage('Head Lens: the document is empty.');
    let folder = args.folder;
    if (!folder && !args.paths?.length) {
      const picked = await vscode.window.showOpenDialog({ canSelectFiles: false, canSelectFolders: true, canSelectMany: false, defaultUri: vscode.workspace.workspaceFolders?.[0]?.uri, title: 'Head Lens: the folder of one training run’s checkpoints', openLabel: 'Analyze Across Checkpoints' });
      folder = picked?.[0]?.fsPath;
      if (!folder) return undefined;
    }
    this.running?.cancel();
    const cts = new vscode.CancellationTokenSource();
    this.running = cts;
    try {
      return await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Head Lens: checkpoints on ${path.basename(doc.fileName)}`, cancellable: true }, async (progress, token) => {
        const sub = token.onCancellationRequested(() => cts.cancel());
        try {
          return await this.run(doc, text, folder, args.paths, progress, cts.token);
        } finally {
          sub.dispose();
        }
      });
    } finally {
      if (this.running === cts) this.running = null;
      cts.dispose();
    }
  }

  private async run(doc: vscode.TextDocument, text: string, folder: string | undefined, given: string[] | undefined, progress: vscode.Progress<{ message?: string; increment?: number }>, token: vscode.CancellationToken): Promise<TimelineHandle | undefined> {
    let run: TimelineRun | null = null;
    try {
      progress.report({ message: this.engine.model ? 'listing the checkpoints…' : 'starting the engine and loading the model…' });
      const model = await this.engine.ensureModel(token); // its tokenizer reads the document for every checkpoint
      const checkpoints = given?.length ? given.map((p) => ({ path: p, step: null, mtimeMs: 0 })) : await this.engine.request('checkpoints/list', { folder: folder! }, token);
      run = {
        uri: doc.uri.toString(),
        version: doc.version,
        documentLabel: vscode.workspace.asRelativePath(doc.uri, false),
        runLabel: folder ? vscode.workspace.asRelativePath(folder, false) : `${checkpoints.length} checkpoints`,
        checkpoints,
        steps: [],
        tokens: null,
        selected: null,
        state: 'running',
      };
      this.current = run;
      this.show(model.layers, model.heads, model.signals);
      const r = run;
      const result = await this.engine.request('checkpoints/analyze', { text, paths: checkpoints.map((c) => c.path) }, token, (ev) => {
        // the engine reads steps from names and metadata for given paths too
        r.checkpoints[ev.index] = { ...r.checkpoints[ev.index], step: ev.step ?? r.checkpoints[ev.index].step };
        r.steps[ev.index] = ev;
        progress.report({ message: `${ev.index + 1}/${checkpoints.length}: ${stepName(r.checkpoints[ev.index])}, mean NLL ${fmt(ev.meanNll)}`, increment: 100 / checkpoints.length });
        this.publish();
      });
      r.tokens = result.tokens;
      r.state = 'done';
    } catch (e) {
      const msg = describeError(e);
      if (run) {
        run.state = msg ? 'failed' : 'cancelled';
        run.message = msg ? `failed: ${msg}` : `cancelled after ${run.steps.filter(Boolean).length} of ${run.checkpoints.length} checkpoints`;
      }
      if (msg) void vscode.window.showErrorMessage(`Head Lens: Analyze Across Checkpoints failed: ${msg}`);
      if (!run?.steps.some(Boolean)) {
        this.publish();
        return undefined;
      }
    }
    const last = run.steps.map((s, i) => (s ? i : -1)).filter((i) => i >= 0).pop()!;
    await this.select(last);
    return this.handle(run);
  }

  /** Colour the editor by step `index`'s per-token NLL (the slider). */
  async select(index: number): Promise<boolean> {
    const run = this.current;
    const step = run?.steps[index];
    if (!run || !step) return false;
    run.selected = index;
    this.publish();
    const doc = vscode.workspace.textDocuments.find((d) => d.uri.toString() === run.uri);
    if (!doc || doc.version !== run.version) {
      void vscode.window.setStatusBarMessage('Head Lens: the document changed since the timeline was made; run Analyze Across Checkpoints again', 6000);
      return false;
    }
    // a cancelled run has no token list of its own: a whole-document analysis, by the same tokenizer, gives it
    const c = run.checkpoints[index];
    const a = await this.store.overlay(doc, run.version, {
      spec: CHECKPOINT_NLL,
      tokens: run.tokens ?? undefined,
      values: () => decodeArray(step.nll),
      title: `NLL of the next token at ${stepName(c)} (${path.basename(c.path)}; checkpoint ${index + 1} of ${run.checkpoints.length}, mean ${fmt(step.meanNll)} nats)`,
      wanted: () => this.current === run && run.selected === index,
    });
    return !!a;
  }

  private handle(run: TimelineRun): TimelineHandle {
    return {
      run,
      select: (i) => this.select(i),
      overlay: () => {
        const a = this.store.get(run.uri);
        if (!a || a.metricOverride?.metric !== CHECKPOINT_NLL.name || !a.record.hasTokenSignal(CHECKPOINT_NLL.name)) return null;
        return Float32Array.from(a.record.tokens, (_, t) => a.record.signalAt(CHECKPOINT_NLL.name, t, 0, 0));
      },
      panelReady: () => !!this.panel && this.ready,
    };
  }

  private async documentOf(uri: vscode.Uri | string | undefined): Promise<vscode.TextDocument | undefined> {
    if (uri) return vscode.workspace.openTextDocument(typeof uri === 'string' ? vscode.Uri.parse(uri) : uri);
    return (vscode.window.activeTextEditor ?? vscode.window.visibleTextEditors[0])?.document;
  }

  // -- the panel ---------------------------------------------------------------------------------

  private layers = 0;
  private heads = 0;
  private signals: SignalSpec[] = [];

  private show(layers: number, heads: number, signals: SignalSpec[]): void {
    this.layers = layers;
    this.heads = heads;
    this.signals = signals.filter((s) => s.scope === 'head×token' || s.scope === 'head' || s.scope === 'kvhead×token');
    if (this.panel) {
      this.panel.reveal(vscode.ViewColumn.Beside, true);
      this.publish();
      return;
    }
    this.ready = false;
    const panel = vscode.window.createWebviewPanel(VIEW_TYPE, 'Head Lens: Checkpoints', { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true }, webviewOptions(this.extensionUri));
    this.panel = panel;
    panel.webview.html = webviewHtml(panel.webview, this.extensionUri, 'timeline.js', 'timeline.css', 'Head Lens: Checkpoints');
    panel.webview.onDidReceiveMessage((m: WebviewToHost) => this.onMessage(m), null, this.subs);
    panel.onDidDispose(() => {
      this.panel = null;
      this.ready = false;
      this.queue = [];
    }, null, this.subs);
    this.publish();
  }

  private onMessage(m: WebviewToHost): void {
    if (m.type === 'ready') {
      this.ready = true;
      const q = this.queue;
      this.queue = [];
      for (const x of q) void this.panel?.webview.postMessage(x);
      this.publish(); // after a hide and show the webview starts empty
    } else if (m.type === 'timeline/selectStep') void this.select(m.index);
    else if (m.type === 'error') this.engine.log.warn(`timeline webview: ${m.message}`);
  }

  private publish(): void {
    const run = this.current;
    if (!this.panel || !run) return;
    const data: TimelineData = {
      documentUri: run.uri,
      documentLabel: run.documentLabel,
      runLabel: run.runLabel,
      layers: this.layers,
      heads: this.heads,
      checkpoints: run.checkpoints,
      steps: run.steps.filter((s): s is TimelineEvent => !!s).map(({ nll: _nll, ...rest }) => rest),
      signals: this.signals,
      selected: run.selected,
      state: run.state,
      ...(run.message ? { message: run.message } : {}),
    };
    const msg: HostToWebview = { type: 'timeline/data', data };
    if (!this.ready) {
      this.queue = [msg]; // only the newest matters
      return;
    }
    void this.panel.webview.postMessage(msg);
  }

  /** Disposed with the controller. */
  track(d: vscode.Disposable): void {
    this.subs.push(d);
  }

  dispose(): void {
    this.running?.cancel();
    this.panel?.dispose();
    this.subs.forEach((d) => d.dispose());
  }
}

export function register(extensionUri: vscode.Uri, engine: EngineClient, store: AnalysisStore): TimelineController {
  const timeline = new TimelineController(extensionUri, engine, store);
  timeline.track(vscode.commands.registerCommand(Command.AnalyzeAcrossCheckpoints, (arg?: AnalyzeAcrossArgs | vscode.Uri) =>
    timeline.analyzeAcross(arg instanceof vscode.Uri ? { folder: arg.fsPath } : arg ?? {}),
  ));
  return timeline;
}
