/**
 * The engine process from the extension's side: spawned on first use (`node dist/engine.js serve`
 * with the extension host's own runtime unless `headlens.engine.nodePath` says otherwise), an
 * `initialize` handshake with a protocol-version check, typed requests with VS Code cancellation,
 * the engine's stderr in the "Head Lens" log channel, and — after a crash — every pending call
 * released as cancelled, one notification, and a fresh engine on the next request.
 */
import * as vscode from 'vscode';
import * as path from 'node:path';
import { spawnEngine, EngineRequestError, type SpawnedEngine } from '../engine/server/client';
import { PROTOCOL_VERSION, type InitializeResult, type Method, type ModelInfo, type ParamsOf, type ProgressOf, type ResultOf } from '../engine/protocol';
import type { SettingsWatcher } from './settings';

/** How long a stopping engine gets to answer `shutdown` and exit before it is killed. */
const SHUTDOWN_GRACE_MS = 1500;

export class EngineClient implements vscode.Disposable {
  private engine: SpawnedEngine | null = null;
  private starting: Promise<SpawnedEngine> | null = null;
  /** The handshake of the running engine (backend, device); null while none runs. */
  init: InitializeResult | null = null;
  /** The loaded model; null until `ensureModel`. */
  model: ModelInfo | null = null;
  /** `modelPath|configPath` of the loaded model: when the settings name another, the next use loads it. */
  private loadedKey = '';
  /** Checkpoints the user agreed to load although the workspace is not trusted (this session). */
  private readonly approvedUntrusted = new Set<string>();
  private readonly changed = new vscode.EventEmitter<void>();
  /** Fires when the engine starts or stops, or another model is loaded. */
  readonly onDidChange = this.changed.event;
  private readonly subs: vscode.Disposable[] = [];
  /** Bumped by every stop, so that an engine still starting with old settings is not kept. */
  private generation = 0;

  constructor(
    private readonly extensionPath: string,
    private readonly gpuModulePath: string,
    private readonly settings: SettingsWatcher,
    readonly log: vscode.LogOutputChannel,
  ) {
    this.subs.push(
      // a new backend or runtime needs a new process (a new model path is noticed by ensureModel)
      settings.onChange((_, e) => {
        if (e.affectsConfiguration('headlens.backend') || e.affectsConfiguration('headlens.threads') || e.affectsConfiguration('headlens.engine.nodePath')) this.stop();
      }),
    );
  }

  /** Process id of the running engine (tests kill it to check the restart). */
  get pid(): number | undefined {
    return this.engine?.process.pid;
  }

  get running(): boolean {
    return !!this.engine && !this.engine.connection.closed;
  }

  /** The running engine, started (and initialized) if none runs. Concurrent callers share one start. */
  async ensure(): Promise<SpawnedEngine> {
    if (this.engine && !this.engine.connection.closed) return this.engine;
    this.starting ??= this.start().finally(() => (this.starting = null));
    return this.starting;
  }

  async request<M extends Method>(method: M, params: ParamsOf<M>, token?: vscode.CancellationToken, onProgress?: (v: ProgressOf<M>) => void): Promise<ResultOf<M>> {
    if (token?.isCancellationRequested) throw new vscode.CancellationError();
    const e = await this.ensure();
    return e.connection.request(method, params, { token, onProgress });
  }

  /**
   * Load the configured model unless it is the one loaded (`reload`: load it again, e.g. a
   * checkpoint rewritten by training). Asks first in an untrusted workspace.
   */
  async ensureModel(token?: vscode.CancellationToken, reload = false): Promise<ModelInfo> {
    const e = await this.ensure();
    const s = this.settings.current;
    const key = `${s.modelPath}|${s.configPath}`;
    if (this.model && this.loadedKey === key && !reload) return this.model;
    if (s.modelPath && !(await this.confirmUntrusted(s.modelPath))) throw new vscode.CancellationError();
    const model = await e.connection.request('model/load', { path: s.modelPath, config: s.configPath || undefined }, { token });
    if (this.engine !== e) throw new vscode.CancellationError(); // the engine went away meanwhile
    this.model = model;
    this.loadedKey = key;
    this.log.info(`model ${model.path}: ${model.family}, ${model.paramCount.toLocaleString('en')} parameters${model.note ? ` (${model.note})` : ''}`);
    this.changed.fire();
    return model;
  }

