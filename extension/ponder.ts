/**
 * PonderTTT in the editor. Analyze with PonderTTT… runs the loaded model as the frozen base under a
 * TTT layer (the file asked for once and remembered in `headlens.ponder.tttPath`), with cancellable
 * progress per chunk; the document then shows each chunk's UPDATE or SKIP as whole-line background
 * bands (a line takes the decision of the chunk that holds most of it), the hover of a token says its
 * chunk's decision, signal and τ, and the "Head Lens PonderTTT" output gives the perplexity gated vs
 * always-update vs never-update. Train PonderTTT Layer… trains a layer on workspace text with the
 * base frozen; its curves stream into the sidebar monitor.
 */
import * as vscode from 'vscode';
import * as path from 'node:path';
import type { PonderChunkInfo, PonderRunResult, PonderTrainParams, TrainResult } from '../engine/protocol';
import { decodeArray } from '../engine/codec';
import { Command } from './commands';
import { describeError, type EngineClient } from './engineClient';
import { MonitorView } from './monitorView';

const SETTING = 'ponder.tttPath';

/** A document's last PonderTTT run, for its bands and hovers while the text is unchanged. */
interface DocumentPonder {
  version: number;
  result: PonderRunResult;
  nll: { gated: Float32Array; always: Float32Array; never: Float32Array };
}

/** Per line, the decision of the chunks that cover most of its characters: 1 UPDATE, 0 SKIP, −1 none. */
export function lineDecisions(doc: vscode.TextDocument, r: PonderRunResult): Int8Array {
  const share = new Float64Array(doc.lineCount * 2); // [update, skip] characters per line
  for (const c of r.chunks) {
    const from = r.tokens[c.start]?.start ?? 0, to = r.tokens[c.end - 1]?.end ?? from;
    const k = c.decision === 'UPDATE' ? 0 : 1;
    for (let line = doc.positionAt(from).line; line <= doc.positionAt(to).line && line < doc.lineCount; line++) {
      const range = doc.lineAt(line).rangeIncludingLineBreak;
      const a = Math.max(from, doc.offsetAt(range.start)), b = Math.min(to, doc.offsetAt(range.end));
      share[line * 2 + k] += Math.max(b - a, 0) + 1e-9; // an empty line inside a chunk still belongs to it
    }
  }
  const out = new Int8Array(doc.lineCount).fill(-1);
  for (let l = 0; l < doc.lineCount; l++) if (share[2 * l] + share[2 * l + 1] > 0) out[l] = share[2 * l] >= share[2 * l + 1] ? 1 : 0;
  return out;
}

function fmt(v: number | null | undefined, digits = 4): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '—' : v.toFixed(digits);
}

/** The chunk holding token t (chunks are sorted and disjoint). */
function chunkOf(r: PonderRunResult, t: number): PonderChunkInfo | undefined {
  let lo = 0, hi = r.chunks.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1, c = r.chunks[mid];
    if (t < c.start) hi = mid - 1;
    else if (t >= c.end) lo = mid + 1;
    else return c;
  }
  return undefined;
}

/** The token whose [start, end) holds the offset. */
function tokenAt(r: PonderRunResult, offset: number): number {
  let lo = 0, hi = r.tokens.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1, t = r.tokens[mid];
    if (offset < t.start) hi = mid - 1;
    else if (offset >= t.end) lo = mid + 1;
    else return mid;
  }
  return -1;
}

export class PonderController implements vscode.Disposable {
  private readonly runs = new Map<string, DocumentPonder>();
  private readonly updateBand = vscode.window.createTextEditorDecorationType({
    isWholeLine: true,
    backgroundColor: new vscode.ThemeColor('headlens.ponderUpdateBackground'),
    overviewRulerColor: new vscode.ThemeColor('headlens.ponderUpdateBackground'),
    overviewRulerLane: vscode.OverviewRulerLane.Left,
  });
  private readonly skipBand = vscode.window.createTextEditorDecorationType({
    isWholeLine: true,
    backgroundColor: new vscode.ThemeColor('headlens.ponderSkipBackground'),
    overviewRulerColor: new vscode.ThemeColor('headlens.ponderSkipBackground'),
    overviewRulerLane: vscode.OverviewRulerLane.Left,
  });
  private readonly output = vscode.window.createOutputChannel('Head Lens PonderTTT');
  private readonly subs: vscode.Disposable[] = [];
  private training: vscode.CancellationTokenSource | null = null;

