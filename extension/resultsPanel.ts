/**
 * The results panel's host side: one webview beside the editor (webview/results.ts) that shows the
 * latest evaluation, compare or ablation sweep, one view per kind. The panel does not retain its
 * context when hidden, so the host keeps the current view and sends it again whenever the webview
 * says `ready`; a sweep is re-sent as its cells stream in. A click on a sweep cell comes back as
 * `results/selectCell` and goes to whoever showed the sweep.
 */
import * as vscode from 'vscode';
import type { HostToWebview, ResultsView, WebviewToHost } from '../engine/protocol';
import { webviewHtml, webviewOptions } from './webviewHtml';

const VIEW_TYPE = 'headlens.results';

const TITLES: Record<ResultsView['kind'], string> = {
  compare: 'Compare Models',
  ppl: 'Perplexity',
  mc: 'Multiple Choice',
  sweep: 'Ablation Sweep',
};

export class ResultsPanel implements vscode.Disposable {
  private panel: vscode.WebviewPanel | null = null;
  private ready = false;
  private view: ResultsView | null = null;
  private onSelectCell: ((layer: number, head: number) => void) | null = null;
  private readonly posted = new vscode.EventEmitter<ResultsView>();
  /** Fires with every view sent to a ready webview (tests wait on it). */
  readonly onDidPost = this.posted.event;

  constructor(private readonly extensionUri: vscode.Uri) {}

  /** The view shown (or about to be). */
  get current(): ResultsView | null {
    return this.view;
  }

  get isReady(): boolean {
    return !!this.panel && this.ready;
  }

  /** Show a result (opening the panel beside the editor); `onSelectCell` handles clicks on a sweep's cells. */
  show(view: ResultsView, onSelectCell?: (layer: number, head: number) => void): void {
    this.view = view;
    if (onSelectCell) this.onSelectCell = onSelectCell;
    else if (view.kind !== 'sweep') this.onSelectCell = null;
    if (!this.panel) this.open(view);
    else {
      this.panel.title = `Head Lens: ${TITLES[view.kind]}`;
      if (!this.panel.visible) this.panel.reveal(vscode.ViewColumn.Beside, true);
    }
    this.send();
  }

  /** Update the view in place (a streamed sweep) without revealing the panel again. */
  update(view: ResultsView): void {
    this.view = view;
    this.send();
  }

  private open(view: ResultsView): void {
    const panel = vscode.window.createWebviewPanel(VIEW_TYPE, `Head Lens: ${TITLES[view.kind]}`, { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true }, webviewOptions(this.extensionUri));
    panel.webview.html = webviewHtml(panel.webview, this.extensionUri, 'results.js', 'results.css', 'Head Lens results');
    panel.webview.onDidReceiveMessage((m: WebviewToHost) => this.onMessage(m));
    panel.onDidChangeViewState(() => {
      if (!panel.visible) this.ready = false; // its context goes; it says ready again when shown
    });
    panel.onDidDispose(() => {
      this.panel = null;
      this.ready = false;
    });
    this.panel = panel;
    this.ready = false;
  }

  private onMessage(m: WebviewToHost): void {
    if (m.type === 'ready') {
      this.ready = true;
      this.send();
    } else if (m.type === 'results/selectCell') this.onSelectCell?.(m.layer, m.head);
    else if (m.type === 'error') void vscode.window.showErrorMessage(`Head Lens results view: ${m.message}`);
  }

  private send(): void {
    if (!this.panel || !this.ready || !this.view) return;
    const msg: HostToWebview = { type: 'results/show', view: this.view };
    const view = this.view;
    void this.panel.webview.postMessage(msg).then((ok) => ok && this.posted.fire(view));
  }

  dispose(): void {
    this.panel?.dispose();
    this.posted.dispose();
  }
}
