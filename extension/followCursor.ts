/**
 * Follow Cursor: the token under the cursor becomes the query and every other token of the
 * document is tinted by how much the query attends to it (or, in reverse, how much it attends to
 * the token under the cursor) — the focused head, the focused layer's mean, or the max over its
 * heads — with the top-k underlined, the query outlined and listed in the hover. Everything is read
 * from the cached analysis record (extension/cursorAttention.ts): a cursor move costs no engine
 * round trip, and moves are coalesced to one render per 16 ms frame. While it shows a query the
 * metric colours of that editor step aside (decorations.ts ColourOverlay) and the legend tells what
 * the tint means. The focus is the one TokenDecorations keeps, shared with the Attention Explorer;
 * Next/Previous Head and Layer move it (keys scoped to the `headlens.followCursor` context).
 */
import * as vscode from 'vscode';
import type { AnalysisStore, DocumentAnalysis } from './analysis';
import { Command } from './commands';
import { LEVELS, type LegendContent, type TokenDecorations } from './decorations';
import { registerFollowHover, type FollowHoverView } from './hover';
import { SECTION, type SettingsWatcher } from './settings';
import { FollowStatusItem, formatScale, formatValue, LEGEND_RAMP } from './statusBar';
import { attentionAround, attentionLevels, describeChoice, FOLLOW_AGGREGATES, MIN_SHOWN_FRACTION, topK, type FollowAggregate, type FollowMode, type HeadChoice, type Ranked } from './cursorAttention';

/** Cursor moves within one frame are drawn once. */
const FRAME_MS = 16;
const CONTEXT_KEY = 'headlens.followCursor';

/** What Follow Cursor drew in one editor (the legend, the hover and the tests read it). */
export interface FollowRender {
  uri: string;
  /** Token index of the query (the token under the cursor). */
  query: number;
  mode: FollowMode;
  choice: HeadChoice;
  /** The heads read, in words. */
  heads: string;
  /** The top-k tokens, largest weight first: underlined. */
  top: Ranked[];
  /** The largest weight (the top of the colour scale, 0 when there are none). */
  scaleTop: number;
  /** Tokens tinted per level (level 1 first). */
  levelRanges: vscode.Range[][];
  /** The underlined ranges of `top`, in its order (a token of line breaks only has none). */
  topRanges: (vscode.Range | null)[];
  queryRange: vscode.Range | null;
  /** Time the render took. */
  ms: number;
}

const AGGREGATE_WORDS: Record<FollowAggregate, { label: string; detail: string }> = {
  head: { label: 'Focused head', detail: 'the head in focus (Next/Previous Head; the explorer’s focus)' },
  layerMean: { label: 'Layer mean', detail: 'the mean over the focused layer’s heads' },
  maxHeads: { label: 'Max over heads', detail: 'the largest weight any head of the focused layer gives' },
};

export class FollowCursor implements vscode.Disposable {
  private on: boolean;
  private currentMode: FollowMode;
  private currentAggregate: FollowAggregate;
  private readonly levelTypes = Array.from({ length: LEVELS }, (_, i) =>
    vscode.window.createTextEditorDecorationType({ backgroundColor: new vscode.ThemeColor(`headlens.attention${i + 1}`), borderRadius: '2px' }),
  );
  private readonly topKeyType = vscode.window.createTextEditorDecorationType({
    borderStyle: 'none none solid none',
    borderWidth: '0 0 2px 0',
    borderColor: new vscode.ThemeColor('headlens.attentionTopKey'),
  });
  private readonly queryType = vscode.window.createTextEditorDecorationType({
    borderStyle: 'solid',
    borderWidth: '1px',
    borderColor: new vscode.ThemeColor('headlens.attentionQuery'),
    borderRadius: '2px',
  });
  private readonly rendered = new Map<string, FollowRender>();
  private readonly pending = new Set<vscode.TextEditor>();
  private timer: NodeJS.Timeout | null = null;
  /** Writes of `headlens.followCursor` still on their way (their change events are ours). */
  private writing = 0;
  private readonly status = new FollowStatusItem();
  private readonly renderedEvent = new vscode.EventEmitter<string>();
  /** Fires with a document URI after Follow Cursor drew (or cleared) its editor. */
  readonly onDidRender = this.renderedEvent.event;
  private readonly subs: vscode.Disposable[] = [];

