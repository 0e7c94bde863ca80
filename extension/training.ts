/**
 * Train Model…: pick files and folders of the workspace, the family, a size, the config (its knobs:
 * GatedAttn, HYLA, window pattern, value embeddings, softcap… in the family's own field names) and
 * the number of steps; the run's events stream into the sidebar monitor, its step count into the status bar.
 * Stop Training stops it promptly (the engine keeps a checkpoint), and a finished run offers to
 * load its checkpoint.
 */
import * as vscode from 'vscode';
import * as path from 'node:path';
import { AGPT_FAMILIES, FAMILIES, type Family, type ModelConfig, type TrainParams, type TrainResult } from '../engine/protocol';
import { Command } from './commands';
import { describeError, type EngineClient } from './engineClient';
import { MonitorView } from './monitorView';

/** Model sizes offered (GPT-2 vocabulary in every case; the hypernetwork as a-gpt's, smaller rank). */
const SIZES: { label: string; detail: string; config?: Partial<ModelConfig> }[] = [
  { label: 'tiny', detail: 'width 32, 1 layer, 4 heads: seconds per step on a CPU', config: { n_layer: 1, n_head: 4, n_embd: 32, hyper: { rank: 4, n_heads: 2, n_layers: 2, alpha: 1 } } },
  { label: 'small', detail: 'width 64, 2 layers, 4 heads', config: { n_layer: 2, n_head: 4, n_embd: 64, hyper: { rank: 4, n_heads: 2, n_layers: 2, alpha: 1 } } },
  { label: 'default', detail: "the family's own defaults (a-gpt: width 256, 4 layers, 30M parameters): wants a GPU" },
];

/**
 * A size for `family`: the hypernetwork keys only for a-gpt's families; parameter-golf's layer
 * schedule fitted to the few layers of the small sizes (one loop over block 0, lanes from block 1).
 */
export function sizeConfig(family: Family, size: Partial<ModelConfig> | undefined): Partial<ModelConfig> {
  if (!size) return {};
  const { hyper, ...rest } = size;
  if (AGPT_FAMILIES.includes(family)) return { ...rest, hyper };
  if (family !== 'paramgolf') return rest;
  const layers = Math.max(2, rest.n_layer ?? 2);
  return { ...rest, n_layer: layers, n_kv_head: 2, paramgolf: { rope_dims: 8, num_loops: 1, loop_start: 0, loop_end: 1, parallel_start_layer: layers - 1, xsa_last_n: 1 } as ModelConfig['paramgolf'] };
}

const TEXT_FILES = '**/*.{py,ts,tsx,js,jsx,mjs,md,txt,rst,rs,go,java,kt,c,cc,cpp,h,hpp,cs,rb,php,sh,json,yaml,yml,toml,html,css}';
const NOT_DATA = '**/{node_modules,.git,dist,out,build,.venv,venv,__pycache__}/**';

export interface TrainOptions {
  data: string[];
  family: Family;
  steps: number;
  batchSize?: number;
  seqLen?: number;
  config?: Partial<ModelConfig>;
}

type DataItem = vscode.QuickPickItem & { fsPath: string };

/** Knobs worth a click per family; anything else is one edit away in the config step. */
const KNOBS: Partial<Record<Family, { label: string; detail: string; config: Partial<ModelConfig> }[]>> = {
  gpt2: [
    { label: 'GatedAttn', detail: 'a sigmoid gate per head and token on the attention output (gate: true)', config: { gate: true } },
    { label: 'HYLA', detail: 'scores RMS-normalised over heads, a ReLU value network (attention: rms_head, value_net: relu)', config: { attention: 'rms_head', value_net: 'relu' } },
  ],
  autoresearch: [
    { label: 'GatedAttn', detail: 'gate: true', config: { gate: true } },
    { label: 'HYLA', detail: 'attention: rms_head, value_net: relu', config: { attention: 'rms_head', value_net: 'relu' } },
    { label: 'window pattern SL', detail: 'window_pattern: SL (their default SSSL)', config: { window_pattern: 'SL' } },
    { label: 'value embeddings on every layer', detail: 'value_embeds: all', config: { value_embeds: 'all' } },
    { label: 'no value embeddings', detail: 'value_embeds: none', config: { value_embeds: 'none' } },
    { label: 'no softcap', detail: 'softcap: null (their default 15)', config: { softcap: null } },
  ],
};

