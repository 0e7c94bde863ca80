/**
 * The focused head's attention matrix in one window (rows: queries, columns: keys), virtualised
 * (virtualGrid.ts): tiles painted on demand, sticky token labels on both axes, zoom with the
 * buttons, Ctrl+wheel or +/−. Drawn over it: the keys each query can see (the causal diagonal and,
 * for a sliding-window layer, the window's left edge: ModelInfo.attentionWindows), the rows the
 * window owns (the others are dimmed: their numbers come from a neighbouring window), the
 * selected query row and key column. Hover names query → key and the weight; click selects the
 * query (shift-click the key); the arrow keys move the query. With GQA the label says which kv
 * head the focused head reads; with several windows a picker chooses one.
 */
import type { AnalysisModel } from '../model';
import type { ExplorerState } from '../state';
import { cssVar } from '../theme';
import { fmt, section, selectInput, showToken, tokenLabel, tooltip, type Body, type Root } from '../view';
import { VirtualGrid, type GridSource, type GridView } from '../virtualGrid';
import { attentionColours, paintAttention, visibleKeys, type AttentionColours } from './attentionPaint';
import type { ExplorerView, ViewContext } from './context';

export class MatrixView implements ExplorerView {
  private grid: VirtualGrid | null = null;
  private colours: AttentionColours | null = null;
  private forModel: AnalysisModel | null = null;
  private ctx: ViewContext | null = null;
  /** The window and layer the grid shows (window-relative rows and columns). */
  private shown = { w: -1, l: -1, h: -1 };
  private restored = false;

  constructor(private readonly root: Root) {}

  themeChanged(): void {
    this.colours = null;
    this.grid?.invalidate();
  }

  update(ctx: ViewContext): void {
    this.ctx = ctx;
    const m = ctx.model, st = ctx.state;
    if (m !== this.forModel) {
      this.forModel = m;
      this.colours = null;
    }
    const w = ctx.window(), win = m.windows[w];
    const body = section(this.root, 'matrix', `Attention L${st.layer}.H${st.head} — window ${w + 1}/${m.windows.length} (rows: queries, columns: keys)`);
    this.controls(body, ctx, w);
    const map = m.attention(w, st.layer);
    const hint = !win ? 'No window.' : map ? this.hintText(ctx) : `Attention maps were not sent for layer ${st.layer}.`;
    body.selectAll('p.hint').data([0]).join('p').attr('class', 'hint').text(hint);
    const grid = this.ensureGrid(body);
    grid.root.style.display = map && win ? '' : 'none';
    if (!map || !win) return;
    this.colours ??= attentionColours(m);
    const colours = this.colours;
    const source: GridSource = {
      rows: map.T,
      cols: map.T,
      paint: (out, outW, outH, r0, c0, sr, sc) => paintAttention(map, st.head, colours, m, st.layer, out, outW, outH, r0, c0, sr, sc),
    };
    const moved = this.shown.w !== w;
    this.shown = { w, l: st.layer, h: st.head };
    const saved = this.restored ? null : st.matrixView; // drawing reports its own view: read the saved one first
    this.restored = true;
    grid.setSource(source, `${w}:${st.layer}:${st.head}:${map.T}`);
    if (saved) grid.restore(saved);
    if (moved && st.query !== null && st.query >= win.start && st.query < win.start + win.length) grid.reveal(st.query - win.start, null);
  }

  /** Scroll to the selected query (the editor selected it). */
  revealQuery(): void {
    const ctx = this.ctx, grid = this.grid;
    if (!ctx || !grid || ctx.state.query === null) return;
    const win = ctx.model.windows[ctx.window()];
    if (win && ctx.state.query >= win.start && ctx.state.query < win.start + win.length) grid.reveal(ctx.state.query - win.start, null);
  }

  private hintText(ctx: ViewContext): string {
    const how = ctx.mode === 'panel' ? 'Click a row to select that query in the editor; shift-click selects a key.' : 'Click a row to select its query; shift-click selects a key.';
    return `${how} Ctrl+wheel, + and − zoom; dimmed rows belong to a neighbouring window.`;
  }

