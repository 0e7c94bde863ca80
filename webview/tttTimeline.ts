/**
 * The LoRA-TTT chunk timeline (a panel beside the editor; host: extension/tttTimeline.ts). One run:
 * - a loss chart over the chunks: the score (loss before the chunk's update, what val_loss adds up),
 *   the loss after the chunk's own update (a diagnostic), and the base model's loss on the same tokens;
 * - ‖ΔW‖_F of every adapter after each chunk's update (the tttDelta signal): one row per module and
 *   layer, one column per chunk, a sequential scale per module kind from 0 to its largest (the
 *   head's update dwarfs a layer's; the layers of one kind stay comparable);
 * - a table of the chunks. Clicking a chunk anywhere selects it here and its text in the editor.
 * The selected chunk survives a reload of the page (webview state).
 */
import * as d3 from 'd3';
import type { TttChunkEvent, TttRunResult } from '../engine/protocol';
import { getTransport, onHostMessage } from './lib/transport';
import { chartColors, cssVar, themeChanged, valueScale } from './lib/theme';

interface PageState {
  selected: number | null;
}

/** One heatmap row: a module at a layer (or the head), its ‖ΔW‖ after each chunk. */
interface DeltaRow {
  key: string;
  label: string;
  values: number[];
}

const transport = getTransport();
const state: PageState = { selected: transport.getState<PageState>()?.selected ?? null };
let shown: { source: string; result: TttRunResult } | null = null;

const root = d3.select('#app');
const header = root.append('div').attr('class', 'summary').text('Run Head Lens: Analyze with Test-Time Training on a document.');
const lossBox = root.append('div').attr('class', 'chart loss-chart');
const deltaBox = root.append('div').attr('class', 'chart delta-chart');
const tableBox = root.append('div').attr('class', 'table-box');

const num = (v: number | null | undefined, d = 3) => (v === null || v === undefined || !Number.isFinite(v) ? '—' : v.toFixed(d));

/** The heatmap's rows in the engine's module order (q, k, v, o, mlp by layer), then the head. */
function deltaRows(r: TttRunResult): DeltaRow[] {
  const rows: DeltaRow[] = [];
  for (const m of ['q', 'k', 'v', 'o', 'mlp'] as const) {
    if (!r.chunks[0]?.deltaFro.layers[m]) continue;
    for (let l = 0; l < r.layers; l++) rows.push({ key: `${m}.${l}`, label: `${m} L${l}`, values: r.chunks.map((c) => c.deltaFro.layers[m]?.[l] ?? NaN) });
  }
  if (r.chunks[0]?.deltaFro.head !== null && r.chunks[0]?.deltaFro.head !== undefined) rows.push({ key: 'head', label: 'head', values: r.chunks.map((c) => c.deltaFro.head ?? NaN) });
  return rows;
}

function select(chunk: number, reveal: boolean): void {
  state.selected = chunk;
  transport.setState(state);
  if (reveal) transport.post({ type: 'ttt/revealChunk', chunk });
  draw();
}

function summary(source: string, r: TttRunResult): string {
  const s = r.settings;
  const bpb = r.val_bpb === null ? '' : ` · ${num(r.val_bpb, 4)} bits per byte`;
  return `${source}: ${r.tokens.length} tokens in ${r.chunks.length} chunks of ${s.chunk} on ${r.family} (${r.backend}) · val_loss ${num(r.val_loss, 4)} with TTT, ${num(r.val_loss_base, 4)} without${bpb} · rank ${s.rank}, alpha ${s.alpha} on ${s.modules.join(', ')} · AdamW lr ${s.lr}, weight decay ${s.weightDecay}`;
}

const width = () => Math.max(320, ((root.node() as HTMLElement | null)?.clientWidth ?? 480) - 8);

