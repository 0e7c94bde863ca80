/**
 * Train Model…: pick files/folders of the workspace, the family and the number of steps; the run
 * streams into the sidebar monitor. Stop Training stops it promptly (a checkpoint is kept).
 */
import * as vscode from 'vscode';
import * as path from 'node:path';
import { FAMILIES, type Family, type TrainResult } from '../engine/protocol';
import { describeError, type EngineManager } from './engine';
import type { MonitorView } from './monitorView';

/** Model sizes offered by Train Model… (GPT-2 vocabulary in every case). */
const SIZES: { label: string; detail: string; config?: Record<string, unknown> }[] = [
  { label: 'tiny', detail: 'width 32, 1 layer, 4 heads — seconds per step on a CPU', config: { n_layer: 1, n_head: 4, n_embd: 32, hyper: { rank: 4 } } },
  { label: 'small', detail: 'width 64, 2 layers, 4 heads', config: { n_layer: 2, n_head: 4, n_embd: 64, hyper: { rank: 4 } } },
  { label: 'a-gpt default', detail: 'width 256, 4 layers, 4 heads (30M parameters) — wants a GPU' },
];

export class TrainingController implements vscode.Disposable {
  private runId: string | null = null;
  private cts: vscode.CancellationTokenSource | null = null;

  constructor(private readonly engine: EngineManager, private readonly monitor: MonitorView, private readonly storage: vscode.Uri) {}

  get active(): boolean {
    return this.cts !== null;
  }

  async pickAndStart(): Promise<TrainResult | undefined> {
    if (this.active) {
      void vscode.window.showInformationMessage('Head Lens: a training run is already active (Head Lens: Stop Training).');
      return undefined;
    }
    const folders = vscode.workspace.workspaceFolders ?? [];
    const items: (vscode.QuickPickItem & { fsPath: string })[] = folders.map((f) => ({ label: `$(folder) ${f.name}`, description: 'whole folder', fsPath: f.uri.fsPath }));
    const files = await vscode.workspace.findFiles('**/*.{py,ts,js,md,txt,rs,go,java,c,cpp,h,json}', '**/{node_modules,.git,dist,out}/**', 500);
    for (const f of files) items.push({ label: `$(file) ${vscode.workspace.asRelativePath(f)}`, fsPath: f.fsPath });
    const picked = await vscode.window.showQuickPick(items, { canPickMany: true, title: 'Head Lens: training data (files or folders)', placeHolder: 'pick the text to train on' });
    if (!picked?.length) return undefined;
    const family = await vscode.window.showQuickPick(['adaptive', ...FAMILIES.filter((f) => f !== 'adaptive')].map((f) => ({ label: f })), { title: 'Model family' });
    if (!family) return undefined;
    const size = await vscode.window.showQuickPick(SIZES.map((s) => ({ label: s.label, detail: s.detail, config: s.config })), { title: 'Model size' });
    if (!size) return undefined;
    const stepsText = await vscode.window.showInputBox({ title: 'Training steps', value: '200', validateInput: (v) => (/^[1-9]\d*$/.test(v) ? undefined : 'a positive whole number') });
    if (!stepsText) return undefined;
    return this.start({ data: picked.map((p) => p.fsPath), family: family.label as Family, steps: Number(stepsText), config: size.config });
  }

  async start(p: { data: string[]; family: Family; steps: number; batchSize?: number; seqLen?: number; config?: Record<string, unknown> }): Promise<TrainResult | undefined> {
    const out = path.join(this.storage.fsPath, 'runs', `${p.family}-${new Date().toISOString().replace(/[:.]/g, '-')}`);
    this.cts = new vscode.CancellationTokenSource();
    void vscode.commands.executeCommand('headlens.monitor.focus');
    try {
      const result = await this.engine.request(
        'train/start',
        { data: p.data, family: p.family, steps: p.steps, out, batchSize: p.batchSize ?? 4, seqLen: p.seqLen ?? 128, config: p.config as never, probeInterval: 5, evalInterval: Math.max(1, Math.floor(p.steps / 10)) },
        this.cts.token,
        (e) => {
          if (e.kind === 'status' && e.state === 'starting') this.runId = e.runId;
          this.monitor.add(e);
        },
      );
      void vscode.window.showInformationMessage(`Head Lens: training ${result.stoppedEarly ? 'stopped' : 'finished'} after ${result.steps} steps${result.bestValLoss !== null ? `, best validation loss ${result.bestValLoss.toFixed(3)}` : ''}${result.checkpoint ? ` (${result.checkpoint})` : ''}.`);
      return result;
    } catch (e) {
      const msg = describeError(e);
      if (msg) void vscode.window.showErrorMessage(`Head Lens: training failed: ${msg}`);
      return undefined;
    } finally {
      this.cts.dispose();
      this.cts = null;
      this.runId = null;
    }
  }

  async control(cmd: 'stop' | 'pause' | 'resume', runId?: string): Promise<void> {
    if (!this.active) {
      if (cmd === 'stop') void vscode.window.showInformationMessage('Head Lens: no training run is active.');
      return;
    }
    const method = cmd === 'stop' ? 'train/stop' : cmd === 'pause' ? 'train/pause' : 'train/resume';
    try {
      await this.engine.request(method, { runId: runId ?? this.runId ?? undefined });
    } catch (e) {
      const msg = describeError(e);
      if (msg) void vscode.window.showErrorMessage(`Head Lens: ${msg}`);
    }
  }

  dispose(): void {
    this.cts?.cancel();
  }
}
