/**
 * Analyze Attention: the selection, else the visible range, else the whole document (in windows);
 * a progress notification with Cancel; results assembled per document. Re-analysis on edit is
 * debounced and cancels the stale request.
 */
import * as vscode from 'vscode';
import type { AnalyzeEvent, AnalyzeResult, ExplorerData, ModelInfo } from '../engine/protocol';
import { AnalysisRecord } from '../engine/record';
import { describeError, type EngineManager } from './engine';
import type { SettingsWatcher } from './settings';

export interface DocumentAnalysis {
  uri: string;
  version: number;
  model: ModelInfo;
  events: AnalyzeEvent[];
  result: AnalyzeResult;
  record: AnalysisRecord;
}

export class AnalysisStore implements vscode.Disposable {
  private readonly byUri = new Map<string, DocumentAnalysis>();
  private readonly changed = new vscode.EventEmitter<string>();
  readonly onDidChange = this.changed.event;
  private running = new Map<string, vscode.CancellationTokenSource>();
  private timers = new Map<string, NodeJS.Timeout>();
  private readonly subs: vscode.Disposable[] = [];

  constructor(private readonly engine: EngineManager, private readonly settings: SettingsWatcher) {
    this.subs.push(
      vscode.workspace.onDidChangeTextDocument((e) => this.onEdit(e)),
      vscode.workspace.onDidCloseTextDocument((d) => this.clear(d.uri.toString())),
    );
  }

  get(uri: string): DocumentAnalysis | undefined {
    return this.byUri.get(uri);
  }

  explorerData(uri: string): ExplorerData | null {
    const a = this.byUri.get(uri);
    if (!a) return null;
    return { documentUri: a.uri, model: a.model, tokens: a.record.tokens, result: a.result, events: a.events };
  }

  clear(uri?: string): void {
    for (const key of uri ? [uri] : [...this.byUri.keys()]) {
      this.byUri.delete(key);
      this.running.get(key)?.cancel();
      this.changed.fire(key);
    }
  }

  /** Which part of the document: the selection, else the visible range (fast paths), else all. */
  static rangeFor(editor: vscode.TextEditor, whole: boolean): vscode.Range {
    const doc = editor.document;
    if (!whole && !editor.selection.isEmpty) return new vscode.Range(editor.selection.start, editor.selection.end);
    if (!whole && editor.visibleRanges.length) {
      const v = editor.visibleRanges;
      const full = new vscode.Range(v[0].start, v[v.length - 1].end);
      if (doc.offsetAt(full.end) - doc.offsetAt(full.start) < doc.getText().length) return full;
    }
    return new vscode.Range(doc.positionAt(0), doc.positionAt(doc.getText().length));
  }

  /** Run the analysis of `range` in `editor`'s document; progress in the notification area. */
  async analyze(editor: vscode.TextEditor, range: vscode.Range, opts: { silent?: boolean } = {}): Promise<DocumentAnalysis | undefined> {
    const doc = editor.document;
    const uri = doc.uri.toString();
    this.running.get(uri)?.cancel();
    const cts = new vscode.CancellationTokenSource();
    this.running.set(uri, cts);
    const text = doc.getText();
    const start = doc.offsetAt(range.start), end = doc.offsetAt(range.end);
    const run = async (progress: vscode.Progress<{ message?: string; increment?: number }>, token: vscode.CancellationToken) => {
      token.onCancellationRequested(() => cts.cancel());
      progress.report({ message: 'loading the model…' });
      const model = await this.engine.ensureModel(cts.token);
      const events: AnalyzeEvent[] = [];
      const record = new AnalysisRecord(model.config.n_layer, model.config.n_head);
      let windows = 1;
      const result = await this.engine.request('analyze', { text, range: { start, end }, window: this.settings.current.windowSize || undefined }, cts.token, (ev) => {
        events.push(ev);
        record.add(ev);
        if (ev.kind === 'tokens') windows = ev.windowCount;
        if (ev.kind === 'layer') progress.report({ message: `window ${ev.window + 1}/${windows}, layer ${ev.layer + 1}/${model.config.n_layer}`, increment: 100 / (windows * model.config.n_layer) });
      });
      record.result = result;
      const a: DocumentAnalysis = { uri, version: doc.version, model, events, result, record };
      this.byUri.set(uri, a);
      this.changed.fire(uri);
      return a;
    };
    try {
      if (opts.silent) return await run({ report: () => {} }, cts.token);
      return await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'Head Lens: analysing attention', cancellable: true }, run);
    } catch (e) {
      const msg = describeError(e);
      if (msg) void vscode.window.showErrorMessage(`Head Lens: ${msg}`);
      return undefined;
    } finally {
      if (this.running.get(uri) === cts) this.running.delete(uri);
      cts.dispose();
    }
  }

  private onEdit(e: vscode.TextDocumentChangeEvent): void {
    const uri = e.document.uri.toString();
    if (!this.byUri.has(uri) || !e.contentChanges.length) return;
    this.byUri.delete(uri); // offsets are stale: drop the annotations
    this.changed.fire(uri);
    if (!this.settings.current.analyzeOnEdit) return;
    clearTimeout(this.timers.get(uri));
    this.timers.set(uri, setTimeout(() => {
      const editor = vscode.window.visibleTextEditors.find((x) => x.document.uri.toString() === uri);
      if (editor) void this.analyze(editor, AnalysisStore.rangeFor(editor, false), { silent: true });
    }, 800));
  }

  dispose(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    for (const c of this.running.values()) c.cancel();
    this.subs.forEach((s) => s.dispose());
    this.changed.dispose();
  }
}
