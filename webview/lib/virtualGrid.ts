/**
 * A virtualised grid of coloured cells — the attention matrix and the signal strips — that stays
 * smooth at 4,096 × 4,096: nothing per cell lives in the DOM. A transparent scroller carries a
 * spacer the size of the whole grid; one canvas over it draws only the visible part, from tiles of
 * 256 × 256 pixels painted on demand and cached. Zoomed out below a device pixel per cell, a tile
 * pixel covers 2^k × 2^k cells and the source pools them (max for attention), so thin structure
 * such as the diagonal survives. Row and column labels are a few absolutely placed elements for
 * the visible rows and columns only (sticky: they sit outside the scroller and follow it), plus a
 * highlighted label at the cell under the mouse. Painting missing tiles has a per-frame budget
 * while the user scrolls or zooms; the first view is painted whole.
 */

export interface GridSource {
  rows: number;
  cols: number;
  /**
   * Paint `outH` × `outW` pixels into `out` (packed RGBA, little-endian ABGR words): pixel (y, x)
   * stands for rows r0 + y·stepR … + stepR − 1 and columns c0 + x·stepC … (clipped to the grid).
   */
  paint(out: Uint32Array, outW: number, outH: number, r0: number, c0: number, stepR: number, stepC: number): void;
}

export interface GridView {
  cellW: number;
  cellH: number;
  /** Scroll offsets and the visible size, CSS pixels. */
  left: number;
  top: number;
  width: number;
  height: number;
}

export interface GridCell {
  r: number;
  c: number;
}

export interface GridOptions {
  /** Class of the drawing canvas (`matrix`, `strip`). */
  canvasClass: string;
  /** Largest height of the scrolled area, CSS pixels (a smaller grid takes only what it needs). */
  height: number;
  rowAxisWidth: number;
  /** Height of the column labels; 0 = none. */
  colAxisHeight: number;
  /**
   * The first view's smallest cell (CSS px): a big grid starts at this size rather than whole,
   * so the first draw reads only what it shows ('fit' shows it all).
   */
  minStartCell?: number;
  /** Fixed cell height (strips); absent = square cells that zoom with the width (matrix). */
  rowHeight?: number;
  rowLabel(r: number): string;
  colLabel(c: number): string;
  /** Added to a row or column's index where every n-th one is labelled with its number (the matrix: the window's start). */
  labelOffset?(): number;
  /** Background of the canvas where no tile is (yet). */
  background(): string;
  /** Drawn over the tiles in CSS pixels, translated so (0, 0) is the grid's origin. */
  overlay?(ctx: CanvasRenderingContext2D, view: GridView): void;
  /** Extra elements of the row axis (e.g. the owned rows' bar), placed in grid coordinates. */
  rowAxisDecor?(axis: HTMLElement, view: GridView): void;
  onHover?(cell: GridCell | null, ev: MouseEvent): void;
  onClick?(cell: GridCell, ev: MouseEvent): void;
  onKey?(ev: KeyboardEvent): void;
  onViewChange?(view: GridView): void;
}

const TILE = 256;
const MAX_TILES = 160;
const MAX_CELL = 40;
/** Dense labels from this cell size; below it, every n-th row/column is labelled. */
const LABEL_CELL = 9;
const FRAME_BUDGET_MS = 12;

export class VirtualGrid {
  readonly root: HTMLDivElement;
  readonly canvas: HTMLCanvasElement;
  readonly viewport: HTMLDivElement;
  private readonly spacer: HTMLDivElement;
  private readonly rowAxis: HTMLDivElement;
  private readonly colAxis: HTMLDivElement;
  private readonly stage: HTMLDivElement;
  private source: GridSource | null = null;
  private sourceKey = '';
  private readonly tiles = new Map<string, HTMLCanvasElement>();
  private cellW = 0;
  private frame = 0;
  private hover: GridCell | null = null;
  private silent = false;

  constructor(
    parent: HTMLElement,
    private readonly opts: GridOptions,
  ) {
    this.root = el('div', 'vgrid', parent);
    this.root.style.gridTemplateColumns = `${opts.rowAxisWidth}px minmax(0, 1fr)`;
    el('div', 'corner', this.root).style.height = `${opts.colAxisHeight}px`;
    this.colAxis = el('div', 'col-axis', this.root);
    this.colAxis.style.height = `${opts.colAxisHeight}px`;
    this.rowAxis = el('div', 'row-axis', this.root);
    const stage = (this.stage = el('div', 'stage', this.root));
    stage.style.height = `${opts.height}px`;
    this.canvas = el('canvas', opts.canvasClass, stage);
    this.viewport = el('div', 'viewport', stage);
    this.viewport.tabIndex = 0;
    this.spacer = el('div', 'spacer', this.viewport);
    this.viewport.addEventListener('scroll', () => this.schedule(true));
    this.viewport.addEventListener('wheel', (ev) => this.onWheel(ev), { passive: false });
    this.viewport.addEventListener('mousemove', (ev) => this.onMouse(ev));
    this.viewport.addEventListener('mouseleave', (ev) => {
      this.hover = null;
      this.labels();
      opts.onHover?.(null, ev);
    });
    this.viewport.addEventListener('click', (ev) => {
      const cell = this.cellAt(ev);
      if (cell) opts.onClick?.(cell, ev);
    });
    this.viewport.addEventListener('keydown', (ev) => this.onKeyDown(ev));
    // the room the page gives the grid decides the stage's size (and whether it scrolls)
    new ResizeObserver(() => {
      this.resize();
      this.schedule(false);
    }).observe(this.root);
  }

