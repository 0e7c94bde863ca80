/**
 * Ablate Heads…: every head (or layer) of the loaded model switched off in turn under one mode —
 * zero, mean, or the mechanism's adaptive-off — on the selection (else the document), streamed cell
 * by cell (`ablate/sweep`) into an L × H table of mean ΔNLL with bootstrap 95 % intervals in the
 * results panel, with a cancellable progress notification. A click on a cell (or the
 * `headlens.showAblation` command) colours the editor with that ablation's per-token ΔNLL
 * (ablated − intact; the dNll signal, diverging) through the document's analysis overlay.
 */
import * as vscode from 'vscode';
import type { AblationMode, ResultsView, SweepResult, TokenInfo } from '../engine/protocol';
import { decodeArray } from '../engine/codec';
import { SIGNALS } from '../engine/models/signals';
import { commandText, type AnalysisStore } from './analysis';
import { Command } from './commands';
import { describeError, type EngineClient } from './engineClient';
import type { ResultsPanel } from './resultsPanel';

export interface AblateArgs {
  mode?: AblationMode;
  unit?: 'head' | 'layer';
  uri?: vscode.Uri | string;
}

type SweepView = Extract<ResultsView, { kind: 'sweep' }>;

/** The sweep shown in the panel: its cells' per-token ΔNLL, kept to colour the editor on a click. */
interface SweepSession {
  uri: string;
  version: number;
  tokens: TokenInfo[];
  dnll: Map<string, Float32Array>;
  view: SweepView;
}

const MODE_WORDS: Record<AblationMode, string> = { zero: 'zeroed', mean: 'mean-ablated', 'adaptive-off': 'adaptive path off' };
const cellKey = (layer: number, head: number) => `${layer}.${head}`;
const cellName = (layer: number, head: number) => (head < 0 ? `L${layer}` : `L${layer}.H${head}`);

async function pickMode(): Promise<AblationMode | undefined> {
  const items: (vscode.QuickPickItem & { mode: AblationMode })[] = [
    { label: 'zero', description: 'the head’s attention output set to 0 before the output projection', mode: 'zero' },
    { label: 'mean', description: 'the head’s output replaced by its mean over the window', mode: 'mean' },
    { label: 'adaptive-off', description: 'the mechanism’s adaptive path switched off (a-gpt ΔW → 0, gate → 1, …)', mode: 'adaptive-off' },
  ];
  return (await vscode.window.showQuickPick(items, { title: 'Head Lens: ablate each head by…' }))?.mode;
}

async function pickUnit(): Promise<'head' | 'layer' | undefined> {
  const items: (vscode.QuickPickItem & { unit: 'head' | 'layer' })[] = [
    { label: 'Each head', description: 'L × H ablations', unit: 'head' },
    { label: 'Each layer', description: 'all heads of a layer at once', unit: 'layer' },
  ];
  return (await vscode.window.showQuickPick(items, { title: 'Head Lens: ablate one unit at a time' }))?.unit;
}

export class Ablations implements vscode.Disposable {
  private session: SweepSession | null = null;
  private readonly subs: vscode.Disposable[] = [];

  constructor(private readonly engine: EngineClient, private readonly store: AnalysisStore, private readonly panel: ResultsPanel) {
    this.subs.push(
      vscode.commands.registerCommand(Command.AblateHeads, (args?: AblateArgs | vscode.Uri) => this.sweep(args instanceof vscode.Uri ? { uri: args } : args ?? {})),
      vscode.commands.registerCommand(Command.ShowAblation, (cell?: { layer: number; head: number }) => (cell ? this.showCell(cell.layer, cell.head) : false)),
    );
  }

