/**
 * Run Experiment Grid…: pick a grid spec of the workspace, or create one from the built-in
 * template (the seed's autoresearch table) in `.headlens/` with the workspace as its data; the
 * engine runs the variants one after another (`grid/run`) under a cancellable progress
 * notification. The table goes to the monitor after every run, the grid's run folders are watched
 * there (curves per variant, checkpoint marks one click from an analysis), and a later start of
 * the same spec resumes: finished runs are not redone.
 */
import * as vscode from 'vscode';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { GridEvent, GridTable } from '../engine/protocol';
import { Command } from './commands';
import { describeError, type EngineClient } from './engineClient';
import type { MonitorView } from './monitorView';
import type { WatchController } from './watch';

const SPEC_GLOB = '**/{*grid*.json,.headlens/*.json}';
const NOT_SPECS = '**/{node_modules,.git,dist,out}/**';

type SpecPick = vscode.QuickPickItem & { file?: string; create?: boolean };

export class GridController {
  private running: vscode.CancellationTokenSource | null = null;

  constructor(private readonly engine: EngineClient, private readonly monitor: MonitorView, private readonly watch: WatchController) {}

  get active(): boolean {
    return this.running !== null;
  }

  /** Runs (or resumes) a grid; the final table, or undefined when it failed or was cancelled. */
  async run(specFile: string): Promise<GridTable | undefined> {
    if (this.running) {
      void vscode.window.showInformationMessage('Head Lens: a grid is running already; cancel it from its notification first.');
      return undefined;
    }
    const cts = (this.running = new vscode.CancellationTokenSource());
    let last: GridTable | undefined;
    let watching = false;
    try {
      return await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Head Lens grid ${path.basename(specFile)}`, cancellable: true }, async (progress, token) => {
        token.onCancellationRequested(() => cts.cancel());
        const onEvent = (e: GridEvent) => {
          if (e.kind === 'table') {
            last = e.table;
            this.monitor.setGrid(e.table);
            if (!watching) {
              watching = true;
              fs.mkdirSync(e.table.out, { recursive: true });
              this.watch.watch({ path: e.table.out, label: `grid: ${e.table.name}`, probe: false });
            }
          } else if (e.kind === 'run' && e.state === 'started') progress.report({ message: `${e.index}/${e.total}: ${e.variant}` });
          else if (e.kind === 'train' && e.event.kind === 'eval') progress.report({ message: `${e.variant}: step ${e.event.step}, val loss ${e.event.val_loss.toFixed(3)}` });
        };
        const table = await this.engine.request('grid/run', { spec: specFile }, cts.token, onEvent);
        this.monitor.setGrid(table);
        void announce(table);
        return table;
      });
    } catch (e) {
      const msg = describeError(e);
      if (msg) void vscode.window.showErrorMessage(`Head Lens: the grid ${path.basename(specFile)} failed: ${msg}`);
      else if (last) void vscode.window.showInformationMessage(`Head Lens: grid stopped; ${last.rows.filter((r) => r.status === 'done').length} of ${last.rows.length} rows are done. Run it again to resume.`);
      return undefined;
    } finally {
      cts.dispose();
      this.running = null;
    }
  }

  dispose(): void {
    this.running?.cancel();
  }
}

async function announce(table: GridTable): Promise<void> {
  const winners = table.waves.filter((w) => w.winner).map((w) => `wave ${w.wave}: ${w.winner}`);
  const pick = await vscode.window.showInformationMessage(`Head Lens: grid "${table.name}" done${winners.length ? ` (${winners.join(', ')})` : ''}.`, 'Open CSV', 'Open JSON');
  if (pick) await vscode.window.showTextDocument(vscode.Uri.file(pick === 'Open CSV' ? table.exports.csv : table.exports.json));
}

/** The workspace's grid specs (JSON files with variants), or creating one from the template. */
async function pickSpec(engine: EngineClient): Promise<string | undefined> {
  const files = await vscode.workspace.findFiles(SPEC_GLOB, NOT_SPECS, 200);
  const specs = files.filter((f) => !/\.(state|results)\.json$/.test(f.fsPath) && looksLikeSpec(f.fsPath));
  const items: SpecPick[] = [
    ...specs.map((f) => ({ label: `$(beaker) ${vscode.workspace.asRelativePath(f)}`, description: stateNote(f.fsPath), file: f.fsPath })),
    { label: '$(new-file) Create from the autoresearch template…', description: 'the seed table: window patterns, value embeddings, softcap, head dim, GQA', create: true },
  ];
  const pick = await vscode.window.showQuickPick(items, { title: 'Head Lens: run an experiment grid', placeHolder: 'a grid spec, or a new one from the template' });
  if (!pick) return undefined;
  return pick.create ? createFromTemplate(engine) : pick.file;
}

function looksLikeSpec(file: string): boolean {
  try {
    const o = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
    return Array.isArray(o.variants) && typeof o.budget === 'object';
  } catch {
    return false;
  }
}

/** "resumes: 5 runs done" when a state file lies beside the spec. */
function stateNote(file: string): string | undefined {
  const state = file.replace(/\.json$/i, '.state.json');
  try {
    const runs = Object.values((JSON.parse(fs.readFileSync(state, 'utf8')) as { runs: Record<string, { status: string }> }).runs);
    return `resumes: ${runs.filter((r) => r.status === 'done').length} runs done`;
  } catch {
    return undefined;
  }
}

/** `.headlens/grid-autoresearch.json` in the first workspace folder (hidden from the data's folder walk), the folder as its data. */
async function createFromTemplate(engine: EngineClient): Promise<string | undefined> {
  const folder = vscode.workspace.workspaceFolders?.[0];
  if (!folder) return void vscode.window.showWarningMessage('Head Lens: open a folder first: the template trains on the workspace.');
  const dir = path.join(folder.uri.fsPath, '.headlens');
  fs.mkdirSync(dir, { recursive: true });
  let file = path.join(dir, 'grid-autoresearch.json');
  for (let i = 2; fs.existsSync(file); i++) file = path.join(dir, `grid-autoresearch-${i}.json`);
  const spec = await engine.request('grid/template', { name: 'autoresearch', data: ['..'] });
  fs.writeFileSync(file, JSON.stringify(spec, null, 2) + '\n');
  await vscode.window.showTextDocument(vscode.Uri.file(file), { preview: false, preserveFocus: true });
  return file;
}

/** Run Experiment Grid…: with a spec path (a caller, the tests) it runs that one. */
export function register(engine: EngineClient, monitor: MonitorView, watch: WatchController): vscode.Disposable {
  const grid = new GridController(engine, monitor, watch);
  const command = vscode.commands.registerCommand(Command.RunGrid, async (spec?: vscode.Uri | string) => {
    const file = spec instanceof vscode.Uri ? spec.fsPath : spec ?? (await pickSpec(engine));
    return file ? grid.run(file) : undefined;
  });
  return vscode.Disposable.from(command, grid);
}
