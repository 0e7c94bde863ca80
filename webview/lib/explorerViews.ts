/**
 * The Attention Explorer: the webview's model of the analysis (model.ts) and its views, one
 * section each (views/*): summary, layers × heads overview, attention matrix, head view, signal
 * strips, latent-code map and probe — and, in the standalone report, the annotated text first.
 * The explorer owns the view state; the panel (explorer.ts) and the report (report.ts) only say
 * what happens outside it (post to the host, save the state).
 */
import type { ExplorerData } from '../../engine/protocol';
import { AnalysisModel } from './model';
import type { ExplorerState } from './state';
import { themeChanged as resetTheme } from './theme';
import { classifyTokenTexts, type TokenClass } from './tokenClass';
import type { Root } from './view';
import { AnnotatedTextView } from './views/annotatedText';
import { forgetAttentionColours } from './views/attentionPaint';
import type { ExplorerView, ViewContext, ViewMode } from './views/context';
import { HeadView } from './views/headView';
import { LatentView } from './views/latent';
import { LensStripView } from './views/lensStrip';
import { MatrixView } from './views/matrix';
import { OverviewView } from './views/overview';
import { ProbeView } from './views/probeView';
import { StripsView } from './views/strips';
import { SummaryView } from './views/summary';

export type { ExplorerState } from './state';

export interface ExplorerHooks {
  /** A head was focused here (the panel tells the host: the editor colours follow). */
  onFocus?(layer: number, head: number): void;
  /** A token was selected here (the panel selects it in the editor). */
  onSelect?(index: number, role: 'query' | 'key'): void;
  /** The state changed: save it. */
  onPersist?(): void;
}

export class Explorer {
  model: AnalysisModel | null = null;
  private classes: TokenClass[] | null = null;
  private readonly views: ExplorerView[];
  private readonly matrix: MatrixView;
  private readonly lens: LensStripView;

  constructor(
    private readonly root: Root,
    public state: ExplorerState,
    private readonly hooks: ExplorerHooks,
    readonly mode: ViewMode = 'panel',
  ) {
    this.matrix = new MatrixView(root);
    this.lens = new LensStripView(root);
    const text = mode === 'report' ? [new AnnotatedTextView(root)] : [];
    this.views = [...text, new SummaryView(root), new OverviewView(root), this.matrix, new HeadView(root), new StripsView(root), this.lens, new LatentView(root), new ProbeView(root)];
  }

  setData(data: ExplorerData): void {
    this.model = AnalysisModel.from(data);
    this.lens.setData(data);
    this.classes = null;
    const m = this.model, st = this.state;
    st.layer = Math.min(st.layer, Math.max(0, m.L - 1));
    st.head = Math.min(st.head, Math.max(0, m.H - 1));
    if (st.query !== null && st.query >= m.N) st.query = null;
    if (st.key !== null && st.key >= m.N) st.key = null;
    if (st.window !== null && st.window >= m.windows.length) st.window = null;
    if (st.latentLayer !== null && st.latentLayer >= m.L) st.latentLayer = null;
    this.render();
  }

  clear(): void {
    this.model = null;
    this.lens.setData(null);
    this.classes = null;
    this.render();
  }

  /** Focus a head (from the overview, or from the host's settings). */
  focus(layer: number, head: number): void {
    this.state.layer = layer;
    this.state.head = head;
    this.render();
  }

  /** Select a token; from the host the matrix follows to the window that owns it. */
  select(index: number | null, role: 'query' | 'key', fromHost: boolean): void {
    if (role === 'query') this.state.query = index;
    else this.state.key = index;
    if (fromHost && role === 'query') this.state.window = null;
    this.render();
    if (fromHost) this.matrix.revealQuery();
  }

  themeChanged(): void {
    resetTheme();
    forgetAttentionColours();
    for (const v of this.views) v.themeChanged?.();
    this.render();
  }

  render(): void {
    const m = this.model;
    this.root.selectAll('p.empty').data(m && m.N ? [] : [1]).join('p').attr('class', 'empty').text(this.mode === 'panel' ? 'No analysis yet: run “Head Lens: Analyze Attention” in an editor.' : 'This report holds no analysis.');
    if (!m || !m.N) {
      this.root.selectAll('section').remove();
      return;
    }
    const ctx = this.context(m);
    let failure: unknown = null;
    for (const v of this.views) {
      try {
        v.update(ctx);
      } catch (e) {
        failure ??= e; // the other views still draw; the first failure is reported
      }
    }
    if (failure) throw failure;
  }

  /** The window the matrix shows: the one picked, else the one owning the selected query, else the first. */
  private currentWindow(m: AnalysisModel): number {
    const st = this.state;
    if (st.window !== null && st.window < m.windows.length && m.windows[st.window]) return st.window;
    const owner = st.query !== null ? m.windowOf(st.query) : -1;
    return owner >= 0 ? owner : Math.max(0, m.windows.findIndex((w) => !!w));
  }

  private context(m: AnalysisModel): ViewContext {
    return {
      model: m,
      state: this.state,
      mode: this.mode,
      window: () => this.currentWindow(m),
      classes: () => (this.classes ??= classifyTokenTexts(m.tokens.map((t) => t.text))),
      rerender: () => this.render(),
      cb: {
        focus: (layer, head) => {
          this.focus(layer, head);
          this.hooks.onPersist?.();
          this.hooks.onFocus?.(layer, head);
        },
        selectToken: (index, role) => {
          // a token inside the shown window keeps that window (its row may be owned by a neighbour);
          // one elsewhere (a strip, the latent map) brings the window that owns it
          const w = m.windows[this.currentWindow(m)];
          this.state.window = w && index >= w.start && index < w.start + w.length ? w.index : null;
          this.select(index, role, false);
          this.hooks.onPersist?.();
          this.hooks.onSelect?.(index, role);
        },
        persist: () => this.hooks.onPersist?.(),
      },
    };
  }
}
