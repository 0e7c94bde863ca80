/** Export Analysis: JSON from the host; SVG/PNG rendered by the explorer webview. */
import * as vscode from 'vscode';
import type { AnalysisStore } from './analysis';
import type { ExplorerPanel } from './explorerPanel';

export async function exportAnalysis(store: AnalysisStore, explorer: ExplorerPanel, format?: 'json' | 'svg' | 'png', target?: vscode.Uri): Promise<vscode.Uri | undefined> {
  const uri = vscode.window.activeTextEditor?.document.uri.toString();
  const data = uri ? store.explorerData(uri) : null;
  if (!data) {
    void vscode.window.showWarningMessage('Head Lens: nothing to export: run Analyze Attention on the active editor first.');
    return undefined;
  }
  format ??= (await vscode.window.showQuickPick(['json', 'svg', 'png'], { title: 'Export analysis as' })) as 'json' | 'svg' | 'png' | undefined;
  if (!format) return undefined;
  const base = vscode.Uri.parse(uri!).path.split('/').pop() ?? 'analysis';
  target ??= await vscode.window.showSaveDialog({ defaultUri: vscode.Uri.joinPath(vscode.workspace.workspaceFolders?.[0]?.uri ?? vscode.Uri.file('.'), `${base}.headlens.${format}`), filters: { [format.toUpperCase()]: [format] } });
  if (!target) return undefined;
  try {
    let bytes: Uint8Array;
    if (format === 'json') bytes = Buffer.from(JSON.stringify(data));
    else {
      if (!explorer.visible) explorer.show(uri);
      const out = await explorer.export(format);
      bytes = format === 'png' ? Buffer.from(out.replace(/^data:image\/png;base64,/, ''), 'base64') : Buffer.from(out);
    }
    await vscode.workspace.fs.writeFile(target, bytes);
    void vscode.window.showInformationMessage(`Head Lens: exported ${target.fsPath}`);
    return target;
  } catch (e) {
    void vscode.window.showErrorMessage(`Head Lens: export failed: ${(e as Error).message}`);
    return undefined;
  }
}
