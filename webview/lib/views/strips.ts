/**
 * Signal strips over the whole document, every one virtualised like the matrix (4,096 tokens
 * scroll and zoom; zoomed out, a pixel keeps the most extreme value of the tokens it covers):
 * - heads × tokens: any head×token or kvhead×token signal (loraRel, gate, veGate, the attention
 *   summaries…) at the focused layer, one row per head or kv head, one scale for all rows;
 * - tokens: every token-scoped signal (NLL, the causality leak, ΔNLL on a diverging scale…) and
 *   the per-layer ones (layer×token: a row per layer), each row on its own scale;
 * - bars: the per-window signals (scope head: loraFro; chunk…) of the shown window and layer.
 * The strips share one horizontal zoom and scroll. Click selects the token as the query.
 */
import * as d3 from 'd3';
import type { AnalysisModel, SignalTrack } from '../model';
import { chartColors, cssVar, scaleForValues, type ValueScale } from '../theme';
import { fmt, section, selectInput, showToken, tokenLabel, tooltip, type Body, type Root } from '../view';
import { VirtualGrid, type GridSource, type GridView } from '../virtualGrid';
import type { ExplorerView, ViewContext } from './context';

/** One row of a strip: N values, how it is named and coloured. */
interface StripRow {
  label: string;
  name: string;
  values: Float32Array;
  scale: ValueScale;
}

export class StripsView implements ExplorerView {
  private heads: VirtualGrid | null = null;
  private tokens: VirtualGrid | null = null;
  private headRows: StripRow[] = [];
  private tokenRows: StripRow[] = [];
  private ctx: ViewContext | null = null;
  private themeVersion = 0;

  constructor(private readonly root: Root) {}

  themeChanged(): void {
    this.themeVersion++;
  }

  update(ctx: ViewContext): void {
    this.ctx = ctx;
    const m = ctx.model, st = ctx.state;
    const body = section(this.root, 'strips', `Signals per token — layer ${st.layer}`);
    const tracks = m.headTracks();
    const track = tracks.find((t) => t.spec.name === st.stripSignal) ?? tracks.find((t) => t.spec.mechanism !== 'attention') ?? tracks[0];
    const bar = body.selectAll<HTMLDivElement, number>('div.controls').data([0]).join('div').attr('class', 'controls') as unknown as Root;
    bar.selectAll('label').data([0]).join('label').text('heads × tokens: ');
    selectInput(bar, 'strip-signal', tracks.map((t) => ({ value: t.spec.name, label: `${t.spec.label} (${t.spec.name})` })), track?.spec.name ?? '', (v) => {
      st.stripSignal = v;
      ctx.cb.persist();
      ctx.rerender();
    });
    bar
      .selectAll<HTMLButtonElement, string>('button.zoom')
      .data(['−', '+', 'fit'])
      .join('button')
      .attr('class', (d) => `zoom ${d === 'fit' ? 'zoom-fit' : d === '+' ? 'zoom-in' : 'zoom-out'}`)
      .text((d) => d)
      .on('click', (_, d) => {
        const g = this.heads ?? this.tokens;
        if (!g) return;
        g.zoomTo(d === 'fit' ? g.fitCell() : d === '+' ? g.view.cellW * 1.5 : g.view.cellW / 1.5);
      });
    const headsBox = box(body, 'heads');
    this.headRows = track ? headRows(m, track, st.layer) : [];
    if (track) {
      this.heads ??= this.makeGrid(headsBox.node()!, 'heads', 12, 56);
      this.setRows(this.heads, this.headRows, `${track.spec.name}:${st.layer}`);
      caption(headsBox, `${track.spec.label}${track.spec.unit ? ` (${track.spec.unit})` : ''}: ${fmt(this.headRows[0]?.scale.domain[0], 4)} … ${fmt(this.headRows[0]?.scale.domain[1], 4)} — ${track.spec.description}`);
    }
    headsBox.classed('hidden', !track);
    const tokensBox = box(body, 'tokens');
    this.tokenRows = tokenRows(m, st.layer);
    if (this.tokenRows.length) {
      this.tokens ??= this.makeGrid(tokensBox.node()!, 'tokens', 14, 0);
      this.setRows(this.tokens, this.tokenRows, this.tokenRows.map((r) => r.label).join('|'));
      caption(tokensBox, this.tokenRows.map((r) => `${r.label}: ${fmt(r.scale.domain[0], 3)} … ${fmt(r.scale.domain[1], 3)}${r.scale.diverging ? ' (diverging around 0)' : ''}`).join(' · '));
    }
    tokensBox.classed('hidden', !this.tokenRows.length);
    this.bars(body, ctx);
    const none = !track && !this.tokenRows.length;
    body.selectAll('p.none').data(none ? [0] : []).join('p').attr('class', 'none hint').text('This analysis has no per-token signal.');
  }

