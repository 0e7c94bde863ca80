/**
 * Token colouring in the editor: seven quantized decoration types whose colours come from
 * `contributes.colors` (headlens.heat1…7, with light, dark and high-contrast defaults), so the
 * theme decides the actual colours. Levels are computed once per analysis and setting; scrolling
 * only re-buckets the tokens in view, throttled. A status-bar legend says what the colours mean.
 */
import * as vscode from 'vscode';
import type { AnalysisStore, DocumentAnalysis } from './analysis';
import type { SettingsWatcher } from './settings';
import { Command } from './commands';

export const LEVELS = 7;
/** Scrolling fires many events; decorations are recomputed at most this often. */
const THROTTLE_MS = 60;
/** The top of the scale is this quantile, so that a few outliers do not wash out every other token. */
const TOP_QUANTILE = 0.98;


/** A token's colour level (0…LEVELS−1) or −1 where the metric has no value. */
export interface Quantized {
  levels: Int8Array;
  lo: number;
  hi: number;
  /** Tokens with a value. */
  valued: number;
}

/**
 * A diverging scale for signed values (a difference of losses): the middle level is 0, the ends
 * ±(TOP_QUANTILE of |v|), so both signs read with the same strength.
 */
export function quantizeDiverging(values: ArrayLike<number>, levels = LEVELS): Quantized {
  const abs = Array.from(values).filter(Number.isFinite).map(Math.abs).sort((a, b) => a - b);
  const top = abs[Math.min(abs.length - 1, Math.floor(abs.length * TOP_QUANTILE))] ?? 0;
  const out = new Int8Array(values.length).fill(-1);
  const mid = (levels - 1) / 2;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) continue;
    out[i] = top > 0 ? Math.round(mid + Math.max(-1, Math.min(1, v / top)) * mid) : Math.round(mid);
  }
  return { levels: out, lo: -top, hi: top, valued: abs.length };
}

/** Linear levels from the minimum to the TOP_QUANTILE value; pure, so it is easy to reason about. */
export function quantize(values: ArrayLike<number>, levels = LEVELS): Quantized {
  const finite = Array.from(values).filter(Number.isFinite).sort((a, b) => a - b);
  const lo = finite[0] ?? 0;
  const hi = finite[Math.min(finite.length - 1, Math.floor(finite.length * TOP_QUANTILE))] ?? 0;
  const out = new Int8Array(values.length).fill(-1);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) continue;
    out[i] = hi > lo ? Math.max(0, Math.min(levels - 1, Math.floor(((v - lo) / (hi - lo)) * levels))) : 0;
  }
  return { levels: out, lo, hi, valued: finite.length };
}

/** Which layer/head the colours come from; −1 is the mean. */
export interface Focus {
  layer: number;
  head: number;
  /** Set when the Attention Explorer chose it (until the settings change). */
  fromExplorer: boolean;
}

export class TokenDecorations implements vscode.Disposable {
  private readonly types = Array.from({ length: LEVELS }, (_, i) =>
    vscode.window.createTextEditorDecorationType({ backgroundColor: new vscode.ThemeColor(`headlens.heat${i + 1}`), borderRadius: '2px' }),
  );
  private readonly legend = vscode.window.createStatusBarItem('headlens.legend', vscode.StatusBarAlignment.Right, 99);
  private readonly subs: vscode.Disposable[] = [];
  private timer: NodeJS.Timeout | null = null;
  private explorerFocus: { layer: number; head: number } | null = null;
  private cache: { analysis: DocumentAnalysis; key: string; q: Quantized } | null = null;
  /** Decorated token count per document URI (the legend and the tests read it). */
  readonly counts = new Map<string, number>();

  constructor(private readonly store: AnalysisStore, private readonly settings: SettingsWatcher) {
    this.legend.name = 'Head Lens colour legend';
    this.legend.command = { title: 'Choose the colour metric', command: Command.ChooseColorMetric };
    this.subs.push(
      store.onDidChange(() => this.schedule()),
      vscode.window.onDidChangeVisibleTextEditors(() => this.schedule()),
      vscode.window.onDidChangeTextEditorVisibleRanges(() => this.schedule()),
      vscode.window.onDidChangeActiveTextEditor(() => this.schedule()),
      settings.onChange((_, e) => {
        if (e.affectsConfiguration('headlens.focusLayer') || e.affectsConfiguration('headlens.focusHead')) this.explorerFocus = null;
        this.schedule();
      }),
    );
  }

