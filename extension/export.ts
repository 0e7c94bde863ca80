/**
 * Export Analysis: the active document's analysis as the standalone HTML report or as JSON (both
 * written by the host from the same ExplorerData the explorer draws), or the explorer's views as
 * SVG or PNG (rendered by the webview on `export/request`, returned as `export/result`).
 */
import * as vscode from 'vscode';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ExplorerData } from '../engine/protocol';
import { renderReportHtml, slimForReport } from '../engine/analysis/report';
import type { AnalysisStore } from './analysis';
import { Command } from './commands';
import type { ExplorerPanel } from './explorerPanel';

export type ExportFormat = 'html' | 'json' | 'svg' | 'png';

const FORMATS: (vscode.QuickPickItem & { format: ExportFormat })[] = [
  { label: 'HTML report', description: 'one file that opens anywhere offline: the annotated text first, then the views', format: 'html' },
  { label: 'JSON', description: 'tokens, per-layer events and the summary (base64 arrays as on the wire)', format: 'json' },
  { label: 'SVG', description: 'the Attention Explorer views, vector', format: 'svg' },
  { label: 'PNG', description: 'the Attention Explorer views, bitmap', format: 'png' },
];

/** The analysis to export: the active editor's, else the only one there is. */
function exportable(store: AnalysisStore): ExplorerData | null {
  const active = vscode.window.activeTextEditor?.document.uri.toString();
  if (active && store.get(active)) return store.explorerData(active);
  const all = store.analysedUris;
  return all.length === 1 ? store.explorerData(all[0]) : null;
}

/** The standalone report (as `headlens analyze --html` writes it), attention maps within its size budget. */
function reportHtml(data: ExplorerData, extensionPath: string): string {
  const media = path.join(extensionPath, 'media');
  const css = ['report.css', 'explorer.css'].map((f) => path.join(media, f)).filter((f) => fs.existsSync(f)).map((f) => fs.readFileSync(f, 'utf8')).join('\n');
  return renderReportHtml(slimForReport(data).data, fs.readFileSync(path.join(media, 'dist', 'report.js'), 'utf8'), css);
}

async function render(data: ExplorerData, format: ExportFormat, explorer: ExplorerPanel, extensionPath: string): Promise<Uint8Array> {
  if (format === 'json') return Buffer.from(JSON.stringify(data));
  if (format === 'html') return Buffer.from(reportHtml(data, extensionPath));
  // the explorer draws this document (a request waits in the panel's queue until its page is up)
  explorer.show(data.documentUri);
  const out = await explorer.export(format);
  return format === 'png' ? Buffer.from(out.replace(/^data:image\/png;base64,/, ''), 'base64') : Buffer.from(out);
}

/** `format` and `target` skip the pickers (tests, other extensions). */
export async function exportAnalysis(store: AnalysisStore, explorer: ExplorerPanel, extensionPath: string, format?: ExportFormat, target?: vscode.Uri): Promise<vscode.Uri | undefined> {
  const data = exportable(store);
  if (!data) {
    void vscode.window.showWarningMessage('Head Lens: there is no analysis to export: run Head Lens: Analyze Attention on the active editor first.');
    return undefined;
  }
  format ??= (await vscode.window.showQuickPick(FORMATS, { title: 'Head Lens: export the analysis as' }))?.format;
  if (!format) return undefined;
  const source = vscode.Uri.parse(data.documentUri);
  const name = `${source.path.split('/').pop() ?? 'analysis'}.headlens.${format}`;
  const folder = source.scheme === 'file' ? vscode.Uri.joinPath(source, '..') : vscode.workspace.workspaceFolders?.[0]?.uri;
  target ??= await vscode.window.showSaveDialog({ defaultUri: folder ? vscode.Uri.joinPath(folder, name) : undefined, filters: { [format.toUpperCase()]: [format] }, title: 'Head Lens: export the analysis' });
  if (!target) return undefined;
  try {
    await vscode.workspace.fs.writeFile(target, await render(data, format, explorer, extensionPath));
  } catch (e) {
    void vscode.window.showErrorMessage(`Head Lens: could not export ${target.fsPath}: ${(e as Error).message}`);
    return undefined;
  }
  void vscode.window.showInformationMessage(`Head Lens: exported ${vscode.workspace.asRelativePath(target)}`, 'Open').then((pick) => {
    if (pick) void vscode.commands.executeCommand('vscode.open', target);
  });
  return target;
}

export function register(store: AnalysisStore, explorer: ExplorerPanel, extensionPath: string): vscode.Disposable {
  return vscode.commands.registerCommand(Command.Export, (format?: ExportFormat, target?: vscode.Uri) => exportAnalysis(store, explorer, extensionPath, format, target));
}