  get view(): GridView {
    return { cellW: this.cellW, cellH: this.cellH, left: this.viewport.scrollLeft, top: this.viewport.scrollTop, width: this.viewport.clientWidth, height: this.viewport.clientHeight };
  }

  private get cellH(): number {
    return this.opts.rowHeight ?? this.cellW;
  }

  /** Show a source; tiles are kept while `key` (what the pixels depend on) stays the same. */
  setSource(source: GridSource, key: string): void {
    if (key !== this.sourceKey) this.tiles.clear();
    this.source = source;
    this.sourceKey = key;
    if (!this.cellW) this.cellW = Math.max(this.fitCell(), this.opts.minStartCell ?? 0);
    this.resize();
    this.render(false);
  }

  /** Forget every painted tile (the theme changed). */
  invalidate(): void {
    this.tiles.clear();
    this.schedule(false);
  }

  /** The cell size that shows every column (and, for square cells, every row). */
  fitCell(): number {
    const s = this.source;
    if (!s) return 1;
    const w = Math.max(50, this.availableWidth()) / Math.max(1, s.cols);
    return this.opts.rowHeight ? w : Math.min(w, Math.max(50, this.opts.height) / Math.max(1, s.rows));
  }

  /** Zoom to a cell width, keeping the grid point under `anchor` (viewport pixels) in place. */
  zoomTo(cellW: number, anchor?: { x: number; y: number }): void {
    const next = Math.max(Math.min(this.fitCell(), MAX_CELL), Math.min(MAX_CELL, cellW));
    const v = this.view;
    const ax = anchor?.x ?? v.width / 2, ay = anchor?.y ?? v.height / 2;
    const col = (v.left + ax) / (v.cellW || 1), row = (v.top + ay) / (v.cellH || 1);
    this.cellW = next;
    this.resize();
    this.viewport.scrollLeft = col * next - ax;
    if (!this.opts.rowHeight) this.viewport.scrollTop = row * next - ay;
    this.render(true);
  }

  /** Apply another grid's horizontal view (strips scroll and zoom together). */
  follow(view: GridView): void {
    this.silent = true;
    if (view.cellW !== this.cellW) {
      this.cellW = view.cellW;
      this.resize();
    }
    this.viewport.scrollLeft = view.left;
    this.render(true);
    this.silent = false;
  }

  /** Restore a saved view (cell size and scroll). */
  restore(view: { cellW: number; left: number; top: number }): void {
    this.cellW = Math.max(0.01, Math.min(MAX_CELL, view.cellW));
    this.resize();
    this.viewport.scrollLeft = view.left;
    this.viewport.scrollTop = view.top;
    this.render(false);
  }

  /** Scroll so a cell is visible (centred when it was not). */
  reveal(r: number | null, c: number | null): void {
    const v = this.view;
    if (r !== null && (r * v.cellH < v.top || (r + 1) * v.cellH > v.top + v.height)) this.viewport.scrollTop = r * v.cellH - v.height / 2;
    if (c !== null && (c * v.cellW < v.left || (c + 1) * v.cellW > v.left + v.width)) this.viewport.scrollLeft = c * v.cellW - v.width / 2;
    this.render(false);
  }

  /** Width the grid's column leaves for the cells (the stage's border aside). */
  private availableWidth(): number {
    return this.root.clientWidth - this.opts.rowAxisWidth - 2;
  }

  /** Size the spacer to the grid, and the stage to the grid where it is smaller than the room (plus scrollbars). */
  private resize(): void {
    const s = this.source;
    if (!s) return;
    const w = Math.ceil(s.cols * this.cellW), h = Math.ceil(s.rows * this.cellH), bar = scrollbarSize();
    this.spacer.style.width = `${w}px`;
    this.spacer.style.height = `${h}px`;
    const scrollsX = w > this.availableWidth();
    const height = Math.min(this.opts.height, h + (scrollsX ? bar : 0));
    this.stage.style.height = `${height}px`;
    this.stage.style.maxWidth = `${w + (h > height - (scrollsX ? bar : 0) ? bar : 0)}px`;
  }

