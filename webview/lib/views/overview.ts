/**
 * The layers × heads overview: one cell per head, coloured by what the select names — a
 * thumbnail of the head's attention in the current window, or any signal of the catalogue or
 * head summary (max, entropy, distance) as the mean over the tokens, or a per-head signal of the
 * window (loraFro). Click or Enter focuses a head; the arrow keys move between cells. Thumbnails
 * are cached per window, layer and head; for big maps they are drawn a few per frame.
 */
import * as d3 from 'd3';
import type { AnalysisModel } from '../model';
import { cssVar, packColor, scaleForValues, type ValueScale } from '../theme';
import { fmt, section, selectInput, type Body, type Root } from '../view';
import { attentionColours, type AttentionColours } from './attentionPaint';
import type { ExplorerView, ViewContext } from './context';
import { drawRoleBadges, rolesTitle } from './roleBadges';

interface Cell {
  l: number;
  h: number;
  id: string;
  value: number;
}

/** Thumbnail side in pixels, and how many weights one frame may read while drawing them. */
const THUMB = 48;
const SYNC_READS = 6e6;
const FRAME_MS = 10;

export class OverviewView implements ExplorerView {
  private thumbs = new Map<string, string>();
  private colours: AttentionColours | null = null;
  private forModel: AnalysisModel | null = null;
  private pending = 0;

  constructor(private readonly root: Root) {}

  themeChanged(): void {
    this.thumbs.clear();
    this.colours = null;
  }

  update(ctx: ViewContext): void {
    const m = ctx.model;
    if (m !== this.forModel) {
      this.thumbs.clear();
      this.colours = null;
      this.forModel = m;
    }
    const body = section(this.root, 'overview', 'Layers × heads (click or Enter to focus; arrow keys move)');
    const metric = metricOptions(m).some((o) => o.value === ctx.state.overviewMetric) ? ctx.state.overviewMetric : 'attention';
    const bar = body.selectAll<HTMLDivElement, number>('div.controls').data([0]).join('div').attr('class', 'controls') as unknown as Root;
    bar.selectAll('label').data([0]).join('label').text('cell colour: ');
    selectInput(bar, 'overview-metric', metricOptions(m), metric, (v) => {
      ctx.state.overviewMetric = v;
      ctx.cb.persist();
      ctx.rerender();
    });
    const w = ctx.window();
    const cells: Cell[] = d3.range(m.L).flatMap((l) => d3.range(m.H).map((h) => ({ l, h, id: `${l}.${h}`, value: metric === 'attention' ? NaN : cellValue(m, metric, l, h, w) })));
    const scale = metric === 'attention' ? null : scaleForValues(cells.map((c) => c.value), undefined, !!m.spec(metric)?.diverging);
    this.draw(body, ctx, cells, scale, metric, w);
    legend(body, scale, metric, m);
  }

