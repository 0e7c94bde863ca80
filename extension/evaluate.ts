/**
 * Evaluate Perplexity… and Evaluate Multiple Choice… on the loaded model. Perplexity scores the open
 * file, the selection or a folder (the engine reads the folder's files, one source each) with the
 * sliding-window rule (`eval/ppl`: `headlens.stride`, else half the context); multiple choice scores
 * a HellaSwag-style .jsonl (`eval/mc`: every ending on its own tokens after the context, by sum, per
 * token and per byte). Both run with a cancellable progress notification and show their numbers in
 * the results panel.
 */
import * as vscode from 'vscode';
import * as path from 'node:path';
import type { EvalPplParams, McResult, PplResult } from '../engine/protocol';
import { Command } from './commands';
import { describeError, type EngineClient } from './engineClient';
import type { ResultsPanel } from './resultsPanel';

export type PplScope = 'file' | 'selection' | 'folder';

export interface PplArgs {
  scope?: PplScope;
  /** The folder(s) to score (scope 'folder'; a dialog otherwise): each is a source of its own. */
  folder?: string | string[];
  /** The document (scope 'file' or 'selection'; default the active editor's). */
  uri?: vscode.Uri | string;
  context?: number;
  stride?: number;
}

export interface McArgs {
  /** The .jsonl of items (`ctx`, `endings`, `label`); a dialog otherwise. */
  file?: string;
  /** Score only the first N items. */
  limit?: number;
}

async function pickScope(hasSelection: boolean): Promise<PplScope | undefined> {
  const items: (vscode.QuickPickItem & { scope: PplScope })[] = [
    { label: '$(file) The open file', description: 'every token after the first', scope: 'file' },
    ...(hasSelection ? [{ label: '$(selection) The selection', description: 'scored as a document of its own', scope: 'selection' as const }] : []),
    { label: '$(folder) Folders…', description: 'every text file in them, per folder and overall', scope: 'folder' },
  ];
  return (await vscode.window.showQuickPick(items, { title: 'Head Lens: evaluate perplexity of…' }))?.scope;
}

/** What to score and how the results name it. */
async function pplInput(args: PplArgs): Promise<{ params: EvalPplParams; source: string } | undefined> {
  const doc = args.uri ? await vscode.workspace.openTextDocument(typeof args.uri === 'string' ? vscode.Uri.parse(args.uri) : args.uri) : vscode.window.activeTextEditor?.document;
  const editor = doc && vscode.window.activeTextEditor?.document === doc ? vscode.window.activeTextEditor : undefined;
  const scope = args.scope ?? (await pickScope(!!editor && !editor.selection.isEmpty));
  if (!scope) return undefined;
  const shape = { context: args.context, stride: args.stride || vscode.workspace.getConfiguration('headlens').get<number>('stride') || undefined };
  if (scope === 'folder') {
    const given = typeof args.folder === 'string' ? [args.folder] : args.folder;
    const folders = given ?? (await vscode.window.showOpenDialog({ canSelectFiles: false, canSelectFolders: true, canSelectMany: true, title: 'Head Lens: the folder(s) to evaluate (each one a source)', openLabel: 'Evaluate' }))?.map((u) => u.fsPath);
    return folders?.length ? { params: { data: folders, ...shape }, source: folders.join(', ') } : undefined;
  }
  if (!doc) return void vscode.window.showInformationMessage('Head Lens: open a file to evaluate, or pick a folder.');
  const selection = scope === 'selection' && editor && !editor.selection.isEmpty ? editor.selection : undefined;
  if (scope === 'selection' && !selection) return void vscode.window.showInformationMessage('Head Lens: select the text to evaluate first.');
  const text = selection ? doc.getText(selection) : doc.getText();
  if (!text.trim()) return void vscode.window.showInformationMessage('Head Lens: there is no text to evaluate.');
  const name = path.basename(doc.fileName) + (selection ? ' (selection)' : '');
  return { params: { texts: [{ name, text }], ...shape }, source: name };
}

/** Evaluate Perplexity…: returns the engine's result (tests) after showing it. */
export async function evaluatePerplexity(engine: EngineClient, panel: ResultsPanel, args: PplArgs = {}): Promise<PplResult | undefined> {
  const input = await pplInput(args);
  if (!input) return undefined;
  try {
    const result = await withEngineProgress(engine, 'Head Lens: evaluating perplexity', (token, report) => engine.request('eval/ppl', input.params, token, (p) => report(p.done, p.total, 'tokens')));
    panel.show({ kind: 'ppl', source: input.source, result });
    return result;
  } catch (e) {
    const msg = describeError(e);
    if (msg) void vscode.window.showErrorMessage(`Head Lens: Evaluate Perplexity failed: ${msg}`);
    return undefined;
  }
}

/** Evaluate Multiple Choice…: returns the engine's result (tests) after showing it. */
export async function evaluateMultipleChoice(engine: EngineClient, panel: ResultsPanel, args: McArgs = {}): Promise<McResult | undefined> {
  const file = args.file ?? (await vscode.window.showOpenDialog({ canSelectFiles: true, canSelectMany: false, title: 'Head Lens: multiple-choice items (HellaSwag jsonl: ctx, endings, label)', openLabel: 'Evaluate', filters: { 'JSON lines': ['jsonl'], 'All files': ['*'] } }))?.[0]?.fsPath;
  if (!file) return undefined;
  try {
    const result = await withEngineProgress(engine, 'Head Lens: scoring multiple choice', (token, report) => engine.request('eval/mc', { file, limit: args.limit }, token, (p) => report(p.done, p.total, 'items')));
    panel.show({ kind: 'mc', source: file, result });
    return result;
  } catch (e) {
    const msg = describeError(e);
    if (msg) void vscode.window.showErrorMessage(`Head Lens: Evaluate Multiple Choice failed: ${msg}`);
    return undefined;
  }
}

/** A cancellable notification whose bar follows done/total; the model is loaded first. */
function withEngineProgress<T>(engine: EngineClient, title: string, run: (token: vscode.CancellationToken, report: (done: number, total: number, unit: string) => void) => Promise<T>): Thenable<T> {
  return vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title, cancellable: true }, async (progress, token) => {
    if (!engine.model) progress.report({ message: 'starting the engine and loading the model…' });
    await engine.ensureModel(token);
    let last = 0;
    return run(token, (done, total, unit) => {
      const pct = Math.floor((100 * done) / Math.max(1, total));
      progress.report({ increment: Math.max(0, pct - last), message: `${done}/${total} ${unit}` });
      last = Math.max(last, pct);
    });
  });
}

export function register(engine: EngineClient, panel: ResultsPanel): vscode.Disposable {
  return vscode.Disposable.from(
    vscode.commands.registerCommand(Command.EvaluatePerplexity, (args?: PplArgs | vscode.Uri) => evaluatePerplexity(engine, panel, args instanceof vscode.Uri ? { uri: args, scope: 'file' } : args ?? {})),
    vscode.commands.registerCommand(Command.EvaluateMultipleChoice, (args?: McArgs | vscode.Uri) => evaluateMultipleChoice(engine, panel, args instanceof vscode.Uri ? { file: args.fsPath } : args ?? {})),
  );
}