  /**
   * Workspace trust: a checkpoint named by an untrusted workspace is loaded only after the user
   * agrees (once per path and session). The reader never executes code, but the file is not theirs.
   */
  async confirmUntrusted(checkpoint: string): Promise<boolean> {
    if (vscode.workspace.isTrusted || this.approvedUntrusted.has(checkpoint)) return true;
    const answer = await vscode.window.showWarningMessage(
      `Head Lens: load the checkpoint ${checkpoint} in this untrusted workspace?`,
      { modal: true, detail: 'Checkpoints are read without running any code from them, but only load files you trust.' },
      'Load',
    );
    if (answer !== 'Load') return false;
    this.approvedUntrusted.add(checkpoint);
    return true;
  }

  /** Stop the engine now and start a fresh one (backend changes, GPU installs). */
  async restart(): Promise<void> {
    this.stop();
    await this.ensure();
  }

  /** Ask the engine to shut down (pending calls are released when it exits); kill it if it lingers. */
  stop(): void {
    this.generation++;
    const e = this.engine;
    if (!e) return;
    this.forget();
    void e.connection.request('shutdown', {}).catch(() => undefined);
    const kill = setTimeout(() => e.dispose(), SHUTDOWN_GRACE_MS);
    e.process.once('exit', () => clearTimeout(kill));
    this.changed.fire();
  }

  dispose(): void {
    this.stop();
    this.subs.forEach((s) => s.dispose());
    this.changed.dispose();
  }

  private forget(): void {
    this.engine = null;
    this.init = null;
    this.model = null;
    this.loadedKey = '';
  }

  private async start(): Promise<SpawnedEngine> {
    const generation = this.generation;
    const s = this.settings.current;
    const engineJs = path.join(this.extensionPath, 'dist', 'engine.js');
    const runtime = s.nodePath || process.execPath;
    this.log.info(`starting the engine: ${runtime} ${engineJs} serve --backend ${s.backend}`);
    const e = spawnEngine(engineJs, { nodePath: s.nodePath || undefined, args: ['--backend', s.backend], cwd: this.extensionPath });
    e.onLog((line) => logEngineLine(this.log, line));
    let init: InitializeResult;
    try {
      init = await e.connection.request('initialize', { clientName: 'vscode', protocolVersion: PROTOCOL_VERSION, backend: s.backend, threads: s.threads, modulePaths: [this.gpuModulePath] });
    } catch (err) {
      e.dispose();
      const why = err instanceof Error ? err.message.replace(/^initialize was cancelled: /, '') : String(err);
      const hint = s.nodePath ? `check headlens.engine.nodePath (${s.nodePath})` : 'see the Head Lens output for its log';
      throw new Error(`the engine did not start (${why}): ${hint}`);
    }
    if (init.protocolVersion !== PROTOCOL_VERSION) {
      e.dispose();
      throw new Error(`the engine speaks protocol ${init.protocolVersion}, the extension ${PROTOCOL_VERSION}: reinstall Head Lens so that both come from the same version`);
    }
    if (generation !== this.generation) {
      e.dispose(); // stopped while starting (new backend or runtime): start again with the new settings
      return this.start();
    }
    const skipped = init.backend.skipped.map((x) => `${x.name}: ${x.reason}`).join('; ');
    this.log.info(`engine ${init.engineVersion} on ${init.backend.name} (${init.device.name}, ${init.backend.reason})${skipped ? `; skipped ${skipped}` : ''}`);
    e.connection.onClose((reason) => this.onEngineClosed(e, reason));
    this.engine = e;
    this.init = init;
    this.changed.fire();
    return e;
  }

  /** One notification per crash; the next request starts a new engine. Intentional stops say nothing. */
  private onEngineClosed(e: SpawnedEngine, reason: string): void {
    if (this.engine !== e) return; // stopped on purpose (stop() forgot it first)
    this.forget();
    this.changed.fire();
    this.log.error(`the engine stopped: ${reason}`);
    void vscode.window.showWarningMessage(`Head Lens: the engine stopped (${reason}). It restarts on the next request.`, 'Show Log').then((pick) => {
      if (pick) this.log.show(true);
    });
  }
}

/** Engine stderr lines carry no level: errors and warnings are recognised by their words. */
function logEngineLine(log: vscode.LogOutputChannel, line: string): void {
  if (/\b(error|failed|fatal)\b/i.test(line)) log.error(`[engine] ${line}`);
  else if (/\bwarn(ing)?\b/i.test(line)) log.warn(`[engine] ${line}`);
  else log.info(`[engine] ${line}`);
}

/** One line for a failed request, or undefined when there is nothing to say (it was cancelled). */
export function describeError(e: unknown): string | undefined {
  if (e instanceof vscode.CancellationError) return undefined;
  if (e instanceof EngineRequestError) return e.cancelled ? undefined : e.message;
  return e instanceof Error ? e.message : String(e);
}