/** The config step: knobs to tick, then the JSON to confirm or edit; undefined when the user backs out. */
async function pickConfig(family: Family, base: Partial<ModelConfig>): Promise<Partial<ModelConfig> | undefined> {
  let config = base;
  const knobs = KNOBS[family];
  if (knobs) {
    const picked = await vscode.window.showQuickPick(knobs, { canPickMany: true, title: `Knobs of ${family} (none: the plain model)` });
    if (!picked) return undefined;
    for (const k of picked) config = { ...config, ...k.config };
  }
  const text = await vscode.window.showInputBox({
    title: `Config of the ${family} model (JSON, the family's own field names; Enter to accept)`,
    value: JSON.stringify(config),
    validateInput: (v) => {
      try {
        const parsed: unknown = JSON.parse(v || '{}');
        return parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? undefined : 'a JSON object, e.g. {"n_layer": 2}';
      } catch (e) {
        return `not JSON: ${(e as Error).message}`;
      }
    },
  });
  if (text === undefined) return undefined;
  return JSON.parse(text || '{}') as Partial<ModelConfig>;
}

export class TrainingController implements vscode.Disposable {
  private runId: string | null = null;
  private cts: vscode.CancellationTokenSource | null = null;

  constructor(private readonly engine: EngineClient, private readonly monitor: MonitorView, private readonly runsDir: vscode.Uri) {}

  get active(): boolean {
    return this.cts !== null;
  }

  /** The pickers of Train Model…; undefined when the user backs out. */
  async pickAndStart(): Promise<TrainResult | undefined> {
    if (this.active) {
      void vscode.window.showInformationMessage('Head Lens: a training run is already active: stop it first (Head Lens: Stop Training).');
      return undefined;
    }
    const picked = await vscode.window.showQuickPick(dataItems(), { canPickMany: true, title: 'Head Lens: training data (files or folders)', placeHolder: 'pick the text to train on', matchOnDescription: true });
    if (!picked?.length) return undefined;
    // Temporal LoRA trains on a base of its own: Train Temporal LoRA…
    const family = await vscode.window.showQuickPick(['adaptive', ...FAMILIES.filter((f) => f !== 'adaptive' && f !== 'tlora')].map((f) => ({ label: f })), { title: 'Model family' });
    if (!family) return undefined;
    const size = await vscode.window.showQuickPick(SIZES, { title: 'Model size' });
    if (!size) return undefined;
    const config = await pickConfig(family.label as Family, sizeConfig(family.label as Family, size.config));
    if (!config) return undefined;
    const stepsText = await vscode.window.showInputBox({ title: 'Training steps', value: '200', validateInput: (v) => (/^[1-9]\d*$/.test(v.trim()) ? undefined : 'a whole number of steps, at least 1') });
    if (!stepsText) return undefined;
    return this.start({ data: picked.map((p) => p.fsPath), family: family.label as Family, steps: Number(stepsText.trim()), config });
  }

