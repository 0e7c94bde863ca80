/**
 * Watch Training Run…: any run the user starts anywhere — a log, a metrics file, a TensorBoard
 * logdir, a run's output folder — followed live by the engine (`runs/watch`: file-system events,
 * tails from the last offset, log rotation and restarted runs) and overlaid in the sidebar
 * monitor. The engine runs where the files are (with VS Code Remote, on the remote side), so the
 * paths are the workspace's own. For each checkpoint the run writes, the per-head probe curves
 * are computed in the background (`runs/probe`, one at a time, low priority, cancelled with the
 * run); a checkpoint's mark analyses the active document with it (Load Model, then Analyze
 * Attention), and Analyze Across Checkpoints takes the run's checkpoints in order on that document.
 * Watched runs are remembered in the workspace state and followed again when the monitor is shown.
 */
import * as vscode from 'vscode';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RunCheckpoint, RunLogPreset, RunProbeResult, RunWatchEvent, RunWatchParams, TimelineEvent } from '../engine/protocol';
import { Command } from './commands';
import { describeError, type EngineClient } from './engineClient';
import { MonitorView, type MonitorAction } from './monitorView';

/** How a run is read: what Watch Training Run… asked, remembered across reloads. */
export interface WatchSpec {
  path: string;
  preset?: RunLogPreset;
  regex?: string;
  label?: string;
  /** Probe each new checkpoint in the background (default true; the grid's folder says false). */
  probe?: boolean;
}

/** What the command returns: the run's id and what the monitor holds of it (the tests read these). */
export interface WatchHandle {
  id: string;
  series(): Record<string, [number, number | null][]>;
  events(): readonly RunWatchEvent[];
  checkpoints(): RunCheckpoint[];
  remove(): void;
}

const STATE_KEY = 'headlens.watchedRuns';
const PRESETS: RunLogPreset[] = ['nanogpt', 'autoresearch', 'agpt', 'paramgolf'];
const STRUCTURED = /\.(jsonl|ndjson|csv)$|tfevents/i;
/** Used when the extension's sample file is missing: any fixed text serves, the same for every checkpoint. */
const FALLBACK_PROBE_TEXT = 'def attention(q, k, v):\n    scores = q @ k.T / math.sqrt(k.shape[-1])\n    return softmax(scores) @ v\n';

interface Session {
  id: string;
  spec: WatchSpec;
  cts: vscode.CancellationTokenSource;
  checkpoints: Map<string, RunCheckpoint>;
}

export class WatchController implements vscode.Disposable {
  private readonly sessions = new Map<string, Session>();
  private probes = Promise.resolve();
  private readonly queuedProbes = new Set<string>();
  private readonly subs: vscode.Disposable[] = [];
  private restored = false;
  private counter = 0;
  private probeText: string | null = null;

  constructor(private readonly ctx: vscode.ExtensionContext, private readonly engine: EngineClient, private readonly monitor: MonitorView) {
    monitor.onAction = (m) => void this.onAction(m);
    monitor.onShown = () => this.restore();
  }

  /** Follows a run (the same path and reading again: the existing one). */
  watch(spec: WatchSpec): WatchHandle {
    const full: WatchSpec = { ...spec, path: path.resolve(spec.path) };
    const existing = [...this.sessions.values()].find((s) => sameSpec(s.spec, full));
    const session = existing ?? this.start(full);
    this.persist();
    return this.handleOf(session);
  }

  unwatch(id: string): void {
    const s = this.sessions.get(id);
    if (!s) return;
    s.cts.cancel();
    s.cts.dispose();
    this.sessions.delete(id);
    this.monitor.removeRun(id);
    this.persist();
  }

  /** Runs remembered by the workspace, followed again once (when the monitor is first shown). */
  restore(): void {
    if (this.restored) return;
    this.restored = true;
    for (const spec of this.ctx.workspaceState.get<WatchSpec[]>(STATE_KEY, [])) {
      if (fs.existsSync(spec.path)) this.watch(spec);
    }
  }

  private start(spec: WatchSpec): Session {
    const id = `watch-${++this.counter}`;
    const session: Session = { id, spec, cts: new vscode.CancellationTokenSource(), checkpoints: new Map() };
    this.sessions.set(id, session);
    this.monitor.addRun({ id, label: spec.label ?? labelOf(spec.path), path: spec.path });
    const params: RunWatchParams = { path: spec.path, ...(spec.preset ? { preset: spec.preset } : {}), ...(spec.regex ? { regex: spec.regex } : {}) };
    this.engine
      .request('runs/watch', params, session.cts.token, (e) => this.onEvent(session, e))
      .catch((err) => {
        const msg = describeError(err);
        if (!msg || session.cts.token.isCancellationRequested) return;
        void vscode.window.showErrorMessage(`Head Lens: watching ${spec.path} stopped: ${msg}`);
        this.unwatch(id);
      });
    return session;
  }