  constructor(private readonly store: AnalysisStore, private readonly decorations: TokenDecorations, private readonly settings: SettingsWatcher) {
    const s = settings.current;
    this.on = s.followCursor;
    this.currentMode = s.followMode;
    this.currentAggregate = s.followAggregate;
    decorations.setOverlay({ legendFor: (uri) => this.legendFor(uri) });
    this.subs.push(
      vscode.window.onDidChangeTextEditorSelection((e) => this.schedule([e.textEditor])),
      vscode.window.onDidChangeVisibleTextEditors(() => this.scheduleAll()),
      store.onDidChange(() => {
        this.updateStatus();
        this.scheduleAll();
      }),
      vscode.window.onDidChangeActiveTextEditor(() => this.updateStatus()),
      decorations.onDidChangeFocus(() => this.scheduleAll()),
      settings.onChange((next, e) => this.onSettings(next, e)),
    );
    void vscode.commands.executeCommand('setContext', CONTEXT_KEY, this.on);
    this.updateStatus();
    if (this.on) this.scheduleAll();
  }

  get enabled(): boolean {
    return this.on;
  }

  get mode(): FollowMode {
    return this.currentMode;
  }

  get aggregate(): FollowAggregate {
    return this.currentAggregate;
  }

  /** What was drawn in the visible editor of `uri` (undefined: nothing, Follow Cursor is off or there is no query). */
  renderedFor(uri: string): FollowRender | undefined {
    return this.rendered.get(uri);
  }

  private get topCount(): number {
    return this.settings.current.followTopK;
  }

  private choice(): HeadChoice {
    const { layer, head } = this.decorations.focus;
    return { layer, head, aggregate: this.currentAggregate };
  }

  // ---- switching ----

  /** Turn Follow Cursor on or off at once; the setting is written after (where it is set now). */
  async setEnabled(on: boolean): Promise<void> {
    this.apply(on);
    await this.persist('followCursor', on);
  }

  async setMode(mode: FollowMode): Promise<void> {
    this.currentMode = mode;
    this.changedView();
    await this.persist('followCursor.mode', mode);
  }

  async setAggregate(aggregate: FollowAggregate): Promise<void> {
    this.currentAggregate = aggregate;
    this.changedView();
    await this.persist('followCursor.aggregate', aggregate);
  }

  private apply(on: boolean): void {
    if (on === this.on) return;
    this.on = on;
    void vscode.commands.executeCommand('setContext', CONTEXT_KEY, on);
    this.changedView();
  }

  private changedView(): void {
    this.updateStatus();
    this.scheduleAll();
  }

  /** Into the workspace when the workspace sets it already, else the user's settings. */
  private async persist(key: string, value: unknown): Promise<void> {
    const config = vscode.workspace.getConfiguration(SECTION);
    const target = config.inspect(key)?.workspaceValue !== undefined ? vscode.ConfigurationTarget.Workspace : vscode.ConfigurationTarget.Global;
    this.writing++;
    try {
      await config.update(key, value, target);
    } finally {
      this.writing--;
      this.settings.refresh();
    }
  }

  private onSettings(s: SettingsWatcher['current'], e: vscode.ConfigurationChangeEvent): void {
    // a change made in settings.json (our own writes already took effect)
    if (!this.writing) {
      if (e.affectsConfiguration(`${SECTION}.followCursor.mode`)) this.currentMode = s.followMode;
      if (e.affectsConfiguration(`${SECTION}.followCursor.aggregate`)) this.currentAggregate = s.followAggregate;
      if (s.followCursor !== this.on) return this.apply(s.followCursor);
    }
    this.changedView();
  }

