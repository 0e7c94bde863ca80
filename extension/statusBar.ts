/**
 * The status-bar items — the loaded model and the engine's backend, with Load Model… on click (a
 * checkpoint of the workspace, any file, or the embedded starter model); Follow Cursor's switch
 * ("$(eye) Follow", its mode and heads) — and what the colour legend writes: a metric's or the
 * cursor's attention scale as "NLL 0.20–7.90 nats ▁▂▃▄▅▆▇" (one block per colour level).
 */
import * as vscode from 'vscode';
import * as path from 'node:path';
import { Command } from './commands';
import { describeError, type EngineClient } from './engineClient';
import { setModelPath, type SettingsWatcher } from './settings';
import type { FollowMode } from './cursorAttention';

/** One block per colour level, low to high (decorations.ts LEVELS = 7). */
export const LEGEND_RAMP = '▁▂▃▄▅▆▇';

/** A value for the legend: two decimals, or an exponent for tiny ones. */
export function formatValue(v: number): string {
  return Math.abs(v) >= 0.01 || v === 0 ? v.toFixed(2) : v.toExponential(1);
}

/** "0.20–7.90 nats": the range the colour levels span. */
export function formatScale(lo: number, hi: number, unit = ''): string {
  return `${formatValue(lo)}–${formatValue(hi)}${unit ? ` ${unit}` : ''}`;
}

/** What Follow Cursor's switch shows. */
export interface FollowItemState {
  enabled: boolean;
  mode: FollowMode;
  /** The heads read, in words ("L1.H2", "L0 max over heads"). */
  heads: string;
  topK: number;
}

const MODE_WORDS: Record<FollowMode, string> = { attendsTo: 'attends to', attendedBy: 'attended by' };

/** "$(eye) Follow: attends to · L1.H2" while on, "$(eye-closed) Follow" while off; a click toggles it. */
export class FollowStatusItem implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('headlens.followCursor', vscode.StatusBarAlignment.Right, 98);

  constructor() {
    this.item.name = 'Head Lens Follow Cursor';
    this.item.command = Command.ToggleFollowCursor;
  }

  /** Shown while on, or while there is an analysis to follow. */
  update(state: FollowItemState, visible: boolean): void {
    this.item.text = state.enabled ? `$(eye) Follow: ${MODE_WORDS[state.mode]} · ${state.heads}` : '$(eye-closed) Follow';
    const md = new vscode.MarkdownString(
      state.enabled
        ? `**Follow Cursor** is on: the token under the cursor is the query and every other token is tinted by how much it ${state.mode === 'attendsTo' ? 'is attended to by the query' : 'attends to the token under the cursor'} (${state.heads}); the top ${state.topK} are underlined and listed in the hover.\n\n` +
            `[Switch mode](command:${Command.FollowCursorMode}) · [Choose heads](command:${Command.ChooseFollowAggregate}) · [Next head](command:${Command.NextHead}) · [Next layer](command:${Command.NextLayer}) · [Turn off](command:${Command.ToggleFollowCursor})`
        : `**Follow Cursor** is off. [Turn it on](command:${Command.ToggleFollowCursor}) to see what the token under the cursor attends to.`,
    );
    md.isTrusted = { enabledCommands: [Command.FollowCursorMode, Command.ChooseFollowAggregate, Command.NextHead, Command.NextLayer, Command.ToggleFollowCursor] };
    this.item.tooltip = md;
    if (visible) this.item.show();
    else this.item.hide();
  }

  get text(): string {
    return this.item.text;
  }

  dispose(): void {
    this.item.dispose();
  }
}

const STARTER = 'starter';

function itemText(engine: EngineClient): string {
  const m = engine.model, i = engine.init;
  const model = !m ? 'no model' : m.path.includes(STARTER) ? `${m.family} (starter)` : `${m.family} (${path.basename(m.path)})`;
  return `$(pulse) ${model}${i ? ` · ${i.backend.name}` : ''}`;
}