  private makeGrid(parent: HTMLElement, kind: string, rowHeight: number, colAxisHeight: number): VirtualGrid {
    const rows = () => (kind === 'heads' ? this.headRows : this.tokenRows);
    const label = (c: number) => showToken(this.ctx?.model.tokens[c]?.text ?? '');
    const grid: VirtualGrid = new VirtualGrid(parent, {
      canvasClass: 'strip',
      height: 64 * rowHeight,
      rowHeight,
      rowAxisWidth: 110,
      colAxisHeight,
      rowLabel: (r) => rows()[r]?.label ?? '',
      colLabel: label,
      background: () => cssVar('--vscode-editor-background', '#1e1e1e'),
      overlay: (g, v) => this.overlay(g, v, rows().length * rowHeight),
      onHover: (cell, ev) => {
        const row = cell ? rows()[cell.r] : undefined;
        if (!cell || !row) return tooltip(null);
        const t = this.ctx!.model.tokens[cell.c];
        tooltip(`${row.label} · ${tokenLabel(cell.c, t?.text ?? '')}\n${row.name} ${fmt(row.values[cell.c], 4)}`, ev);
      },
      onClick: (cell) => this.ctx!.cb.selectToken(cell.c, 'query'),
      onViewChange: (v) => this.sync(grid, v),
    });
    grid.root.dataset.strip = kind;
    return grid;
  }

  private setRows(grid: VirtualGrid, rows: StripRow[], key: string): void {
    const N = this.ctx!.model.N;
    const source: GridSource = { rows: rows.length, cols: N, paint: (out, w, h, r0, c0, _sr, sc) => paintRows(rows, out, w, h, r0, c0, sc, N) };
    grid.setSource(source, `${key}:${this.themeVersion}`);
  }

  /** The strips scroll and zoom together. */
  private sync(from: VirtualGrid, v: GridView): void {
    for (const g of [this.heads, this.tokens]) if (g && g !== from && g.root.isConnected) g.follow(v);
  }

  private overlay(g: CanvasRenderingContext2D, v: GridView, height: number): void {
    const q = this.ctx?.state.query;
    if (q === null || q === undefined) return;
    g.strokeStyle = cssVar('--vscode-focusBorder', '#007fd4');
    g.lineWidth = 1.5;
    g.strokeRect(q * v.cellW, 0, Math.max(1, v.cellW), height);
  }

  /** Per-window signals (one value per head, per chunk, …) of the shown window and layer as bars. */
  private bars(body: Body, ctx: ViewContext): void {
    const m = ctx.model, w = ctx.window(), l = ctx.state.layer;
    const specs = m.windowSpecs().map((s) => ({ spec: s, values: Array.from(m.windowSignal(s.name, w, l) ?? []) })).filter((s) => s.values.length);
    const width = 300, bh = 14, colour = chartColors()[1];
    const groups = body
      .selectAll<HTMLDivElement, (typeof specs)[0]>('div.bars')
      .data(specs, (d) => d.spec.name)
      .join((e) => {
        const d = e.append('div').attr('class', 'bars');
        d.append('p').attr('class', 'caption');
        d.append('svg').attr('class', 'bars');
        return d;
      })
      .attr('data-signal', (d) => d.spec.name);
    groups.select('p.caption').text((d) => `${d.spec.label} (${d.spec.name}) — window ${w + 1}, layer ${l}: ${d.spec.description}`);
    groups.each(function (d) {
      const prefix = d.spec.scope === 'head' ? 'H' : `${d.spec.scope} `;
      const x = d3.scaleLinear().domain([0, d3.max(d.values.map(Math.abs)) || 1]).range([0, width - 130]);
      const svg = d3.select(this).select<SVGSVGElement>('svg.bars').attr('width', width).attr('height', d.values.length * (bh + 2) + 4);
      const g = svg
        .selectAll<SVGGElement, number>('g.bar')
        .data(d.values.map((_, i) => i))
        .join((e) => {
          const gg = e.append('g').attr('class', 'bar');
          gg.append('rect').attr('height', bh).attr('x', 44);
          gg.append('text').attr('class', 'label').attr('y', bh - 3).attr('fill', 'currentColor');
          gg.append('text').attr('class', 'value').attr('y', bh - 3).attr('fill', 'currentColor');
          return gg;
        });
      g.attr('transform', (i) => `translate(0,${i * (bh + 2)})`);
      g.select('rect').attr('width', (i) => x(Math.abs(d.values[i]))).attr('fill', colour);
      g.select('text.label').text((i) => `${prefix}${i}`);
      g.select('text.value').attr('x', (i) => 48 + x(Math.abs(d.values[i]))).text((i) => fmt(d.values[i], 4));
    });
  }
}

