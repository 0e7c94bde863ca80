/**
 * The results panel (webview entry): one view per result kind — compare (mean ΔNLL overall, by
 * token class and repeated vs first with bootstrap 95 % intervals; both models' layers × heads side
 * by side), perplexity (totals and per source), multiple choice (accuracies; per item the ending each
 * scoring chose and the per-token log-probs of every ending) and an ablation sweep (an L × H table of
 * mean ΔNLL with intervals, streamed; a click asks the host to colour the editor by that cell). The
 * last view is kept with setState so a reload draws it before the host sends it again.
 */
import * as d3 from 'd3';
import type { CompareResult, HostToWebview, Interval, McItemResult, McResult, PplResult, PplTotals, ResultsView } from '../engine/protocol';
import { getTransport, onHostMessage } from './lib/transport';
import { fmt, showToken } from './lib/view';
import { themeChanged, valueScale } from './lib/theme';

type Root = d3.Selection<HTMLDivElement, unknown, null, undefined>;
type SweepView = Extract<ResultsView, { kind: 'sweep' }>;

const transport = getTransport();
let view: ResultsView | null = transport.getState<ResultsView>() ?? null;
const app = d3.select<HTMLDivElement, unknown>('#app');

const signed = (v: number | null | undefined, d = 4) => (v === null || v === undefined || !Number.isFinite(v) ? '—' : `${v > 0 ? '+' : ''}${v.toFixed(d)}`);
const interval = (iv: Interval, d = 4) => (iv.n ? `[${signed(iv.lo, d)}, ${signed(iv.hi, d)}]` : '—');
const pct = (v: number) => `${(100 * v).toFixed(1)} %`;

/** Does the interval exclude 0: the difference is there at 95 %. */
const significant = (iv: Interval) => iv.n > 1 && (iv.lo > 0 || iv.hi < 0);

function header(root: Root, title: string, lines: string[]): void {
  root.append('h2').text(title);
  for (const l of lines) root.append('p').attr('class', 'note').text(l);
}

/** A table from rows of cells; a cell is text, or text with a class. */
function table(root: Root, cls: string, head: string[], rows: (string | { text: string; cls?: string; title?: string })[][]) {
  const t = root.append('table').attr('class', `results-table ${cls}`);
  t.append('thead').append('tr').selectAll('th').data(head).join('th').text((d) => d);
  const tr = t.append('tbody').selectAll('tr').data(rows).join('tr');
  tr.selectAll('td')
    .data((r) => r.map((c) => (typeof c === 'string' ? { text: c } : c)))
    .join('td')
    .attr('class', (c) => c.cls ?? null)
    .attr('title', (c) => c.title ?? null)
    .text((c) => c.text);
  return t;
}

// ---- compare ----

/** An interval as a bar around a zero line: the axis spans every row's interval. */
function intervalBars(root: Root, rows: { name: string; iv: Interval }[]): void {
  const width = 360, rowH = 18, left = 110;
  const lo = d3.min(rows, (r) => (r.iv.n ? r.iv.lo : 0)) ?? 0, hi = d3.max(rows, (r) => (r.iv.n ? r.iv.hi : 0)) ?? 0;
  const bound = Math.max(Math.abs(lo), Math.abs(hi)) || 1;
  const x = d3.scaleLinear().domain([-bound, bound]).range([left, width - 10]).nice();
  const svg = root.append('svg').attr('class', 'interval-chart').attr('width', width).attr('height', rows.length * rowH + 24);
  svg.append('g').attr('class', 'axis').attr('transform', `translate(0,${rows.length * rowH + 4})`).call(d3.axisBottom(x).ticks(5));
  svg.append('line').attr('class', 'zero').attr('x1', x(0)).attr('x2', x(0)).attr('y1', 0).attr('y2', rows.length * rowH + 4);
  const g = svg.selectAll('g.row').data(rows.filter((r) => r.iv.n)).join('g').attr('class', 'row').attr('transform', (_, i) => `translate(0,${i * rowH})`);
  g.append('text').attr('x', left - 6).attr('y', rowH / 2 + 4).attr('text-anchor', 'end').text((r) => r.name);
  g.append('line').attr('class', (r) => `iv ${r.iv.mean < 0 ? 'a-better' : 'b-better'}`).attr('x1', (r) => x(r.iv.lo)).attr('x2', (r) => x(r.iv.hi)).attr('y1', rowH / 2).attr('y2', rowH / 2);
  g.append('circle').attr('class', (r) => `mean ${r.iv.mean < 0 ? 'a-better' : 'b-better'}`).attr('cx', (r) => x(r.iv.mean)).attr('cy', rowH / 2).attr('r', 3);
}