  private onEvent(s: Session, e: RunWatchEvent): void {
    this.monitor.runEvent(s.id, e);
    if (e.kind === 'checkpoint') {
      s.checkpoints.set(e.checkpoint.path, e.checkpoint);
      if (s.spec.probe !== false) this.queueProbe(s, e.checkpoint);
    } else if (e.kind === 'warning') this.engine.log.warn(`[watch ${s.spec.path}] ${e.message}`);
  }

  /**
   * Probes run one after another, after everything queued before; a removed run's are dropped, and
   * a checkpoint rewritten before its probe started (last.safetensors) is probed once, as it is
   * then. Not in an untrusted workspace: loading a checkpoint nobody named asks first there.
   */
  private queueProbe(s: Session, c: RunCheckpoint): void {
    const key = `${s.id}\u0000${c.path}`;
    if (!vscode.workspace.isTrusted || this.queuedProbes.has(key)) return;
    this.queuedProbes.add(key);
    this.probes = this.probes.then(async () => {
      this.queuedProbes.delete(key);
      const current = s.checkpoints.get(c.path) ?? c;
      if (!this.sessions.has(s.id) || s.cts.token.isCancellationRequested) return;
      try {
        const probe = await this.engine.request('runs/probe', { checkpoint: current.path, text: this.fixedProbeText() }, s.cts.token);
        this.monitor.runProbe(s.id, { ...probe, step: current.step ?? probe.step }, 'probe');
      } catch (err) {
        const msg = describeError(err);
        if (msg) this.engine.log.warn(`probe of ${current.path} failed: ${msg}`);
      }
    });
  }

  private fixedProbeText(): string {
    if (this.probeText === null) {
      const sample = path.join(this.ctx.extensionPath, 'media', 'samples', 'attention.py');
      this.probeText = fs.existsSync(sample) ? fs.readFileSync(sample, 'utf8') : FALLBACK_PROBE_TEXT;
    }
    return this.probeText;
  }

  private async onAction(m: MonitorAction): Promise<void> {
    if (m.type === 'monitor/watch') await vscode.commands.executeCommand(Command.WatchRun);
    else if (m.type === 'monitor/removeRun') this.unwatch(m.runId);
    else if (m.type === 'monitor/analyzeCheckpoint') await analyzeWithCheckpoint(m.path);
    else await this.analyzeAcross(m.runId);
  }