  private draw(body: Body, ctx: ViewContext, cells: Cell[], scale: ValueScale | null, metric: string, w: number): void {
    const m = ctx.model;
    const size = Math.max(18, Math.min(THUMB + 8, Math.floor(760 / Math.max(1, m.H)) - 6)), pad = 6, left = 30, top = 16;
    const svg = body
      .selectAll<SVGSVGElement, number>('svg.overview')
      .data([0])
      .join('svg')
      .attr('class', 'overview')
      .attr('width', left + m.H * (size + pad))
      .attr('height', top + m.L * (size + pad));
    const g = svg
      .selectAll<SVGGElement, Cell>('g.cell')
      .data(cells, (d) => d.id)
      .join((enter) => {
        const e = enter.append('g').attr('class', 'cell').attr('tabindex', 0).attr('role', 'button');
        e.append('rect').attr('class', 'fill');
        e.append('image').attr('x', 2).attr('y', 2).attr('preserveAspectRatio', 'none');
        e.append('rect').attr('class', 'frame');
        e.append('title');
        return e;
      })
      .attr('transform', (d) => `translate(${left + d.h * (size + pad)},${top + d.l * (size + pad)})`)
      .attr('aria-label', (d) => `layer ${d.l} head ${d.h}` + (scale ? `: ${metric} ${fmt(d.value, 4)}` : ''))
      .attr('data-value', (d) => (Number.isFinite(d.value) ? String(d.value) : null))
      .classed('focused', (d) => d.l === ctx.state.layer && d.h === ctx.state.head)
      .on('click', (_, d) => ctx.cb.focus(d.l, d.h))
      .on('keydown', (ev: KeyboardEvent, d) => this.keyNav(ev, d, ctx));
    g.selectAll<SVGRectElement, Cell>('rect').attr('width', size).attr('height', size);
    g.select('rect.fill').attr('fill', (d) => (scale ? scale.css(d.value) : 'none'));
    g.select('title').text((d) => `L${d.l}.H${d.h}` + (m.Hkv < m.H ? ` (kv head ${m.kvHeadOf[d.h]})` : '') + (scale ? ` — ${metric} ${fmt(d.value, 4)}` : '') + rolesTitle(m, d.l, d.h));
    drawRoleBadges(g, m, size);
    const images = g.select<SVGImageElement>('image').attr('width', size - 4).attr('height', size - 4);
    images.classed('hidden', !!scale);
    if (scale) images.attr('href', null);
    else {
      this.thumbnails(images, m, w);
    }
    svg
      .selectAll('text.rowlabel')
      .data(d3.range(m.L))
      .join('text')
      .attr('class', 'rowlabel')
      .attr('x', 0)
      .attr('y', (l) => top + l * (size + pad) + size / 2 + 4)
      .attr('fill', 'currentColor')
      .text((l) => `L${l}`);
    svg
      .selectAll('text.collabel')
      .data(d3.range(m.H))
      .join('text')
      .attr('class', 'collabel')
      .attr('x', (h) => left + h * (size + pad) + size / 2)
      .attr('y', 11)
      .attr('text-anchor', 'middle')
      .attr('fill', 'currentColor')
      .text((h) => (m.Hkv < m.H && size >= 36 ? `H${h}·kv${m.kvHeadOf[h]}` : `H${h}`));
  }

  /** Set each thumbnail; the missing ones are drawn now when cheap, else a few per frame. */
  private thumbnails(images: d3.Selection<SVGImageElement, Cell, SVGSVGElement, number>, m: AnalysisModel, w: number): void {
    this.colours ??= attentionColours(m);
    const T = m.windows[w]?.length ?? 0;
    const missing: { node: SVGImageElement; d: Cell }[] = [];
    images.each((d, i, nodes) => {
      const url = this.thumbs.get(`${w}:${d.l}:${d.h}`);
      if (url) nodes[i].setAttribute('href', url);
      else missing.push({ node: nodes[i], d });
    });
    const sync = missing.length * THUMB * T <= SYNC_READS;
    const drawSome = (budget: number) => {
      const t0 = performance.now();
      while (missing.length && (budget === Infinity || performance.now() - t0 < budget)) {
        const { node, d } = missing.shift()!;
        const url = this.thumbnail(m, w, d.l, d.h);
        node.setAttribute('href', url);
      }
      if (missing.length) this.pending = requestAnimationFrame(() => drawSome(FRAME_MS));
    };
    cancelAnimationFrame(this.pending);
    drawSome(sync ? Infinity : FRAME_MS);
  }