  private schedule(interactive: boolean): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render(interactive);
    });
  }

  /** Draw the visible part now; `interactive` limits the time spent painting new tiles. */
  render(interactive: boolean): void {
    const s = this.source;
    const v = this.view;
    const dpr = window.devicePixelRatio || 1;
    const W = Math.max(1, Math.round(v.width * dpr)), H = Math.max(1, Math.round(v.height * dpr));
    if (this.canvas.width !== W || this.canvas.height !== H) {
      this.canvas.width = W;
      this.canvas.height = H;
      this.canvas.style.width = `${v.width}px`;
      this.canvas.style.height = `${v.height}px`;
    }
    const ctx = this.canvas.getContext('2d')!;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = this.opts.background();
    ctx.fillRect(0, 0, v.width, v.height);
    if (!s || !s.rows || !s.cols) return;
    const complete = this.drawTiles(ctx, s, v, dpr, interactive);
    ctx.save();
    ctx.translate(-v.left, -v.top);
    this.opts.overlay?.(ctx, v);
    ctx.restore();
    this.labels();
    this.canvas.dataset.rows = `${Math.floor(v.top / v.cellH)}-${Math.min(s.rows, Math.ceil((v.top + v.height) / v.cellH)) - 1}`;
    this.canvas.dataset.complete = complete ? '1' : '0';
    this.canvas.dataset.cell = String(v.cellW);
    if (!complete) this.schedule(true);
    if (!this.silent) this.opts.onViewChange?.(v);
  }

  /** Pooling steps (powers of two) so a tile pixel is at least a device pixel. */
  private steps(v: GridView, dpr: number): [number, number] {
    const step = (cell: number) => (cell * dpr >= 1 ? 1 : 2 ** Math.ceil(Math.log2(1 / (cell * dpr))));
    return [step(v.cellH), step(v.cellW)];
  }

  private drawTiles(ctx: CanvasRenderingContext2D, s: GridSource, v: GridView, dpr: number, interactive: boolean): boolean {
    const [sr, sc] = this.steps(v, dpr);
    const spanR = TILE * sr, spanC = TILE * sc;
    const tr0 = Math.max(0, Math.floor(v.top / v.cellH / spanR)), tr1 = Math.min(Math.ceil(s.rows / spanR), Math.ceil((v.top + v.height) / v.cellH / spanR));
    const tc0 = Math.max(0, Math.floor(v.left / v.cellW / spanC)), tc1 = Math.min(Math.ceil(s.cols / spanC), Math.ceil((v.left + v.width) / v.cellW / spanC));
    ctx.imageSmoothingEnabled = false;
    const t0 = performance.now();
    let complete = true;
    for (let tr = tr0; tr < tr1; tr++) {
      for (let tc = tc0; tc < tc1; tc++) {
        const key = `${sr}:${sc}:${tr}:${tc}`;
        let tile = this.tiles.get(key);
        if (!tile) {
          if (interactive && performance.now() - t0 > FRAME_BUDGET_MS) {
            complete = false;
            continue;
          }
          tile = this.paintTile(s, tr * spanR, tc * spanC, sr, sc);
          this.remember(key, tile);
        }
        const x = tc * spanC * v.cellW - v.left, y = tr * spanR * v.cellH - v.top;
        ctx.drawImage(tile, x, y, tile.width * sc * v.cellW, tile.height * sr * v.cellH);
      }
    }
    return complete;
  }

  private paintTile(s: GridSource, r0: number, c0: number, sr: number, sc: number): HTMLCanvasElement {
    const w = Math.min(TILE, Math.ceil((s.cols - c0) / sc)), h = Math.min(TILE, Math.ceil((s.rows - r0) / sr));
    const tile = document.createElement('canvas');
    tile.width = w;
    tile.height = h;
    const ctx = tile.getContext('2d')!;
    const img = ctx.createImageData(w, h);
    s.paint(new Uint32Array(img.data.buffer), w, h, r0, c0, sr, sc);
    ctx.putImageData(img, 0, 0);
    return tile;
  }

  private remember(key: string, tile: HTMLCanvasElement): void {
    this.tiles.set(key, tile);
    if (this.tiles.size > MAX_TILES) this.tiles.delete(this.tiles.keys().next().value as string);
  }

  // -- labels ----------------------------------------------------------------------------------

  private labels(): void {
    const s = this.source;
    if (!s) return;
    const v = this.view;
    const offset = this.opts.labelOffset?.() ?? 0;
    placeLabels(this.rowAxis, 'y', s.rows, v.cellH, v.top, v.height, this.hover?.r ?? null, (r) => this.opts.rowLabel(r), offset);
    if (this.opts.colAxisHeight) placeLabels(this.colAxis, 'x', s.cols, v.cellW, v.left, v.width, this.hover?.c ?? null, (c) => this.opts.colLabel(c), offset);
    this.opts.rowAxisDecor?.(this.rowAxis, v);
  }

  // -- input -----------------------------------------------------------------------------------

  cellAt(ev: MouseEvent): GridCell | null {
    const s = this.source;
    const rect = this.viewport.getBoundingClientRect();
    const x = ev.clientX - rect.left, y = ev.clientY - rect.top;
    if (!s || x < 0 || y < 0 || x >= this.viewport.clientWidth || y >= this.viewport.clientHeight) return null;
    const c = Math.floor((x + this.viewport.scrollLeft) / this.cellW), r = Math.floor((y + this.viewport.scrollTop) / this.cellH);
    return r >= 0 && r < s.rows && c >= 0 && c < s.cols ? { r, c } : null;
  }

  private onMouse(ev: MouseEvent): void {
    const cell = this.cellAt(ev);
    const changed = cell?.r !== this.hover?.r || cell?.c !== this.hover?.c;
    this.hover = cell;
    if (changed) this.labels();
    this.opts.onHover?.(cell, ev);
  }

  private onWheel(ev: WheelEvent): void {
    if (!ev.ctrlKey && !ev.metaKey) return;
    ev.preventDefault();
    const rect = this.viewport.getBoundingClientRect();
    this.zoomTo(this.cellW * Math.exp(-ev.deltaY * 0.002), { x: ev.clientX - rect.left, y: ev.clientY - rect.top });
  }

  private onKeyDown(ev: KeyboardEvent): void {
    if (ev.key === '+' || ev.key === '=') this.zoomTo(this.cellW * 1.5);
    else if (ev.key === '-') this.zoomTo(this.cellW / 1.5);
    else return this.opts.onKey?.(ev);
    ev.preventDefault();
  }
}

