/**
 * Analyze Attention: the selection, else the visible range, else the whole document (the engine
 * cuts it into windows of the model's block size); a progress notification with Cancel; the
 * engine's streamed events assembled into one AnalysisRecord per document, which the decorations,
 * the hover, the explorer and the export all read. An edit drops the stale record and cancels a
 * running analysis at once; with `headlens.analyzeOnEdit` a new one follows, debounced.
 */
import * as vscode from 'vscode';
import * as path from 'node:path';
import type { AnalyzeEvent, AnalyzeResult, ExplorerData, ModelInfo, SignalSpec, TokenInfo } from '../engine/protocol';
import { AnalysisRecord } from '../engine/analysis/record';
import { Command } from './commands';
import { describeError, type EngineClient } from './engineClient';
import type { SettingsWatcher } from './settings';

/** What part of the document an analysis covers. */
export type AnalysisScope = 'selection' | 'visible' | 'document';

export interface DocumentAnalysis {
  uri: string;
  /** Document version analysed: hovers and colours apply only while it is still current. */
  version: number;
  scope: AnalysisScope;
  model: ModelInfo;
  events: AnalyzeEvent[];
  result: AnalyzeResult;
  record: AnalysisRecord;
  /** False while later windows are still being analysed (the first ones are shown already). */
  complete: boolean;
  /**
   * What the colours show for this document regardless of `headlens.colorMetric` (compare's dNll, an
   * ablation's ΔNLL, a checkpoint's NLL), and what the legend calls it.
   */
  metricOverride?: { metric: string; title: string };
}

/** While an analysis streams, the partial record is published at most this often. */
const PUBLISH_MS = 250;

/** Quiet time after the last keystroke before `analyzeOnEdit` re-analyses. */
const EDIT_DEBOUNCE_MS = 800;

/** The range an analysis of `scope` covers; no scope: the selection, else the visible range, else all. */
export function scopeRange(editor: vscode.TextEditor, scope?: AnalysisScope): { scope: AnalysisScope; range: vscode.Range } {
  const doc = editor.document;
  const all = new vscode.Range(doc.positionAt(0), doc.positionAt(doc.getText().length));
  const selection = editor.selection;
  if ((scope ?? 'selection') === 'selection' && !selection.isEmpty) return { scope: 'selection', range: new vscode.Range(selection.start, selection.end) };
  const visible = editor.visibleRanges;
  if (scope !== 'document' && visible.length) {
    const range = new vscode.Range(visible[0].start.with({ character: 0 }), doc.lineAt(visible[visible.length - 1].end.line).rangeIncludingLineBreak.end);
    if (!range.contains(all)) return { scope: 'visible', range };
  }
  return { scope: 'document', range: all };
}

/** The text a command works on (compare, ablations): the selection of the document's editor, else the whole document. */
export interface CommandText {
  doc: vscode.TextDocument;
  text: string;
  /** Where the text starts in the document (its tokens' offsets are shifted by it). */
  offset: number;
  /** The file's name, "(selection)" added when it is one. */
  source: string;
}

/**
 * The document at `uri` (default: the active editor's) and its text to `what` (e.g. "ablate heads
 * on"); undefined, with a message saying so, when there is no document or only blank text.
 */
export async function commandText(what: string, uri?: vscode.Uri | string): Promise<CommandText | undefined> {
  const doc = uri ? await vscode.workspace.openTextDocument(typeof uri === 'string' ? vscode.Uri.parse(uri) : uri) : vscode.window.activeTextEditor?.document;
  if (!doc) return void vscode.window.showInformationMessage(`Head Lens: open the text to ${what}.`);
  const editor = vscode.window.activeTextEditor?.document === doc ? vscode.window.activeTextEditor : undefined;
  const selection = editor && !editor.selection.isEmpty ? editor.selection : undefined;
  const text = selection ? doc.getText(selection) : doc.getText();
  if (!text.trim()) return void vscode.window.showInformationMessage(`Head Lens: there is no text to ${what}.`);
  return { doc, text, offset: selection ? doc.offsetAt(selection.start) : 0, source: path.basename(doc.fileName) + (selection ? ' (selection)' : '') };
}

/**
 * Per-token values of one tokenisation laid onto another of the same document (the analysis's) by
 * the tokens' start offsets; tokens with no counterpart get NaN (a BOS with an empty range holds no text).
 */
export function alignByStart(source: TokenInfo[], values: ArrayLike<number>, target: TokenInfo[]): Float32Array {
  const byStart = new Map<number, number>();
  source.forEach((t, i) => {
    if (t.end > t.start) byStart.set(t.start, values[i]);
  });
  return Float32Array.from(target, (t) => byStart.get(t.start) ?? NaN);
}

/** Values computed elsewhere to colour a document by (AnalysisStore.overlay). */
export interface Overlay {
  spec: SignalSpec;
  /** The tokens the values belong to; absent: the values are per token of a whole-document analysis. */
  tokens?: TokenInfo[];
  values: (analysis: DocumentAnalysis) => ArrayLike<number>;
  /** What the legend calls them. */
  title: string;
  /** Checked once the analysis is there: false when the caller no longer wants these colours (a newer choice). */
  wanted?: () => boolean;
}

