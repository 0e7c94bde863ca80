/**
 * Token colouring in the editor: seven quantized decoration types whose colours come from
 * `contributes.colors` (light, dark and high-contrast defaults), so the theme decides the actual
 * colours. `headlens.decorationStyle` picks how a level is drawn: `subtle` (the default: one hue,
 * a translucent background whose alpha follows the level, headlens.subtle1…7), `underline` or a
 * left `border` (headlens.line1…7), or `background` (the saturated multi-hue headlens.heat1…7).
 * Levels are computed once per analysis and setting; scrolling only re-buckets the tokens in view,
 * throttled. A status-bar legend says what the colours mean and their scale. The focused head is
 * kept here and shared: the settings, the Attention Explorer and Follow Cursor's keys move it, and
 * an overlay (Follow Cursor) can take over an editor's colours and the legend.
 */
import * as vscode from 'vscode';
import type { AnalysisStore, DocumentAnalysis } from './analysis';
import type { AnalysisRecord } from '../engine/analysis/record';
import type { DecorationStyle, SettingsWatcher } from './settings';
import { Command } from './commands';
import { formatScale, formatValue as fmt, LEGEND_RAMP } from './statusBar';


export const LEVELS = 7;
/** Categorical colours (headlens.category1…8) for channelled signals: a token's largest channel (a Temporal LoRA router's dominant adapter). */
export const CATEGORIES = 8;

/** Category levels: each token's channel index (wrapping past `categories`), −1 where it has none. */
export function quantizeCategorical(values: ArrayLike<number>, categories = CATEGORIES): Quantized {
  const out = new Int8Array(values.length).fill(-1);
  let valued = 0, hi = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isInteger(v) || v < 0) continue;
    out[i] = v % categories;
    hi = Math.max(hi, v);
    valued++;
  }
  return { levels: out, lo: 0, hi, valued };
}
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

/** Who chose the focus: the settings, the Attention Explorer, or the editor (Follow Cursor's keys). */
export type FocusSource = 'settings' | 'explorer' | 'editor';

/** Which layer/head the colours come from; −1 is the mean. */
export interface Focus {
  layer: number;
  head: number;
  /** Set when the Attention Explorer chose it (until the settings change). */
  fromExplorer: boolean;
  source: FocusSource;
}

/** What the status-bar legend shows. */
export interface LegendContent {
  text: string;
  tooltip: vscode.MarkdownString;
  command?: vscode.Command;
}

/**
 * Something that colours an editor instead of the metric (Follow Cursor): while `legendFor` gives a
 * legend for a document, its metric colours are cleared and that legend is shown.
 */
export interface ColourOverlay {
  legendFor(uri: string): LegendContent | null;
}

/** The render options of level `i` (0…LEVELS−1) in a style; the colours are the theme's. */
export function levelRenderOptions(style: DecorationStyle, i: number): vscode.DecorationRenderOptions {
  const n = i + 1;
  switch (style) {
    case 'background':
      return { backgroundColor: new vscode.ThemeColor(`headlens.heat${n}`), borderRadius: '2px' };
    case 'underline':
      // a border, not text-decoration: it takes a theme colour and sits in the overlay layer
      return { borderStyle: 'none none solid none', borderWidth: `0 0 ${i < 4 ? 1 : 2}px 0`, borderColor: new vscode.ThemeColor(`headlens.line${n}`) };
    case 'border':
      return { borderStyle: 'none none none solid', borderWidth: '0 0 0 2px', borderColor: new vscode.ThemeColor(`headlens.line${n}`) };
    case 'subtle':
      return { backgroundColor: new vscode.ThemeColor(`headlens.subtle${n}`), borderRadius: '2px' };
  }
}

/** Units of the built-in metrics (signals carry their own in the catalogue). */
const BUILTIN_UNITS: Record<string, string> = { nll: 'nats', entropy: 'nats', distance: 'tokens', attnMax: 'p', leak: 'logits' };
const SHORT_NAMES: Record<string, string> = { nll: 'NLL', attnMax: 'attention max', leak: 'leak' };

