/**
 * Compare Models…: the loaded model is A; B is a checkpoint file or a run's folder picked in a
 * dialog (or passed by the caller). Both score the selection (else the document) with the same
 * sliding windows (`compare`, with each model's heads), with a cancellable progress notification.
 * The editor is coloured by dNll = NLL_A − NLL_B per token (diverging: negative where A is better)
 * through the document's analysis overlay (AnalysisStore.overlay); a
 * second hover part gives both models' NLL and predictions for the token and both models' head
 * codes; the summary (mean ΔNLL overall, by token class, repeated vs first, bootstrap 95 %
 * intervals, the layers × heads of A and B side by side) opens in the results panel.
 */
import * as vscode from 'vscode';
import * as path from 'node:path';
import type { CompareHeads, CompareResult, CompareToken } from '../engine/protocol';
import type { AnalysisRecord } from '../engine/analysis/record';
import { decodeArray } from '../engine/codec';
import { SIGNALS } from '../engine/models/signals';
import { commandText, type AnalysisStore } from './analysis';
import { Command } from './commands';
import { describeError, type EngineClient } from './engineClient';
import type { ResultsPanel } from './resultsPanel';
import { tokenCode } from './hover';

/** What the command takes from code (tests, other commands); every field has a dialog otherwise. */
export interface CompareArgs {
  /** Model B: a checkpoint file or a run folder. */
  modelB?: string;
  /** Model B's config (a JSON file or the object), when its file does not carry one. */
  configB?: string | Record<string, unknown>;
  /** The document (default: the active editor's). */
  uri?: vscode.Uri | string;
}

/** One model's heads on the compared tokens, decoded once for the hover. */
interface HeadsView {
  L: number;
  H: number;
  N: number;
  K: number;
  attnMax: Float32Array;
  entropy: Float32Array;
  topIds: Int32Array;
  topProbs: Float32Array;
  vocabText: Record<number, string>;
}

/** A compare laid over a document's analysis: the hover finds the compared token by its start offset. */
export interface CompareOverlay {
  result: CompareResult;
  labelA: string;
  labelB: string;
  byStart: Map<number, number>;
  heads: { a: HeadsView; b: HeadsView } | null;
  /** The colours it set: once anything else recolours the document (an ablation), its hover part goes. */
  override?: { metric: string; title: string };
}

/** Overlays by the record they colour: a new analysis of the document drops its overlay with it. */
const overlays = new WeakMap<AnalysisRecord, CompareOverlay>();

const num = (v: number | null | undefined, d = 3) => (v === null || v === undefined || !Number.isFinite(v) ? '—' : v.toFixed(d));
const signed = (v: number | null | undefined, d = 3) => (v === null || v === undefined || !Number.isFinite(v) ? '—' : `${v > 0 ? '+' : ''}${v.toFixed(d)}`);


function headsView(h: CompareHeads): HeadsView {
  return {
    L: h.layers,
    H: h.heads,
    N: h.attnMax.shape[2],
    K: h.topIds.shape[1],
    attnMax: decodeArray(h.attnMax) as Float32Array,
    entropy: decodeArray(h.entropy) as Float32Array,
    topIds: decodeArray(h.topIds) as Int32Array,
    topProbs: decodeArray(h.topProbs) as Float32Array,
    vocabText: h.vocabText,
  };
}

/** What a model expected at compared token i: its top predictions at position i − 1. */
function expected(v: HeadsView, i: number): string {
  if (i < 1) return '—';
  const p = i - 1;
  return Array.from({ length: v.K }, (_, k) => `${tokenCode(v.vocabText[v.topIds[p * v.K + k]] ?? String(v.topIds[p * v.K + k]))} ${(100 * v.topProbs[p * v.K + k]).toFixed(1)} %`).join(' · ');
}

/** A model's head codes at compared token i: a layer × head table of attention max / entropy. */
function headTable(v: HeadsView, i: number, label: string): string {
  const header = `| ${label} | ${Array.from({ length: v.H }, (_, h) => `H${h}`).join(' | ')} |\n|---|${'---:|'.repeat(v.H)}\n`;
  const rows = Array.from({ length: v.L }, (_, l) => `| L${l} | ${Array.from({ length: v.H }, (_, h) => {
    const at = (l * v.H + h) * v.N + i;
    return `${num(v.attnMax[at], 2)}\u00a0/\u00a0${num(v.entropy[at], 2)}`;
  }).join(' | ')} |`);
  return header + rows.join('\n') + '\n\n';
}

/** The compare's hover part for compared token i. */
export function compareHoverMarkdown(o: CompareOverlay, i: number): vscode.MarkdownString {
  const t: CompareToken = o.result.tokens[i];
  const md = new vscode.MarkdownString(undefined, true);
  const where = t.dnll === null ? 'not scored' : t.dnll < 0 ? 'A is better' : t.dnll > 0 ? 'B is better' : 'equal';
  md.appendMarkdown(`**Compare** · ${tokenCode(t.text)} · ΔNLL (A − B) **${signed(t.dnll)}** (${where}) · NLL A ${num(t.nll_a)} · NLL B ${num(t.nll_b)} · ${t.class}, ${t.repeated ? 'repeated in its context' : 'first occurrence'} · ${t.context} tokens of context\n\n`);
  md.appendMarkdown(`A = ${tokenCode(o.labelA)}, B = ${tokenCode(o.labelB)}\n\n`);
  if (o.heads) {
    md.appendMarkdown(`A expected here: ${expected(o.heads.a, i)}\n\nB expected here: ${expected(o.heads.b, i)}\n\n`);
    md.appendMarkdown('Head codes at this token — attention max / entropy:\n\n');
    md.appendMarkdown(headTable(o.heads.a, i, 'A'));
    md.appendMarkdown(headTable(o.heads.b, i, 'B'));
  }
  return md;
}