function box(body: Body, kind: string) {
  return body.selectAll<HTMLDivElement, string>(`div.strip-box.${kind}`).data([kind]).join('div').attr('class', `strip-box ${kind}`);
}

function caption(boxSel: d3.Selection<HTMLDivElement, string, HTMLDivElement, unknown>, text: string): void {
  boxSel.selectAll('p.caption').data([0]).join('p').attr('class', 'caption hint').text(text);
}

/** The rows of a heads × tokens track at a layer: one per head (or kv head), one shared scale. */
function headRows(m: AnalysisModel, track: SignalTrack, layer: number): StripRow[] {
  const l = track.layers === 1 ? 0 : layer, N = m.N;
  const slice = track.values.subarray(l * track.rows * N, (l + 1) * track.rows * N);
  const scale = scaleForValues(slice, track.spec.range, !!track.spec.diverging);
  return d3.range(track.rows).map((r) => ({
    label: track.spec.scope === 'kvhead×token' ? `kv${r} (${kvHeadsText(m, r)})` : `H${r}`,
    name: track.spec.name,
    values: slice.subarray(r * N, (r + 1) * N),
    scale,
  }));
}

function kvHeadsText(m: AnalysisModel, kv: number): string {
  const heads = m.kvHeadOf.map((k, h) => (k === kv ? h : -1)).filter((h) => h >= 0);
  return heads.length > 2 ? `H${heads[0]}–H${heads[heads.length - 1]}` : heads.map((h) => `H${h}`).join(',');
}

/** Token-scoped tracks (a row each) and per-layer ones (a row per layer, or per adapter at the layer). */
function tokenRows(m: AnalysisModel, layer: number): StripRow[] {
  const N = m.N, out: StripRow[] = [];
  for (const t of m.allTracks()) {
    if (t.spec.scope === 'head×token' || t.spec.scope === 'kvhead×token') continue;
    if (t.spec.name === 'leak' && !hasFinite(t.values)) continue;
    const diverging = !!t.spec.diverging;
    const short = t.spec.name === 'nll' ? 'NLL' : t.spec.name;
    if (t.rows === 1 && t.layers > 1) {
      const scale = scaleForValues(t.values, t.spec.range, diverging);
      for (let l = 0; l < t.layers; l++) out.push({ label: `${short} L${l}`, name: t.spec.name, values: t.values.subarray(l * N, (l + 1) * N), scale });
    } else {
      const l = t.layers === 1 ? 0 : layer;
      const slice = t.values.subarray(l * t.rows * N, (l + 1) * t.rows * N);
      const scale = scaleForValues(slice, t.spec.range, diverging);
      for (let r = 0; r < t.rows; r++) out.push({ label: t.rows > 1 ? `${short} ${r}` : short, name: t.spec.name, values: slice.subarray(r * N, (r + 1) * N), scale });
    }
  }
  return out;
}

function hasFinite(a: Float32Array): boolean {
  for (let i = 0; i < a.length; i++) if (Number.isFinite(a[i])) return true;
  return false;
}

/** Paint strip rows: a pixel covers `sc` tokens and keeps the one farthest from the scale's low end (or from 0 when diverging). */
function paintRows(rows: StripRow[], out: Uint32Array, w: number, h: number, r0: number, c0: number, sc: number, N: number): void {
  for (let y = 0; y < h; y++) {
    const row = rows[r0 + y];
    if (!row) continue;
    const { values, scale } = row;
    const centre = scale.diverging ? 0 : scale.domain[0];
    for (let x = 0; x < w; x++) {
      let best = NaN, dist = -1;
      const t1 = Math.min(N, c0 + (x + 1) * sc);
      for (let t = c0 + x * sc; t < t1; t++) {
        const v = values[t];
        const d = Math.abs(v - centre);
        if (d > dist) (dist = d), (best = v);
      }
      const i = scale.index(best);
      out[y * w + x] = i < 0 ? scale.missing : scale.lut[i];
    }
  }
}
