/**
 * Hover on an analysed token: its head codes — a layer × head table of attention max, every
 * per-head signal the model's catalogue declares (a-gpt's loraTok, a gate, a value-embedding gate,
 * …) and attention entropy — the latent code z[l][t][k*] to its most-attended key
 * with that key's text (one row per layer), the NLL and top-5 predictions, and a link that opens
 * the Attention Explorer at this token. While Follow Cursor is on, a second hover part (its own
 * provider, registered later so VS Code shows it first) lists the token's top-k keys — or, in
 * reverse, the queries that attend to it most — with their text and weights.
 */
import * as vscode from 'vscode';
import type { AnalysisRecord } from '../engine/analysis/record';
import type { AnalysisStore, DocumentAnalysis } from './analysis';
import { Command } from './commands';
import type { FollowMode, Ranked } from './cursorAttention';

function num(v: number | null, digits = 2): string {
  if (v === null || !Number.isFinite(v)) return '—';
  return Math.abs(v) >= 0.01 || v === 0 ? v.toFixed(digits) : v.toExponential(1);
}

/** Token text as inline code that cannot break the markdown (newlines, backticks, table pipes). */
export function tokenCode(s: string): string {
  const shown = s.replace(/\r?\n/g, '↵').replace(/\t/g, '⇥').replace(/`/g, 'ˋ').replace(/\|/g, '¦');
  return '`' + (shown || '∅') + '`';
}

function headCodeTable(r: AnalysisRecord, t: number): string {
  const signals = r.headTokenSignals();
  const header = `| | ${Array.from({ length: r.H }, (_, h) => `H${h}`).join(' | ')} |\n|---|${'---:|'.repeat(r.H)}\n`;
  // non-breaking spaces: a narrow hover wraps between heads, not inside one head's code
  const rows = r.headCodes(t).map((row, l) => `| L${l} | ${row.map((c) => [num(c.max), ...signals.map((s) => num(c.signals[s.name])), num(c.entropy)].join('\u00a0/\u00a0')).join(' | ')} |`);
  return `Head codes — attention max${signals.map((s) => ` / ${s.name}`).join('')} / entropy:\n\n${header}${rows.join('\n')}\n\n`;
}

function latentCodeTable(r: AnalysisRecord, t: number): string {
  const rows = Array.from({ length: r.L }, (_, l) => {
    const { key, code } = r.latent(l, t);
    return `| L${l} | #${key} ${tokenCode(r.tokens[key]?.text ?? '')} | [${code.map((v) => v.toFixed(3)).join(', ')}] |`;
  });
  return `Latent code z = (attention of each head) to the most-attended key:\n\n| | key | z |\n|---|---|---|\n${rows.join('\n')}\n\n`;
}

function predictions(a: DocumentAnalysis, t: number): string {
  const r = a.record;
  const nll = r.nll[t];
  const what = a.model.causal ? 'next token' : 'token';
  const parts = [];
  // the sliding windows: how many tokens (itself included) the position read before predicting
  const ctx = r.context[t];
  if (Number.isFinite(nll)) parts.push(`NLL of the ${what} ${num(nll, 3)}${ctx > 0 ? ` (context ${ctx} token${ctx === 1 ? '' : 's'})` : ''}`);
  const top = r.top(t).slice(0, 5);
  if (top.length) parts.push(`top ${top.length}: ${top.map((p) => `${tokenCode(a.record.vocabText[p.id] ?? String(p.id))} ${(p.p * 100).toFixed(1)} %`).join(' · ')}`);
  if (r.leak && Number.isFinite(r.leak[t])) parts.push(`causality leak ${num(r.leak[t], 4)}`);
  const entry = r.lensEntryLayer(t);
  if (entry !== null && a.model.causal && t + 1 < r.N) {
    const ranks = r.lensAt(t)!.map((e) => e.rank).join(' → ');
    parts.push(entry >= 0 ? `logit lens: the next token enters the top 5 at layer ${entry} (rank by layer ${ranks})` : `logit lens: the next token is in no layer's top 5 (rank by layer ${ranks})`);
  }
  return parts.length ? parts.join(' — ') + '\n\n' : '';
}

/** Channelled signals (a Temporal LoRA router): each channel’s weight by its label, the dominant one in bold. */
function channelLines(r: AnalysisRecord, t: number): string {
  const lines = r.channelSignals().map((spec) => {
    const c = r.channelsAt(spec.name, t);
    if (!c || !c.some((x) => Number.isFinite(x.value))) return '';
    const top = r.dominantChannel(spec.name, t);
    return `${spec.label}: ${c.map((x, i) => (i === top ? `**${x.label} ${num(x.value, 3)}**` : `${x.label} ${num(x.value, 3)}`)).join(' · ')}`;
  });
  return lines.filter(Boolean).map((l) => l + '\n\n').join('');
}

