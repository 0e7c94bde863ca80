/** Shared by the extension-host tests: the extension's API, the sample document, waiting on a condition. */
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { HeadLensApi } from '../../extension/extension';

export const EXT_ID = 'headlens.headlens';

export async function headLens(): Promise<HeadLensApi> {
  const ext = vscode.extensions.getExtension<HeadLensApi>(EXT_ID);
  assert.ok(ext, `extension ${EXT_ID} is not loaded`);
  return ext.activate();
}

/** sample.py of the test workspace (the runner copies media/samples/attention.py there). */
export async function openSample(): Promise<vscode.TextEditor> {
  const folder = vscode.workspace.workspaceFolders?.[0]?.uri;
  assert.ok(folder, 'the tests need a workspace folder');
  const doc = await vscode.workspace.openTextDocument(vscode.Uri.joinPath(folder, 'sample.py'));
  return vscode.window.showTextDocument(doc, { preview: false });
}

/** Poll `fn` until it returns something truthy (for state the extension updates asynchronously). */
export async function until<T>(fn: () => T | undefined | null | false, what: string, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Set a Head Lens setting for the workspace and wait for its change event (the extension's own
 * listener, registered earlier, has run by then). Returns a function that restores the old value.
 */
export async function setSetting(key: string, value: unknown): Promise<() => Promise<void>> {
  const old = vscode.workspace.getConfiguration('headlens').inspect(key)?.workspaceValue;
  await updateAndWait(key, value);
  return () => updateAndWait(key, old);
}

async function updateAndWait(key: string, value: unknown): Promise<void> {
  const config = vscode.workspace.getConfiguration('headlens');
  if (JSON.stringify(config.inspect(key)?.workspaceValue) === JSON.stringify(value)) return;
  let sub: vscode.Disposable | undefined;
  const changed = new Promise<void>((resolve) => {
    sub = vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration(`headlens.${key}`)) resolve();
    });
  });
  await config.update(key, value, vscode.ConfigurationTarget.Workspace);
  await Promise.race([changed, new Promise((r) => setTimeout(r, 5000))]);
  sub?.dispose();
}

/** All markdown of the hovers at a position, joined. */
export async function hoverText(uri: vscode.Uri, pos: vscode.Position): Promise<string> {
  const hovers = (await vscode.commands.executeCommand<vscode.Hover[]>('vscode.executeHoverProvider', uri, pos)) ?? [];
  return hovers.flatMap((h) => h.contents.map((c) => (typeof c === 'string' ? c : c.value))).join('\n');
}