/** Labels for the visible rows (axis 'y') or columns ('x'), reusing the axis's label elements. */
function placeLabels(axis: HTMLElement, dir: 'x' | 'y', count: number, cell: number, scroll: number, size: number, hover: number | null, text: (i: number) => string, offset: number): void {
  const every = cell >= LABEL_CELL ? 1 : niceStep(Math.ceil(14 / cell));
  const first = Math.max(0, Math.floor(scroll / cell / every) * every), last = Math.min(count - 1, Math.ceil((scroll + size) / cell));
  const wanted: number[] = [];
  for (let i = first; i <= last; i += every) wanted.push(i);
  const pool = [...axis.querySelectorAll<HTMLDivElement>(':scope > div.label:not(.hover)')];
  wanted.forEach((i, n) => {
    const label = pool[n] ?? el('div', 'label', axis);
    setLabel(label, dir, i, cell, scroll, every > 1 ? `#${i + offset} ${text(i)}` : text(i), every > 1);
  });
  for (let n = wanted.length; n < pool.length; n++) pool[n].remove();
  let hl = axis.querySelector<HTMLDivElement>(':scope > div.label.hover');
  if (hover === null) {
    hl?.remove();
    return;
  }
  hl ??= el('div', 'label hover', axis);
  setLabel(hl, dir, hover, cell, scroll, text(hover), false);
}

function setLabel(label: HTMLDivElement, dir: 'x' | 'y', i: number, cell: number, scroll: number, text: string, sparse: boolean): void {
  label.dataset.index = String(i);
  if (label.textContent !== text) label.textContent = text;
  label.classList.toggle('sparse', sparse);
  const line = Math.max(cell, 12);
  let offset = i * cell - scroll + cell / 2 - line / 2;
  if (i * cell - scroll >= 0) offset = Math.max(0, offset); // the first visible label stays inside the axis
  if (dir === 'y') {
    label.style.height = label.style.lineHeight = `${line}px`;
    label.style.transform = `translateY(${offset}px)`;
  } else {
    label.style.width = label.style.lineHeight = `${line}px`;
    label.style.transform = `translateX(${offset}px) rotate(180deg)`;
  }
}

/** 1, 2, 5, 10, 20, 50, … at least n. */
function niceStep(n: number): number {
  let p = 1;
  for (;;) {
    for (const m of [1, 2, 5]) if (m * p >= n) return m * p;
    p *= 10;
  }
}

let scrollbar = -1;
/** The thickness of this browser's scrollbars (0 where they overlay the content). */
function scrollbarSize(): number {
  if (scrollbar < 0) {
    const probe = el('div', '', document.body);
    probe.style.cssText = 'position:absolute;top:-200px;width:100px;height:100px;overflow:scroll';
    scrollbar = probe.offsetWidth - probe.clientWidth;
    probe.remove();
  }
  return scrollbar;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className: string, parent: HTMLElement): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  e.className = className;
  parent.appendChild(e);
  return e;
}