  /** Next/previous head (`step` ±1) of the focused layer; the focus moves for the explorer and the colours too. */
  stepHead(step: number): void {
    const r = this.activeAnalysis()?.record;
    if (!r) return void vscode.window.showInformationMessage('Head Lens: run Analyze Attention first; the heads are the analysed model’s.');
    const { layer, head } = this.decorations.focus;
    const l = layer >= 0 && layer < r.L ? layer : 0;
    const h = head >= 0 && head < r.H ? (head + step + r.H) % r.H : step > 0 ? 0 : r.H - 1;
    // stepping through heads asks for one head: a layer mean or max would not change
    this.currentAggregate = 'head';
    this.decorations.setFocus(l, h, 'editor');
    this.changedView();
  }

  /** Next/previous layer (`step` ±1), keeping the head. */
  stepLayer(step: number): void {
    const r = this.activeAnalysis()?.record;
    if (!r) return void vscode.window.showInformationMessage('Head Lens: run Analyze Attention first; the layers are the analysed model’s.');
    const { layer, head } = this.decorations.focus;
    const l = layer >= 0 && layer < r.L ? (layer + step + r.L) % r.L : step > 0 ? 0 : r.L - 1;
    this.decorations.setFocus(l, head < r.H ? head : -1, 'editor');
    this.changedView();
  }

  private activeAnalysis(): DocumentAnalysis | undefined {
    const editor = vscode.window.activeTextEditor ?? vscode.window.visibleTextEditors.find((e) => this.store.get(e.document.uri.toString()));
    return editor ? this.store.get(editor.document.uri.toString()) : this.store.get(this.store.analysedUris[0] ?? '');
  }

  // ---- drawing ----

  private scheduleAll(): void {
    this.schedule(vscode.window.visibleTextEditors);
  }

  private schedule(editors: readonly vscode.TextEditor[]): void {
    if (!this.on && !this.rendered.size) return;
    editors.forEach((e) => this.pending.add(e));
    this.timer ??= setTimeout(() => this.flush(), FRAME_MS);
  }

