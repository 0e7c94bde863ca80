/**
 * "Switch this head's adaptive path off" from the head-code hover: `ablate/run` with
 * `L.H:adaptive-off` on the document (each mechanism says what off means: a-gpt's dynamic LoRA
 * ΔW → 0, a GatedAttn gate → 1, a value-embedding gate → 0, a Temporal LoRA router → uniform), and
 * the editor recoloured by the per-token ΔNLL (ablated − intact, the `dNll` signal on a diverging
 * scale) through the document's analysis overlay; the legend and a status message say what is
 * shown. The same link again, or Clear Annotations, restores the colours. Offered only where the
 * model declares an adaptive path (ModelInfo.adaptive; the engine refuses adaptive-off elsewhere).
 * The head: the focused one (explorer, Next/Previous Head, settings), else the head whose adaptive
 * signal is largest at the hovered token; from the palette, a pick.
 */
import * as vscode from 'vscode';
import type { SignalSpec, TokenInfo } from '../engine/protocol';
import { decodeArray } from '../engine/codec';
import { SIGNALS } from '../engine/models/signals';
import { alignByStart, type AnalysisStore, type DocumentAnalysis } from './analysis';
import { Command } from './commands';
import type { TokenDecorations } from './decorations';
import { describeError, type EngineClient } from './engineClient';

/** The overlay's signal: the catalogue's ΔNLL, named for what it compares here. */
export const ADAPTIVE_OFF_DNLL: SignalSpec = {
  ...SIGNALS.dNll,
  label: 'ΔNLL, adaptive path off − intact',
  description: 'NLL of the next token with the head’s adaptive path switched off minus with it on: positive where the adaptive path helped',
  mechanism: 'intervention',
};

export interface AdaptiveOffArgs {
  uri: string;
  layer?: number;
  head?: number;
}

/** What is shown for a document (and what to go back to). */
interface Shown {
  layer: number;
  head: number;
  analysis: DocumentAnalysis;
  override: NonNullable<DocumentAnalysis['metricOverride']>;
  previous: DocumentAnalysis['metricOverride'];
  /** Per token of the analysis: ablated − intact NLL of the next token. */
  dnll: Float32Array;
}

export interface AdaptiveOffResult {
  shown: boolean;
  layer: number;
  head: number;
  /** ablate/run's own answer (tests compare it with the overlay). */
  tokens?: TokenInfo[];
  nll?: Float32Array;
  base?: Float32Array;
}

const fmt = (v: number) => (Number.isFinite(v) ? (v >= 0 ? '+' : '') + v.toFixed(4) : '—');

export class AdaptiveOff implements vscode.Disposable {
  private readonly shown = new Map<string, Shown>();
  private readonly subs: vscode.Disposable[] = [];

  constructor(private readonly engine: EngineClient, private readonly store: AnalysisStore, private readonly decorations: TokenDecorations) {
    this.subs.push(
      // Clear Annotations, an edit or a new analysis ends the overlay
      store.onDidChange((uri) => {
        const s = this.shown.get(uri);
        const a = this.store.get(uri);
        if (s && (!a || a !== s.analysis || a.metricOverride !== s.override)) this.shown.delete(uri);
      }),
    );
  }

  /** The overlay a document shows now (tests). */
  shownFor(uri: string): { layer: number; head: number; dnll: Float32Array } | undefined {
    const s = this.shown.get(uri);
    return s && this.store.get(uri) === s.analysis && s.analysis.metricOverride === s.override ? { layer: s.layer, head: s.head, dnll: s.dnll } : undefined;
  }

  /** The hover's link line ('' where the model has no adaptive path). */
  hoverMarkdown(a: DocumentAnalysis, t: number): string {
    if (!a.model.adaptive) return '';
    const active = this.shownFor(a.uri);
    const target = active ?? this.headFor(a, t);
    const args = encodeURIComponent(JSON.stringify([{ uri: a.uri, ...(target ? { layer: target.layer, head: target.head } : {}) } satisfies AdaptiveOffArgs]));
    const name = target ? `L${target.layer}.H${target.head}` : 'a head';
    const text = active ? `$(debug-restart) Switch ${name}’s adaptive path back on` : `$(debug-disconnect) Switch ${name}’s adaptive path off`;
    const tip = active ? 'Restore the colours of the analysis' : `Run the document with ${name}’s adaptive path off and colour each token by the change in NLL`;
    return `[${text}](command:${Command.AdaptiveOff}?${args} "${tip}")`;
  }

  readonly hoverCommands = [Command.AdaptiveOff];

  /** The focused head, else the head whose first adaptive per-head signal is largest at token t. */
  private headFor(a: DocumentAnalysis, t: number): { layer: number; head: number } | null {
    const r = a.record, f = this.decorations.focus;
    if (f.layer >= 0 && f.layer < r.L && f.head >= 0 && f.head < r.H) return { layer: f.layer, head: f.head };
    const spec = r.headTokenSignals()[0];
    if (!spec) return null;
    let best: { layer: number; head: number; v: number } | null = null;
    for (let l = 0; l < r.L; l++) {
      for (let h = 0; h < r.H; h++) {
        const v = r.signalAt(spec.name, t, l, h);
        if (Number.isFinite(v) && (!best || v > best.v)) best = { layer: l, head: h, v };
      }
    }
    return best;
  }

