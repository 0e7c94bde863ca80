/**
 * The sidebar training monitor (a WebviewView in its own activity-bar container). The host keeps
 * every training event, so the view can be hidden and shown again and still draw whole curves.
 */
import * as vscode from 'vscode';
import type { HostToWebview, TrainEvent, WebviewToHost } from '../engine/protocol';
import { Command } from './commands';
import { webviewHtml } from './webviewHtml';

export class MonitorView implements vscode.WebviewViewProvider, vscode.Disposable {
  static readonly viewId = 'headlens.monitor';
  private view: vscode.WebviewView | null = null;
  private ready = false;
  private readonly events: TrainEvent[] = [];

  constructor(private readonly extensionUri: vscode.Uri, private readonly control: (cmd: 'stop' | 'pause' | 'resume', runId?: string) => void) {}

  get eventCount(): number {
    return this.events.length;
  }

  resolveWebviewView(view: vscode.WebviewView): void {
    this.view = view;
    this.ready = false;
    view.webview.options = { enableScripts: true, localResourceRoots: [vscode.Uri.joinPath(this.extensionUri, 'media')] };
    view.webview.html = webviewHtml(view.webview, this.extensionUri, 'monitor.js', 'monitor.css', 'Training Monitor');
    view.webview.onDidReceiveMessage((m: WebviewToHost) => {
      if (m.type === 'ready') {
        this.ready = true;
        this.post({ type: 'monitor/replay', events: this.events });
      } else if (m.type === 'monitor/command') {
        if (m.command === 'start') void vscode.commands.executeCommand(Command.Train);
        else this.control(m.command, m.runId);
      }
    });
    view.onDidDispose(() => {
      this.view = null;
      this.ready = false;
    });
  }

  add(e: TrainEvent): void {
    this.events.push(e);
    this.post({ type: 'monitor/event', event: e });
  }

  private post(m: HostToWebview): void {
    if (this.view && this.ready) void this.view.webview.postMessage(m);
  }

  dispose(): void {
    this.view = null;
  }
}
