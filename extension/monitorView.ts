/**
 * The sidebar training monitor, a WebviewView in the Head Lens activity-bar container. Its page is
 * dropped while hidden, so the host keeps every training event of the session and replays them
 * when the page loads again and says `ready`; live events follow. Start/Stop/Pause/Resume in the
 * view come back as `monitor/command`.
 */
import * as vscode from 'vscode';
import type { HostToWebview, TrainEvent, WebviewToHost } from '../engine/protocol';
import { Command } from './commands';
import { webviewHtml, webviewOptions } from './webviewHtml';

/** Events kept for replay: a long run's step records beyond this are dropped oldest first. */
const MAX_EVENTS = 50_000;

export type MonitorControl = (command: 'stop' | 'pause' | 'resume', runId?: string) => void;

export class MonitorView implements vscode.WebviewViewProvider, vscode.Disposable {
  static readonly viewId = 'headlens.monitor';
  private view: vscode.WebviewView | null = null;
  private ready = false;
  private readonly events: TrainEvent[] = [];
  private viewSubs: vscode.Disposable[] = [];

  constructor(private readonly extensionUri: vscode.Uri, private readonly control: MonitorControl) {}

  get eventCount(): number {
    return this.events.length;
  }

  resolveWebviewView(view: vscode.WebviewView): void {
    this.viewSubs.forEach((s) => s.dispose());
    this.view = view;
    this.ready = false;
    view.webview.options = webviewOptions(this.extensionUri);
    view.webview.html = webviewHtml(view.webview, this.extensionUri, 'monitor.js', 'monitor.css', 'Training Monitor');
    this.viewSubs = [
      view.webview.onDidReceiveMessage((m: WebviewToHost) => this.onMessage(m)),
      view.onDidChangeVisibility(() => {
        if (!view.visible) this.ready = false; // the page is gone; it says ready again when shown
      }),
      view.onDidDispose(() => {
        if (this.view !== view) return;
        this.view = null;
        this.ready = false;
      }),
    ];
  }

  /** A training event: kept for replay and drawn now if the view is up. */
  add(e: TrainEvent): void {
    this.events.push(e);
    if (this.events.length > MAX_EVENTS) this.events.splice(0, this.events.length - MAX_EVENTS);
    this.post({ type: 'monitor/event', event: e });
  }

  private onMessage(m: WebviewToHost): void {
    if (m.type === 'ready') {
      this.ready = true;
      this.post({ type: 'monitor/replay', events: this.events });
    } else if (m.type === 'monitor/command') {
      if (m.command === 'start') void vscode.commands.executeCommand(Command.Train);
      else this.control(m.command, m.runId);
    } else if (m.type === 'error') void vscode.window.showErrorMessage(`Head Lens: the training monitor failed: ${m.message}`);
  }

  private post(m: HostToWebview): void {
    if (this.view && this.ready) void this.view.webview.postMessage(m);
  }

  dispose(): void {
    this.viewSubs.forEach((s) => s.dispose());
    this.view = null;
  }
}

export function register(monitor: MonitorView): vscode.Disposable {
  return vscode.window.registerWebviewViewProvider(MonitorView.viewId, monitor, { webviewOptions: { retainContextWhenHidden: false } });
}