  constructor(private readonly engine: EngineClient, private readonly monitor: MonitorView) {
    this.subs.push(
      vscode.window.onDidChangeVisibleTextEditors((eds) => eds.forEach((e) => this.draw(e))),
      vscode.workspace.onDidChangeTextDocument((e) => {
        // the bands describe the text they were computed on: an edit clears them
        if (e.contentChanges.length && this.runs.delete(e.document.uri.toString())) this.redraw(e.document);
      }),
      vscode.workspace.onDidCloseTextDocument((d) => this.runs.delete(d.uri.toString())),
    );
  }

  /** Bands in every editor of the document; the number of lines banded (tests read it). */
  bandCount(uri: vscode.Uri): number {
    const run = this.runs.get(uri.toString());
    const doc = vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri.toString());
    return run && doc ? lineDecisions(doc, run.result).filter((d) => d >= 0).length : 0;
  }

  result(uri: vscode.Uri): PonderRunResult | undefined {
    return this.runs.get(uri.toString())?.result;
  }

  private redraw(doc: vscode.TextDocument): void {
    for (const e of vscode.window.visibleTextEditors) if (e.document === doc) this.draw(e);
  }

  private draw(editor: vscode.TextEditor): void {
    const run = this.runs.get(editor.document.uri.toString());
    const update: vscode.Range[] = [], skip: vscode.Range[] = [];
    if (run && run.version === editor.document.version) {
      lineDecisions(editor.document, run.result).forEach((d, line) => {
        if (d >= 0) (d === 1 ? update : skip).push(editor.document.lineAt(line).range);
      });
    }
    editor.setDecorations(this.updateBand, update);
    editor.setDecorations(this.skipBand, skip);
  }

  /** The TTT file: the remembered one, or one the user picks (then remembered). */
  private async tttFile(): Promise<string | undefined> {
    const config = vscode.workspace.getConfiguration('headlens');
    const known = (config.get<string>(SETTING) ?? '').trim();
    if (known) {
      const pick = await vscode.window.showQuickPick([{ label: `$(file) ${path.basename(known)}`, description: known, file: known }, { label: '$(folder-opened) Choose a TTT layer file…', file: '' }], { title: 'Head Lens: PonderTTT layer' });
      if (!pick) return undefined;
      if (pick.file) return pick.file;
    }
    const chosen = await vscode.window.showOpenDialog({ title: 'Head Lens: the PonderTTT TTT layer (.safetensors)', canSelectMany: false, filters: { 'TTT layer': ['safetensors'] }, defaultUri: known ? vscode.Uri.file(path.dirname(known)) : undefined });
    if (!chosen?.length) return undefined;
    const file = chosen[0].fsPath;
    const target = vscode.workspace.workspaceFolders && vscode.workspace.isTrusted ? vscode.ConfigurationTarget.Workspace : vscode.ConfigurationTarget.Global;
    await config.update(SETTING, file, target);
    return file;
  }

  /** Analyze with PonderTTT… on the active editor (or `uri`, `ttt` given: tests and other commands). */
  async analyze(uri?: vscode.Uri, ttt?: string): Promise<PonderRunResult | undefined> {
    const doc = uri ? await vscode.workspace.openTextDocument(uri) : vscode.window.activeTextEditor?.document;
    if (!doc) return void vscode.window.showInformationMessage('Head Lens: open a document to analyse with PonderTTT.');
    const file = ttt ?? (await this.tttFile());
    if (!file || !(await this.engine.confirmUntrusted(file))) return undefined;
    const version = doc.version, text = doc.getText();
    try {
      const result = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'Head Lens: PonderTTT', cancellable: true }, async (progress, token) => {
        await this.engine.ensureModel(token);
        return this.engine.request('ponder/run', { text, ttt: file }, token, (c) => progress.report({ message: `chunk ${c.index + 1}: ${c.decision}, signal ${fmt(c.signal, 3)}` }));
      });
      const run: DocumentPonder = { version, result, nll: { gated: decodeArray(result.nll.gated) as Float32Array, always: decodeArray(result.nll.always) as Float32Array, never: decodeArray(result.nll.never) as Float32Array } };
      this.runs.set(doc.uri.toString(), run);
      this.redraw(doc);
      this.summarise(doc, file, result);
      return result;
    } catch (e) {
      const msg = describeError(e);
      if (msg) void vscode.window.showErrorMessage(`Head Lens: PonderTTT failed: ${msg}`);
      return undefined;
    }
  }

  private summarise(doc: vscode.TextDocument, file: string, r: PonderRunResult): void {
    const pct = (x: number) => `${(100 * x).toFixed(0)} %`;
    const o = this.output;
    o.appendLine(`${new Date().toLocaleTimeString()}  ${vscode.workspace.asRelativePath(doc.uri)} — TTT layer ${file} on ${this.engine.model?.path ?? 'the loaded model'} (${r.backend})`);
    o.appendLine(`  ${r.chunks.length} chunks of ${r.chunk} tokens (mini-batch ${r.miniBatch}), each run on its own; UPDATE ${pct(r.updateRate)} (target ${pct(r.targetRate)})${r.unscored ? `; ${r.unscored} token(s) at the end unscored` : ''}`);
    o.appendLine(`  perplexity  gated ${fmt(r.ppl.gated, 3)}   always-update ${fmt(r.ppl.always, 3)}   never-update ${fmt(r.ppl.never, 3)}`);
    o.appendLine(`  mean NLL    gated ${fmt(r.loss.gated)}   always-update ${fmt(r.loss.always)}   never-update ${fmt(r.loss.never)} (nats, mean over chunks)`);
    if (r.note) o.appendLine(`  note: ${r.note}`);
    o.show(true);
  }

  hover(doc: vscode.TextDocument, pos: vscode.Position): vscode.Hover | undefined {
    const run = this.runs.get(doc.uri.toString());
    if (!run || run.version !== doc.version) return undefined;
    const r = run.result, t = tokenAt(r, doc.offsetAt(pos));
    const c = t >= 0 ? chunkOf(r, t) : undefined;
    if (!c) return undefined;
    const md = new vscode.MarkdownString();
    const why = c.tau === null ? 'calibrating: the first chunks always update while τ is set' : `signal ${c.signal > c.tau ? '>' : '≤'} τ`;
    md.appendMarkdown(`**PonderTTT** · chunk #${c.index} (tokens ${c.start}–${c.end - 1}) · **${c.decision}** (${why})\n\n`);
    md.appendMarkdown(`signal ${fmt(c.signal)} · τ ${fmt(c.tau)} · τ after ${fmt(c.tauAfter)} · update-rate EMA ${fmt(c.emaRate, 3)}\n\n`);
    md.appendMarkdown(`chunk loss: update ${fmt(c.lossUpdate, 3)} · skip ${fmt(c.lossSkip, 3)} nats · TTT loss after the update ${fmt(c.finalLoss)}\n\n`);
    md.appendMarkdown(`NLL of the next token: gated ${fmt(run.nll.gated[t], 3)} · always-update ${fmt(run.nll.always[t], 3)} · never-update ${fmt(run.nll.never[t], 3)}`);
    const tok = r.tokens[t];
    return new vscode.Hover(md, new vscode.Range(doc.positionAt(tok.start), doc.positionAt(tok.end)));
  }

  /**
   * Train PonderTTT Layer…: workspace text, steps; the base is the loaded model; curves in the monitor.
   * `given` (a command argument) skips the pickers: the request's fields but the base.
   */
  async train(given?: Omit<PonderTrainParams, 'base'>): Promise<TrainResult | undefined> {
    if (this.training) return void vscode.window.showInformationMessage('Head Lens: a PonderTTT training run is already active (cancel it from its notification).');
    const params = given ?? (await this.pickTraining());
    if (!params) return undefined;
    const cts = (this.training = new vscode.CancellationTokenSource());
    void vscode.commands.executeCommand(`${MonitorView.viewId}.focus`);
    try {
      const model = await this.engine.ensureModel(cts.token);
      const result = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'Head Lens: training the PonderTTT layer', cancellable: true }, (progress, token) => {
        token.onCancellationRequested(() => cts.cancel());
        return this.engine.request('ponder/train', { ...params, base: model.path }, cts.token, (e) => {
          if (e.kind === 'step') progress.report({ message: `step ${e.step + 1}, loss ${e.loss.toFixed(3)}` });
          this.monitor.add(e);
        });
      });
      if (result.checkpoint) {
        const file = result.checkpoint;
        // not awaited: the command resolves with the result while the offer waits for the user
        void vscode.window.showInformationMessage(`Head Lens: the TTT layer ${result.stoppedEarly ? 'stopped' : 'trained'} after ${result.steps} steps: ${file}`, 'Use for PonderTTT').then((use) => {
          if (use) void vscode.workspace.getConfiguration('headlens').update(SETTING, file, vscode.workspace.workspaceFolders && vscode.workspace.isTrusted ? vscode.ConfigurationTarget.Workspace : vscode.ConfigurationTarget.Global);
        });
      }
      return result;
    } catch (e) {
      const msg = describeError(e);
      if (msg) void vscode.window.showErrorMessage(`Head Lens: PonderTTT training failed: ${msg}`);
      return undefined;
    } finally {
      cts.dispose();
      this.training = null;
    }
  }

  /** The pickers of Train PonderTTT Layer…; undefined when the user backs out. */
  private async pickTraining(): Promise<Omit<PonderTrainParams, 'base'> | undefined> {
    const roots = vscode.workspace.workspaceFolders ?? [];
    const data = await vscode.window.showOpenDialog({ title: 'Head Lens: text to train the TTT layer on', canSelectMany: true, canSelectFolders: true, canSelectFiles: true, defaultUri: roots[0]?.uri });
    if (!data?.length) return undefined;
    const stepsText = await vscode.window.showInputBox({ title: 'Training steps', value: '200', validateInput: (v) => (/^[1-9]\d*$/.test(v.trim()) ? undefined : 'a whole number of steps, at least 1') });
    if (!stepsText) return undefined;
    const known = (vscode.workspace.getConfiguration('headlens').get<string>(SETTING) ?? '').trim();
    const from = await vscode.window.showQuickPick([{ label: 'A new TTT layer', ttt: '' }, ...(known ? [{ label: `Continue from ${path.basename(known)}`, description: known, ttt: known }] : [])], { title: 'Start from' });
    if (!from) return undefined;
    return { data: data.map((u) => u.fsPath), steps: Number(stepsText.trim()), ttt: from.ttt || undefined };
  }

  dispose(): void {
    this.training?.cancel();
    this.updateBand.dispose();
    this.skipBand.dispose();
    this.output.dispose();
    this.subs.forEach((s) => s.dispose());
  }
}

/** The commands and the hover; the controller is returned inside the disposable for the tests' API. */
export function register(engine: EngineClient, monitor: MonitorView): vscode.Disposable & { ponder: PonderController } {
  const ponder = new PonderController(engine, monitor);
  const d = vscode.Disposable.from(
    ponder,
    vscode.commands.registerCommand(Command.AnalyzePonder, (uri?: vscode.Uri, ttt?: string) => ponder.analyze(uri instanceof vscode.Uri ? uri : undefined, typeof ttt === 'string' ? ttt : undefined)),
    vscode.commands.registerCommand(Command.TrainPonder, (given?: Omit<PonderTrainParams, 'base'>) => ponder.train(given && typeof given === 'object' && Array.isArray(given.data) ? given : undefined)),
    vscode.languages.registerHoverProvider({ scheme: '*' }, { provideHover: (doc, pos) => ponder.hover(doc, pos) }),
  );
  return Object.assign(d, { ponder });
}