export class AnalysisStore implements vscode.Disposable {
  private readonly byUri = new Map<string, DocumentAnalysis>();
  private readonly running = new Map<string, vscode.CancellationTokenSource>();
  private readonly editTimers = new Map<string, NodeJS.Timeout>();
  private readonly changed = new vscode.EventEmitter<string>();
  /** Fires with a document URI when its analysis appears, changes or goes away. */
  readonly onDidChange = this.changed.event;
  private readonly subs: vscode.Disposable[] = [];

  constructor(private readonly engine: EngineClient, private readonly settings: SettingsWatcher) {
    this.subs.push(
      vscode.workspace.onDidChangeTextDocument((e) => this.onEdit(e)),
      vscode.workspace.onDidCloseTextDocument((d) => this.clear(d.uri.toString())),
      // menus show Clear Annotations and Export Analysis only when there is something to act on
      this.changed.event(() => void vscode.commands.executeCommand('setContext', 'headlens.hasAnalysis', this.byUri.size > 0)),
      engine.onDidChange(() => {
        // another model: the records describe the old one
        if (this.byUri.size && [...this.byUri.values()].some((a) => engine.model && a.model.path !== engine.model.path)) this.clear();
      }),
    );
  }

  /** The current (not stale) analysis of a document. */
  get(uri: string): DocumentAnalysis | undefined {
    return this.byUri.get(uri);
  }

  get analysedUris(): string[] {
    return [...this.byUri.keys()];
  }

  explorerData(uri: string): ExplorerData | null {
    const a = this.byUri.get(uri);
    return a ? { documentUri: a.uri, model: a.model, tokens: a.record.tokens, result: a.result, events: a.events } : null;
  }

  /** Shows an analysis made elsewhere (compare, ablations, a timeline step) for its document. */
  put(analysis: DocumentAnalysis): void {
    this.byUri.set(analysis.uri, analysis);
    this.changed.fire(analysis.uri);
  }

  /**
   * Colour a document by values computed elsewhere (compare's ΔNLL, an ablation's, a checkpoint's
   * NLL, test-time training's change): its analysis — a whole-document one made first when there
   * is none (or none per token of the document when `tokens` is absent) — gets the values as the
   * token signal `spec`, and the colours show it whatever headlens.colorMetric says. Undefined when
   * the document changed since `version`.
   */
  async overlay(doc: vscode.TextDocument, version: number, o: Overlay): Promise<DocumentAnalysis | undefined> {
    const uri = doc.uri.toString();
    let a = this.byUri.get(uri);
    if (!a || a.version !== doc.version || (!o.tokens && a.scope !== 'document')) {
      const editor = vscode.window.visibleTextEditors.find((e) => e.document === doc) ?? (await vscode.window.showTextDocument(doc, { preserveFocus: true, preview: false }));
      a = await this.analyze(editor, 'document');
    }
    if (!a || a.version !== version || doc.version !== version || this.byUri.get(uri) !== a || (o.wanted && !o.wanted())) return undefined;
    const values = o.values(a);
    a.record.setTokenSignal(o.spec, alignByStart(o.tokens ?? a.record.tokens, values, a.record.tokens));
    a.metricOverride = { metric: o.spec.name, title: o.title };
    this.put(a);
    return a;
  }

  /** Forget one document's analysis (or all) and cancel what is running for it. */
  clear(uri?: string): void {
    for (const key of uri ? [uri] : [...new Set([...this.byUri.keys(), ...this.running.keys()])]) {
      this.running.get(key)?.cancel();
      clearTimeout(this.editTimers.get(key));
      this.editTimers.delete(key);
      if (this.byUri.delete(key)) this.changed.fire(key);
    }
  }