/** The unit a metric's values are in ('' when it has none). */
export function metricUnit(r: AnalysisRecord, metric: string): string {
  return r.spec(metric)?.unit ?? BUILTIN_UNITS[metric] ?? '';
}

export class TokenDecorations implements vscode.Disposable {
  private styleInUse: DecorationStyle;
  private types: vscode.TextEditorDecorationType[];
  /** The categorical colours, drawn instead of the levels when the metric is channelled. */
  private readonly categoryTypes = Array.from({ length: CATEGORIES }, (_, i) =>
    vscode.window.createTextEditorDecorationType({ backgroundColor: new vscode.ThemeColor(`headlens.category${i + 1}`), borderRadius: '2px' }),
  );
  private readonly legend = vscode.window.createStatusBarItem('headlens.legend', vscode.StatusBarAlignment.Right, 99);
  private readonly subs: vscode.Disposable[] = [];
  private timer: NodeJS.Timeout | null = null;
  /** A focus chosen outside the settings (the explorer, the editor's keys), until the settings change. */
  private chosenFocus: { layer: number; head: number; source: 'explorer' | 'editor' } | null = null;
  private readonly focusChanged = new vscode.EventEmitter<Focus>();
  /** Fires when the focused layer/head changes, whoever changed it. */
  readonly onDidChangeFocus = this.focusChanged.event;
  private overlay: ColourOverlay | null = null;
  private cache: { analysis: DocumentAnalysis; key: string; q: Quantized } | null = null;
  /** Decorated token count per document URI (the legend and the tests read it). */
  readonly counts = new Map<string, number>();
  /** The style each document's colours were last drawn in (the tests read it). */
  readonly renderedStyle = new Map<string, DecorationStyle>();

  constructor(private readonly store: AnalysisStore, private readonly settings: SettingsWatcher) {
    this.styleInUse = settings.current.decorationStyle;
    this.types = this.createTypes(this.styleInUse);
    this.legend.name = 'Head Lens colour legend';
    this.subs.push(
      store.onDidChange(() => this.schedule()),
      vscode.window.onDidChangeVisibleTextEditors(() => this.schedule()),
      vscode.window.onDidChangeTextEditorVisibleRanges(() => this.schedule()),
      vscode.window.onDidChangeActiveTextEditor(() => this.schedule()),
      settings.onChange((s, e) => {
        if (e.affectsConfiguration('headlens.focusLayer') || e.affectsConfiguration('headlens.focusHead')) {
          this.chosenFocus = null;
          this.focusChanged.fire(this.focus);
        }
        if (s.decorationStyle !== this.styleInUse) this.restyle(s.decorationStyle);
        this.schedule();
      }),
    );
  }

  /** The status-bar legend as shown (what the colours mean and their scale). */
  get legendText(): string {
    return this.legend.text;
  }

  /** The style the colours are drawn in now. */
  get style(): DecorationStyle {
    return this.styleInUse;
  }

  /** The render options of the live decoration types, level 1 first (what the tests inspect). */
  get levelOptions(): vscode.DecorationRenderOptions[] {
    return this.types.map((_, i) => levelRenderOptions(this.styleInUse, i));
  }

  private createTypes(style: DecorationStyle): vscode.TextEditorDecorationType[] {
    return Array.from({ length: LEVELS }, (_, i) => vscode.window.createTextEditorDecorationType(levelRenderOptions(style, i)));
  }

  /** Another style: disposing the old types removes their decorations from every editor at once. */
  private restyle(style: DecorationStyle): void {
    this.types.forEach((t) => t.dispose());
    this.styleInUse = style;
    this.types = this.createTypes(style);
    this.update();
  }

  /** Follow Cursor: it colours the editors it has a query in, and the legend says so. */
  setOverlay(overlay: ColourOverlay | null): void {
    this.overlay = overlay;
    this.schedule();
  }

  /** Disposed with the decorations. */
  track(d: vscode.Disposable): void {
    this.subs.push(d);
  }

  /** The explorer's focused head colours the editor too, until the settings say otherwise. */
  setExplorerFocus(layer: number, head: number): void {
    this.setFocus(layer, head, 'explorer');
  }

