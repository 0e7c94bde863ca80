/**
 * Hover on an analysed token: its head codes — a layer × head grid (attention max, loraTok,
 * entropy), the latent code to its most-attended key with that key's text, NLL and the top-5
 * next tokens, and a link to open the Attention Explorer at this token.
 */
import * as vscode from 'vscode';
import type { AnalysisStore } from './analysis';
import { Command } from './commands';

function cell(v: number | null, digits = 2): string {
  if (v === null || !Number.isFinite(v)) return '—';
  return Math.abs(v) >= 0.01 || v === 0 ? v.toFixed(digits) : v.toExponential(1);
}

function code(s: string): string {
  const shown = s.replace(/\n/g, '↵').replace(/\t/g, '⇥').replace(/`/g, 'ˋ').replace(/\|/g, '¦');
  return '`' + (shown || '∅') + '`';
}

export function register(store: AnalysisStore): vscode.Disposable {
  return vscode.languages.registerHoverProvider({ scheme: '*' }, {
    provideHover(doc, pos) {
      const a = store.get(doc.uri.toString());
      if (!a || a.version !== doc.version) return undefined;
      const r = a.record;
      const t = r.tokenAt(doc.offsetAt(pos));
      if (t < 0) return undefined;
      const tok = r.tokens[t];
      const md = new vscode.MarkdownString(undefined, true);
      md.isTrusted = { enabledCommands: [Command.OpenExplorerAt] };
      md.appendMarkdown(`**Head Lens** · token #${t} ${code(tok.text)} · id ${tok.id}` + (Number.isFinite(r.nll[t]) ? ` · NLL ${cell(r.nll[t], 3)}` : '') + '\n\n');
      const adaptive = !!r.loraTok;
      md.appendMarkdown(`Head codes (attention max${adaptive ? ' / loraTok' : ''} / entropy):\n\n`);
      md.appendMarkdown(`| layer | ${Array.from({ length: r.H }, (_, h) => `H${h}`).join(' | ')} |\n|---|${'---|'.repeat(r.H)}\n`);
      r.headCodes(t).forEach((row, l) => {
        md.appendMarkdown(`| L${l} | ${row.map((c) => `${cell(c.max)}${adaptive ? ` / ${cell(c.loraTok)}` : ''} / ${cell(c.entropy)}`).join(' | ')} |\n`);
      });
      const last = r.L - 1;
      const lat = r.latent(last, t);
      const key = r.tokens[lat.key];
      md.appendMarkdown(`\nLatent code (layer ${last}) to its most-attended key #${lat.key} ${code(key?.text ?? '')}: [${lat.code.map((v) => v.toFixed(3)).join(', ')}]\n\n`);
      const top = r.top(t);
      if (top.length) md.appendMarkdown(`Top next tokens: ${top.map((p) => `${code(a.result.vocabText[p.id] ?? String(p.id))} ${(p.p * 100).toFixed(1)}%`).join(' · ')}\n\n`);
      if (r.leak && Number.isFinite(r.leak[t])) md.appendMarkdown(`Causality leak: ${cell(r.leak[t], 4)}\n\n`);
      const args = encodeURIComponent(JSON.stringify([doc.uri.toString(), t]));
      md.appendMarkdown(`[Open in Attention Explorer](command:${Command.OpenExplorerAt}?${args})`);
      return new vscode.Hover(md, new vscode.Range(doc.positionAt(tok.start), doc.positionAt(tok.end)));
    },
  });
}
