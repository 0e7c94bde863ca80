/**
 * The Attention Explorer panel host: holds messages until the webview says it is ready, sends
 * the active document's analysis, and syncs the query/key selection with the editor both ways.
 */
import * as vscode from 'vscode';
import type { HostToWebview, WebviewToHost } from '../engine/protocol';
import type { AnalysisStore } from './analysis';
import { webviewHtml } from './webviewHtml';

export class ExplorerPanel implements vscode.Disposable {
  private panel: vscode.WebviewPanel | null = null;
  private ready = false;
  private queue: HostToWebview[] = [];
  private uri: string | null = null;
  private pendingExports = new Map<number, (r: { data: string; error?: string }) => void>();
  private nextExport = 1;
  private readonly subs: vscode.Disposable[] = [];

  constructor(private readonly extensionUri: vscode.Uri, private readonly store: AnalysisStore) {
    this.subs.push(
      store.onDidChange((uri) => {
        if (this.panel && uri === this.uri) this.sendData();
      }),
      vscode.window.onDidChangeTextEditorSelection((e) => this.onEditorSelection(e)),
      vscode.window.onDidChangeActiveTextEditor((ed) => {
        if (this.panel && ed && this.store.get(ed.document.uri.toString())) {
          this.uri = ed.document.uri.toString();
          this.sendData();
        }
      }),
    );
  }

  get visible(): boolean {
    return !!this.panel?.visible;
  }

  show(uri?: string, tokenIndex?: number): void {
    this.uri = uri ?? vscode.window.activeTextEditor?.document.uri.toString() ?? this.uri;
    if (!this.panel) {
      this.panel = vscode.window.createWebviewPanel('headlens.explorer', 'Attention Explorer', { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true }, {
        enableScripts: true,
        localResourceRoots: [vscode.Uri.joinPath(this.extensionUri, 'media')],
      });
      this.ready = false;
      this.panel.iconPath = vscode.Uri.joinPath(this.extensionUri, 'media', 'icons', 'headlens.svg');
      this.panel.webview.html = webviewHtml(this.panel.webview, this.extensionUri, 'explorer.js', 'explorer.css', 'Attention Explorer');
      this.panel.webview.onDidReceiveMessage((m: WebviewToHost) => this.onMessage(m));
      this.panel.onDidDispose(() => {
        this.panel = null;
        this.ready = false;
        this.queue = [];
      });
    } else this.panel.reveal(vscode.ViewColumn.Beside, true);
    this.sendData();
    if (tokenIndex !== undefined) this.post({ type: 'explorer/selection', tokenIndex, role: 'query' });
  }

  private sendData(): void {
    const data = this.uri ? this.store.explorerData(this.uri) : null;
    this.post(data ? { type: 'explorer/data', data } : { type: 'explorer/clear' });
  }

  private post(m: HostToWebview): void {
    if (!this.panel) return;
    if (!this.ready) {
      // keep only the latest data message and the selections after it
      if (m.type === 'explorer/data' || m.type === 'explorer/clear') this.queue = this.queue.filter((q) => q.type !== 'explorer/data' && q.type !== 'explorer/clear');
      this.queue.push(m);
      return;
    }
    void this.panel.webview.postMessage(m);
  }

  private onMessage(m: WebviewToHost): void {
    if (m.type === 'ready') {
      this.ready = true;
      const q = this.queue;
      this.queue = [];
      if (!q.some((x) => x.type === 'explorer/data')) this.sendData();
      q.forEach((x) => this.post(x));
    } else if (m.type === 'explorer/selectToken') this.revealToken(m.tokenIndex);
    else if (m.type === 'export/result') {
      this.pendingExports.get(m.requestId)?.({ data: m.data, error: m.error });
      this.pendingExports.delete(m.requestId);
    } else if (m.type === 'error') void vscode.window.showErrorMessage(`Head Lens explorer: ${m.message}`);
  }

  /** Select the token in its editor (explorer → editor). */
  private revealToken(index: number): void {
    if (!this.uri) return;
    const a = this.store.get(this.uri);
    const editor = vscode.window.visibleTextEditors.find((e) => e.document.uri.toString() === this.uri);
    const tok = a?.record.tokens[index];
    if (!editor || !tok) return;
    const range = new vscode.Range(editor.document.positionAt(tok.start), editor.document.positionAt(tok.end));
    this.syncing = true;
    editor.selection = new vscode.Selection(range.start, range.end);
    editor.revealRange(range, vscode.TextEditorRevealType.InCenterIfOutsideViewport);
  }

  private syncing = false;
  /** Editor → explorer: the token under the cursor becomes the selected query. */
  private onEditorSelection(e: vscode.TextEditorSelectionChangeEvent): void {
    if (this.syncing) {
      this.syncing = false;
      return;
    }
    if (!this.panel || e.textEditor.document.uri.toString() !== this.uri) return;
    const a = this.store.get(this.uri);
    if (!a) return;
    const t = a.record.tokenAt(e.textEditor.document.offsetAt(e.selections[0].active));
    if (t >= 0) this.post({ type: 'explorer/selection', tokenIndex: t, role: 'query' });
  }

  /** Ask the webview to export its views. */
  export(format: 'svg' | 'png'): Promise<string> {
    if (!this.panel || !this.ready) return Promise.reject(new Error('open the Attention Explorer first (Head Lens: Show Attention Explorer)'));
    const requestId = this.nextExport++;
    return new Promise((resolve, reject) => {
      this.pendingExports.set(requestId, (r) => (r.error ? reject(new Error(r.error)) : resolve(r.data)));
      this.post({ type: 'export/request', format, requestId });
      setTimeout(() => {
        if (this.pendingExports.delete(requestId)) reject(new Error('the explorer did not answer the export request'));
      }, 20000);
    });
  }

  dispose(): void {
    this.panel?.dispose();
    this.subs.forEach((s) => s.dispose());
  }
}
