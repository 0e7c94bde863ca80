/**
 * Analyze with Test-Time Training: the active document through the engine's `ttt/run` (LoRA
 * test-time training as parameter-golf #1784 scores its validation set: chunks scored first, then
 * one AdamW step each) with a cancellable progress notification per chunk. Then:
 * - the editor is coloured by each token's NLL with TTT minus its NLL without (the `tttDnll` signal,
 *   a diverging scale: negative where the adapters trained on the earlier chunks helped) through the
 *   document's analysis overlay (AnalysisRecord.setTokenSignal + metricOverride, as compare and the
 *   ablations do);
 * - the hover of a token names its chunk, the chunk's losses before / after its update and the base
 *   model's, and the token's own NLL with and without TTT;
 * - the chunk timeline (extension/tttTimeline.ts) opens beside the editor.
 * Settings `headlens.ttt.*` override the record's defaults; the command's second argument (tests,
 * other commands) overrides both.
 */
import * as vscode from 'vscode';
import * as path from 'node:path';
import type { TokenInfo, TttChunkEvent, TttRunParams, TttRunResult } from '../engine/protocol';
import { decodeArray } from '../engine/codec';
import { SIGNALS } from '../engine/models/signals';
import type { AnalysisStore } from './analysis';
import { Command } from './commands';
import { describeError, type EngineClient } from './engineClient';
import { TttTimelinePanel } from './tttTimeline';

const COLOURS_TITLE = 'NLL with test-time training − without (nats; negative: TTT helped)';

/** What a run may override: every ttt/run parameter but the text. */
export type TttOptions = Omit<TttRunParams, 'text'>;

const num = (v: number | null | undefined, d = 3) => (v === null || v === undefined || !Number.isFinite(v) ? '—' : v.toFixed(d));
const signed = (v: number, d = 3) => (Number.isFinite(v) ? `${v > 0 ? '+' : v < 0 ? '−' : ''}${Math.abs(v).toFixed(d)}` : '—');

/**
 * Per token of the run, NLL(with TTT) − NLL(without) of predicting that token (the run's arrays
 * are per position t, for token t + 1): NaN for the first token and where a value is missing.
 */
export function tokenDnll(r: TttRunResult): Float32Array {
  const withTtt = decodeArray(r.nll), without = decodeArray(r.nllBase);
  const out = new Float32Array(r.tokens.length).fill(NaN);
  for (let t = 1; t < out.length; t++) out[t] = withTtt[t - 1] - without[t - 1];
  return out;
}

/** The chunk that scored token t (predicted at position t − 1), or undefined for the first token. */
export function chunkOfToken(r: TttRunResult, t: number): TttChunkEvent | undefined {
  const p = t - 1;
  let lo = 0, hi = r.chunks.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1, c = r.chunks[mid];
    if (p < c.start) hi = mid - 1;
    else if (p >= c.end) lo = mid + 1;
    else return c;
  }
  return undefined;
}

/** The token whose [start, end) holds the offset (tokens sorted by offset; an empty BOS never matches). */
function tokenAt(tokens: TokenInfo[], offset: number): number {
  let lo = 0, hi = tokens.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1, t = tokens[mid];
    if (offset < t.start) hi = mid - 1;
    else if (offset >= t.end) lo = mid + 1;
    else return mid;
  }
  return -1;
}

/** The hover of token t: its chunk and the chunk's losses, then the token's own NLL with and without TTT. */
export function tttHoverMarkdown(r: TttRunResult, t: number, nll: Float32Array, nllBase: Float32Array): string {
  const c = chunkOfToken(r, t);
  if (!c) return `**LoRA-TTT** · token #${t} is the document's first: nothing predicts it`;
  const after = c.trained ? `after its update ${num(c.lossAfter)}` : 'not trained (the last chunk)';
  return [
    `**LoRA-TTT** · chunk #${c.chunk} of ${c.chunks} (tokens ${c.start + 1}–${c.end}) · loss before ${num(c.lossBefore)} · ${after} · base ${num(c.lossBase)} nats`,
    `this token: NLL ${num(nll[t - 1])} with TTT, ${num(nllBase[t - 1])} without (${signed(nll[t - 1] - nllBase[t - 1])})`,
  ].join('\n\n');
}

/** A document's last run, for its hover while the text is unchanged. */
interface DocumentRun {
  version: number;
  result: TttRunResult;
  nll: Float32Array;
  nllBase: Float32Array;
}

/** The `headlens.ttt.*` settings that are set (unset ones leave the record's defaults to the engine). */
function configured(): TttOptions {
  const config = vscode.workspace.getConfiguration('headlens.ttt');
  const read = (key: string): number | undefined => {
    const v = config.get<number | null>(key);
    return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
  };
  return { chunk: read('chunk'), evalLen: read('evalLen'), rank: read('rank'), alpha: read('alpha'), lr: read('lr') };
}

