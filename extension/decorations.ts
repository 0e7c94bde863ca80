/**
 * Token colouring in the editor: a small set of quantized decoration types whose colours come
 * from `contributes.colors` (so light, dark and high-contrast themes all work), only over the
 * visible range, throttled. A status-bar legend says what the colours mean.
 */
import * as vscode from 'vscode';
import type { AnalysisStore } from './analysis';
import type { SettingsWatcher } from './settings';

export const LEVELS = 7;

export class TokenDecorations implements vscode.Disposable {
  private readonly types = Array.from({ length: LEVELS }, (_, i) =>
    vscode.window.createTextEditorDecorationType({
      backgroundColor: new vscode.ThemeColor(`headlens.heat${i + 1}`),
      borderRadius: '2px',
    }),
  );
  private readonly legend = vscode.window.createStatusBarItem('headlens.legend', vscode.StatusBarAlignment.Right, 99);
  private readonly subs: vscode.Disposable[] = [];
  private timer: NodeJS.Timeout | null = null;
  /** Decorated token count per editor (for tests and the legend). */
  readonly counts = new Map<string, number>();

  constructor(private readonly store: AnalysisStore, private readonly settings: SettingsWatcher) {
    this.legend.name = 'Head Lens colour legend';
    this.legend.command = 'workbench.action.openSettings';
    this.subs.push(
      store.onDidChange(() => this.schedule()),
      vscode.window.onDidChangeVisibleTextEditors(() => this.schedule()),
      vscode.window.onDidChangeTextEditorVisibleRanges(() => this.schedule()),
    );
    settings.onChange(() => this.schedule());
  }

  schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.update();
    }, 60);
  }

  update(): void {
    let legendShown = false;
    for (const editor of vscode.window.visibleTextEditors) {
      const a = this.store.get(editor.document.uri.toString());
      const buckets: vscode.Range[][] = Array.from({ length: LEVELS }, () => []);
      let count = 0;
      if (a && a.version === editor.document.version) {
        const s = this.settings.current;
        const r = a.record;
        const values = r.tokens.map((_, t) => r.metric(s.colorMetric, t, s.focusLayer, s.focusHead));
        const finite = values.filter(Number.isFinite).sort((x, y) => x - y);
        const lo = finite[0] ?? 0, hi = finite[Math.floor(finite.length * 0.98)] ?? 1;
        const doc = editor.document;
        const visible = editor.visibleRanges.map((v) => [doc.offsetAt(v.start), doc.offsetAt(v.end)]);
        for (let t = 0; t < r.N && count < s.maxAnnotatedTokens; t++) {
          const tok = r.tokens[t];
          if (tok.end <= tok.start || !Number.isFinite(values[t])) continue;
          if (!visible.some(([vs, ve]) => tok.end > vs && tok.start < ve)) continue;
          const level = hi > lo ? Math.min(LEVELS - 1, Math.floor(((values[t] - lo) / (hi - lo)) * LEVELS)) : 0;
          buckets[Math.max(0, level)].push(new vscode.Range(doc.positionAt(tok.start), doc.positionAt(tok.end)));
          count++;
        }
        const focus = s.focusLayer < 0 ? 'mean of all heads' : `L${s.focusLayer}${s.focusHead < 0 ? '' : `.H${s.focusHead}`}`;
        if (editor === vscode.window.activeTextEditor) {
          this.legend.text = `$(symbol-color) ${s.colorMetric} (${focus}): ${fmt(lo)} ░▒▓█ ${fmt(hi)}`;
          this.legend.tooltip = `Head Lens colours tokens by ${s.colorMetric}, ${focus}; ${LEVELS} levels from ${fmt(lo)} to ${fmt(hi)}. Change it in the settings (headlens.colorMetric, headlens.focusLayer, headlens.focusHead).`;
          legendShown = true;
        }
      }
      this.types.forEach((type, i) => editor.setDecorations(type, buckets[i]));
      this.counts.set(editor.document.uri.toString(), count);
    }
    if (legendShown) this.legend.show();
    else this.legend.hide();
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    this.types.forEach((t) => t.dispose());
    this.legend.dispose();
    this.subs.forEach((s) => s.dispose());
  }
}

function fmt(v: number): string {
  return Math.abs(v) >= 0.01 || v === 0 ? v.toFixed(2) : v.toExponential(1);
}