/** The compare's tokens moved to document offsets (the text was the selection from `offset`). */
function shiftTokens(r: CompareResult, offset: number): void {
  if (!offset) return;
  for (const t of r.tokens) {
    t.start += offset;
    t.end += offset;
  }
}

/** Colour the document's analysis by the compare's dNll; its hover part lasts while these colours do. */
async function colourByDnll(store: AnalysisStore, doc: vscode.TextDocument, version: number, overlay: CompareOverlay): Promise<boolean> {
  const a = await store.overlay(doc, version, {
    spec: { ...SIGNALS.dNll },
    tokens: overlay.result.tokens,
    values: () => Float32Array.from(overlay.result.tokens, (t) => t.dnll ?? NaN),
    title: `ΔNLL ${overlay.labelA} − ${overlay.labelB} (nats; negative: A is better)`,
  });
  if (!a) return false;
  overlay.override = a.metricOverride;
  overlays.set(a.record, overlay);
  return true;
}

async function pickModelB(): Promise<string | undefined> {
  const picked = await vscode.window.showOpenDialog({ canSelectFiles: true, canSelectFolders: true, canSelectMany: false, title: 'Head Lens: model B (the loaded model is A)', openLabel: 'Compare with this model', filters: { Checkpoints: ['safetensors', 'pt', 'pth', 'bin', 'ptz'], 'All files': ['*'] } });
  return picked?.[0]?.fsPath;
}

/** Compare Models… on the active editor's selection or document (or `args.uri`). */
export async function compareCommand(engine: EngineClient, store: AnalysisStore, panel: ResultsPanel, args: CompareArgs = {}): Promise<CompareResult | undefined> {
  const target = await commandText('compare the two models on', args.uri);
  if (!target) return undefined;
  const { doc, text, offset, source } = target;
  const modelB = args.modelB ?? (await pickModelB());
  if (!modelB) return undefined;
  const version = doc.version;
  try {
    const result = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'Head Lens: comparing models', cancellable: true }, async (progress, token) => {
      progress.report({ message: engine.model ? `loading ${path.basename(modelB)}…` : 'starting the engine and loading model A…' });
      await engine.ensureModel(token);
      let last = 0;
      return engine.request('compare', { text, modelB: { path: modelB, config: args.configB }, heads: true }, token, (p) => {
        // A then B: each half of the bar
        const pct = Math.floor((p.model === 'A' ? 0 : 50) + (50 * p.done) / Math.max(1, p.total));
        progress.report({ increment: Math.max(0, pct - last), message: `model ${p.model}: ${p.done}/${p.total} tokens` });
        last = Math.max(last, pct);
      });
    });
    shiftTokens(result, offset);
    const labelA = path.basename(result.model_a || engine.model?.path || 'A'), labelB = path.basename(modelB);
    const byStart = new Map<number, number>();
    result.tokens.forEach((t, i) => t.end > t.start && byStart.set(t.start, i));
    const overlay: CompareOverlay = { result, labelA, labelB, byStart, heads: result.heads ? { a: headsView(result.heads.a), b: headsView(result.heads.b) } : null };
    panel.show({ kind: 'compare', source, result });
    await colourByDnll(store, doc, version, overlay);
    return result;
  } catch (e) {
    const msg = describeError(e);
    if (msg) void vscode.window.showErrorMessage(`Head Lens: Compare Models failed: ${msg}`);
    return undefined;
  }
}

export function register(engine: EngineClient, store: AnalysisStore, panel: ResultsPanel): vscode.Disposable {
  return vscode.Disposable.from(
    vscode.commands.registerCommand(Command.CompareModels, (args?: CompareArgs | vscode.Uri) => compareCommand(engine, store, panel, args instanceof vscode.Uri ? { uri: args } : args ?? {})),
    vscode.languages.registerHoverProvider({ scheme: '*' }, {
      provideHover(doc, pos) {
        const a = store.get(doc.uri.toString());
        if (!a || a.version !== doc.version) return undefined;
        const o = overlays.get(a.record);
        if (!o || a.metricOverride !== o.override) return undefined;
        const t = a.record.tokenAt(doc.offsetAt(pos));
        const i = t < 0 ? undefined : o.byStart.get(a.record.tokens[t].start);
        if (i === undefined) return undefined;
        const tok = o.result.tokens[i];
        return new vscode.Hover(compareHoverMarkdown(o, i), new vscode.Range(doc.positionAt(tok.start), doc.positionAt(tok.end)));
      },
    }),
  );
}