  /** Draw now whatever is waiting (the tests call it to skip the frame wait). */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const editors = [...this.pending];
    this.pending.clear();
    const visible = new Set(vscode.window.visibleTextEditors.map((e) => e.document.uri.toString()));
    for (const uri of [...this.rendered.keys()]) if (!visible.has(uri)) this.rendered.delete(uri);
    let overlayChanged = false;
    for (const editor of editors) overlayChanged = this.render(editor) || overlayChanged;
    // the metric colours step aside (or come back) in the same frame; otherwise only the legend changes
    if (overlayChanged) this.decorations.update();
    else this.decorations.refreshLegend();
    this.updateStatus();
    for (const editor of editors) this.renderedEvent.fire(editor.document.uri.toString());
  }

  /** Draws one editor; true when it started or stopped showing a query. */
  private render(editor: vscode.TextEditor): boolean {
    const uri = editor.document.uri.toString();
    const had = this.rendered.has(uri);
    const a = this.store.get(uri);
    const current = a && a.version === editor.document.version ? a : undefined;
    const query = this.on && current ? queryAt(editor, current) : -1;
    if (!current || query < 0) {
      this.clear(editor);
      return had;
    }
    const drawn = this.draw(editor, current, query);
    this.rendered.set(uri, drawn);
    return !had;
  }

  private draw(editor: vscode.TextEditor, a: DocumentAnalysis, query: number): FollowRender {
    const t0 = Date.now();
    const r = a.record, doc = editor.document;
    const choice = this.choice();
    const values = attentionAround(r, query, this.currentMode, choice);
    const { levels, top: scaleTop } = attentionLevels(values, LEVELS, query);
    const top = topK(values, this.topCount, query);
    const shown = mostValued(levels, values, this.settings.current.maxAnnotatedTokens);
    const spans = new TokenSpans(doc, a, [...shown, ...top.map((k) => k.index), query]);
    const levelRanges: vscode.Range[][] = Array.from({ length: LEVELS }, () => []);
    for (const t of shown) {
      const range = spans.visible(t);
      if (range) levelRanges[levels[t]].push(range);
    }
    const topRanges = top.map((k) => spans.visible(k.index));
    const queryRange = spans.visible(query);
    this.levelTypes.forEach((type, i) => editor.setDecorations(type, levelRanges[i]));
    editor.setDecorations(this.topKeyType, topRanges.filter((x): x is vscode.Range => !!x));
    editor.setDecorations(this.queryType, queryRange ? [queryRange] : []);
    return { uri: a.uri, query, mode: this.currentMode, choice, heads: describeChoice(choice, r.L, r.H), top, scaleTop, levelRanges, topRanges, queryRange, ms: Date.now() - t0 };
  }

  private clear(editor: vscode.TextEditor): void {
    if (!this.rendered.delete(editor.document.uri.toString())) return;
    for (const type of [...this.levelTypes, this.topKeyType, this.queryType]) editor.setDecorations(type, []);
  }

  // ---- what the legend, the status bar and the hover say ----

  private legendFor(uri: string): LegendContent | null {
    const f = this.rendered.get(uri);
    const a = f && this.store.get(uri);
    if (!f || !a) return null;
    const tok = a.record.tokens[f.query];
    const name = shortToken(tok?.text ?? '');
    const direction = f.mode === 'attendsTo' ? 'attention from' : 'attention to';
    const scale = f.scaleTop > 0 ? `${formatScale(0, f.scaleTop)} ${LEGEND_RAMP}` : 'no attention maps';
    const md = new vscode.MarkdownString(
      `**Head Lens colours**: ${f.mode === 'attendsTo' ? `how much the query #${f.query} “${name}” attends to each token` : `how much each token attends to #${f.query} “${name}”`} (${f.heads}); ` +
        `${LEVELS} levels ${LEGEND_RAMP} from 0 to ${formatValue(f.scaleTop)} (the largest weight), weights under ${MIN_SHOWN_FRACTION * 100} % of it untinted; the top ${f.top.length} underlined, the query outlined.\n\n` +
        (f.scaleTop > 0 ? '' : 'This window has no attention maps (not arrived yet, or the analysis was run without them).\n\n') +
        'Click to choose the heads; Next/Previous Head and Layer move the focus.',
    );
    return { text: `$(eye) ${direction} “${name}” ${f.heads} ${scale}`, tooltip: md, command: { title: 'Choose the heads', command: Command.ChooseFollowAggregate } };
  }

  private updateStatus(): void {
    const a = this.activeAnalysis();
    const heads = a ? describeChoice(this.choice(), a.record.L, a.record.H) : AGGREGATE_WORDS[this.currentAggregate].label.toLowerCase();
    this.status.update({ enabled: this.on, mode: this.currentMode, heads, topK: this.topCount }, this.on || this.store.analysedUris.length > 0);
  }

  /** The status-bar switch's text (the tests read it). */
  get statusText(): string {
    return this.status.text;
  }

  /** The hover's list for token t taken as the query (null while off). */
  hoverView(a: DocumentAnalysis, t: number): FollowHoverView | null {
    if (!this.on) return null;
    const choice = this.choice();
    const values = attentionAround(a.record, t, this.currentMode, choice);
    return { mode: this.currentMode, heads: describeChoice(choice, a.record.L, a.record.H), top: topK(values, this.topCount, t), self: values[t] };
  }

  /** Disposed with the controller. */
  track(d: vscode.Disposable): void {
    this.subs.push(d);
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    [...this.levelTypes, this.topKeyType, this.queryType].forEach((t) => t.dispose());
    this.status.dispose();
    this.renderedEvent.dispose();
    this.subs.forEach((s) => s.dispose());
  }
}

/**
 * The token under the cursor. At a token's end (the cursor right after `softmax`) the next token is
 * whitespace or punctuation more often than not: a token of whitespace gives way to the one before.
 */
function queryAt(editor: vscode.TextEditor, a: DocumentAnalysis): number {
  const r = a.record;
  const offset = editor.document.offsetAt(editor.selection.active);
  const t = r.tokenAt(offset);
  const blank = (i: number) => i < 0 || !r.tokens[i].text.trim();
  if (!blank(t)) return t;
  const before = offset > 0 ? r.tokenAt(offset - 1) : -1;
  return blank(before) ? t : before;
}

/** The tinted tokens, at most `max` of them (the largest weights first when there are more). */
function mostValued(levels: Int8Array, values: Float32Array, max: number): number[] {
  const shown: number[] = [];
  for (let t = 0; t < levels.length; t++) if (levels[t] >= 0) shown.push(t);
  if (shown.length <= max) return shown;
  return shown.sort((a, b) => values[b] - values[a]).slice(0, max);
}

