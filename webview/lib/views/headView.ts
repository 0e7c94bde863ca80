/**
 * A head view in the manner of BertViz: for a range of queries of the shown window, a line from
 * each query (left) to each key it attends to (right), as thick and opaque as the weight, one
 * colour per head (the theme's palette), every head of the focused layer at once; the chips above
 * switch heads off and on. Only keys that receive at least MIN_WEIGHT from a shown query are
 * listed (in text order), so a long window stays readable. Hovering a query keeps only its lines.
 */
import * as d3 from 'd3';
import { HALF_TO_FLOAT } from '../attentionMap';
import { headPalette } from '../theme';
import { fmt, section, showToken, tooltip, type Body, type Root } from '../view';
import type { ExplorerView, ViewContext } from './context';

/** Weights below this draw no line. */
const MIN_WEIGHT = 0.02;
const MAX_QUERIES = 40;
const MAX_KEYS = 64;
const ROW = 16;

interface Link {
  id: string;
  h: number;
  q: number;
  k: number;
  p: number;
}

export class HeadView implements ExplorerView {
  constructor(private readonly root: Root) {}

  update(ctx: ViewContext): void {
    const m = ctx.model, st = ctx.state, w = ctx.window(), win = m.windows[w];
    const body = section(this.root, 'headview', `Head view — layer ${st.layer}, queries to keys, every head`);
    const map = win ? m.attention(w, st.layer) : null;
    if (!win || !map) {
      body.selectAll('*').remove();
      body.append('p').attr('class', 'hint').text(win ? `Attention maps were not sent for layer ${st.layer}.` : 'No window.');
      return;
    }
    body.selectAll('p.hint:not(.keep)').remove();
    const [from, to] = this.range(ctx);
    this.controls(body, ctx, from, to);
    const hidden = new Set(st.hiddenHeads);
    const links: Link[] = [];
    for (let q = from; q <= to; q++) {
      for (let h = 0; h < m.H; h++) {
        if (hidden.has(h)) continue;
        const row = map.row(h, q - win.start);
        for (let k = 0; k < win.length; k++) {
          const p = HALF_TO_FLOAT[row[k]];
          if (p >= MIN_WEIGHT) links.push({ id: `${h}:${q}:${k}`, h, q, k: win.start + k, p });
        }
      }
    }
    const keys = topKeys(links);
    const shown = links.filter((l) => keys.has(l.k));
    this.draw(body, ctx, from, to, [...keys].sort((a, b) => a - b), shown);
  }

  /** The query range: the chosen one, else the eight queries up to the selected one (within the window). */
  private range(ctx: ViewContext): [number, number] {
    const win = ctx.model.windows[ctx.window()];
    const lo = win.start, hi = win.start + win.length - 1;
    const clamp = (v: number) => Math.max(lo, Math.min(hi, v));
    const r = ctx.state.headRange;
    if (r) {
      const a = clamp(Math.min(r[0], r[1])), b = clamp(Math.max(r[0], r[1]));
      return [a, Math.min(b, a + MAX_QUERIES - 1)];
    }
    const q = ctx.state.query !== null ? clamp(ctx.state.query) : clamp(win.ownFrom + 7);
    return [Math.max(lo, q - 7), q];
  }

  private controls(body: Body, ctx: ViewContext, from: number, to: number): void {
    const m = ctx.model, st = ctx.state;
    const bar = body.selectAll<HTMLDivElement, number>('div.controls').data([0]).join('div').attr('class', 'controls');
    const inputs = [
      { cls: 'range-from', label: 'queries from', value: from },
      { cls: 'range-to', label: 'to', value: to },
    ];
    bar
      .selectAll<HTMLLabelElement, (typeof inputs)[0]>('label.range')
      .data(inputs, (d) => d.cls)
      .join((e) => {
        const l = e.append('label').attr('class', 'range');
        l.append('span');
        l.append('input').attr('type', 'number').attr('min', 0);
        return l;
      })
      .each(function (d) {
        d3.select(this).select('span').text(`${d.label} `);
        d3.select(this).select<HTMLInputElement>('input').attr('class', d.cls).property('value', d.value);
      })
      .select<HTMLInputElement>('input')
      .on('change', () => {
        const a = Number(bar.select<HTMLInputElement>('input.range-from').property('value'));
        const b = Number(bar.select<HTMLInputElement>('input.range-to').property('value'));
        if (!Number.isInteger(a) || !Number.isInteger(b)) return;
        st.headRange = [a, b];
        ctx.cb.persist();
        ctx.rerender();
      });
    const colours = headPalette(m.H);
    bar
      .selectAll<HTMLButtonElement, number>('button.head-toggle')
      .data(d3.range(m.H))
      .join('button')
      .attr('class', 'head-toggle')
      .attr('data-head', (h) => h)
      .attr('aria-pressed', (h) => String(!st.hiddenHeads.includes(h)))
      .attr('title', (h) => `show or hide head ${h}`)
      .style('border-color', (h) => colours[h])
      .style('background', (h) => (st.hiddenHeads.includes(h) ? 'transparent' : colours[h]))
      .text((h) => `H${h}`)
      .on('click', (_, h) => {
        st.hiddenHeads = st.hiddenHeads.includes(h) ? st.hiddenHeads.filter((x) => x !== h) : [...st.hiddenHeads, h];
        ctx.cb.persist();
        ctx.rerender();
      });
  }