  /** Analyze Across Checkpoints: the run's checkpoints by step on the active document, drawn as curves, then the timeline panel's step slider. */
  private async analyzeAcross(runId: string): Promise<void> {
    const s = this.sessions.get(runId);
    const editor = targetEditor();
    if (!s || !editor) return void vscode.window.showWarningMessage('Head Lens: open the document to analyse across the checkpoints first.');
    const ordered = [...s.checkpoints.values()].sort((a, b) => (a.step ?? Infinity) - (b.step ?? Infinity) || a.mtimeMs - b.mtimeMs);
    if (!ordered.length) return void vscode.window.showInformationMessage('Head Lens: this run has no loadable checkpoint yet.');
    try {
      await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Head Lens: ${ordered.length} checkpoints on ${path.basename(editor.document.fileName)}`, cancellable: true }, async (progress, token) => {
        await this.engine.ensureModel(token); // the loaded model's tokenizer reads the document
        await this.engine.request('checkpoints/analyze', { text: editor.document.getText(), paths: ordered.map((c) => c.path) }, token, (ev) => {
          progress.report({ message: `${ev.index + 1}/${ordered.length}`, increment: 100 / ordered.length });
          this.monitor.runProbe(runId, timelineProbe(ev, s.checkpoints.get(ev.path)), 'document');
        });
      });
      // the step slider over the same results (the engine caches them per checkpoint and text)
      void vscode.commands.executeCommand('headlens.analyzeAcrossCheckpoints', { paths: ordered.map((c) => c.path), uri: editor.document.uri });
    } catch (err) {
      const msg = describeError(err);
      if (msg) void vscode.window.showErrorMessage(`Head Lens: Analyze Across Checkpoints failed: ${msg}`);
    }
  }

  private handleOf(s: Session): WatchHandle {
    return {
      id: s.id,
      series: () => this.monitor.runSeries(s.id),
      events: () => this.monitor.runEvents(s.id),
      checkpoints: () => [...s.checkpoints.values()],
      remove: () => this.unwatch(s.id),
    };
  }

  private persist(): void {
    void this.ctx.workspaceState.update(STATE_KEY, [...this.sessions.values()].map((s) => s.spec));
  }

  /** Disposed with the controller. */
  track(d: vscode.Disposable): void {
    this.subs.push(d);
  }

  dispose(): void {
    for (const s of this.sessions.values()) s.cts.cancel();
    this.sessions.clear();
    this.subs.forEach((d) => d.dispose());
  }
}

function sameSpec(a: WatchSpec, b: WatchSpec): boolean {
  return a.path === b.path && a.preset === b.preset && a.regex === b.regex;
}

/** The path as the workspace names it (relative inside it), else its base name. */
function labelOf(p: string): string {
  return vscode.workspace.asRelativePath(p, false) || path.basename(p);
}

/** A timeline step as a probe result (the document's curves beside the probe text's). */
function timelineProbe(ev: TimelineEvent, c: RunCheckpoint | undefined): RunProbeResult {
  const heads = c?.heads || Math.round(Math.sqrt(ev.entropy.length));
  return {
    checkpoint: ev.path,
    step: ev.step,
    family: c?.family ?? 'adaptive',
    layers: heads ? ev.entropy.length / heads : 0,
    heads,
    tokens: 0,
    meanNll: ev.meanNll,
    entropy: ev.entropy,
    signals: ev.headSignals,
  };
}

/** The editor an analysis should read: the active one, else the first visible (the monitor has the focus). */
function targetEditor(): vscode.TextEditor | undefined {
  return vscode.window.activeTextEditor ?? vscode.window.visibleTextEditors[0];
}

/** A checkpoint's mark: load it as the model (Load Model) and analyse the document (Analyze Attention). */
async function analyzeWithCheckpoint(checkpoint: string): Promise<void> {
  const editor = targetEditor();
  if (!editor) return void vscode.window.showWarningMessage('Head Lens: open a file to analyse with this checkpoint first.');
  await vscode.commands.executeCommand(Command.LoadModel, checkpoint);
  await vscode.window.showTextDocument(editor.document, { viewColumn: editor.viewColumn, preserveFocus: false });
  await vscode.commands.executeCommand(Command.Analyze, editor.document.uri);
}

type PresetPick = vscode.QuickPickItem & { preset?: RunLogPreset; regex?: boolean };

/** The reading of a log: detected, a preset, or a regex the user types (checked as they type). */
async function pickReading(target: string): Promise<Pick<WatchSpec, 'preset' | 'regex'> | undefined> {
  const items: PresetPick[] = [
    { label: 'Detect automatically', description: 'nanoGPT, autoresearch, a-gpt or parameter-golf lines' },
    ...PRESETS.map((p) => ({ label: p, preset: p })),
    { label: 'Custom regex…', description: 'named groups: (?<step>…) and one per series', regex: true },
  ];
  const pick = await vscode.window.showQuickPick(items, { title: `Head Lens: how to read ${path.basename(target)}`, placeHolder: 'TensorBoard, JSONL and CSV files are read by their format' });
  if (!pick) return undefined;
  if (!pick.regex) return pick.preset ? { preset: pick.preset } : {};
  const regex = await vscode.window.showInputBox({
    title: 'Head Lens: a regular expression for the log lines',
    value: String.raw`step (?<step>\d+).*loss[:= ]+(?<loss>[-\d.e]+)`,
    validateInput: regexProblem,
  });
  return regex ? { regex } : undefined;
}

/** Why a regex cannot read steps, or undefined when it can. */
export function regexProblem(source: string): string | undefined {
  try {
    new RegExp(source);
  } catch (e) {
    return `not a regular expression: ${(e as Error).message}`;
  }
  return /\(\?<step>/.test(source) ? undefined : 'needs a named group (?<step>…) for the x axis';
}

/** Watch Training Run…: a file or folder (picked, or given by a caller), then how to read it. */
async function watchCommand(watch: WatchController, target?: vscode.Uri | string, given?: Partial<WatchSpec>): Promise<WatchHandle | undefined> {
  let file = target instanceof vscode.Uri ? target.fsPath : target;
  if (!file) {
    const picked = await vscode.window.showOpenDialog({ canSelectFiles: true, canSelectFolders: true, canSelectMany: false, defaultUri: vscode.workspace.workspaceFolders?.[0]?.uri, title: 'Head Lens: a training log, metrics file, TensorBoard logdir or run folder', openLabel: 'Watch' });
    file = picked?.[0]?.fsPath;
  }
  if (!file) return undefined;
  let reading: Pick<WatchSpec, 'preset' | 'regex'> | undefined = given ?? {};
  if (!given && !STRUCTURED.test(path.basename(file))) reading = await pickReading(file);
  if (!reading) return undefined;
  const handle = watch.watch({ ...given, path: file, ...reading });
  void vscode.commands.executeCommand(`${MonitorView.viewId}.focus`); // show the curves
  return handle;
}

/** Watch Training Run…; returns the controller (the grid follows its runs through it). */
export function register(ctx: vscode.ExtensionContext, engine: EngineClient, monitor: MonitorView): WatchController {
  const watch = new WatchController(ctx, engine, monitor);
  watch.track(vscode.commands.registerCommand(Command.WatchRun, (target?: vscode.Uri | string, given?: Partial<WatchSpec>) => watchCommand(watch, target, given)));
  return watch;
}