function verdict(iv: Interval): string {
  if (!iv.n) return 'No scored tokens.';
  if (!significant(iv)) return `No difference at 95 %: the interval ${interval(iv)} contains 0.`;
  return iv.mean < 0 ? `A is better: its NLL is lower by ${(-iv.mean).toFixed(4)} nats per token on average.` : `B is better: its NLL is lower by ${iv.mean.toFixed(4)} nats per token on average.`;
}

function renderCompare(root: Root, source: string, r: CompareResult): void {
  const s = r.summary;
  header(root, 'Compare: A − B', [`A: ${r.model_a}`, `B: ${r.model_b}`, `${source}: ${r.tokens.length} tokens, windows of ${r.context} every ${r.stride}. ΔNLL = NLL_A − NLL_B per token (nats): negative where A is better.`]);
  root.append('p').attr('class', 'verdict').attr('data-significant', String(significant(s.overall))).text(verdict(s.overall));
  root.append('p').attr('class', 'note').text(`Mean NLL: A ${fmt(s.mean_nll_a, 4)}, B ${fmt(s.mean_nll_b, 4)}.`);
  const rows = [
    { name: 'all tokens', iv: s.overall },
    ...Object.entries(s.by_class).map(([name, iv]) => ({ name, iv })),
    { name: 'repeated', iv: s.repeated },
    { name: 'first occurrence', iv: s.first },
  ];
  table(root, 'compare-summary', ['tokens', 'n', 'mean ΔNLL', '95 % interval', ''], rows.map((x) => [x.name, String(x.iv.n), { text: signed(x.iv.n ? x.iv.mean : null), cls: 'num' }, { text: interval(x.iv), cls: 'num' }, significant(x.iv) ? (x.iv.mean < 0 ? 'A better' : 'B better') : '']));
  intervalBars(root, rows);
  root.append('p').attr('class', 'note').text('“repeated”: the token’s id occurred earlier in the context it was scored with. Intervals: bootstrap over tokens, 1,000 resamples.');
  if (r.heads) renderHeadsSideBySide(root, r.heads);
}

/** Both models' layers × heads, coloured by one per-head mean (attention max, entropy or a signal). */
function renderHeadsSideBySide(root: Root, heads: NonNullable<CompareResult['heads']>): void {
  const names = Object.keys(heads.a.means).filter((n) => n in heads.b.means);
  const extra = [...new Set([...Object.keys(heads.a.means), ...Object.keys(heads.b.means)])].filter((n) => !names.includes(n));
  const section = root.append('section').attr('class', 'heads');
  section.append('h3').text('Layers × heads, mean over the tokens');
  const picker = section.append('select').attr('class', 'head-metric');
  picker.selectAll('option').data([...names, ...extra]).join('option').attr('value', (d) => d).text((d) => d);
  const grids = section.append('div').attr('class', 'side-by-side');
  const draw = (metric: string) => {
    grids.selectAll('*').remove();
    const all = [...(heads.a.means[metric] ?? []), ...(heads.b.means[metric] ?? [])].filter(Number.isFinite);
    const scale = valueScale([Math.min(0, d3.min(all) ?? 0), d3.max(all) ?? 1]);
    for (const [label, h] of [['A', heads.a], ['B', heads.b]] as const) {
      const box = grids.append('div').attr('class', 'grid-box').attr('data-model', label);
      box.append('h4').text(`${label}: ${h.layers} × ${h.heads}`);
      const values = h.means[metric];
      if (!values) {
        box.append('p').attr('class', 'note').text(`${label} reports no ${metric}.`);
        continue;
      }
      const rows = d3.range(h.layers).map((l) => d3.range(h.heads).map((hd) => values[l * h.heads + hd]));
      const t = box.append('table').attr('class', 'head-grid');
      t.append('thead').append('tr').selectAll('th').data(['', ...d3.range(h.heads).map((x) => `H${x}`)]).join('th').text((d) => d);
      const tr = t.append('tbody').selectAll('tr').data(rows).join('tr');
      tr.append('th').text((_, l) => `L${l}`);
      tr.selectAll('td.cell').data((r) => r).join('td').attr('class', 'cell num').style('background', (v) => scale.css(v)).text((v) => fmt(v, 3));
    }
  };
  picker.on('change', function () {
    draw((this as HTMLSelectElement).value);
  });
  draw(names[0] ?? extra[0] ?? 'attnMax');
}

