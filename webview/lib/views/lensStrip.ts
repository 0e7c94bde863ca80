/**
 * The logit lens as a layers × tokens strip: cell (l, t) is coloured by how well the residual
 * stream after layer l, read through the final norm and output head, predicts the actual next
 * token t + 1 — its probability, or its rank on a log scale (bright = rank 1). Virtualised like
 * the other strips (4,096 tokens scroll and zoom; zoomed out a pixel keeps the best-predicted
 * position it covers). Hover names the layer's top-k and the rank of the right token; click
 * selects the token as the query. Without a lens it says how to get one.
 */
import type { ExplorerData } from '../../../engine/protocol';
import { LensModel } from '../lens';
import { cssVar, valueScale, type ValueScale } from '../theme';
import { fmt, section, selectInput, showToken, tokenLabel, tooltip, type Root } from '../view';
import { VirtualGrid } from '../virtualGrid';
import type { ExplorerView, ViewContext } from './context';

type LensColour = 'prob' | 'rank';
const ROW_HEIGHT = 14;

export class LensStripView implements ExplorerView {
  private lens: LensModel | null = null;
  private grid: VirtualGrid | null = null;
  private ctx: ViewContext | null = null;
  private colour: LensColour = 'prob';
  private themeVersion = 0;

  constructor(private readonly root: Root) {}

  /** The lens travels in the analysis' output events (the explorer hands it the data it was given). */
  setData(data: ExplorerData | null): void {
    this.lens = data ? LensModel.from(data) : null;
  }

  themeChanged(): void {
    this.themeVersion++;
  }

  update(ctx: ViewContext): void {
    this.ctx = ctx;
    const lens = this.lens && this.lens.N === ctx.model.N ? this.lens : null;
    const body = section(this.root, 'lens', 'Logit lens — layers × tokens');
    const hint = ctx.mode === 'panel'
      ? 'This analysis has no logit lens: turn on the headlens.logitLens setting and run Analyze Attention again (it reads every layer’s residual through the final norm and head).'
      : 'This report holds no logit lens (analyse with the headlens.logitLens setting on, or `headlens analyze --lens`).';
    body.selectAll('p.none').data(lens ? [] : [0]).join('p').attr('class', 'none hint').text(hint);
    const bar = body.selectAll<HTMLDivElement, number>('div.controls').data(lens ? [0] : []).join('div').attr('class', 'controls') as unknown as Root;
    const box = body.selectAll<HTMLDivElement, number>('div.strip-box.lens').data(lens ? [0] : []).join('div').attr('class', 'strip-box lens');
    if (!lens) {
      this.grid = null;
      return;
    }
    bar.selectAll('label').data([0]).join('label').text('colour: ');
    selectInput(bar, 'lens-colour', [{ value: 'prob', label: 'probability of the next token' }, { value: 'rank', label: 'rank of the next token (log scale)' }], this.colour, (v) => {
      this.colour = v as LensColour;
      ctx.rerender();
    });
    if (!this.grid || !this.grid.root.isConnected) this.grid = this.makeGrid(box.node()!);
    const vocab = Math.max(2, ctx.model.model.tokenizer.vocabSize || ctx.model.model.config.vocab_size || 2);
    const scale = this.colour === 'prob' ? valueScale([0, 1], false, 0.5) : valueScale([0, Math.log10(vocab)]);
    const value = (i: number) => (this.colour === 'prob' ? lens.prob[i] : lens.rank[i] >= 1 ? Math.log10(vocab) - Math.log10(lens.rank[i]) : NaN);
    this.grid.setSource({ rows: lens.L, cols: lens.N, paint: (out, w, h, r0, c0, _sr, sc) => paint(out, w, h, r0, c0, sc, lens.L, lens.N, scale, value) }, `${this.colour}:${lens.N}:${this.themeVersion}`);
    this.grid.root.dataset.layers = String(lens.L);
    this.grid.root.dataset.tokens = String(lens.N);
    const what = this.colour === 'prob' ? 'probability of the actual next token, 0 … 1 (square-root scale)' : `rank of the actual next token, bright = 1, dark = ${vocab} (log scale)`;
    box.selectAll('p.caption').data([0]).join('p').attr('class', 'caption hint').text(`Each row a layer’s residual read through the final norm and head; colour: ${what}. Hover for the layer’s top ${lens.K}.`);
  }

  private makeGrid(parent: HTMLElement): VirtualGrid {
    const grid = new VirtualGrid(parent, {
      canvasClass: 'strip lens',
      height: 48 * ROW_HEIGHT,
      rowHeight: ROW_HEIGHT,
      rowAxisWidth: 110,
      colAxisHeight: 56,
      rowLabel: (r) => `L${r}`,
      colLabel: (c) => showToken(this.ctx?.model.tokens[c]?.text ?? ''),
      background: () => cssVar('--vscode-editor-background', '#1e1e1e'),
      onHover: (cell, ev) => tooltip(cell && this.lens ? lensTip(this.ctx!, this.lens, cell.r, cell.c) : null, ev),
      onClick: (cell) => this.ctx!.cb.selectToken(cell.c, 'query'),
    });
    grid.root.dataset.strip = 'lens';
    return grid;
  }
}

/** What hovering cell (layer, t) says: the token, the right next token's rank and probability, the layer's top-k. */
export function lensTip(ctx: ViewContext, lens: LensModel, layer: number, t: number): string {
  const m = ctx.model, e = lens.at(layer, t);
  const text = (id: number) => showToken(m.vocabText[id] ?? `#${id}`);
  const next = m.tokens[t + 1];
  const head = `L${layer} · ${tokenLabel(t, m.tokens[t]?.text ?? '')}`;
  const right = next ? `next ${showToken(next.text)}: rank ${e.rank >= 1 ? e.rank : '—'}, p ${fmt(e.prob, 4)}` : 'no next token';
  const top = `top ${e.top.length}: ${e.top.map((p) => `${text(p.id)} ${fmt(p.p, 3)}`).join('  ')}`;
  const entry = next ? lens.entryLayer(t) : -2;
  const enters = entry >= 0 ? `\nthe next token enters the top 5 at layer ${entry}` : entry === -1 ? '\nthe next token is in no layer’s top 5' : '';
  return `${head}\n${right}\n${top}${enters}`;
}

/** A pixel covers `sc` positions of one layer and keeps the best-predicted one (the largest value). */
function paint(out: Uint32Array, w: number, h: number, r0: number, c0: number, sc: number, L: number, N: number, scale: ValueScale, value: (i: number) => number): void {
  for (let y = 0; y < h && r0 + y < L; y++) {
    const base = (r0 + y) * N;
    for (let x = 0; x < w; x++) {
      let best = NaN;
      const t1 = Math.min(N, c0 + (x + 1) * sc);
      for (let t = c0 + x * sc; t < t1; t++) {
        const v = value(base + t);
        if (Number.isFinite(v) && !(v <= best)) best = v;
      }
      const i = scale.index(best);
      out[y * w + x] = i < 0 ? scale.missing : scale.lut[i];
    }
  }
}
