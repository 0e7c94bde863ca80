/**
 * What every explorer view is given: the analysis (the webview's own model), the shared view
 * state, where it runs (the panel beside an editor, or the standalone report), and the actions
 * that change the focus or the selection.
 */
import type { AnalysisModel } from '../model';
import type { ExplorerState } from '../state';
import type { TokenClass } from '../tokenClass';

export type ViewMode = 'panel' | 'report';

export interface ExplorerCallbacks {
  /** Focus a layer and head (the overview's click; the editor's colours follow in the panel). */
  focus(layer: number, head: number): void;
  /** Select a token as the query or the key (the panel selects it in the editor too). */
  selectToken(index: number, role: 'query' | 'key'): void;
  /** The state changed without a selection (a control): save it. */
  persist(): void;
}

export interface ViewContext {
  readonly model: AnalysisModel;
  readonly state: ExplorerState;
  readonly mode: ViewMode;
  readonly cb: ExplorerCallbacks;
  /** The window the matrix and the head view show. */
  window(): number;
  /** The token classes (computed once per analysis). */
  classes(): TokenClass[];
  /** Draw every view again (after a control changed the state). */
  rerender(): void;
}

/** A view of the explorer: one section, updated from the context on every render. */
export interface ExplorerView {
  update(ctx: ViewContext): void;
  /** The theme changed: forget colours baked into cached pixels. */
  themeChanged?(): void;
}