  /** Disposed with the decorations. */
  track(d: vscode.Disposable): void {
    this.subs.push(d);
  }

  /** The explorer's focused head colours the editor too, until the settings say otherwise. */
  setExplorerFocus(layer: number, head: number): void {
    this.explorerFocus = { layer, head };
    this.schedule();
  }

  get focus(): Focus {
    const s = this.settings.current;
    return this.explorerFocus ? { ...this.explorerFocus, fromExplorer: true } : { layer: s.focusLayer, head: s.focusHead, fromExplorer: false };
  }

  schedule(): void {
    this.timer ??= setTimeout(() => {
      this.timer = null;
      this.update();
    }, THROTTLE_MS);
  }

  update(): void {
    const shown: DocumentAnalysis[] = [];
    for (const editor of vscode.window.visibleTextEditors) {
      const uri = editor.document.uri.toString();
      const a = this.store.get(uri);
      const current = a && a.version === editor.document.version ? a : undefined;
      const buckets = current ? this.bucketsInView(editor, current) : Array.from({ length: LEVELS }, () => []);
      this.types.forEach((type, i) => editor.setDecorations(type, buckets[i]));
      this.counts.set(uri, buckets.reduce((n, b) => n + b.length, 0));
      if (current) shown[editor === vscode.window.activeTextEditor ? 'unshift' : 'push'](current);
    }
    // the active editor's legend; with the focus in the explorer (no active editor) a visible one's
    if (shown.length) this.showLegend(shown[0]);
    else this.legend.hide();
  }

  /** Levels of every token for the current metric and focus, computed once per analysis and setting. */
  private quantized(a: DocumentAnalysis): Quantized {
    const s = this.settings.current;
    const { layer, head } = this.clampedFocus(a);
    const metric = a.record.resolveMetric(a.metricOverride?.metric ?? s.colorMetric);
    const key = `${metric}|${layer}|${head}`;
    if (this.cache?.analysis !== a || this.cache.key !== key) {
      const r = a.record;
      const values = r.tokens.map((_, t) => r.metric(metric, t, layer, head));
      this.cache = { analysis: a, key, q: r.spec(metric)?.diverging ? quantizeDiverging(values) : quantize(values) };
    }
    return this.cache.q;
  }

  /** A focus beyond the model's layers or heads falls back to the mean (the legend says so). */
  private clampedFocus(a: DocumentAnalysis): { layer: number; head: number } {
    const { layer, head } = this.focus;
    return { layer: layer < a.record.L ? layer : -1, head: head < a.record.H ? head : -1 };
  }

  private bucketsInView(editor: vscode.TextEditor, a: DocumentAnalysis): vscode.Range[][] {
    const buckets: vscode.Range[][] = Array.from({ length: LEVELS }, () => []);
    const { levels } = this.quantized(a);
    const doc = editor.document;
    const max = this.settings.current.maxAnnotatedTokens;
    let count = 0;
    for (const v of editor.visibleRanges) {
      const lines = new vscode.Range(v.start.line, 0, v.end.line, doc.lineAt(v.end.line).range.end.character);
      const from = doc.offsetAt(lines.start), to = doc.offsetAt(lines.end);
      const chunk = doc.getText(lines);
      for (let t = firstTokenEndingAfter(a, from); t < a.record.N && count < max; t++) {
        const tok = a.record.tokens[t];
        if (tok.start >= to) break;
        const span = trimmed(chunk, from, Math.max(tok.start, from), Math.min(tok.end, to));
        if (levels[t] < 0 || !span) continue;
        buckets[levels[t]].push(new vscode.Range(doc.positionAt(span[0]), doc.positionAt(span[1])));
        count++;
      }
    }
    return buckets;
  }