  /** Run one training to its end (or a stop); events go to the monitor. */
  async start(o: TrainOptions): Promise<TrainResult | undefined> {
    if (this.active) throw new Error('a training run is already active');
    const out = vscode.Uri.joinPath(this.runsDir, `${o.family}-${new Date().toISOString().replace(/[:.]/g, '-')}`).fsPath;
    const params: TrainParams = {
      data: o.data, family: o.family, steps: o.steps, out, config: o.config,
      batchSize: o.batchSize ?? 4, seqLen: o.seqLen ?? 128,
      probeInterval: 5, evalInterval: Math.max(1, Math.floor(o.steps / 10)),
    };
    const cts = (this.cts = new vscode.CancellationTokenSource());
    void vscode.commands.executeCommand('setContext', 'headlens.training', true); // Stop Training in menus
    void vscode.commands.executeCommand(`${MonitorView.viewId}.focus`); // show the curves
    try {
      const result = await vscode.window.withProgress({ location: vscode.ProgressLocation.Window, title: 'Head Lens training' }, (progress) =>
        this.engine.request('train/start', params, cts.token, (e) => {
          if (e.kind === 'status') this.runId = e.runId;
          if (e.kind === 'step') progress.report({ message: `step ${e.step}/${o.steps}, loss ${e.loss.toFixed(3)}` });
          this.monitor.add(e);
        }),
      );
      void this.announce(result);
      return result;
    } catch (e) {
      const msg = describeError(e);
      if (msg) void vscode.window.showErrorMessage(`Head Lens: training failed: ${msg}`);
      return undefined;
    } finally {
      cts.dispose();
      this.cts = null;
      this.runId = null;
      void vscode.commands.executeCommand('setContext', 'headlens.training', false);
    }
  }

  /** Stop, pause or resume a run (the monitor's buttons and Stop Training): train/start's or any that streams into the monitor. */
  async control(command: 'stop' | 'pause' | 'resume', runId?: string): Promise<void> {
    // this controller's run, else the latest the monitor saw (PonderTTT's or Temporal LoRA's training)
    const target = runId ?? this.runId ?? this.monitor.latestLiveRun;
    if (!target && !this.active) {
      if (command === 'stop') void vscode.window.showInformationMessage('Head Lens: no training run is active.');
      return;
    }
    const method = command === 'stop' ? 'train/stop' : command === 'pause' ? 'train/pause' : 'train/resume';
    try {
      await this.engine.request(method, { runId: target });
    } catch (e) {
      const msg = describeError(e);
      if (msg) void vscode.window.showErrorMessage(`Head Lens: ${command} failed: ${msg}`);
    }
  }

  private async announce(r: TrainResult): Promise<void> {
    const what = `training ${r.stoppedEarly ? 'stopped' : 'finished'} after ${r.steps} steps${r.bestValLoss !== null ? `, best validation loss ${r.bestValLoss.toFixed(3)}` : ''}`;
    if (!r.checkpoint) return void vscode.window.showInformationMessage(`Head Lens: ${what}.`);
    const pick = await vscode.window.showInformationMessage(`Head Lens: ${what}. Checkpoint: ${r.checkpoint}`, 'Load Checkpoint');
    if (pick) await vscode.commands.executeCommand(Command.LoadModel, r.checkpoint);
  }

  dispose(): void {
    this.cts?.cancel();
  }
}

/** Workspace folders, the folders that hold text files, and the files (at most 500). */
async function dataItems(): Promise<DataItem[]> {
  const roots = vscode.workspace.workspaceFolders ?? [];
  const files = await vscode.workspace.findFiles(TEXT_FILES, NOT_DATA, 500);
  const folders = new Set<string>();
  for (const f of files) {
    const dir = path.dirname(f.fsPath);
    if (!roots.some((r) => r.uri.fsPath === dir)) folders.add(dir);
  }
  return [
    ...roots.map((f) => ({ label: `$(root-folder) ${f.name}`, description: 'the whole workspace folder', fsPath: f.uri.fsPath })),
    ...[...folders].sort().map((d) => ({ label: `$(folder) ${vscode.workspace.asRelativePath(d)}`, fsPath: d })),
    ...files.map((f) => ({ label: `$(file) ${vscode.workspace.asRelativePath(f)}`, fsPath: f.fsPath })),
  ];
}

/** Train Model… and Stop Training. */
export function register(training: TrainingController): vscode.Disposable {
  return vscode.Disposable.from(
    vscode.commands.registerCommand(Command.Train, () => training.pickAndStart()),
    vscode.commands.registerCommand(Command.StopTraining, () => training.control('stop')),
  );
}