/** Loss before / after / base per chunk; a point per chunk, clickable. */
function lossChart(r: TttRunResult): void {
  const W = width(), H = 190, m = { top: 20, right: 10, bottom: 28, left: 46 };
  const [blue, orange] = chartColors();
  const grey = cssVar('--vscode-descriptionForeground', '#888');
  const series = [
    { id: 'before', label: 'loss before its update (the score)', color: blue, dashed: false, value: (c: TttChunkEvent) => c.lossBefore },
    { id: 'after', label: 'after its update', color: orange, dashed: false, value: (c: TttChunkEvent) => (c.trained ? c.lossAfter : NaN) },
    { id: 'base', label: 'base model', color: grey, dashed: true, value: (c: TttChunkEvent) => c.lossBase },
  ];
  const all = r.chunks.flatMap((c) => series.map((s) => s.value(c))).filter(Number.isFinite);
  const x = d3.scaleLinear().domain([0, Math.max(1, r.chunks.length - 1)]).range([m.left, W - m.right]);
  const y = d3.scaleLinear().domain((all.length ? d3.extent(all) : [0, 1]) as [number, number]).nice().range([H - m.bottom, m.top]);
  const svg = lossBox.selectAll('svg').data([0]).join('svg').attr('width', W).attr('height', H);
  svg.selectAll('text.title').data([0]).join('text').attr('class', 'title').attr('x', m.left).attr('y', 12).text('mean NLL per chunk (nats)');
  svg.selectAll<SVGGElement, number>('g.x').data([0]).join('g').attr('class', 'x axis').attr('transform', `translate(0,${H - m.bottom})`).call(d3.axisBottom(x).ticks(Math.min(10, r.chunks.length)).tickFormat(d3.format('d')).tickSizeOuter(0));
  svg.selectAll<SVGGElement, number>('g.y').data([0]).join('g').attr('class', 'y axis').attr('transform', `translate(${m.left},0)`).call(d3.axisLeft(y).ticks(4));
  svg
    .selectAll('rect.selected-band')
    .data(state.selected !== null && r.chunks[state.selected] ? [state.selected] : [])
    .join('rect')
    .attr('class', 'selected-band')
    .attr('x', (c) => x(c) - 4)
    .attr('width', 8)
    .attr('y', m.top)
    .attr('height', H - m.top - m.bottom);
  const line = d3.line<number>().defined((v) => Number.isFinite(v)).x((_v, i) => x(i)).y((v) => y(v));
  const g = svg.selectAll('g.series').data(series, (s) => (s as { id: string }).id).join('g').attr('class', 'series').attr('data-series', (s) => s.id);
  g.selectAll('path.line').data((s) => [s]).join('path').attr('class', 'line').attr('fill', 'none').attr('stroke', (s) => s.color).attr('stroke-dasharray', (s) => (s.dashed ? '4 3' : null)).attr('d', (s) => line(r.chunks.map(s.value)));
  g.selectAll('circle.point')
    .data((s) => r.chunks.map((c) => ({ s, c, v: s.value(c) })).filter((p) => Number.isFinite(p.v)))
    .join((e) => {
      const p = e.append('circle').attr('class', 'point').attr('r', 3).attr('role', 'button').attr('tabindex', 0);
      p.append('title');
      return p;
    })
    .attr('data-chunk', (p) => p.c.chunk)
    .attr('cx', (p) => x(p.c.chunk))
    .attr('cy', (p) => y(p.v))
    .attr('fill', (p) => p.s.color)
    .on('click', (_ev, p) => select(p.c.chunk, true))
    .select('title')
    .text((p) => `chunk ${p.c.chunk}: ${p.s.label} ${num(p.v)}`);
  const legend = lossBox.selectAll('div.legend').data([0]).join('div').attr('class', 'legend');
  legend
    .selectAll('span.key')
    .data(series)
    .join((e) => {
      const k = e.append('span').attr('class', 'key');
      k.append('span').attr('class', 'swatch');
      k.append('span').attr('class', 'label');
      return k;
    })
    .call((k) => k.select('span.swatch').style('background', (s) => s.color))
    .call((k) => k.select('span.label').text((s) => s.label));
}