export class TttController implements vscode.Disposable {
  private readonly runs = new Map<string, DocumentRun>();
  private readonly subs: vscode.Disposable[] = [];

  constructor(private readonly engine: EngineClient, private readonly store: AnalysisStore, private readonly timeline: TttTimelinePanel) {
    this.subs.push(
      // the hover describes the text it was computed on: an edit takes it away
      vscode.workspace.onDidChangeTextDocument((e) => {
        if (e.contentChanges.length) this.runs.delete(e.document.uri.toString());
      }),
      vscode.workspace.onDidCloseTextDocument((d) => this.runs.delete(d.uri.toString())),
    );
  }

  result(uri: vscode.Uri): TttRunResult | undefined {
    return this.runs.get(uri.toString())?.result;
  }

  /** Analyze with Test-Time Training on the active editor (or `uri`, with `options`: tests and other commands). */
  async analyze(uri?: vscode.Uri, options: TttOptions = {}): Promise<TttRunResult | undefined> {
    const doc = uri ? await vscode.workspace.openTextDocument(uri) : vscode.window.activeTextEditor?.document;
    if (!doc) return void vscode.window.showInformationMessage('Head Lens: open a document to analyse with test-time training.');
    const text = doc.getText(), version = doc.version;
    if (!text.trim()) return void vscode.window.showInformationMessage('Head Lens: the document is empty.');
    const params: TttRunParams = { ...stripUndefined(configured()), ...stripUndefined(options), text };
    try {
      const result = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'Head Lens: test-time training', cancellable: true }, async (progress, token) => {
        progress.report({ message: this.engine.model ? 'scoring the base model…' : 'starting the engine and loading the model…' });
        await this.engine.ensureModel(token);
        progress.report({ message: 'scoring the base model…' });
        return this.engine.request('ttt/run', params, token, (c) =>
          progress.report({ increment: 100 / c.chunks, message: `chunk ${c.chunk + 1}/${c.chunks}: loss ${num(c.lossBefore)} → ${num(c.lossAfter)} (base ${num(c.lossBase)})` }),
        );
      });
      if (doc.version !== version) return result; // edited meanwhile: the offsets no longer fit
      this.runs.set(doc.uri.toString(), { version, result, nll: decodeArray(result.nll) as Float32Array, nllBase: decodeArray(result.nllBase) as Float32Array });
      this.timeline.show(doc.uri, path.basename(doc.fileName), result);
      await this.colourByDnll(doc, version, result);
      return result;
    } catch (e) {
      const msg = describeError(e);
      if (msg) void vscode.window.showErrorMessage(`Head Lens: test-time training failed: ${msg}`);
      return undefined;
    }
  }

  /** The document's analysis coloured by the run's ΔNLL. */
  private async colourByDnll(doc: vscode.TextDocument, version: number, r: TttRunResult): Promise<boolean> {
    return !!(await this.store.overlay(doc, version, { spec: { ...SIGNALS.tttDnll }, tokens: r.tokens, values: () => tokenDnll(r), title: COLOURS_TITLE }));
  }

  hover(doc: vscode.TextDocument, pos: vscode.Position): vscode.Hover | undefined {
    const run = this.runs.get(doc.uri.toString());
    if (!run || run.version !== doc.version) return undefined;
    const r = run.result, t = tokenAt(r.tokens, doc.offsetAt(pos));
    if (t < 0) return undefined;
    const tok = r.tokens[t];
    return new vscode.Hover(new vscode.MarkdownString(tttHoverMarkdown(r, t, run.nll, run.nllBase)), new vscode.Range(doc.positionAt(tok.start), doc.positionAt(tok.end)));
  }

  dispose(): void {
    this.subs.forEach((s) => s.dispose());
    this.runs.clear();
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The command, the hover and the timeline panel. */
export function register(engine: EngineClient, store: AnalysisStore, extensionUri: vscode.Uri): vscode.Disposable {
  const timeline = new TttTimelinePanel(extensionUri);
  const ttt = new TttController(engine, store, timeline);
  return vscode.Disposable.from(
    ttt,
    timeline,
    vscode.commands.registerCommand(Command.AnalyzeTtt, (uri?: vscode.Uri, options?: TttOptions) => ttt.analyze(uri instanceof vscode.Uri ? uri : undefined, options && typeof options === 'object' ? options : {})),
    vscode.languages.registerHoverProvider({ scheme: '*' }, { provideHover: (doc, pos) => ttt.hover(doc, pos) }),
  );
}
