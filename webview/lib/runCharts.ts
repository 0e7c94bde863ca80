/**
 * The monitor's line chart, one function in the reusable-chart manner (dimensions and margins,
 * scales, axes, marks; keyed joins so paths keep their identity across updates): several series
 * overlaid, gaps where a value is missing (a diverged loss logged as NaN), optional clickable
 * marks on the x axis (a run's checkpoints). Also the EMA smoothing of the curves.
 */
import * as d3 from 'd3';
import { fmt } from './view';

export interface ChartSeries {
  id: string;
  /** [x, y]; NaN breaks the line. */
  points: [number, number][];
  color: string;
  dashed?: boolean;
}

/** A mark under the x axis: a checkpoint at its step. */
export interface ChartMark {
  key: string;
  x: number;
  color: string;
  title: string;
}

export interface ChartOptions {
  log?: boolean;
  marks?: ChartMark[];
  onMark?: (mark: ChartMark) => void;
  /** Extra attributes on the chart's div (what tests and styles select by). */
  data?: Record<string, string>;
}

type Container = d3.Selection<HTMLDivElement, unknown, HTMLElement | null, unknown>;

/** Exponential moving average (TensorBoard's smoothing): a = 0 is the raw curve. NaN is kept out. */
export function ema(values: number[], a: number): number[] {
  let s = NaN;
  return values.map((v) => {
    if (!Number.isFinite(v)) return v;
    s = Number.isNaN(s) ? v : a * s + (1 - a) * v;
    return s;
  });
}

/** Draws (or updates) the chart `id` inside `parent`. */
export function lineChart(parent: Container, id: string, title: string, series: ChartSeries[], opts: ChartOptions = {}): void {
  const width = Math.max(220, ((parent.node() as HTMLElement | null)?.clientWidth ?? 240) - 8), height = 120;
  const m = { top: 16, right: 8, bottom: opts.marks?.length ? 26 : 18, left: 44 };
  const box = parent.selectAll<HTMLDivElement, string>(`div#${CSS.escape(id)}`).data([id], (d) => d).join((e) => {
    const d = e.append('div').attr('id', (x) => x).attr('class', 'chart');
    const svg = d.append('svg');
    svg.append('text').attr('class', 'title');
    svg.append('g').attr('class', 'x axis');
    svg.append('g').attr('class', 'y axis');
    svg.append('g').attr('class', 'lines');
    svg.append('g').attr('class', 'marks');
    return d;
  });
  for (const [k, v] of Object.entries(opts.data ?? {})) box.attr(`data-${k}`, v);
  const svg = box.select('svg').attr('width', width).attr('height', height);
  svg.select('text.title').attr('x', m.left).attr('y', 11).attr('fill', 'currentColor').text(title);
  const finite = series.flatMap((s) => s.points).filter((p) => Number.isFinite(p[1]) && Number.isFinite(p[0]));
  const xs = [...finite.map((p) => p[0]), ...(opts.marks ?? []).map((k) => k.x)];
  const xDom = (xs.length ? d3.extent(xs) : [0, 1]) as [number, number];
  const x = d3.scaleLinear().domain(xDom[0] === xDom[1] ? [xDom[0] - 1, xDom[1] + 1] : xDom).range([m.left, width - m.right]);
  const yDom = (finite.length ? d3.extent(finite, (p) => p[1]) : [0, 1]) as [number, number];
  const y = (opts.log && yDom[0] > 0 ? d3.scaleLog() : d3.scaleLinear()).domain(yDom).nice().range([height - m.bottom, m.top]);
  const axisY = height - m.bottom;
  svg.select<SVGGElement>('g.x').attr('transform', `translate(0,${axisY})`).call(d3.axisBottom(x).ticks(4).tickSizeOuter(0));
  svg.select<SVGGElement>('g.y').attr('transform', `translate(${m.left},0)`).call(d3.axisLeft(y).ticks(3).tickFormat((v) => fmt(+v, 2)));
  const line = d3.line<[number, number]>().defined((p) => Number.isFinite(p[1])).x((p) => x(p[0])).y((p) => y(p[1]));
  svg
    .select('g.lines')
    .selectAll<SVGPathElement, ChartSeries>('path')
    .data(series.filter((s) => s.points.length), (s) => s.id)
    .join('path')
    .attr('class', 'line')
    .attr('data-id', (s) => s.id)
    .attr('fill', 'none')
    .attr('stroke', (s) => s.color)
    .attr('stroke-dasharray', (s) => (s.dashed ? '4 3' : null))
    .attr('d', (s) => line(s.points));
  drawMarks(svg.select<SVGGElement>('g.marks'), opts, x, axisY);
}

/** Triangles under the axis at each mark's x; a click hands the mark back. */
function drawMarks<D, P extends d3.BaseType>(g: d3.Selection<SVGGElement, D, P, unknown>, opts: ChartOptions, x: d3.ScaleLinear<number, number>, axisY: number): void {
  const marks = g
    .selectAll<SVGPathElement, ChartMark>('path.ckpt-mark')
    .data(opts.marks ?? [], (k) => k.key)
    .join((e) => {
      const p = e.append('path').attr('class', 'ckpt-mark').attr('role', 'button').attr('tabindex', 0);
      p.append('title');
      return p;
    })
    .attr('data-key', (k) => k.key)
    .attr('d', (k) => `M${x(k.x)},${axisY + 14} l-5,8 l10,0 z`)
    .attr('fill', (k) => k.color)
    .on('click', (_ev, k) => opts.onMark?.(k))
    .on('keydown', (ev: KeyboardEvent, k) => {
      if (ev.key === 'Enter' || ev.key === ' ') opts.onMark?.(k);
    });
  marks.select('title').text((k) => k.title);
}
