/** Status-bar item: model + backend; click → Load Model…. */
import * as vscode from 'vscode';
import type { EngineManager } from './engine';
import { Command } from './commands';

export function register(engine: EngineManager): vscode.Disposable {
  const item = vscode.window.createStatusBarItem('headlens.model', vscode.StatusBarAlignment.Right, 100);
  item.name = 'Head Lens model';
  item.command = Command.LoadModel;
  const update = () => {
    const m = engine.model, i = engine.init;
    const model = m ? `${m.family}${m.path.includes('starter') ? ' (starter)' : ''}` : 'no model';
    item.text = `$(pulse) ${model}${i ? ` · ${i.backend.name}` : ''}`;
    item.tooltip = new vscode.MarkdownString(
      [
        m ? `**Model** ${m.path} — ${m.family}, ${m.paramCount.toLocaleString()} parameters${m.note ? ` (${m.note})` : ''}` : '**Model** not loaded yet',
        i ? `**Backend** ${i.backend.name} on ${i.device.name}${i.device.vendor ? ` (${i.device.vendor})` : ''} — ${i.backend.reason}` : '**Engine** not started',
        'Click to load another model.',
      ].join('\n\n'),
    );
    item.show();
  };
  update();
  const sub = engine.onDidChange(update);
  return { dispose: () => (sub.dispose(), item.dispose()) };
}