  private controls(body: Body, ctx: ViewContext, w: number): void {
    const m = ctx.model, st = ctx.state;
    const bar = body.selectAll<HTMLDivElement, number>('div.controls').data([0]).join('div').attr('class', 'controls') as unknown as Root;
    const windows = m.windows.map((win, i) => ({ value: String(i), label: `window ${i + 1}: tokens ${win.start}–${win.start + win.length - 1} (owns ${win.ownFrom}–${win.ownTo - 1})` }));
    const picker = selectInput(bar, 'window-picker', windows, String(w), (v) => {
      st.window = Number(v);
      ctx.cb.persist();
      ctx.rerender();
    });
    picker.classed('hidden', m.windows.length < 2);
    const zoom = [
      { cls: 'zoom-out', text: '−', title: 'zoom out', f: (g: VirtualGrid) => g.zoomTo(g.view.cellW / 1.5) },
      { cls: 'zoom-in', text: '+', title: 'zoom in', f: (g: VirtualGrid) => g.zoomTo(g.view.cellW * 1.5) },
      { cls: 'zoom-fit', text: 'fit', title: 'show the whole window', f: (g: VirtualGrid) => g.zoomTo(g.fitCell()) },
    ];
    bar
      .selectAll<HTMLButtonElement, (typeof zoom)[0]>('button.zoom')
      .data(zoom, (d) => d.cls)
      .join('button')
      .attr('class', (d) => `zoom ${d.cls}`)
      .attr('title', (d) => d.title)
      .text((d) => d.text)
      .on('click', (_, d) => this.grid && d.f(this.grid));
    bar.selectAll('span.gqa').data(m.Hkv < m.H ? [gqaText(m, st.head)] : []).join('span').attr('class', 'gqa').text((d) => d);
    bar.selectAll('span.band').data([bandText(m, st.layer)]).join('span').attr('class', 'band').text((d) => d);
  }

  private ensureGrid(body: Body): VirtualGrid {
    if (this.grid && body.node()!.contains(this.grid.root)) return this.grid;
    const label = (i: number) => {
      const ctx = this.ctx!, t = ctx.model.tokens[ctx.model.windows[this.shown.w].start + i];
      return t ? showToken(t.text) : '';
    };
    this.grid = new VirtualGrid(body.node()!, {
      canvasClass: 'matrix',
      height: 520,
      minStartCell: 1,
      rowAxisWidth: 110,
      colAxisHeight: 84,
      rowLabel: label,
      colLabel: label,
      labelOffset: () => this.ctx?.model.windows[this.shown.w]?.start ?? 0,
      background: () => cssVar('--vscode-editor-background', '#1e1e1e'),
      overlay: (g, v) => this.overlay(g, v),
      rowAxisDecor: (axis, v) => this.ownedBar(axis, v),
      onHover: (cell, ev) => (cell ? tooltip(this.hoverText(cell.r, cell.c), ev) : tooltip(null)),
      onClick: (cell, ev) => {
        const start = this.ctx!.model.windows[this.shown.w].start;
        this.ctx!.cb.selectToken(start + (ev.shiftKey ? cell.c : cell.r), ev.shiftKey ? 'key' : 'query');
      },
      onKey: (ev) => this.onKey(ev),
      onViewChange: (v) => this.saveView(v),
    });
    return this.grid;
  }

  private hoverText(q: number, k: number): string {
    const ctx = this.ctx!, m = ctx.model, st = ctx.state;
    const win = m.windows[this.shown.w], map = m.attention(this.shown.w, st.layer);
    const tq = m.tokens[win.start + q], tk = m.tokens[win.start + k];
    const [k0, k1] = visibleKeys(m, st.layer, q, win.length);
    const p = map ? map.value(st.head, q, k) : NaN;
    const seen = k >= k0 && k < k1 ? '' : '  (masked: outside what this query sees)';
    return `${tokenLabel(win.start + q, tq?.text ?? '')} → ${tokenLabel(win.start + k, tk?.text ?? '')}\nL${st.layer}.H${st.head} weight ${fmt(p, 4)}${seen}`;
  }