function itemTooltip(engine: EngineClient): vscode.MarkdownString {
  const m = engine.model, i = engine.init;
  const model = m
    ? `**Model** ${m.path}: ${m.family}, ${m.paramCount.toLocaleString('en')} parameters, ${m.layers} layers × ${m.heads} heads${m.kvHeads !== m.heads ? ` (${m.kvHeads} kv heads)` : ''}, block ${m.config.block_size}; tokenizer ${m.tokenizer.kind}${m.signals.length ? `; signals ${m.signals.map((s) => s.name).join(', ')}` : ''}${m.note ? ` (${m.note})` : ''}`
    : '**Model** not loaded yet: Analyze Attention loads `headlens.modelPath` (empty: the embedded starter model)';
  const backend = i ? `**Runtime** ${i.backend.name} on ${i.device.name}${i.device.vendor ? ` (${i.device.vendor})` : ''}: ${i.backend.reason}` : '**Engine** not running (it starts on first use)';
  const skipped = i?.backend.skipped.length ? `Skipped: ${i.backend.skipped.map((s) => `${s.name} — ${s.reason}`).join('; ')}` : '';
  return new vscode.MarkdownString([model, backend, skipped, 'Click to load another model.'].filter(Boolean).join('\n\n'));
}

type ModelPick = vscode.QuickPickItem & { modelPath?: string; browse?: boolean };

async function pickModelPath(): Promise<string | undefined> {
  const found = await vscode.workspace.findFiles('**/*.{safetensors,pt,pth}', '**/{node_modules,.git}/**', 50);
  const items: ModelPick[] = [
    { label: '$(file-directory) Choose a checkpoint file…', browse: true },
    { label: '$(package) Embedded starter model', description: 'adaptive, trained on the d3 sources', modelPath: '' },
    ...found.map((f) => ({ label: `$(file-binary) ${vscode.workspace.asRelativePath(f)}`, modelPath: f.fsPath })),
  ];
  const pick = await vscode.window.showQuickPick(items, { title: 'Head Lens: load a model', placeHolder: 'a checkpoint (.safetensors, .pt, .pth) or the starter model' });
  if (!pick) return undefined;
  if (!pick.browse) return pick.modelPath;
  const files = await vscode.window.showOpenDialog({ canSelectMany: false, filters: { Checkpoints: ['safetensors', 'pt', 'pth'] }, title: 'Head Lens: model checkpoint' });
  return files?.[0]?.fsPath;
}

/** Load Model…: with a path (from a finished training run) it skips the picker. */
async function loadModel(engine: EngineClient, settings: SettingsWatcher, given?: string): Promise<void> {
  const modelPath = typeof given === 'string' ? given : await pickModelPath();
  if (modelPath === undefined) return;
  if (modelPath && !(await engine.confirmUntrusted(modelPath))) return;
  await setModelPath(modelPath);
  settings.refresh(); // the change event may come after this resolves
  try {
    const m = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'Head Lens: loading the model', cancellable: true }, (_, token) => engine.ensureModel(token, true));
    void vscode.window.showInformationMessage(`Head Lens: loaded ${m.family} (${m.paramCount.toLocaleString('en')} parameters)${m.note ? `: ${m.note}` : ''}.`);
  } catch (e) {
    const msg = describeError(e);
    if (msg) void vscode.window.showErrorMessage(`Head Lens: could not load ${modelPath || 'the starter model'}: ${msg}`);
  }
}

export function register(engine: EngineClient, settings: SettingsWatcher): vscode.Disposable {
  const item = vscode.window.createStatusBarItem('headlens.model', vscode.StatusBarAlignment.Right, 100);
  item.name = 'Head Lens model';
  item.command = Command.LoadModel;
  const update = () => {
    item.text = itemText(engine);
    item.tooltip = itemTooltip(engine);
  };
  update();
  item.show();
  return vscode.Disposable.from(
    item,
    engine.onDidChange(update),
    vscode.commands.registerCommand(Command.LoadModel, (modelPath?: string) => loadModel(engine, settings, modelPath)),
  );
}
