/**
 * The Attention Explorer panel's host side. The webview (webview/explorer.ts) keeps its own view
 * state with getState/setState; the panel does not retain its context when hidden, so the host
 * holds messages until the webview says `ready` (after every show) and then sends the analysis
 * again. The query token is synced both ways with the editor; the key the explorer picks is
 * outlined in the editor; the head focused in the explorer colours the editor too.
 */
import * as vscode from 'vscode';
import type { HostToWebview, WebviewToHost } from '../engine/protocol';
import type { AnalysisStore } from './analysis';
import { Command } from './commands';
import type { TokenDecorations } from './decorations';
import type { SettingsWatcher } from './settings';
import { webviewHtml, webviewOptions } from './webviewHtml';

const VIEW_TYPE = 'headlens.explorer';
/** How long an export may take in the webview (a PNG of a big matrix renders for a while). */
const EXPORT_TIMEOUT_MS = 30_000;

export class ExplorerPanel implements vscode.Disposable {
  private panel: vscode.WebviewPanel | null = null;
  private ready = false;
  private queue: HostToWebview[] = [];
  /** The document whose analysis the panel shows. */
  private uri: string | null = null;
  /** Token last selected from the explorer: the editor's echo of it is not sent back. */
  private revealed: number | null = null;
  private readonly keyHighlight = vscode.window.createTextEditorDecorationType({
    borderWidth: '1px',
    borderStyle: 'solid',
    borderColor: new vscode.ThemeColor('focusBorder'),
    borderRadius: '2px',
  });
  private readonly pendingExports = new Map<number, (r: { data: string; error?: string }) => void>();
  private nextExport = 1;
  private readonly subs: vscode.Disposable[] = [];

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly store: AnalysisStore,
    private readonly decorations: TokenDecorations,
    settings: SettingsWatcher,
  ) {
    this.subs.push(
      this.keyHighlight,
      // the editor's Next/Previous Head and Layer (Follow Cursor) move the explorer's focus too
      decorations.onDidChangeFocus((f) => {
        if (f.source === 'editor' && f.layer >= 0) this.post({ type: 'explorer/focus', layer: f.layer, head: Math.max(0, f.head) });
      }),
      store.onDidChange((uri) => {
        if (uri === this.uri) this.sendData(true);
      }),
      vscode.window.onDidChangeTextEditorSelection((e) => this.onEditorSelection(e)),
      vscode.window.onDidChangeActiveTextEditor((ed) => {
        const uri = ed?.document.uri.toString();
        if (this.panel && uri && uri !== this.uri && this.store.get(uri)) {
          this.uri = uri;
          this.sendData(true);
        }
      }),
      settings.onChange((s, e) => {
        if ((e.affectsConfiguration('headlens.focusLayer') || e.affectsConfiguration('headlens.focusHead')) && s.focusLayer >= 0) {
          this.post({ type: 'explorer/focus', layer: s.focusLayer, head: Math.max(0, s.focusHead) });
        }
      }),
    );
  }

  get visible(): boolean {
    return !!this.panel?.visible;
  }

  /** True once the webview has loaded and said so (tests and the export wait for it). */
  get isReady(): boolean {
    return !!this.panel && this.ready;
  }

  /** Open (or reveal) the panel on a document's analysis, optionally at a token. */
  show(uri?: string, tokenIndex?: number): void {
    const next = uri ?? this.defaultUri();
    const switched = next !== this.uri;
    this.uri = next;
    if (!this.panel) {
      const panel = vscode.window.createWebviewPanel(VIEW_TYPE, 'Attention Explorer', { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true }, webviewOptions(this.extensionUri));
      this.adopt(panel);
    } else {
      this.panel.reveal(undefined, true);
      if (switched) this.sendData(true);
    }
    if (tokenIndex !== undefined) this.post({ type: 'explorer/selection', tokenIndex, role: 'query' });
  }

  /** Without a document named: the active editor's if it was analysed, else the one shown, else any analysed one. */
  private defaultUri(): string | null {
    const active = vscode.window.activeTextEditor?.document.uri.toString();
    if (active && this.store.get(active)) return active;
    return this.uri ?? this.store.analysedUris[0] ?? active ?? null;
  }

  /** Take over a panel, new or restored by VS Code after a reload. */
  adopt(panel: vscode.WebviewPanel): void {
    this.panel = panel;
    this.ready = false;
    panel.iconPath = vscode.Uri.joinPath(this.extensionUri, 'media', 'icons', 'headlens.svg');
    panel.webview.options = webviewOptions(this.extensionUri);
    panel.webview.html = webviewHtml(panel.webview, this.extensionUri, 'explorer.js', 'explorer.css', 'Attention Explorer');
    const subs = [
      panel.webview.onDidReceiveMessage((m: WebviewToHost) => this.onMessage(m)),
      // hidden = the webview's page is gone: hold messages until it loads again and says ready
      panel.onDidChangeViewState((e) => {
        if (!e.webviewPanel.visible) this.ready = false;
      }),
    ];
    panel.onDidDispose(() => {
      subs.forEach((s) => s.dispose());
      if (this.panel !== panel) return;
      this.panel = null;
      this.ready = false;
      this.queue = [];
      for (const reply of this.pendingExports.values()) reply({ data: '', error: 'the Attention Explorer was closed' });
      this.pendingExports.clear();
    });
  }

  /** The analysis of the panel's document; `clearIfNone` also empties the view when there is none. */
  private sendData(clearIfNone: boolean): void {
    const data = this.uri ? this.store.explorerData(this.uri) : null;
    if (data) this.post({ type: 'explorer/data', data });
    else if (clearIfNone) this.post({ type: 'explorer/clear' });
  }

  private post(m: HostToWebview): void {
    if (!this.panel) return;
    if (this.ready) {
      void this.panel.webview.postMessage(m);
      return;
    }
    // a newer analysis replaces an older one still waiting (and whatever was selected in it)
    if (m.type === 'explorer/data' || m.type === 'explorer/clear') this.queue = this.queue.filter((q) => q.type === 'export/request');
    this.queue.push(m);
  }

  private onMessage(m: WebviewToHost): void {
    switch (m.type) {
      case 'ready':
        return this.onReady();
      case 'explorer/selectToken':
        return this.revealToken(m.tokenIndex, m.role);
      case 'explorer/focus':
        return this.decorations.setExplorerFocus(m.layer, m.head);
      case 'export/result':
        this.pendingExports.get(m.requestId)?.({ data: m.data, error: m.error });
        this.pendingExports.delete(m.requestId);
        return;
      case 'error':
        void vscode.window.showErrorMessage(`Head Lens: the Attention Explorer failed: ${m.message}`);
        return;
      case 'monitor/command':
        return; // the monitor's message, not the explorer's
    }
  }

  /** The webview (re)loaded: send the analysis (its own saved state may be older), then what waited. */
  private onReady(): void {
    this.ready = true;
    const waiting = this.queue;
    this.queue = [];
    if (!waiting.some((q) => q.type === 'explorer/data' || q.type === 'explorer/clear')) this.sendData(false);
    waiting.forEach((q) => this.post(q));
  }

  /** Explorer → editor: a query becomes the editor selection; a key is outlined. */
  private revealToken(index: number, role: 'query' | 'key'): void {
    const tok = this.uri ? this.store.get(this.uri)?.record.tokens[index] : undefined;
    const editor = vscode.window.visibleTextEditors.find((e) => e.document.uri.toString() === this.uri);
    if (!editor || !tok) return;
    const range = new vscode.Range(editor.document.positionAt(tok.start), editor.document.positionAt(tok.end));
    if (role === 'query') {
      this.revealed = index;
      editor.selection = new vscode.Selection(range.start, range.end);
    } else editor.setDecorations(this.keyHighlight, [range]);
    editor.revealRange(range, vscode.TextEditorRevealType.InCenterIfOutsideViewport);
  }

  /** Editor → explorer: the token under the cursor becomes the selected query. */
  private onEditorSelection(e: vscode.TextEditorSelectionChangeEvent): void {
    if (!this.panel || e.textEditor.document.uri.toString() !== this.uri) return;
    const a = this.store.get(this.uri);
    if (!a || a.version !== e.textEditor.document.version) return;
    const t = a.record.tokenAt(e.textEditor.document.offsetAt(e.selections[0].active));
    if (t < 0 || t === this.revealed) return;
    this.revealed = null;
    e.textEditor.setDecorations(this.keyHighlight, []);
    this.post({ type: 'explorer/selection', tokenIndex: t, role: 'query' });
  }

  /** Ask the webview to render its views as SVG or PNG (a data URL for PNG). */
  export(format: 'svg' | 'png'): Promise<string> {
    if (!this.panel) return Promise.reject(new Error('the Attention Explorer is not open (Head Lens: Show Attention Explorer)'));
    const requestId = this.nextExport++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.pendingExports.delete(requestId)) reject(new Error(`the Attention Explorer did not answer the ${format.toUpperCase()} export within ${EXPORT_TIMEOUT_MS / 1000} s`));
      }, EXPORT_TIMEOUT_MS);
      this.pendingExports.set(requestId, (r) => {
        clearTimeout(timer);
        if (r.error) reject(new Error(r.error));
        else resolve(r.data);
      });
      this.post({ type: 'export/request', format, requestId });
    });
  }

  dispose(): void {
    this.panel?.dispose();
    this.subs.forEach((s) => s.dispose());
  }
}

/** Show Attention Explorer, Open Attention Explorer at Token (the hover's link), and reload restore. */
export function register(explorer: ExplorerPanel): vscode.Disposable {
  return vscode.Disposable.from(
    vscode.commands.registerCommand(Command.ShowExplorer, () => explorer.show()),
    vscode.commands.registerCommand(Command.OpenExplorerAt, (uri: string, tokenIndex: number) => explorer.show(uri, tokenIndex)),
    vscode.window.registerWebviewPanelSerializer(VIEW_TYPE, {
      async deserializeWebviewPanel(panel) {
        explorer.adopt(panel);
      },
    }),
  );
}