  /** The visible-key band, the dimmed rows of other windows, the selection. */
  private overlay(g: CanvasRenderingContext2D, v: GridView): void {
    const ctx = this.ctx!, m = ctx.model, st = ctx.state, win = m.windows[this.shown.w];
    const T = win.length, c = v.cellW;
    const r0 = Math.max(0, Math.floor(v.top / c)), r1 = Math.min(T, Math.ceil((v.top + v.height) / c));
    const ownA = win.ownFrom - win.start, ownB = win.ownTo - win.start;
    g.fillStyle = cssVar('--vscode-editor-background', '#1e1e1e');
    g.globalAlpha = 0.5;
    if (ownA > r0) g.fillRect(v.left, r0 * c, v.width, (Math.min(ownA, r1) - r0) * c);
    if (ownB < r1) g.fillRect(v.left, Math.max(ownB, r0) * c, v.width, (r1 - Math.max(ownB, r0)) * c);
    g.globalAlpha = 1;
    this.band(g, v, r0, r1, st.layer);
    g.strokeStyle = cssVar('--vscode-focusBorder', '#007fd4');
    g.lineWidth = 1.5;
    if (st.query !== null && st.query >= win.start && st.query < win.start + T) g.strokeRect(v.left, (st.query - win.start) * c, v.width, Math.max(c, 1));
    if (st.key !== null && st.key >= win.start && st.key < win.start + T) g.strokeRect((st.key - win.start) * c, v.top, Math.max(c, 1), v.height);
  }

  /** The edges of the keys a query sees: the diagonal (causal) and the sliding window's left edge. */
  private band(g: CanvasRenderingContext2D, v: GridView, r0: number, r1: number, layer: number): void {
    const m = this.ctx!.model, c = v.cellW;
    const w = m.model.attentionWindows?.[layer] ?? null;
    if (w === 'bidirectional' || (w === null && !m.model.causal)) return;
    g.strokeStyle = cssVar('--vscode-charts-green', '#89d185');
    g.lineWidth = 1;
    g.setLineDash([4, 3]);
    g.beginPath();
    g.moveTo((r0 + 1) * c, r0 * c);
    g.lineTo((r1 + 1) * c, r1 * c);
    if (typeof w === 'number') {
      g.moveTo((r0 - w) * c, r0 * c);
      g.lineTo((r1 - w) * c, r1 * c);
    }
    g.stroke();
    g.setLineDash([]);
  }

  /** A bar beside the row labels over the rows this window owns. */
  private ownedBar(axis: HTMLElement, v: GridView): void {
    const win = this.ctx!.model.windows[this.shown.w];
    let bar = axis.querySelector<HTMLDivElement>(':scope > div.owned');
    if (!bar) {
      bar = document.createElement('div');
      bar.className = 'owned';
      bar.title = 'rows this window owns (reports)';
      axis.appendChild(bar);
    }
    bar.style.transform = `translateY(${(win.ownFrom - win.start) * v.cellH - v.top}px)`;
    bar.style.height = `${Math.max(1, (win.ownTo - win.ownFrom) * v.cellH)}px`;
  }

  private onKey(ev: KeyboardEvent): void {
    const ctx = this.ctx!, st = ctx.state, win = ctx.model.windows[this.shown.w];
    const step = ev.key === 'ArrowDown' ? 1 : ev.key === 'ArrowUp' ? -1 : ev.key === 'PageDown' ? 16 : ev.key === 'PageUp' ? -16 : 0;
    if (!step) return;
    ev.preventDefault();
    const q = st.query !== null && st.query >= win.start && st.query < win.start + win.length ? st.query - win.start : 0;
    const next = Math.max(0, Math.min(win.length - 1, q + step));
    ctx.cb.selectToken(win.start + next, 'query');
    this.grid?.reveal(next, null);
  }

  private saveView(v: GridView): void {
    const st: ExplorerState | undefined = this.ctx?.state;
    if (!st) return;
    st.matrixView = { cellW: v.cellW, left: v.left, top: v.top };
    this.ctx!.cb.persist();
  }
}

/** Which kv head the focused head reads, and which heads share it. */
export function gqaText(m: AnalysisModel, head: number): string {
  const kv = m.kvHeadOf[head] ?? 0;
  const sharing = m.kvHeadOf.map((k, h) => (k === kv ? h : -1)).filter((h) => h >= 0);
  return `GQA: H${head} reads kv head ${kv} of ${m.Hkv} (shared by ${sharing.map((h) => `H${h}`).join(', ')})`;
}

/** What a query sees at a layer, in words. */
export function bandText(m: AnalysisModel, layer: number): string {
  const w = m.model.attentionWindows?.[layer] ?? null;
  if (w === 'bidirectional' || (w === null && !m.model.causal)) return 'bidirectional: every query sees every key';
  if (typeof w === 'number') return `sliding window: a query sees itself and the ${w} keys before it (dashed lines)`;
  return 'causal: a query sees the keys up to itself (dashed diagonal)';
}