  /**
   * Analyse `scope` of the editor's document. A progress notification with Cancel unless `silent`
   * (re-analysis on edit). A newer analysis of the same document cancels this one.
   */
  async analyze(editor: vscode.TextEditor, scope?: AnalysisScope, opts: { silent?: boolean } = {}): Promise<DocumentAnalysis | undefined> {
    const uri = editor.document.uri.toString();
    this.running.get(uri)?.cancel();
    const cts = new vscode.CancellationTokenSource();
    this.running.set(uri, cts);
    try {
      if (opts.silent) return await this.run(editor, scope, () => undefined, cts.token);
      return await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: 'Head Lens: analysing attention', cancellable: true },
        (progress, token) => {
          const sub = token.onCancellationRequested(() => cts.cancel());
          return this.run(editor, scope, (r) => progress.report(r), cts.token).finally(() => sub.dispose());
        },
      );
    } catch (e) {
      const msg = describeError(e);
      if (msg && !cts.token.isCancellationRequested) void vscode.window.showErrorMessage(`Head Lens: analysis of ${vscode.workspace.asRelativePath(editor.document.uri)} failed: ${msg}`);
      return undefined;
    } finally {
      if (this.running.get(uri) === cts) this.running.delete(uri);
      cts.dispose();
    }
  }

  private async run(editor: vscode.TextEditor, scope: AnalysisScope | undefined, report: (p: { message?: string; increment?: number }) => void, token: vscode.CancellationToken): Promise<DocumentAnalysis | undefined> {
    const doc = editor.document;
    const version = doc.version;
    const target = scopeRange(editor, scope);
    const start = doc.offsetAt(target.range.start);
    const text = doc.getText(target.range);
    if (!text.trim()) throw new Error('there is nothing to analyse: the range is empty or blank');
    report({ message: this.engine.model ? undefined : 'starting the engine and loading the model…' });
    const model = await this.engine.ensureModel(token);
    const record = new AnalysisRecord(model);
    const events: AnalyzeEvent[] = [];
    const window = this.settings.current.windowSize ? Math.min(this.settings.current.windowSize, model.config.block_size) : undefined;
    let windows = 1;
    const started = Date.now();
    let published = 0;
    // the first windows are coloured while the rest are computed (a long document shows at once)
    const publish = (final: AnalyzeResult | null) => {
      if (token.isCancellationRequested || doc.version !== version) return undefined;
      const result = final ?? partialResult(record, windows, model, Date.now() - started, this.engine.init?.backend.name ?? 'wasm');
      if (final) record.setResult(final);
      const analysis: DocumentAnalysis = { uri: doc.uri.toString(), version, scope: target.scope, model, events, result, record, complete: !!final };
      this.byUri.set(analysis.uri, analysis);
      this.changed.fire(analysis.uri);
      published = Date.now();
      return analysis;
    };
    const stride = this.settings.current.stride || undefined;
    const logitLens = this.settings.current.logitLens || undefined;
    const result = await this.engine.request('analyze', { text, baseOffset: start, window, stride, logitLens }, token, (ev) => {
      events.push(ev);
      record.add(ev);
      if (ev.kind === 'tokens') windows = ev.windowCount;
      if (ev.kind === 'layer') report({ message: `window ${ev.window + 1}/${windows}, layer ${ev.layer + 1}/${model.layers}`, increment: 100 / (windows * model.layers) });
      if (ev.kind === 'output' && ev.window + 1 < windows && Date.now() - published >= PUBLISH_MS) publish(null);
    });
    // an edit while the engine worked makes the offsets stale: the edit handler cancels, but a
    // result may already have been on its way
    const analysis = publish(result);
    if (!analysis) return undefined;
    return analysis;
  }

  private onEdit(e: vscode.TextDocumentChangeEvent): void {
    const uri = e.document.uri.toString();
    if (!e.contentChanges.length) return;
    const previous = this.byUri.get(uri);
    const wasRunning = this.running.has(uri);
    if (!previous && !wasRunning) return;
    this.running.get(uri)?.cancel(); // its offsets are stale already
    if (this.byUri.delete(uri)) this.changed.fire(uri);
    if (!this.settings.current.analyzeOnEdit || !previous) return;
    // a selection's offsets moved with the edit: re-analyse what is in view instead
    const scope: AnalysisScope = previous.scope === 'document' ? 'document' : 'visible';
    clearTimeout(this.editTimers.get(uri));
    this.editTimers.set(uri, setTimeout(() => {
      this.editTimers.delete(uri);
      const editor = vscode.window.visibleTextEditors.find((x) => x.document.uri.toString() === uri);
      if (editor) void this.analyze(editor, scope, { silent: true });
    }, EDIT_DEBOUNCE_MS));
  }

  dispose(): void {
    for (const t of this.editTimers.values()) clearTimeout(t);
    for (const c of this.running.values()) c.cancel();
    this.subs.forEach((s) => s.dispose());
    this.changed.dispose();
  }
}

/** What the views need of a result before the last window is done. */
function partialResult(record: AnalysisRecord, windows: number, model: ModelInfo, elapsedMs: number, backend: AnalyzeResult['backend']): AnalyzeResult {
  let sum = 0, n = 0;
  for (const v of record.nll) if (Number.isFinite(v)) (sum += v), n++;
  return { tokenCount: record.N, windowCount: windows, layers: model.layers, heads: model.heads, meanNll: n ? sum / n : null, maxLeak: null, elapsedMs, backend, vocabText: record.vocabText };
}

/** Analyze Attention and Clear Annotations. */
export function register(store: AnalysisStore): vscode.Disposable {
  return vscode.Disposable.from(
    // from the editor's context menu the argument is the document's URI; from code, a scope
    vscode.commands.registerCommand(Command.Analyze, (arg?: vscode.Uri | { scope?: AnalysisScope }) => {
      const editor = arg instanceof vscode.Uri ? vscode.window.visibleTextEditors.find((e) => e.document.uri.toString() === arg.toString()) : vscode.window.activeTextEditor;
      if (!editor) return void vscode.window.showWarningMessage('Head Lens: open a file to analyse first.');
      return store.analyze(editor, arg instanceof vscode.Uri ? undefined : arg?.scope);
    }),
    vscode.commands.registerCommand(Command.ClearAnnotations, () => store.clear()),
  );
}