/** ‖ΔW‖_F per module and layer (rows) after each chunk (columns). */
function deltaChart(r: TttRunResult): void {
  const rows = deltaRows(r);
  const W = width(), m = { top: 20, right: 10, bottom: 22, left: 58 };
  const rowH = Math.max(4, Math.min(12, Math.floor(360 / Math.max(1, rows.length))));
  const H = m.top + m.bottom + rows.length * rowH;
  // one scale per module kind: the head's update is far larger than a layer's, and layers of one kind stay comparable
  const kindOf = (row: DeltaRow) => row.key.split('.')[0];
  const kinds = [...new Set(rows.map(kindOf))];
  const maxOf = new Map(kinds.map((k) => [k, d3.max(rows.filter((row) => kindOf(row) === k).flatMap((row) => row.values.filter(Number.isFinite))) ?? 0]));
  const scales = new Map(kinds.map((k) => [k, valueScale([0, maxOf.get(k)! > 0 ? maxOf.get(k)! : 1])]));
  const x = d3.scaleBand<number>().domain(r.chunks.map((c) => c.chunk)).range([m.left, W - m.right]).paddingInner(0.05);
  const svg = deltaBox.selectAll('svg').data([0]).join('svg').attr('width', W).attr('height', H);
  svg.selectAll('text.title').data([0]).join('text').attr('class', 'title').attr('x', m.left).attr('y', 12).text(`‖ΔW‖_F after each chunk's update, per module and layer; each module on its own scale from 0 to ${kinds.map((k) => `${k} ${num(maxOf.get(k), 4)}`).join(', ')}`);
  const rowG = svg.selectAll('g.row').data(rows, (d) => (d as DeltaRow).key).join('g').attr('class', 'row').attr('data-key', (d) => d.key).attr('transform', (_d, i) => `translate(0,${m.top + i * rowH})`);
  rowG.selectAll('text.row-label').data((d) => (rowH >= 8 || d.key.endsWith('.0') || d.key === 'head' ? [d] : [])).join('text').attr('class', 'row-label').attr('x', m.left - 4).attr('y', rowH - 1).attr('text-anchor', 'end').text((d) => d.label);
  rowG
    .selectAll('rect.cell')
    .data((d) => d.values.map((v, i) => ({ row: d, v, chunk: i })))
    .join((e) => {
      const c = e.append('rect').attr('class', 'cell');
      c.append('title');
      return c;
    })
    .attr('data-chunk', (c) => c.chunk)
    .attr('x', (c) => x(c.chunk) ?? 0)
    .attr('width', x.bandwidth())
    .attr('height', Math.max(1, rowH - 1))
    .attr('fill', (c) => scales.get(kindOf(c.row))!.css(c.v))
    .classed('selected', (c) => c.chunk === state.selected)
    .on('click', (_ev, c) => select(c.chunk, true))
    .select('title')
    .text((c) => `${c.row.label} · chunk ${c.chunk}: ‖ΔW‖ ${num(c.v, 5)}`);
  const ticks = x.domain().filter((_c, i, a) => a.length <= 12 || i % Math.ceil(a.length / 12) === 0);
  svg.selectAll<SVGGElement, number>('g.x').data([0]).join('g').attr('class', 'x axis').attr('transform', `translate(0,${H - m.bottom})`).call(d3.axisBottom(x).tickValues(ticks).tickSizeOuter(0));
}

function table(r: TttRunResult): void {
  const t = tableBox.selectAll('table').data([0]).join((e) => {
    const tb = e.append('table').attr('class', 'chunks');
    tb.append('thead').append('tr').selectAll('th').data(['chunk', 'tokens', 'window from', 'before', 'after', 'base', 'before − base', 'largest ‖ΔW‖']).join('th').text((d) => d);
    tb.append('tbody');
    return tb;
  });
  const rows = deltaRows(r);
  const largest = (i: number) => {
    let best: { v: number; at: string } = { v: -1, at: '' };
    for (const row of rows) if (row.values[i] > best.v) best = { v: row.values[i], at: row.label };
    return best.v >= 0 ? `${num(best.v, 4)} (${best.at})` : '—';
  };
  t.select('tbody')
    .selectAll<HTMLTableRowElement, TttChunkEvent>('tr')
    .data(r.chunks, (c) => c.chunk)
    .join('tr')
    .attr('data-chunk', (c) => c.chunk)
    .classed('selected', (c) => c.chunk === state.selected)
    .on('click', (_ev, c) => select(c.chunk, true))
    .selectAll('td')
    .data((c) => [String(c.chunk), `${c.start + 1}–${c.end}`, String(c.windowStart), num(c.lossBefore), c.trained ? num(c.lossAfter) : 'not trained', num(c.lossBase), num(c.lossBefore - c.lossBase), largest(c.chunk)])
    .join('td')
    .attr('class', (_d, i) => (i === 1 || i === 7 ? null : 'num'))
    .text((d) => d);
}

function draw(): void {
  if (!shown) return;
  const r = shown.result;
  if (state.selected !== null && !r.chunks[state.selected]) state.selected = null;
  header.text(summary(shown.source, r));
  lossChart(r);
  deltaChart(r);
  table(r);
}

onHostMessage((m) => {
  if (m.type !== 'ttt/timeline') return;
  shown = { source: m.source, result: m.result };
  draw();
});
window.addEventListener('resize', () => draw());
new MutationObserver(() => {
  themeChanged();
  draw();
}).observe(document.body, { attributes: true, attributeFilter: ['class'] });
transport.post({ type: 'ready' });