  private showLegend(a: DocumentAnalysis): void {
    const s = this.settings.current;
    const q = this.quantized(a);
    const requested = this.focus;
    const { layer, head } = this.clampedFocus(a);
    const metric = a.record.resolveMetric(a.metricOverride?.metric ?? s.colorMetric);
    const where = !a.record.metricPerHead(metric) ? 'per token' : layer < 0 && head < 0 ? 'mean of all heads' : `${layer < 0 ? 'all layers' : `L${layer}`}.${head < 0 ? 'mean' : `H${head}`}`;
    this.legend.text = `$(symbol-color) ${metric} ${where} ${fmt(q.lo)} ▁▃▅▇ ${fmt(q.hi)}`;
    const notes = [
      requested.fromExplorer ? 'Focus chosen in the Attention Explorer.' : '',
      requested.layer >= a.record.L || requested.head >= a.record.H ? `The focus L${requested.layer}.H${requested.head} is outside the model (${a.record.L} layers × ${a.record.H} heads): the mean is shown.` : '',
      q.valued < a.record.N ? `${a.record.N - q.valued} of ${a.record.N} tokens have no value and are not coloured.` : '',
      a.scope === 'document' ? '' : `Only ${a.scope === 'selection' ? 'the selection' : 'the lines in view'} was analysed: run Analyze Attention again for other lines.`,
    ].filter(Boolean);
    const md = new vscode.MarkdownString(`**Head Lens colours**: ${a.metricOverride ? a.metricOverride.title : a.record.metricLabel(metric)}${!a.metricOverride && s.colorMetric === 'auto' ? ' (auto: the model’s first signal)' : ''}, ${where}; ${LEVELS} levels from ${fmt(q.lo)} to ${fmt(q.hi)} (the top level holds the highest ${Math.round((1 - TOP_QUANTILE) * 100)} %).\n\n${notes.join('\n\n')}${notes.length ? '\n\n' : ''}Click to choose the metric; \`headlens.focusLayer\` and \`headlens.focusHead\` pick the head.`);
    this.legend.tooltip = md;
    this.legend.show();
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    this.types.forEach((t) => t.dispose());
    this.legend.dispose();
    this.subs.forEach((s) => s.dispose());
  }
}

/** Binary search: the first token whose end lies after `offset` (tokens are sorted and disjoint). */
function firstTokenEndingAfter(a: DocumentAnalysis, offset: number): number {
  const tokens = a.record.tokens;
  let lo = 0, hi = tokens.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (tokens[mid].end <= offset) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * GPT-2 tokens carry their leading space (" softmax") and indentation is tokens of spaces:
 * colour only the visible characters, and nothing for a token of whitespace.
 */
function trimmed(chunk: string, chunkStart: number, start: number, end: number): [number, number] | null {
  while (start < end && /\s/.test(chunk[start - chunkStart])) start++;
  while (end > start && /\s/.test(chunk[end - 1 - chunkStart])) end--;
  return end > start ? [start, end] : null;
}

function fmt(v: number): string {
  return Math.abs(v) >= 0.01 || v === 0 ? v.toFixed(2) : v.toExponential(1);
}

/** Choose Colour Metric…: the active editor's analysis lists what it can colour by. */
async function chooseColorMetric(store: AnalysisStore, settings: SettingsWatcher): Promise<void> {
  const editor = vscode.window.activeTextEditor;
  const a = editor && store.get(editor.document.uri.toString());
  const current = settings.current.colorMetric;
  const items: (vscode.QuickPickItem & { name: string })[] = [
    { name: 'auto', label: 'auto', description: a ? `now ${a.record.resolveMetric('auto')}` : "the model's first adaptive signal, else attention entropy" },
    ...(a ? a.record.metrics() : [{ name: 'nll', label: 'nll' }, { name: 'entropy', label: 'entropy' }, { name: 'attnMax', label: 'attnMax' }]).map((m) => ({ name: m.name, label: m.name, description: 'label' in m ? (m as { label: string }).label : undefined })),
  ].map((i) => ({ ...i, picked: i.name === current, detail: i.name === current ? 'current' : undefined }));
  const pick = await vscode.window.showQuickPick(items, { title: 'Head Lens: colour tokens by', placeHolder: a ? undefined : 'run Analyze Attention first to see the model’s own signals' });
  if (!pick) return;
  await vscode.workspace.getConfiguration('headlens').update('colorMetric', pick.name, vscode.workspace.workspaceFolders ? vscode.ConfigurationTarget.Workspace : vscode.ConfigurationTarget.Global);
  settings.refresh();
}

export function register(store: AnalysisStore, settings: SettingsWatcher): TokenDecorations {
  const d = new TokenDecorations(store, settings);
  d.track(vscode.commands.registerCommand(Command.ChooseColorMetric, () => chooseColorMetric(store, settings)));
  return d;
}