  private draw(body: Body, ctx: ViewContext, from: number, to: number, keys: number[], links: Link[]): void {
    const m = ctx.model;
    const queries = d3.range(from, to + 1);
    const width = 560, textW = 150, x0 = textW, x1 = width - textW;
    const height = Math.max(queries.length, keys.length, 1) * ROW + 8;
    const yq = new Map(queries.map((q, i) => [q, 4 + i * ROW + ROW / 2]));
    const yk = new Map(keys.map((k, i) => [k, 4 + i * ROW + ROW / 2]));
    const colours = headPalette(m.H);
    const svg = body.selectAll<SVGSVGElement, number>('svg.headview').data([0]).join('svg').attr('class', 'headview').attr('width', width).attr('height', height);
    const line = (d: Link) => `M${x0},${yq.get(d.q)}C${(x0 + x1) / 2},${yq.get(d.q)} ${(x0 + x1) / 2},${yk.get(d.k)} ${x1},${yk.get(d.k)}`;
    const paths = svg
      .selectAll<SVGGElement, number>('g.links')
      .data([0])
      .join('g')
      .attr('class', 'links')
      .selectAll<SVGPathElement, Link>('path')
      .data(links, (d) => d.id)
      .join('path')
      .attr('d', line)
      .attr('fill', 'none')
      .attr('stroke', (d) => colours[d.h])
      .attr('stroke-width', (d) => 0.5 + 5 * d.p)
      .attr('stroke-opacity', (d) => 0.25 + 0.75 * d.p)
      .attr('data-head', (d) => d.h)
      .on('mousemove', (ev: MouseEvent, d) => tooltip(`H${d.h}: #${d.q} ${showToken(m.tokens[d.q]?.text ?? '')} → #${d.k} ${showToken(m.tokens[d.k]?.text ?? '')}  ${fmt(d.p, 4)}`, ev))
      .on('mouseleave', () => tooltip(null));
    const focusQuery = (q: number | null) => paths.attr('visibility', (d) => (q === null || d.q === q ? 'visible' : 'hidden'));
    const column = (cls: string, items: number[], y: Map<number, number>, x: number, anchor: string) =>
      svg
        .selectAll<SVGGElement, number>(`g.${cls}`)
        .data([0])
        .join('g')
        .attr('class', cls)
        .selectAll<SVGTextElement, number>('text')
        .data(items, (d) => d)
        .join('text')
        .attr('x', x)
        .attr('y', (d) => y.get(d)! + 4)
        .attr('text-anchor', anchor)
        .attr('fill', 'currentColor')
        .attr('data-index', (d) => d)
        .classed('selected', (d) => d === ctx.state.query)
        .text((d) => `${showToken(m.tokens[d]?.text ?? '').slice(0, 18)} #${d}`);
    column('queries', queries, yq, x0 - 6, 'end')
      .on('mouseenter', (_, q) => focusQuery(q))
      .on('mouseleave', () => focusQuery(null))
      .on('click', (_, q) => ctx.cb.selectToken(q, 'query'));
    column('keys', keys, yk, x1 + 6, 'start').on('click', (_, k) => ctx.cb.selectToken(k, 'key'));
    body
      .selectAll('p.hint.keep')
      .data([0])
      .join('p')
      .attr('class', 'hint keep')
      .text(`Lines: weight ≥ ${MIN_WEIGHT} (thickness and opacity = weight); keys listed: the ${keys.length} most attended (at most ${MAX_KEYS}). Hover a query to keep only its lines.`);
  }
}

/** The keys with the largest weight from any shown query and head, at most MAX_KEYS of them. */
function topKeys(links: Link[]): Set<number> {
  const best = new Map<number, number>();
  for (const l of links) best.set(l.k, Math.max(best.get(l.k) ?? 0, l.p));
  return new Set([...best.entries()].sort((a, b) => b[1] - a[1]).slice(0, MAX_KEYS).map(([k]) => k));
}