/** Document ranges of tokens from one read of the text they span. */
class TokenSpans {
  private readonly from: number;
  private readonly text: string;
  constructor(private readonly doc: vscode.TextDocument, private readonly a: DocumentAnalysis, indices: number[]) {
    const tokens = indices.map((i) => a.record.tokens[i]).filter((t) => !!t);
    this.from = Math.min(...tokens.map((t) => t.start));
    const to = Math.max(...tokens.map((t) => t.end));
    this.text = tokens.length ? doc.getText(new vscode.Range(doc.positionAt(this.from), doc.positionAt(to))) : '';
  }

  /**
   * The visible characters of token t (GPT-2 tokens carry their leading space); a token of spaces
   * (attention often goes to indentation) keeps them, without its line breaks. Null: nothing to draw on.
   */
  visible(t: number): vscode.Range | null {
    const tok = this.a.record.tokens[t];
    if (!tok) return null;
    const chars = this.text.slice(tok.start - this.from, tok.end - this.from);
    let s = 0, e = chars.length;
    const skip = chars.trim() ? /\s/ : /[\r\n]/;
    while (s < e && skip.test(chars[s])) s++;
    while (e > s && skip.test(chars[e - 1])) e--;
    return e > s ? new vscode.Range(this.doc.positionAt(tok.start + s), this.doc.positionAt(tok.start + e)) : null;
  }
}

/** A token as the legend names it: trimmed, visible line breaks, at most 16 characters. */
function shortToken(text: string): string {
  const s = text.trim().replace(/\r?\n/g, '↵').replace(/\t/g, '⇥') || text.replace(/\r?\n/g, '↵').replace(/ /g, '·');
  return s.length > 16 ? `${s.slice(0, 15)}…` : s;
}

async function chooseAggregate(follow: FollowCursor, given?: unknown): Promise<void> {
  if (typeof given === 'string' && (FOLLOW_AGGREGATES as readonly string[]).includes(given)) return follow.setAggregate(given as FollowAggregate);
  const items = FOLLOW_AGGREGATES.map((name) => ({ name, label: AGGREGATE_WORDS[name].label, detail: AGGREGATE_WORDS[name].detail, description: name === follow.aggregate ? 'current' : undefined }));
  const pick = await vscode.window.showQuickPick(items, { title: 'Head Lens: Follow Cursor reads' });
  if (pick) await follow.setAggregate(pick.name);
}

/** The controller, its commands (toggle, mode, heads, next/previous head and layer) and its hover part. */
export function register(store: AnalysisStore, decorations: TokenDecorations, settings: SettingsWatcher): FollowCursor {
  const follow = new FollowCursor(store, decorations, settings);
  const isMode = (m: unknown): m is FollowMode => m === 'attendsTo' || m === 'attendedBy';
  const subs = vscode.Disposable.from(
    vscode.commands.registerCommand(Command.ToggleFollowCursor, (on?: unknown) => follow.setEnabled(typeof on === 'boolean' ? on : !follow.enabled)),
    vscode.commands.registerCommand(Command.FollowCursorMode, (mode?: unknown) => follow.setMode(isMode(mode) ? mode : follow.mode === 'attendsTo' ? 'attendedBy' : 'attendsTo')),
    vscode.commands.registerCommand(Command.ChooseFollowAggregate, (aggregate?: unknown) => chooseAggregate(follow, aggregate)),
    vscode.commands.registerCommand(Command.NextHead, () => follow.stepHead(1)),
    vscode.commands.registerCommand(Command.PreviousHead, () => follow.stepHead(-1)),
    vscode.commands.registerCommand(Command.NextLayer, () => follow.stepLayer(1)),
    vscode.commands.registerCommand(Command.PreviousLayer, () => follow.stepLayer(-1)),
    // registered after the head-code hover, so VS Code shows this part first
    registerFollowHover(store, (a, t) => follow.hoverView(a, t)),
  );
  follow.track(subs);
  return follow;
}