  /** A data-URL thumbnail of one head's attention in a window: sampled query rows, max-pooled keys. */
  private thumbnail(m: AnalysisModel, w: number, l: number, h: number): string {
    const key = `${w}:${l}:${h}`;
    const map = m.attention(w, l);
    const T = map?.T ?? 0;
    const S = Math.max(1, Math.min(THUMB, T || THUMB));
    const c = document.createElement('canvas');
    c.width = c.height = S;
    const g = c.getContext('2d')!;
    const img = g.createImageData(S, S);
    const px = new Uint32Array(img.data.buffer);
    if (map && this.colours) {
      for (let y = 0; y < S; y++) {
        const row = map.row(h, Math.min(T - 1, Math.floor(((y + 0.5) * T) / S)));
        for (let x = 0; x < S; x++) {
          let best = 0;
          const k1 = Math.max(Math.floor(((x + 1) * T) / S), Math.floor((x * T) / S) + 1);
          for (let k = Math.floor((x * T) / S); k < k1; k++) if ((row[k] & 0x7fff) > (best & 0x7fff)) best = row[k];
          px[y * S + x] = this.colours.byHalf[best];
        }
      }
    } else px.set(notSentPattern(S));
    g.putImageData(img, 0, 0);
    const url = c.toDataURL();
    this.thumbs.set(key, url);
    return url;
  }

  private keyNav(ev: KeyboardEvent, d: Cell, ctx: ViewContext): void {
    const moves: Record<string, [number, number]> = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0] };
    if (ev.key === 'Enter' || ev.key === ' ') {
      ev.preventDefault();
      return ctx.cb.focus(d.l, d.h);
    }
    const mv = moves[ev.key];
    if (!mv) return;
    ev.preventDefault();
    const nl = Math.max(0, Math.min(ctx.model.L - 1, d.l + mv[0])), nh = Math.max(0, Math.min(ctx.model.H - 1, d.h + mv[1]));
    ctx.cb.focus(nl, nh);
    this.root.selectAll<SVGGElement, Cell>('svg.overview g.cell').filter((c) => c.l === nl && c.h === nh).node()?.focus();
  }
}

/** What the cells can show: attention thumbnails, then every per-head and per-layer quantity. */
export function metricOptions(m: AnalysisModel): { value: string; label: string }[] {
  const out = [{ value: 'attention', label: 'attention (thumbnail of the window)' }];
  for (const t of m.allTracks()) {
    if (t.spec.scope === 'head×token' || t.spec.scope === 'kvhead×token' || (t.spec.scope === 'layer×token' && t.layers > 1)) out.push({ value: t.spec.name, label: `${t.spec.label} (${t.spec.name}), mean over tokens` });
  }
  for (const s of m.windowSpecs()) if (s.scope === 'head') out.push({ value: s.name, label: `${s.label} (${s.name}), this window` });
  return out;
}

/** A head's value of a metric: the mean over tokens of a per-token signal, or a window's per-head value. */
export function cellValue(m: AnalysisModel, metric: string, l: number, h: number, w: number): number {
  const track = m.track(metric);
  if (track) return m.meanOf(track, l, m.rowOf(track, h));
  const v = m.windowSignal(metric, w, l);
  return v ? v[h] ?? NaN : NaN;
}

function legend(body: Body, scale: ValueScale | null, metric: string, m: AnalysisModel): void {
  const spec = m.spec(metric);
  const text = scale
    ? `${spec?.label ?? metric}${spec?.unit ? ` (${spec.unit})` : ''}: ${fmt(scale.domain[0], 4)} … ${fmt(scale.domain[1], 4)}${spec ? ` — ${spec.description}` : ''}`
    : 'Each cell: the head’s attention in the shown window (rows: queries, columns: keys), square-root scale.';
  body.selectAll('p.legend').data([0]).join('p').attr('class', 'legend hint').text(text);
}

/** Diagonal hatching: this layer's attention maps were not sent. */
function notSentPattern(S: number): Uint32Array {
  const bg = packColor(cssVar('--vscode-editor-background', '#1e1e1e')), line = packColor(cssVar('--vscode-panel-border', '#555'));
  return Uint32Array.from({ length: S * S }, (_, i) => (((i % S) + Math.floor(i / S)) % 8 === 0 ? line : bg));
}