// ---- perplexity ----

function pplRow(name: string, t: PplTotals & { documents?: number }): string[] {
  return [name, String(t.documents ?? ''), String(t.tokens), fmt(t.nll_mean, 4), t.ppl !== null && t.ppl >= 1e6 ? t.ppl.toExponential(3) : fmt(t.ppl, 3), String(t.bytes), fmt(t.bpb, 4)];
}

function renderPpl(root: Root, source: string, r: PplResult): void {
  header(root, 'Perplexity', [`${source}: ${r.documents} document${r.documents === 1 ? '' : 's'}, windows of ${r.context} every ${r.stride} (every scored token sees at least ${r.context - r.stride} tokens of history where it has them).`]);
  const head = ['source', 'documents', 'tokens', 'NLL mean', 'perplexity', 'bytes', 'bits per byte'];
  const t = table(root, 'ppl', head, [pplRow('all', r), ...Object.entries(r.by_source ?? {}).map(([name, x]) => pplRow(name, x))]);
  t.selectAll('tbody tr').classed('total', (_, i) => i === 0);
  t.selectAll('tbody td').classed('num', (_, i) => i % head.length > 0);
  root.append('p').attr('class', 'note').text(`NLL sum ${fmt(r.nll_sum, 3)} nats; bits per byte = NLL sum / (ln 2 · UTF-8 bytes of the scored tokens).`);
}

// ---- multiple choice ----

const SCORINGS = [
  { key: 'sum', label: 'sum' },
  { key: 'per_token', label: 'per token' },
  { key: 'per_byte', label: 'per byte' },
] as const;

function argmax(v: number[]): number {
  let best = 0;
  v.forEach((x, i) => (x > v[best] ? (best = i) : undefined));
  return best;
}

function renderMc(root: Root, source: string, r: McResult): void {
  header(root, 'Multiple choice', [`${source}: ${r.items.length} items, context up to ${r.context} tokens${r.truncated_items ? `; ${r.truncated_items} item contexts cut from the left to fit` : ''}. Each ending is scored on its own tokens after the context.`]);
  table(root, 'mc-acc', ['scoring', 'accuracy', 'correct'], SCORINGS.map((s) => {
    const acc = r[`acc_${s.key}` as 'acc_sum'];
    return [s.label, { text: pct(acc), cls: 'num acc' }, { text: `${Math.round(acc * r.items.length)} / ${r.items.length}`, cls: 'num' }];
  }));
  const list = root.append('div').attr('class', 'mc-items');
  list.selectAll('details.item').data(r.items).join('details').attr('class', 'item').attr('data-index', (d) => d.index).each(function (item) {
    renderMcItem(d3.select(this as HTMLDetailsElement) as unknown as Root, item);
  });
}

function renderMcItem(el: Root, item: McItemResult): void {
  const chosen = SCORINGS.map((s) => argmax(item[s.key]));
  const summary = el.append('summary');
  summary.append('span').attr('class', 'index').text(`#${item.index}`);
  summary.append('span').text(` label ${item.label}`);
  SCORINGS.forEach((s, i) => summary.append('span').attr('class', `chosen ${chosen[i] === item.label ? 'right' : 'wrong'}`).attr('data-scoring', s.key).text(` ${s.label}: ${chosen[i]} ${chosen[i] === item.label ? '✓' : '✗'}`));
  if (item.truncated) summary.append('span').attr('class', 'note').text(` (context cut by ${item.truncated} tokens)`);
  const all = item.logprobs.flat().filter(Number.isFinite);
  const scale = valueScale([Math.min(...all, 0), 0]);
  const t = el.append('table').attr('class', 'results-table endings');
  t.append('thead').append('tr').selectAll('th').data(['ending', 'sum', 'per token', 'per byte', 'log-prob of each token']).join('th').text((d) => d);
  const tr = t.append('tbody').selectAll('tr').data(item.logprobs.map((lp, e) => ({ lp, e }))).join('tr').classed('label', (d) => d.e === item.label);
  tr.append('td').text((d) => `${d.e}${d.e === item.label ? ' (label)' : ''}`);
  SCORINGS.forEach((s, i) => tr.append('td').attr('class', (d) => `num${chosen[i] === d.e ? ' chosen' : ''}`).text((d) => fmt(item[s.key][d.e], 3)));
  tr.append('td').attr('class', 'logprobs').selectAll('span.tok').data((d) => d.lp.map((v, k) => ({ v, text: item.tokens[d.e]?.[k] ?? '' }))).join('span').attr('class', 'tok').style('background', (d) => scale.css(d.v)).attr('title', (d) => `${showToken(d.text)}: ${d.v.toFixed(4)}`).text((d) => d.text);
}