  /** The link's command: switch the head's adaptive path off, or back on when it is what is shown. */
  async toggle(args?: AdaptiveOffArgs): Promise<AdaptiveOffResult | undefined> {
    const uri = args?.uri ?? vscode.window.activeTextEditor?.document.uri.toString();
    const a = uri ? this.store.get(uri) : undefined;
    if (!uri || !a) return void vscode.window.showInformationMessage('Head Lens: analyse the document first (Analyze Attention), then switch a head’s adaptive path off from its hover.');
    if (!a.model.adaptive) return void vscode.window.showInformationMessage(`Head Lens: a ${a.model.family} model has no adaptive path to switch off.`);
    const active = this.shownFor(uri);
    if (active && (args?.layer === undefined || (args.layer === active.layer && args.head === active.head))) {
      this.restore(uri);
      return { shown: false, layer: active.layer, head: active.head };
    }
    const target = args?.layer !== undefined && args.head !== undefined ? { layer: args.layer, head: args.head } : await pickHead(a);
    if (!target) return undefined;
    return this.show(uri, a, target.layer, target.head);
  }

  private restore(uri: string): void {
    const s = this.shown.get(uri);
    if (!s) return;
    this.shown.delete(uri);
    s.analysis.metricOverride = s.previous;
    this.store.put(s.analysis);
    void vscode.window.setStatusBarMessage(`Head Lens: L${s.layer}.H${s.head}’s adaptive path is on again; the colours are the analysis’ own`, 5000);
  }

  private async show(uri: string, a: DocumentAnalysis, layer: number, head: number): Promise<AdaptiveOffResult | undefined> {
    const doc = vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri);
    if (!doc) return undefined;
    const version = doc.version;
    try {
      const r = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Head Lens: L${layer}.H${head} with its adaptive path off`, cancellable: true }, (_p, token) =>
        this.engine.request('ablate/run', { text: doc.getText(), ablations: [{ layer, head, mode: 'adaptive-off' }] }, token),
      );
      const current = this.store.get(uri);
      if (current !== a || doc.version !== version || a.version !== version) return undefined; // edited or re-analysed meanwhile
      const nll = decodeArray(r.nll) as Float32Array, base = decodeArray(r.base) as Float32Array;
      const dnll = alignByStart(r.tokens, Float32Array.from(nll, (v, i) => v - base[i]), a.record.tokens);
      let sum = 0, n = 0;
      for (const v of dnll) if (Number.isFinite(v)) (sum += v), n++;
      const previous = this.shown.get(uri)?.previous ?? a.metricOverride;
      a.record.setTokenSignal(ADAPTIVE_OFF_DNLL, dnll);
      const override = { metric: ADAPTIVE_OFF_DNLL.name, title: `ΔNLL of the next token with L${layer}.H${head}’s adaptive path off − intact (nats, mean ${fmt(n ? sum / n : NaN)}; red: the path helped; the hover link again restores)` };
      a.metricOverride = override;
      this.shown.set(uri, { layer, head, analysis: a, override, previous, dnll });
      this.store.put(a);
      void vscode.window.setStatusBarMessage(`Head Lens: colours = ΔNLL with L${layer}.H${head}’s adaptive path off (mean ${fmt(n ? sum / n : NaN)} nats)`, 8000);
      return { shown: true, layer, head, tokens: r.tokens, nll, base };
    } catch (e) {
      const msg = describeError(e);
      if (msg) void vscode.window.showErrorMessage(`Head Lens: switching L${layer}.H${head}’s adaptive path off failed: ${msg}`);
      return undefined;
    }
  }

  /** Disposed with the controller. */
  track(d: vscode.Disposable): void {
    this.subs.push(d);
  }

  dispose(): void {
    this.subs.forEach((d) => d.dispose());
  }
}

/** From the palette: which head (every layer.head of the model). */
async function pickHead(a: DocumentAnalysis): Promise<{ layer: number; head: number } | undefined> {
  const items = Array.from({ length: a.record.L * a.record.H }, (_, i) => ({ label: `L${Math.floor(i / a.record.H)}.H${i % a.record.H}`, layer: Math.floor(i / a.record.H), head: i % a.record.H }));
  return vscode.window.showQuickPick(items, { title: 'Head Lens: switch which head’s adaptive path off?' });
}

export function register(engine: EngineClient, store: AnalysisStore, decorations: TokenDecorations): AdaptiveOff {
  const off = new AdaptiveOff(engine, store, decorations);
  off.track(vscode.commands.registerCommand(Command.AdaptiveOff, (args?: AdaptiveOffArgs) => off.toggle(args)));
  return off;
}
