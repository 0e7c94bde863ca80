/**
 * Head Lens: activation only wires the parts together and hands every disposable to VS Code.
 * Nothing starts here: the engine is spawned on first use. Returns a small API for the
 * extension-host tests (the engine's pid, the store, decoration counts, the monitor's buffer).
 */
import * as vscode from 'vscode';
import * as path from 'node:path';
import { SettingsWatcher } from './settings';
import { EngineClient } from './engineClient';
import { AnalysisStore, register as registerAnalysis } from './analysis';
import { TokenDecorations, register as registerDecorations } from './decorations';
import { register as registerHover } from './hover';
import { register as registerStatusBar } from './statusBar';
import { ExplorerPanel, register as registerExplorer } from './explorerPanel';
import { MonitorView, register as registerMonitor } from './monitorView';
import { TrainingController, register as registerTraining } from './training';
import { register as registerExport } from './export';
import { register as registerGpu } from './gpu';
import { register as registerWatch } from './watch';
import { register as registerGrid } from './grid';
import { register as registerPonder } from './ponder';
import { register as registerTlora } from './tlora';
import { register as registerTtt } from './ttt';
import { FollowCursor, register as registerFollowCursor } from './followCursor';
import { register as registerTimeline } from './timeline';
import { register as registerAdaptiveOff } from './adaptiveOff';
import { ResultsPanel } from './resultsPanel';
import { register as registerCompare } from './compare';
import { register as registerEvaluate } from './evaluate';
import { register as registerAblate } from './ablate';

export interface HeadLensApi {
  engine: EngineClient;
  store: AnalysisStore;
  training: TrainingController;
  explorer: ExplorerPanel;
  decorations: TokenDecorations;
  /** Follow Cursor: what it drew per document (renderedFor), its switches. */
  followCursor: FollowCursor;
  /** Tokens decorated in the visible editor of `uri` (0 when none). */
  decorationCount(uri: vscode.Uri): number;
  /** Training events the monitor holds for replay. */
  monitorEventCount(): number;
  /** The results panel (evaluation, compare, ablation sweeps): the view it shows. */
  results: ResultsPanel;
}

export function activate(ctx: vscode.ExtensionContext): HeadLensApi {
  const log = vscode.window.createOutputChannel('Head Lens', { log: true });
  const settings = new SettingsWatcher();
  const gpuModulePath = path.join(ctx.globalStorageUri.fsPath, 'gpu');
  const engine = new EngineClient(ctx.extensionPath, gpuModulePath, settings, log);
  const store = new AnalysisStore(engine, settings);
  const decorations = registerDecorations(store, settings);
  const explorer = new ExplorerPanel(ctx.extensionUri, store, decorations, settings);
  // the monitor's buttons drive the training controller, which feeds the monitor (the closure
  // runs only on a click, long after both exist)
  const monitor = new MonitorView(ctx.extensionUri, (command, runId) => void training.control(command, runId));
  const training = new TrainingController(engine, monitor, vscode.Uri.joinPath(ctx.globalStorageUri, 'runs'));
  const watch = registerWatch(ctx, engine, monitor);
  const adaptiveOff = registerAdaptiveOff(engine, store, decorations);
  const results = new ResultsPanel(ctx.extensionUri);

  ctx.subscriptions.push(
    log, settings, engine, store, decorations, explorer, monitor, training,
    registerAnalysis(store),
    adaptiveOff,
    registerHover(store, [adaptiveOff]),
    registerTimeline(ctx.extensionUri, engine, store),
    registerStatusBar(engine, settings),
    registerExplorer(explorer),
    registerMonitor(monitor),
    registerTraining(training),
    watch,
    registerGrid(engine, monitor, watch),
    registerExport(store, explorer, ctx.extensionPath),
    registerGpu({ extensionPath: ctx.extensionPath, modulePath: gpuModulePath }, engine, settings, ctx.globalState),
    registerPonder(engine, monitor),
    registerTlora(engine, store, monitor, vscode.Uri.joinPath(ctx.globalStorageUri, 'runs')),
    registerTtt(engine, store, ctx.extensionUri),
    results,
    registerCompare(engine, store, results),
    registerEvaluate(engine, results),
    registerAblate(engine, store, results),
  );
  // after the head-code hover: VS Code shows the later provider's part first
  const followCursor = registerFollowCursor(store, decorations, settings);
  ctx.subscriptions.push(followCursor);

  return {
    engine,
    store,
    training,
    explorer,
    decorations,
    followCursor,
    decorationCount: (uri) => decorations.counts.get(uri.toString()) ?? 0,
    monitorEventCount: () => monitor.eventCount,
    results,
  };
}

export function deactivate(): void {
  // everything is in ctx.subscriptions: disposing the engine client shuts the engine down
}
