/**
 * The LoRA-TTT chunk timeline's host side: a webview panel beside the editor (webview/tttTimeline.ts)
 * that draws a run's chunks — loss before / after each update and the base model's, ‖ΔW‖_F per module
 * and layer — and reveals a chunk's text in the editor when one is clicked. The panel does not keep
 * its page while hidden, so the host holds the run until the webview says `ready` and sends it again.
 */
import * as vscode from 'vscode';
import type { HostToWebview, TttRunResult, WebviewToHost } from '../engine/protocol';
import { webviewHtml, webviewOptions } from './webviewHtml';

const VIEW_TYPE = 'headlens.tttTimeline';

export class TttTimelinePanel implements vscode.Disposable {
  private panel: vscode.WebviewPanel | null = null;
  private ready = false;
  private shown: { uri: vscode.Uri; source: string; result: TttRunResult } | null = null;
  private readyWaiters: (() => void)[] = [];

  constructor(private readonly extensionUri: vscode.Uri) {}

  /** True once the webview has loaded the run it was last given (tests wait for it). */
  get isReady(): boolean {
    return !!this.panel && this.ready;
  }

  /** Resolves when the webview has said ready (after show). */
  whenReady(): Promise<void> {
    return this.isReady ? Promise.resolve() : new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  show(uri: vscode.Uri, source: string, result: TttRunResult): void {
    this.shown = { uri, source, result };
    if (!this.panel) this.open();
    else {
      this.panel.title = `TTT chunks: ${source}`;
      this.panel.reveal(undefined, true);
      this.send();
    }
  }

  private open(): void {
    const panel = vscode.window.createWebviewPanel(VIEW_TYPE, `TTT chunks: ${this.shown?.source ?? ''}`, { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true }, webviewOptions(this.extensionUri));
    this.panel = panel;
    this.ready = false;
    panel.iconPath = vscode.Uri.joinPath(this.extensionUri, 'media', 'icons', 'headlens.svg');
    panel.webview.html = webviewHtml(panel.webview, this.extensionUri, 'tttTimeline.js', 'tttTimeline.css', 'TTT chunk timeline');
    const subs = [
      panel.webview.onDidReceiveMessage((m: WebviewToHost) => void this.onMessage(m)),
      // hidden = the page is gone: it says ready again when it is shown
      panel.onDidChangeViewState((e) => {
        if (!e.webviewPanel.visible) this.ready = false;
      }),
    ];
    panel.onDidDispose(() => {
      subs.forEach((s) => s.dispose());
      if (this.panel === panel) {
        this.panel = null;
        this.ready = false;
      }
    });
  }

  private send(): void {
    if (!this.panel || !this.ready || !this.shown) return;
    const msg: HostToWebview = { type: 'ttt/timeline', source: this.shown.source, result: this.shown.result };
    void this.panel.webview.postMessage(msg);
  }

  private async onMessage(m: WebviewToHost): Promise<void> {
    if (m.type === 'ready') {
      this.ready = true;
      this.send();
      this.readyWaiters.splice(0).forEach((fn) => fn());
    } else if (m.type === 'ttt/revealChunk') await this.reveal(m.chunk);
  }

  /** Select the characters of the chunk's scored tokens in the document's editor. */
  private async reveal(chunk: number): Promise<void> {
    const s = this.shown, c = s?.result.chunks[chunk];
    if (!s || !c) return;
    const doc = await vscode.workspace.openTextDocument(s.uri);
    const first = s.result.tokens[c.start + 1], last = s.result.tokens[c.end];
    if (!first || !last) return;
    const range = new vscode.Range(doc.positionAt(first.start), doc.positionAt(last.end));
    const editor = vscode.window.visibleTextEditors.find((e) => e.document === doc) ?? (await vscode.window.showTextDocument(doc, { viewColumn: vscode.ViewColumn.One }));
    editor.selection = new vscode.Selection(range.start, range.end);
    editor.revealRange(range, vscode.TextEditorRevealType.InCenterIfOutsideViewport);
  }

  dispose(): void {
    this.panel?.dispose();
    this.readyWaiters = [];
  }
}
