/**
 * The sidebar training monitor, a WebviewView in the Head Lens activity-bar container. Its page is
 * dropped while hidden, so the host keeps everything it was sent — the training events of the
 * session, every watched run's events (points, checkpoints) and probes, the grid's table — and
 * replays them when the page loads again and says `ready`; live updates follow. The page's
 * buttons come back as messages: Start/Stop/Pause/Resume to the training controller, Watch…,
 * remove, a checkpoint's analysis and Analyze Across Checkpoints to the watch controller
 * (`onAction`, set by extension/watch.ts).
 */
import * as vscode from 'vscode';
import type { GridTable, HostToWebview, MonitorRunSnapshot, RunProbeResult, RunWatchEvent, TrainEvent, WebviewToHost } from '../engine/protocol';
import { Command } from './commands';
import { webviewHtml, webviewOptions } from './webviewHtml';

/** Events kept for replay: a long run's step records beyond this are dropped oldest first. */
const MAX_EVENTS = 50_000;
/** Points kept per watched run; beyond it every other old point is dropped (the curve's shape stays). */
const MAX_RUN_POINTS = 200_000;

export type MonitorControl = (command: 'stop' | 'pause' | 'resume', runId?: string) => void;
/** What the page asks of the watched runs. */
export type MonitorAction = Extract<WebviewToHost, { type: 'monitor/watch' | 'monitor/removeRun' | 'monitor/analyzeCheckpoint' | 'monitor/analyzeAcross' }>;

interface HeldRun extends MonitorRunSnapshot {
  points: number;
}

export class MonitorView implements vscode.WebviewViewProvider, vscode.Disposable {
  static readonly viewId = 'headlens.monitor';
  private view: vscode.WebviewView | null = null;
  private ready = false;
  private readonly events: TrainEvent[] = [];
  private readonly runs = new Map<string, HeldRun>();
  private grid: GridTable | null = null;
  /** Runs in progress by their status records (any method's: train/start, PonderTTT, Temporal LoRA). */
  private readonly live = new Set<string>();
  private viewSubs: vscode.Disposable[] = [];
  /** The watch controller's handler of the page's run buttons. */
  onAction: ((m: MonitorAction) => void) | null = null;
  /** Called whenever the view is shown (the watch controller restores the remembered runs then). */
  onShown: (() => void) | null = null;

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
    this.onShown?.();
  }

  /** A training event: kept for replay and drawn now if the view is up. */
  add(e: TrainEvent): void {
    if (e.kind === 'status') {
      if (e.state === 'stopped' || e.state === 'finished' || e.state === 'failed') this.live.delete(e.runId);
      else this.live.add(e.runId);
    }
    this.events.push(e);
    if (this.events.length > MAX_EVENTS) this.events.splice(0, this.events.length - MAX_EVENTS);
    this.post({ type: 'monitor/event', event: e });
  }

  /** A watched run appears (again: its old events are dropped, its page state kept). */
  addRun(run: { id: string; label: string; path: string }): void {
    const held: HeldRun = { ...run, events: [], probes: [], points: 0 };
    this.runs.set(run.id, held);
    this.post({ type: 'monitor/runAdded', run: snapshotOf(held) });
  }

  runEvent(runId: string, event: RunWatchEvent): void {
    const run = this.runs.get(runId);
    if (!run) return;
    run.events.push(event);
    if (event.kind === 'points') {
      for (const s of Object.values(event.series)) run.points += s.steps.length;
      if (run.points > MAX_RUN_POINTS) thinRun(run);
    }
    this.post({ type: 'monitor/runEvent', runId, event });
  }

  runProbe(runId: string, probe: RunProbeResult, source: 'probe' | 'document'): void {
    const run = this.runs.get(runId);
    if (!run) return;
    // a checkpoint rewritten in place (last.safetensors) replaces its earlier probe
    run.probes = run.probes.filter((p) => !(p.source === source && p.probe.checkpoint === probe.checkpoint && p.probe.step === probe.step));
    run.probes.push({ probe, source });
    this.post({ type: 'monitor/runProbe', runId, probe, source });
  }

  removeRun(runId: string): void {
    if (!this.runs.delete(runId)) return;
    this.post({ type: 'monitor/runRemoved', runId });
  }

  setGrid(table: GridTable): void {
    this.grid = table;
    this.post({ type: 'monitor/grid', table });
  }

  /** Points the view holds for a watched run, per series name (the extension-host tests read it). */
  runSeries(runId: string): Record<string, [number, number | null][]> {
    const out: Record<string, [number, number | null][]> = {};
    for (const e of this.runs.get(runId)?.events ?? []) {
      if (e.kind !== 'points') continue;
      for (const [name, s] of Object.entries(e.series)) (out[name] ??= []).push(...s.steps.map((step, i) => [step, s.values[i]] as [number, number | null]));
    }
    return out;
  }

  runEvents(runId: string): readonly RunWatchEvent[] {
    return this.runs.get(runId)?.events ?? [];
  }

  private onMessage(m: WebviewToHost): void {
    if (m.type === 'ready') {
      this.ready = true;
      this.post({ type: 'monitor/replay', events: this.events });
      this.post({ type: 'monitor/runs', runs: [...this.runs.values()].map(snapshotOf), grid: this.grid });
    } else if (m.type === 'monitor/command') {
      if (m.command === 'start') void vscode.commands.executeCommand(Command.Train);
      else this.control(m.command, m.runId);
    } else if (m.type === 'monitor/watch' || m.type === 'monitor/removeRun' || m.type === 'monitor/analyzeCheckpoint' || m.type === 'monitor/analyzeAcross') {
      this.onAction?.(m);
    } else if (m.type === 'error') void vscode.window.showErrorMessage(`Head Lens: the training monitor failed: ${m.message}`);
  }

  /** The latest run in progress, by the status records seen. */
  get latestLiveRun(): string | undefined {
    return [...this.live].pop();
  }

  private post(m: HostToWebview): void {
    if (this.view && this.ready) void this.view.webview.postMessage(m);
  }

  dispose(): void {
    this.viewSubs.forEach((s) => s.dispose());
    this.view = null;
  }
}