/** A line of command links added to the head-code hover by another part (e.g. switching a head's adaptive path off). */
export interface HoverAction {
  readonly hoverCommands: readonly string[];
  hoverMarkdown(a: DocumentAnalysis, t: number): string;
}

export function headCodesMarkdown(a: DocumentAnalysis, t: number, actions: readonly HoverAction[] = []): vscode.MarkdownString {
  const r = a.record;
  const tok = r.tokens[t];
  const md = new vscode.MarkdownString(undefined, true);
  md.isTrusted = { enabledCommands: [Command.OpenExplorerAt, ...actions.flatMap((x) => x.hoverCommands)] };
  // the link and the predictions first: a tall hover scrolls, and these are what a glance wants
  const args = encodeURIComponent(JSON.stringify([a.uri, t]));
  const link = `[$(graph) Open in Attention Explorer](command:${Command.OpenExplorerAt}?${args} "Show this token in the Attention Explorer")`;
  md.appendMarkdown(`**Head Lens** · token #${t} ${tokenCode(tok.text)} · id ${tok.id} · ${link}\n\n`);
  const actionLinks = actions.map((x) => x.hoverMarkdown(a, t)).filter(Boolean);
  if (actionLinks.length) md.appendMarkdown(actionLinks.join(' · ') + '\n\n');
  md.appendMarkdown(predictions(a, t));
  md.appendMarkdown(channelLines(r, t));
  md.appendMarkdown(headCodeTable(r, t));
  md.appendMarkdown(latentCodeTable(r, t));
  return md;
}

export function register(store: AnalysisStore, actions: readonly HoverAction[] = []): vscode.Disposable {
  return vscode.languages.registerHoverProvider({ scheme: '*' }, {
    provideHover(doc, pos) {
      const a = store.get(doc.uri.toString());
      if (!a || a.version !== doc.version) return undefined;
      const t = a.record.tokenAt(doc.offsetAt(pos));
      if (t < 0) return undefined;
      const tok = a.record.tokens[t];
      return new vscode.Hover(headCodesMarkdown(a, t, actions), new vscode.Range(doc.positionAt(tok.start), doc.positionAt(tok.end)));
    },
  });
}

/** What Follow Cursor's hover part lists for a token. */
export interface FollowHoverView {
  mode: FollowMode;
  /** The heads read, in words ("L1.H2"). */
  heads: string;
  top: Ranked[];
  /** The token's weight on itself (NaN where it has none). */
  self: number;
}

/** The token's top keys (attends to) or top queries (attended by): index, text and weight, largest first. */
export function followCursorMarkdown(r: AnalysisRecord, t: number, view: FollowHoverView): vscode.MarkdownString {
  const md = new vscode.MarkdownString(undefined, true);
  const what = view.mode === 'attendsTo' ? `attends to (top ${view.top.length} keys)` : `is attended by (top ${view.top.length} queries)`;
  md.appendMarkdown(`**Follow Cursor** · #${t} ${tokenCode(r.tokens[t]?.text ?? '')} ${what} · ${view.heads}\n\n`);
  if (!view.top.length) {
    md.appendMarkdown('No attention weights for this token yet (its window has not arrived, or the analysis was run without attention maps).\n\n');
    return md;
  }
  const rows = view.top.map((k, i) => `| ${i + 1} | #${k.index} | ${tokenCode(r.tokens[k.index]?.text ?? '')} | ${num(k.weight, 3)} |`);
  const selfNote = Number.isFinite(view.self) ? `\n\nOn itself: ${num(view.self, 3)}.` : '';
  md.appendMarkdown(`| | token | text | weight |\n|---:|---:|---|---:|\n${rows.join('\n')}${selfNote}\n\n`);
  return md;
}

/** Follow Cursor's hover part; `viewAt` answers null while Follow Cursor is off. */
export function registerFollowHover(store: AnalysisStore, viewAt: (a: DocumentAnalysis, t: number) => FollowHoverView | null): vscode.Disposable {
  return vscode.languages.registerHoverProvider({ scheme: '*' }, {
    provideHover(doc, pos) {
      const a = store.get(doc.uri.toString());
      if (!a || a.version !== doc.version) return undefined;
      const t = a.record.tokenAt(doc.offsetAt(pos));
      const view = t < 0 ? null : viewAt(a, t);
      if (!view) return undefined;
      const tok = a.record.tokens[t];
      return new vscode.Hover(followCursorMarkdown(a.record, t, view), new vscode.Range(doc.positionAt(tok.start), doc.positionAt(tok.end)));
    },
  });
}
