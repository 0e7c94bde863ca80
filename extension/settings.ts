/**
 * Typed settings mirroring `contributes.configuration` in package.json. They are read once and
 * re-read only when a change event says `affectsConfiguration('headlens')`, so the hot paths
 * (decorations on every scroll, hovers) never call `getConfiguration`.
 */
import * as vscode from 'vscode';
import type { BackendChoice } from '../engine/protocol';
import type { ColorMetric } from '../engine/analysis/record';
import { FOLLOW_AGGREGATES, FOLLOW_MODES, type FollowAggregate, type FollowMode } from './cursorAttention';

export interface Settings {
  /** Checkpoint to load; empty: the embedded starter model. */
  modelPath: string;
  /** Optional JSON config for what checkpoint shapes cannot tell. */
  configPath: string;
  backend: BackendChoice;
  /** Tokens per analysis window; 0: the model's block size. */
  windowSize: number;
  /** Sliding-window stride; 0: half the window. */
  stride: number;
  offerNativeRuntime: boolean;
  /** Read every layer's residual through the final norm and head (the logit lens). */
  logitLens: boolean;
  colorMetric: ColorMetric;
  /** −1: the mean over layers. */
  focusLayer: number;
  /** −1: the mean over heads. */
  focusHead: number;
  maxAnnotatedTokens: number;
  analyzeOnEdit: boolean;
  /** Node binary that runs the engine; empty: the extension host's own runtime. */
  nodePath: string;
  /** onnxruntime intra-op threads; 0: the physical cores. */
  threads: number;
  /** Follow Cursor: the token under the cursor is the query and the others are tinted by attention. */
  followCursor: boolean;
  followMode: FollowMode;
  followAggregate: FollowAggregate;
  /** Keys underlined and listed in the hover. */
  followTopK: number;
  /** How the token colours are drawn. */
  decorationStyle: DecorationStyle;
}

export const SECTION = 'headlens';

/** How the token colours are drawn (decorations.ts): one hue's alpha, underlines, left borders, saturated backgrounds. */
export type DecorationStyle = 'subtle' | 'underline' | 'border' | 'background';
export const DECORATION_STYLES: readonly DecorationStyle[] = ['subtle', 'underline', 'border', 'background'];

const BACKENDS: readonly BackendChoice[] = ['auto', 'onnx-cuda', 'onnx-webgpu', 'onnx-cpu', 'tensorflow-gpu', 'tensorflow', 'webgpu', 'wasm', 'cpu'];
/** A metric name: a built-in or a signal of the loaded model (checked when colouring; unknown → auto). */
function metricName(value: string | undefined): ColorMetric {
  return typeof value === 'string' && /^[A-Za-z][\w.-]*$/.test(value.trim()) ? value.trim() : 'auto';
}

/** A value from settings.json is whatever the user typed: keep it only when it is one of the allowed ones. */
function oneOf<T extends string>(value: string | undefined, allowed: readonly T[], fallback: T): T {
  return allowed.includes(value as T) ? (value as T) : fallback;
}

function integer(value: number | undefined, min: number, fallback: number): number {
  return typeof value === 'number' && Number.isInteger(value) && value >= min ? value : fallback;
}

export function readSettings(): Settings {
  const c = vscode.workspace.getConfiguration(SECTION);
  return {
    modelPath: c.get<string>('modelPath', '').trim(),
    configPath: c.get<string>('configPath', '').trim(),
    backend: oneOf(c.get<string>('backend'), BACKENDS, 'auto'),
    windowSize: integer(c.get<number>('windowSize'), 0, 0),
    stride: integer(c.get<number>('stride'), 0, 0),
    offerNativeRuntime: c.get<boolean>('offerNativeRuntime', true) !== false,
    logitLens: c.get<boolean>('logitLens', false) === true,
    colorMetric: metricName(c.get<string>('colorMetric')),
    focusLayer: integer(c.get<number>('focusLayer'), -1, -1),
    focusHead: integer(c.get<number>('focusHead'), -1, -1),
    maxAnnotatedTokens: integer(c.get<number>('maxAnnotatedTokens'), 1, 5000),
    analyzeOnEdit: c.get<boolean>('analyzeOnEdit', false) === true,
    nodePath: c.get<string>('engine.nodePath', '').trim(),
    threads: integer(c.get<number>('threads'), 0, 0),
    followCursor: c.get<boolean>('followCursor', false) === true,
    followMode: oneOf(c.get<string>('followCursor.mode'), FOLLOW_MODES, 'attendsTo'),
    followAggregate: oneOf(c.get<string>('followCursor.aggregate'), FOLLOW_AGGREGATES, 'head'),
    followTopK: Math.min(50, integer(c.get<number>('followCursor.topK'), 1, 5)),
    decorationStyle: oneOf(c.get<string>('decorationStyle'), DECORATION_STYLES, 'subtle'),
  };
}

/** `headlens.modelPath` for this workspace, or for the user where workspace values do not apply. */
export async function setModelPath(modelPath: string): Promise<void> {
  // in an untrusted workspace VS Code ignores the workspace's value of this restricted setting
  const target = vscode.workspace.workspaceFolders && vscode.workspace.isTrusted ? vscode.ConfigurationTarget.Workspace : vscode.ConfigurationTarget.Global;
  await vscode.workspace.getConfiguration(SECTION).update('modelPath', modelPath, target);
}

export type SettingsListener = (s: Settings, e: vscode.ConfigurationChangeEvent) => void;

export class SettingsWatcher implements vscode.Disposable {
  current = readSettings();
  private readonly listeners = new Set<SettingsListener>();
  private readonly sub = vscode.workspace.onDidChangeConfiguration((e) => {
    if (!e.affectsConfiguration(SECTION)) return;
    this.current = readSettings();
    for (const fn of this.listeners) fn(this.current, e);
  });

  /** Re-read now, after this extension wrote a setting itself (the change event comes later). */
  refresh(): void {
    this.current = readSettings();
  }

  onChange(fn: SettingsListener): vscode.Disposable {
    this.listeners.add(fn);
    return { dispose: () => this.listeners.delete(fn) };
  }

  dispose(): void {
    this.listeners.clear();
    this.sub.dispose();
  }
}