  /** A focus chosen in the explorer or with the editor's next/previous head and layer keys. */
  setFocus(layer: number, head: number, source: 'explorer' | 'editor'): void {
    const before = this.focus;
    this.chosenFocus = { layer, head, source };
    this.schedule();
    if (before.layer !== layer || before.head !== head || before.source !== source) this.focusChanged.fire(this.focus);
  }

  get focus(): Focus {
    const s = this.settings.current;
    const c = this.chosenFocus;
    return c ? { layer: c.layer, head: c.head, fromExplorer: c.source === 'explorer', source: c.source } : { layer: s.focusLayer, head: s.focusHead, fromExplorer: false, source: 'settings' };
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
      // an overlay (Follow Cursor) colours this editor instead: two tints on one token do not read
      const overlaid = !!this.overlay?.legendFor(uri);
      const buckets = current && !overlaid ? this.bucketsInView(editor, current) : Array.from({ length: LEVELS }, () => []);
      const categorical = !!current && !overlaid && this.categoriesOf(current) !== null;
      this.types.forEach((type, i) => editor.setDecorations(type, categorical ? [] : buckets[i]));
      this.categoryTypes.forEach((type, i) => editor.setDecorations(type, categorical ? buckets[i] : []));
      this.counts.set(uri, buckets.reduce((n, b) => n + b.length, 0));
      this.renderedStyle.set(uri, this.styleInUse);
      if (current) shown[editor === vscode.window.activeTextEditor ? 'unshift' : 'push'](current);
    }
    this.showLegendOf(shown[0]);
  }

  /** The legend alone (an overlay's scale changes on every cursor move; the metric colours do not). */
  refreshLegend(): void {
    const editors = vscode.window.visibleTextEditors;
    const ordered = [...editors].sort((a, b) => Number(b === vscode.window.activeTextEditor) - Number(a === vscode.window.activeTextEditor));
    const current = ordered.map((e) => this.store.get(e.document.uri.toString())).find((a, i) => a && a.version === ordered[i].document.version);
    this.showLegendOf(current);
  }

  /** The active editor's legend; with the focus in the explorer (no active editor) a visible one's. */
  private showLegendOf(a: DocumentAnalysis | undefined): void {
    const overlay = a && this.overlay?.legendFor(a.uri);
    if (overlay) {
      this.legend.text = overlay.text;
      this.legend.tooltip = overlay.tooltip;
      this.legend.command = overlay.command;
      this.legend.show();
    } else if (a) this.showLegend(a);
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
      this.cache = { analysis: a, key, q: r.spec(metric)?.channels ? quantizeCategorical(values) : r.spec(metric)?.diverging ? quantizeDiverging(values) : quantize(values) };
    }
    return this.cache.q;
  }

  /** A focus beyond the model's layers or heads falls back to the mean (the legend says so). */
  private clampedFocus(a: DocumentAnalysis): { layer: number; head: number } {
    const { layer, head } = this.focus;
    return { layer: layer < a.record.L ? layer : -1, head: head < a.record.H ? head : -1 };
  }

  private bucketsInView(editor: vscode.TextEditor, a: DocumentAnalysis): vscode.Range[][] {
    const buckets: vscode.Range[][] = Array.from({ length: Math.max(LEVELS, CATEGORIES) }, () => []);
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

  /** The channel labels when the document is coloured by a channelled signal (categorical), else null. */
  private categoriesOf(a: DocumentAnalysis): string[] | null {
    const metric = a.record.resolveMetric(a.metricOverride?.metric ?? this.settings.current.colorMetric);
    return a.record.spec(metric)?.channels ?? null;
  }

  /** A categorical legend: which colour is which channel. */
  private showCategoryLegend(a: DocumentAnalysis, labels: string[]): void {
    const metric = a.record.resolveMetric(a.metricOverride?.metric ?? this.settings.current.colorMetric);
    const q = this.quantized(a);
    const spec = a.record.spec(metric);
    this.legend.text = `$(symbol-color) ${metric}: ${labels.map((l, i) => `${(i % CATEGORIES) + 1} ${l}`).join(' · ')}`;
    this.legend.command = { title: 'Choose the colour metric', command: Command.ChooseColorMetric };
    const rows = labels.map((l, i) => `| \`headlens.category${(i % CATEGORIES) + 1}\` | ${l} |`).join('\n');
    const missing = q.valued < a.record.N ? `\n\n${a.record.N - q.valued} of ${a.record.N} tokens have no value and are not coloured.` : '';
    this.legend.tooltip = new vscode.MarkdownString(`**Head Lens colours**: ${a.metricOverride ? a.metricOverride.title : `${spec?.label ?? metric}: the largest channel of each token`} (categorical).\n\n| colour | ${spec?.scope === 'adapter×token' ? 'adapter' : 'channel'} |\n|---|---|\n${rows}${missing}\n\nThe hover lists every channel's value. Click to choose the metric.`);
    this.legend.show();
  }

  private showLegend(a: DocumentAnalysis): void {
    const categories = this.categoriesOf(a);
    if (categories) return this.showCategoryLegend(a, categories);
    const s = this.settings.current;
    const q = this.quantized(a);
    const requested = this.focus;
    const { layer, head } = this.clampedFocus(a);
    const metric = a.record.resolveMetric(a.metricOverride?.metric ?? s.colorMetric);
    const where = !a.record.metricPerHead(metric) ? 'per token' : layer < 0 && head < 0 ? 'mean of all heads' : `${layer < 0 ? 'all layers' : `L${layer}`}.${head < 0 ? 'mean' : `H${head}`}`;
    const unit = metricUnit(a.record, metric);
    const name = a.metricOverride ? metric : SHORT_NAMES[metric] ?? metric;
    this.legend.text = `$(symbol-color) ${name} ${where === 'per token' ? '' : `${where} `}${formatScale(q.lo, q.hi, unit)} ${LEGEND_RAMP}`;
    this.legend.command = { title: 'Choose the colour metric', command: Command.ChooseColorMetric };
    const notes = [
      requested.source === 'explorer' ? 'Focus chosen in the Attention Explorer.' : requested.source === 'editor' ? 'Focus chosen with Next/Previous Head and Layer.' : '',
      requested.layer >= a.record.L || requested.head >= a.record.H ? `The focus L${requested.layer}.H${requested.head} is outside the model (${a.record.L} layers × ${a.record.H} heads): the mean is shown.` : '',
      q.valued < a.record.N ? `${a.record.N - q.valued} of ${a.record.N} tokens have no value and are not coloured.` : '',
      a.scope === 'document' ? '' : `Only ${a.scope === 'selection' ? 'the selection' : 'the lines in view'} was analysed: run Analyze Attention again for other lines.`,
    ].filter(Boolean);
    const md = new vscode.MarkdownString(`**Head Lens colours**: ${a.metricOverride ? a.metricOverride.title : a.record.metricLabel(metric)}${!a.metricOverride && s.colorMetric === 'auto' ? ' (auto: the model’s first signal)' : ''}, ${where}; ${LEVELS} levels ${LEGEND_RAMP} from ${fmt(q.lo)} to ${fmt(q.hi)}${unit ? ` ${unit}` : ''} (the top level holds the highest ${Math.round((1 - TOP_QUANTILE) * 100)} %), drawn as ${styleWords(this.styleInUse)}.\n\n${notes.join('\n\n')}${notes.length ? '\n\n' : ''}Click to choose the metric; \`headlens.focusLayer\` and \`headlens.focusHead\` pick the head, \`headlens.decorationStyle\` how the colours are drawn.`);
    this.legend.tooltip = md;
    this.legend.show();
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    this.types.forEach((t) => t.dispose());
    this.categoryTypes.forEach((t) => t.dispose());
    this.legend.dispose();
    this.focusChanged.dispose();
    this.subs.forEach((s) => s.dispose());
  }
}

function styleWords(style: DecorationStyle): string {
  return { subtle: 'a translucent background of one hue', underline: 'underlines', border: 'left borders', background: 'saturated backgrounds' }[style];
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
