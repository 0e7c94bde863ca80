/**
 * The engine process from the extension's side: spawned on first use (`node dist/engine.js
 * serve`), `initialize` handshake with a protocol-version check, the model loaded per settings
 * (asking first in an untrusted workspace), logs to the "Head Lens" output channel, and a restart
 * on next use after a crash — with one notification, not one per pending call.
 */
import * as vscode from 'vscode';
import * as path from 'node:path';
import { spawnEngine, EngineRequestError, type SpawnedEngine } from '../engine/client';
import { PROTOCOL_VERSION, type InitializeResult, type Method, type ModelInfo, type ParamsOf, type ProgressOf, type ResultOf } from '../engine/protocol';
import type { SettingsWatcher } from './settings';

export class EngineManager implements vscode.Disposable {
  private engine: SpawnedEngine | null = null;
  private starting: Promise<SpawnedEngine> | null = null;
  init: InitializeResult | null = null;
  model: ModelInfo | null = null;
  private loadedKey = '';
  private intentionalStop = false;
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChange = this.changed.event;

  constructor(
    private readonly ctx: vscode.ExtensionContext,
    private readonly settings: SettingsWatcher,
    readonly log: vscode.LogOutputChannel,
  ) {
    settings.onChange((_, e) => {
      if (e.affectsConfiguration('headlens.backend') || e.affectsConfiguration('headlens.engine.nodePath')) void this.restart();
      else if (e.affectsConfiguration('headlens.modelPath') || e.affectsConfiguration('headlens.configPath')) this.loadedKey = '';
    });
  }

  get pid(): number | undefined {
    return this.engine?.process.pid;
  }

  private gpuModulePaths(): string[] {
    return [path.join(this.ctx.globalStorageUri.fsPath, 'gpu')];
  }

  private async start(): Promise<SpawnedEngine> {
    const s = this.settings.current;
    const engineJs = path.join(this.ctx.extensionPath, 'dist', 'engine.js');
    this.log.info(`starting the engine: ${engineJs} (backend ${s.backend})`);
    const e = spawnEngine(engineJs, { nodePath: s.nodePath || undefined, args: ['--backend', s.backend], cwd: this.ctx.extensionPath });
    e.onLog((l) => this.log.info(`[engine] ${l}`));
    e.connection.onClose((reason) => {
      if (this.engine === e) {
        this.engine = null;
        this.init = null;
        this.model = null;
        this.loadedKey = '';
        this.changed.fire();
        if (!this.intentionalStop) {
          this.log.error(`engine stopped: ${reason}`);
          void vscode.window.showWarningMessage(`Head Lens: the engine stopped (${reason}). It restarts on the next request.`);
        }
      }
    });
    const init = await e.connection.request('initialize', { clientName: 'vscode', protocolVersion: PROTOCOL_VERSION, backend: s.backend, modulePaths: this.gpuModulePaths() });
    if (init.protocolVersion !== PROTOCOL_VERSION) {
      e.dispose();
      throw new Error(`engine speaks protocol ${init.protocolVersion}, the extension ${PROTOCOL_VERSION}: reinstall Head Lens`);
    }
    this.log.info(`engine ${init.engineVersion} on ${init.backend.name} (${init.device.name}); ${init.backend.skipped.map((x) => `${x.name}: ${x.reason}`).join('; ')}`);
    this.engine = e;
    this.init = init;
    this.changed.fire();
    return e;
  }

  async ensure(): Promise<SpawnedEngine> {
    if (this.engine && !this.engine.connection.closed) return this.engine;
    this.intentionalStop = false;
    this.starting ??= this.start().finally(() => (this.starting = null));
    return this.starting;
  }

  /** Load the configured model if it is not the one loaded. */
  async ensureModel(token?: vscode.CancellationToken): Promise<ModelInfo> {
    const e = await this.ensure();
    const s = this.settings.current;
    const key = `${s.modelPath}|${s.configPath}`;
    if (this.model && this.loadedKey === key) return this.model;
    if (s.modelPath && !vscode.workspace.isTrusted) {
      const ok = await vscode.window.showWarningMessage(
        `Head Lens: load the checkpoint ${s.modelPath} in this untrusted workspace? Checkpoints are read without running code, but only load files you trust.`,
        { modal: true },
        'Load',
      );
      if (ok !== 'Load') throw new vscode.CancellationError();
    }
    this.model = await e.connection.request('model/load', { path: s.modelPath, config: s.configPath || undefined }, { token });
    this.loadedKey = key;
    this.log.info(`model ${this.model.path}: ${this.model.family}, ${this.model.paramCount} parameters${this.model.note ? ` (${this.model.note})` : ''}`);
    this.changed.fire();
    return this.model;
  }

  async request<M extends Method>(method: M, params: ParamsOf<M>, token?: vscode.CancellationToken, onProgress?: (v: ProgressOf<M>) => void): Promise<ResultOf<M>> {
    const e = await this.ensure();
    return e.connection.request(method, params, { token, onProgress });
  }

  async restart(): Promise<void> {
    this.stop();
    await this.ensure();
  }

  stop(): void {
    this.intentionalStop = true;
    const e = this.engine;
    this.engine = null;
    this.init = null;
    this.model = null;
    this.loadedKey = '';
    e?.dispose();
    this.changed.fire();
  }

  dispose(): void {
    this.stop();
    this.changed.dispose();
  }
}

/** One line for a failed request: cancelled → undefined (nothing to say). */
export function describeError(e: unknown): string | undefined {
  if (e instanceof vscode.CancellationError) return undefined;
  if (e instanceof EngineRequestError) return e.cancelled ? undefined : e.message;
  return (e as Error)?.message ?? String(e);
}