function snapshotOf(run: HeldRun): MonitorRunSnapshot {
  return { id: run.id, label: run.label, path: run.path, events: run.events, probes: run.probes };
}

/**
 * Halves a run's held points: its points events merged per file, segment and series, every other
 * point kept (the last always), the other events as they were.
 */
function thinRun(run: HeldRun): void {
  const merged = new Map<string, Extract<RunWatchEvent, { kind: 'points' }>>();
  const others: RunWatchEvent[] = [];
  for (const e of run.events) {
    if (e.kind !== 'points') {
      others.push(e);
      continue;
    }
    const key = `${e.file}\u0000${e.segment}`;
    const m = merged.get(key) ?? { kind: 'points', file: e.file, segment: e.segment, series: {} };
    merged.set(key, m);
    for (const [name, s] of Object.entries(e.series)) {
      const into = (m.series[name] ??= { steps: [], values: [] });
      into.steps.push(...s.steps);
      into.values.push(...s.values);
    }
  }
  run.points = 0;
  for (const m of merged.values()) {
    for (const s of Object.values(m.series)) {
      const keep = (_: unknown, i: number) => i % 2 === 0 || i === s.steps.length - 1;
      s.steps = s.steps.filter(keep);
      s.values = s.values.filter(keep);
      run.points += s.steps.length;
    }
  }
  run.events = [...others, ...merged.values()];
}

export function register(monitor: MonitorView): vscode.Disposable {
  return vscode.window.registerWebviewViewProvider(MonitorView.viewId, monitor, { webviewOptions: { retainContextWhenHidden: false } });
}
