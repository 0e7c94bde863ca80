/**
 * Head Lens: activation only wires things together and pushes every disposable. Returns a small
 * API that the extension-host tests use (decorations applied, the engine's pid, the monitor).
 */
import * as vscode from 'vscode';
import { Command } from './commands';
import { SettingsWatcher } from './settings';
import { EngineManager, describeError } from './engine';
import { AnalysisStore } from './analysis';
import { TokenDecorations } from './decorations';
import * as hover from './hover';
import * as statusBar from './statusBar';
import { ExplorerPanel } from './explorerPanel';
import { MonitorView } from './monitorView';
import { TrainingController } from './training';
import { exportAnalysis } from './exportCmd';
import { installGpuBackend } from './gpu';

export interface HeadLensApi {
  engine: EngineManager;
  store: AnalysisStore;
  decorationCount(uri: vscode.Uri): number;
  monitorEventCount(): number;
  training: TrainingController;
}

export function activate(ctx: vscode.ExtensionContext): HeadLensApi {
  const log = vscode.window.createOutputChannel('Head Lens', { log: true });
  const settings = new SettingsWatcher();
  const engine = new EngineManager(ctx, settings, log);
  const store = new AnalysisStore(engine, settings);
  const decorations = new TokenDecorations(store, settings);
  const explorer = new ExplorerPanel(ctx.extensionUri, store);
  let training: TrainingController;
  const monitor = new MonitorView(ctx.extensionUri, (cmd, runId) => void training.control(cmd, runId));
  training = new TrainingController(engine, monitor, ctx.globalStorageUri);
  ctx.subscriptions.push(log, settings, engine, store, decorations, explorer, monitor, training, hover.register(store), statusBar.register(engine));
  ctx.subscriptions.push(vscode.window.registerWebviewViewProvider(MonitorView.viewId, monitor, { webviewOptions: { retainContextWhenHidden: false } }));

  const register = (id: Command, fn: (...args: never[]) => unknown) => ctx.subscriptions.push(vscode.commands.registerCommand(id, fn));
  register(Command.Analyze, async (whole?: boolean) => {
    const editor = vscode.window.activeTextEditor;
    if (!editor) return void vscode.window.showWarningMessage('Head Lens: open a file to analyse first.');
    return store.analyze(editor, AnalysisStore.rangeFor(editor, whole === true));
  });
  register(Command.LoadModel, async () => {
    const starter = 'Use the embedded starter model';
    const pick = await vscode.window.showQuickPick(['Choose a checkpoint file…', starter], { title: 'Head Lens: model' });
    if (!pick) return;
    let modelPath = '';
    if (pick !== starter) {
      const files = await vscode.window.showOpenDialog({ canSelectMany: false, filters: { Checkpoints: ['safetensors', 'pt', 'pth'] }, title: 'Head Lens: model checkpoint' });
      if (!files?.length) return;
      modelPath = files[0].fsPath;
    }
    const target = vscode.workspace.workspaceFolders ? vscode.ConfigurationTarget.Workspace : vscode.ConfigurationTarget.Global;
    await vscode.workspace.getConfiguration('headlens').update('modelPath', modelPath, target);
    try {
      const m = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'Head Lens: loading the model' }, () => engine.ensureModel());
      store.clear();
      void vscode.window.showInformationMessage(`Head Lens: loaded ${m.family} (${m.paramCount.toLocaleString()} parameters)${m.note ? ` — ${m.note}` : ''}.`);
    } catch (e) {
      const msg = describeError(e);
      if (msg) void vscode.window.showErrorMessage(`Head Lens: ${msg}`);
    }
  });
  register(Command.ShowExplorer, () => explorer.show());
  register(Command.OpenExplorerAt, (uri: string, token: number) => explorer.show(uri, token));
  register(Command.Train, () => training.pickAndStart());
  register(Command.StopTraining, () => training.control('stop'));
  register(Command.ClearAnnotations, () => store.clear());
  register(Command.Export, (format?: 'json' | 'svg' | 'png', target?: vscode.Uri) => exportAnalysis(store, explorer, format, target));
  register(Command.InstallGpu, () => installGpuBackend(ctx, engine));

  return {
    engine,
    store,
    training,
    decorationCount: (uri) => decorations.counts.get(uri.toString()) ?? 0,
    monitorEventCount: () => monitor.eventCount,
  };
}

export function deactivate(): void {}
