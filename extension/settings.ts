/** Typed settings mirroring `contributes.configuration` (re-read only on affectsConfiguration). */
import * as vscode from 'vscode';
import type { BackendChoice } from '../engine/protocol';
import type { ColorMetric } from '../engine/record';

export interface Settings {
  modelPath: string;
  configPath: string;
  backend: BackendChoice;
  windowSize: number;
  colorMetric: ColorMetric;
  focusLayer: number;
  focusHead: number;
  maxAnnotatedTokens: number;
  analyzeOnEdit: boolean;
  nodePath: string;
}

export const SECTION = 'headlens';

export function readSettings(): Settings {
  const c = vscode.workspace.getConfiguration(SECTION);
  return {
    modelPath: c.get<string>('modelPath', ''),
    configPath: c.get<string>('configPath', ''),
    backend: c.get<BackendChoice>('backend', 'auto'),
    windowSize: c.get<number>('windowSize', 0),
    colorMetric: c.get<ColorMetric>('colorMetric', 'loraRel'),
    focusLayer: c.get<number>('focusLayer', -1),
    focusHead: c.get<number>('focusHead', -1),
    maxAnnotatedTokens: c.get<number>('maxAnnotatedTokens', 5000),
    analyzeOnEdit: c.get<boolean>('analyzeOnEdit', false),
    nodePath: c.get<string>('engine.nodePath', ''),
  };
}

export class SettingsWatcher implements vscode.Disposable {
  current = readSettings();
  private readonly sub: vscode.Disposable;
  private readonly listeners: ((s: Settings, e: vscode.ConfigurationChangeEvent) => void)[] = [];
  constructor() {
    this.sub = vscode.workspace.onDidChangeConfiguration((e) => {
      if (!e.affectsConfiguration(SECTION)) return;
      this.current = readSettings();
      for (const fn of this.listeners) fn(this.current, e);
    });
  }
  onChange(fn: (s: Settings, e: vscode.ConfigurationChangeEvent) => void): void {
    this.listeners.push(fn);
  }
  dispose(): void {
    this.sub.dispose();
  }
}