// ---- ablation sweep ----

function renderSweep(root: Root, v: SweepView): void {
  const done = v.cells.length, total = v.layers * v.heads;
  const state = v.state === 'running' ? `running: ${done} of ${total} cells` : v.state === 'done' ? `${done} cells` : v.state === 'cancelled' ? `cancelled after ${done} of ${total} cells` : 'failed';
  header(root, `Ablation sweep: ${v.mode}, each ${v.unit}`, [`${v.source} — ${state}. Mean ΔNLL (ablated − intact, nats per token) with its bootstrap 95 % interval; positive: the ${v.unit} helped. Click a cell to colour the editor by its per-token ΔNLL.`]);
  root.select('p.note').attr('class', `note state ${v.state}`);
  if (v.error) root.append('p').attr('class', 'error').text(v.error);
  if (!total) return;
  const byKey = new Map(v.cells.map((c) => [`${c.layer}.${c.head}`, c]));
  const bound = d3.max(v.cells, (c) => Math.abs(c.mean)) || 1;
  const scale = valueScale([-bound, bound], true);
  const cols = v.unit === 'layer' ? [-1] : d3.range(v.heads);
  const t = root.append('table').attr('class', 'sweep-grid');
  t.append('thead').append('tr').selectAll('th').data(['', ...cols.map((h) => (h < 0 ? 'all heads' : `H${h}`))]).join('th').text((d) => d);
  const tr = t.append('tbody').selectAll('tr').data(d3.range(v.layers)).join('tr');
  tr.append('th').text((l) => `L${l}`);
  tr.selectAll('td.cell')
    .data((l) => cols.map((h) => ({ l, h, c: byKey.get(`${l}.${h}`) })))
    .join('td')
    .attr('class', (d) => `cell${d.c ? '' : ' pending'}${d.c && significant(d.c) ? ' significant' : ''}${v.selected && v.selected.layer === d.l && v.selected.head === d.h ? ' selected' : ''}`)
    .attr('data-layer', (d) => d.l)
    .attr('data-head', (d) => d.h)
    .attr('tabindex', (d) => (d.c ? 0 : null))
    .style('background', (d) => (d.c ? scale.css(d.c.mean) : null))
    .attr('title', (d) => (d.c ? `${d.h < 0 ? `L${d.l}` : `L${d.l}.H${d.h}`}: mean ΔNLL ${signed(d.c.mean)} ${interval(d.c)} over ${d.c.n} tokens` : 'not yet'))
    .each(function (d) {
      const td = d3.select(this);
      if (!d.c) return void td.text('…');
      td.append('div').attr('class', 'mean').text(signed(d.c.mean));
      td.append('div').attr('class', 'iv').text(interval(d.c, 3));
    })
    .on('click', (_, d) => d.c && transport.post({ type: 'results/selectCell', layer: d.l, head: d.h }))
    .on('keydown', (ev: KeyboardEvent, d) => {
      if ((ev.key === 'Enter' || ev.key === ' ') && d.c) transport.post({ type: 'results/selectCell', layer: d.l, head: d.h });
    });
}

// ---- wiring ----

function render(): void {
  app.selectAll('*').remove();
  const root = app.append('div').attr('class', `results ${view?.kind ?? 'empty'}`) as unknown as Root;
  if (!view) return void root.append('p').attr('class', 'note').text('Run Compare Models…, Evaluate Perplexity…, Evaluate Multiple Choice… or Ablate Heads….');
  if (view.kind === 'compare') renderCompare(root, view.source, view.result);
  else if (view.kind === 'ppl') renderPpl(root, view.source, view.result);
  else if (view.kind === 'mc') renderMc(root, view.source, view.result);
  else renderSweep(root, view);
}

function safely(fn: () => void): void {
  try {
    fn();
  } catch (e) {
    transport.post({ type: 'error', message: (e as Error)?.message ?? String(e) });
  }
}

onHostMessage((m: HostToWebview) => {
  if (m.type !== 'results/show') return;
  view = m.view;
  transport.setState(view);
  safely(render);
});

const themeWatch = new MutationObserver(() => safely(() => (themeChanged(), render())));
themeWatch.observe(document.body, { attributes: true, attributeFilter: ['class'] });

safely(render);
transport.post({ type: 'ready' });