  /** Run the sweep; the command's result (tests) is the engine's SweepResult. */
  async sweep(args: AblateArgs): Promise<SweepResult | undefined> {
    const target = await commandText('ablate heads on', args.uri);
    if (!target) return undefined;
    const { doc, text, offset, source } = target;
    const mode = args.mode ?? (await pickMode());
    if (!mode) return undefined;
    const unit = args.unit ?? (await pickUnit());
    if (!unit) return undefined;
    let session: SweepSession | null = null;
    try {
      const result = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Head Lens: ablating each ${unit} (${mode})`, cancellable: true }, async (progress, token) => {
        if (!this.engine.model) progress.report({ message: 'starting the engine and loading the model…' });
        const model = await this.engine.ensureModel(token);
        const view: SweepView = { kind: 'sweep', source, mode, unit, layers: model.layers, heads: unit === 'layer' ? 1 : model.heads, cells: [], state: 'running', selected: null };
        session = this.session = { uri: doc.uri.toString(), version: doc.version, tokens: [], dnll: new Map(), view };
        this.panel.show(view, (l, h) => void this.showCell(l, h));
        const total = view.layers * view.heads;
        return this.engine.request('ablate/sweep', { text, mode, unit }, token, (cell) => {
          const { dnll, ...summary } = cell;
          session!.dnll.set(cellKey(cell.layer, cell.head), decodeArray(dnll) as Float32Array);
          view.cells = [...view.cells, summary];
          progress.report({ increment: 100 / total, message: `${cellName(cell.layer, cell.head)}: ΔNLL ${cell.mean >= 0 ? '+' : ''}${cell.mean.toFixed(4)}` });
          if (this.session === session) this.panel.update(view);
        });
      });
      const s = session as SweepSession | null;
      if (s) {
        s.tokens = result.tokens.map((t) => ({ ...t, start: t.start + offset, end: t.end + offset }));
        s.view = { ...s.view, cells: result.cells, state: 'done' };
        if (this.session === s) this.panel.update(s.view);
      }
      return result;
    } catch (e) {
      const msg = describeError(e);
      const s = session as SweepSession | null;
      if (s && this.session === s) {
        s.view = { ...s.view, state: msg ? 'failed' : 'cancelled', error: msg };
        this.panel.update(s.view);
      } else if (msg) this.panel.show({ kind: 'sweep', source, mode, unit, layers: 0, heads: 0, cells: [], state: 'failed', error: msg });
      if (msg) void vscode.window.showErrorMessage(`Head Lens: Ablate Heads failed: ${msg}`);
      return undefined;
    }
  }

  /**
   * Colour the sweep's document by one cell's per-token ΔNLL (its analysis is made when there is
   * none). False when the sweep has no such cell or the document changed since.
   */
  async showCell(layer: number, head: number): Promise<boolean> {
    const s = this.session;
    const values = s?.dnll.get(cellKey(layer, head));
    if (!s || !values || !s.tokens.length) return false;
    const doc = vscode.workspace.textDocuments.find((d) => d.uri.toString() === s.uri);
    if (!doc || doc.version !== s.version) {
      void vscode.window.showWarningMessage('Head Lens: the document changed since the sweep: run Ablate Heads… again.');
      return false;
    }
    if (!vscode.window.visibleTextEditors.some((e) => e.document === doc)) await vscode.window.showTextDocument(doc, { viewColumn: vscode.ViewColumn.One, preserveFocus: false });
    const a = await this.store.overlay(doc, s.version, {
      spec: { ...SIGNALS.dNll, label: 'ΔNLL (ablated − intact)', description: 'NLL with the ablation minus the intact NLL of the same token: positive where the unit helped', mechanism: 'ablation' },
      tokens: s.tokens,
      values: () => values,
      title: `ΔNLL with ${cellName(layer, head)} ${MODE_WORDS[s.view.mode]} (nats; positive: the ${s.view.unit} helped)`,
    });
    if (!a) return false;
    s.view = { ...s.view, selected: { layer, head } };
    this.panel.update(s.view);
    return true;
  }

  dispose(): void {
    this.subs.forEach((d) => d.dispose());
  }
}

export function register(engine: EngineClient, store: AnalysisStore, panel: ResultsPanel): Ablations {
  return new Ablations(engine, store, panel);
}
