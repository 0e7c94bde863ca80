/**
 * The checkpoint timeline (webview entry; host: extension/timeline.ts): one run's checkpoints
 * analysed on the same document, drawn as they arrive — a step slider (the editor is recoloured by
 * the chosen step's per-token NLL), the mean NLL over steps, and every per-head signal over steps
 * (attention entropy, a-gpt's loraRel, a gate…) as small multiples, one per layer and head, on one
 * shared scale. The signal picked and the view survive a hide through getState/setState.
 */
import * as d3 from 'd3';
import type { TimelineData } from '../engine/protocol';
import { getTransport, onHostMessage } from './lib/transport';
import { chartColors } from './lib/theme';

type Step = TimelineData['steps'][number];
interface Saved {
  signal?: string;
}

const transport = getTransport();
const saved: Saved = transport.getState<Saved>() ?? {};
const root = d3.select<HTMLElement, unknown>('#app');
let data: TimelineData | null = null;

const fmt = (v: number | null | undefined, d = 3) => (v === null || v === undefined || !Number.isFinite(v) ? '—' : v.toFixed(d));

/** The x of a step: its training step when every analysed checkpoint has one, else its place in the run. */
function xOf(d: TimelineData): (s: Step) => number {
  return d.steps.every((s) => s.step !== null) ? (s) => s.step! : (s) => s.index;
}

function stepLabel(d: TimelineData, i: number): string {
  const c = d.checkpoints[i];
  if (!c) return '—';
  const file = c.path.split(/[\\/]/).pop();
  return c.step !== null ? `step ${c.step} (${file})` : `${file}`;
}

function render(): void {
  const d = data;
  root.selectAll('p.empty').data(d ? [] : [0]).join('p').attr('class', 'empty').text('Run “Head Lens: Analyze Across Checkpoints…” on a document.');
  if (!d) return void root.selectAll('section').remove();
  header(d);
  slider(d);
  meanChart(d);
  headMultiples(d);
}

function section(id: string, title: string) {
  const s = root.selectAll<HTMLElement, string>(`section#${id}`).data([id]).join((e) => {
    const x = e.append('section').attr('id', id);
    x.append('h3');
    x.append('div').attr('class', 'body');
    return x;
  });
  s.select('h3').text(title);
  return s.select<HTMLDivElement>('div.body');
}

function header(d: TimelineData): void {
  const body = section('head', `Checkpoints on ${d.documentLabel}`);
  const done = d.steps.length, total = d.checkpoints.length;
  const state = d.state === 'running' ? `analysing: ${done} of ${total} checkpoints` : d.state === 'done' ? `${total} checkpoints analysed` : d.message ?? d.state;
  body.selectAll('p.status').data([0]).join('p').attr('class', 'status').attr('data-state', d.state).text(`${d.runLabel} · ${d.layers} layers × ${d.heads} heads · ${state}`);
}

function slider(d: TimelineData): void {
  const body = section('slider', 'Step (colours the editor by this checkpoint’s NLL per token)');
  const analysed = new Set(d.steps.map((s) => s.index));
  const input = body.selectAll<HTMLInputElement, number>('input.step').data([0]).join('input').attr('class', 'step').attr('type', 'range').attr('min', 0).attr('max', Math.max(0, d.checkpoints.length - 1)).attr('step', 1);
  input.property('value', d.selected ?? 0).property('disabled', !analysed.size);
  input.on('input', function () {
    const i = Number(this.value);
    showSelected(d, i);
  });
  input.on('change', function () {
    let i = Number(this.value);
    if (!analysed.has(i)) i = [...analysed].reduce((best, j) => (Math.abs(j - i) < Math.abs(best - i) ? j : best), [...analysed][0] ?? 0);
    this.value = String(i);
    transport.post({ type: 'timeline/selectStep', index: i });
  });
  showSelected(d, d.selected ?? 0);
}

function showSelected(d: TimelineData, i: number): void {
  const s = d.steps.find((x) => x.index === i);
  root.select<HTMLDivElement>('section#slider div.body').selectAll('p.current').data([0]).join('p').attr('class', 'current').attr('data-index', i).text(`${i + 1} / ${d.checkpoints.length}: ${stepLabel(d, i)} — ${s ? `mean NLL ${fmt(s.meanNll)} nats` : 'not analysed yet'}`);
}

const W = 560, H = 180, M = { top: 10, right: 16, bottom: 28, left: 48 };

function meanChart(d: TimelineData): void {
  const body = section('mean', 'Mean NLL over steps (nats)');
  const steps = d.steps.filter((s) => Number.isFinite(s.meanNll));
  const x = xOf(d);
  const xs = d3.scaleLinear().domain(d3.extent(steps, x) as [number, number]).range([M.left, W - M.right]);
  if (steps.length < 2) xs.domain([(steps[0] ? x(steps[0]) : 0) - 1, (steps[0] ? x(steps[0]) : 0) + 1]);
  const ys = d3.scaleLinear().domain(d3.extent(steps, (s) => s.meanNll!) as [number, number]).nice().range([H - M.bottom, M.top]);
  const svg = body.selectAll<SVGSVGElement, number>('svg.mean').data([0]).join('svg').attr('class', 'mean').attr('width', W).attr('height', H);
  svg.selectAll<SVGGElement, number>('g.x').data([0]).join('g').attr('class', 'x axis').attr('transform', `translate(0,${H - M.bottom})`).call(d3.axisBottom(xs).ticks(6));
  svg.selectAll<SVGGElement, number>('g.y').data([0]).join('g').attr('class', 'y axis').attr('transform', `translate(${M.left},0)`).call(d3.axisLeft(ys).ticks(5));
  const colour = chartColors()[0];
  svg.selectAll('path.line').data([steps]).join('path').attr('class', 'line').attr('fill', 'none').attr('stroke', colour).attr('stroke-width', 1.5)
    .attr('d', d3.line<Step>().x((s) => xs(x(s))).y((s) => ys(s.meanNll!)));
  svg.selectAll<SVGCircleElement, Step>('circle.point').data(steps, (s) => String(s.index)).join('circle').attr('class', 'point')
    .attr('data-index', (s) => s.index).attr('data-nll', (s) => String(s.meanNll))
    .attr('cx', (s) => xs(x(s))).attr('cy', (s) => ys(s.meanNll!)).attr('r', (s) => (s.index === d.selected ? 5 : 3))
    .classed('selected', (s) => s.index === d.selected).attr('fill', colour)
    .on('click', (_, s) => transport.post({ type: 'timeline/selectStep', index: s.index }))
    .selectAll('title').data((s) => [s]).join('title').text((s) => `${stepLabel(d, s.index)}: mean NLL ${fmt(s.meanNll)}`);
}

/** The per-head quantities the steps carry: attention entropy and every head signal, named by the catalogue. */
function headSignalOptions(d: TimelineData): { value: string; label: string }[] {
  const names = new Set<string>();
  for (const s of d.steps) for (const k of Object.keys(s.headSignals)) names.add(k);
  const label = (n: string) => d.signals.find((s) => s.name === n)?.label ?? n;
  return [...[...names].map((n) => ({ value: n, label: `${label(n)} (${n})` })), { value: 'entropy', label: 'attention entropy (nats)' }];
}

function headValues(s: Step, name: string): number[] {
  return name === 'entropy' ? s.entropy : s.headSignals[name] ?? [];
}

function headMultiples(d: TimelineData): void {
  const options = headSignalOptions(d);
  const name = options.some((o) => o.value === saved.signal) ? saved.signal! : options[0].value;
  const body = section('heads', 'Per head over steps (one chart per layer and head, one scale)');
  const bar = body.selectAll<HTMLDivElement, number>('div.controls').data([0]).join('div').attr('class', 'controls');
  bar.selectAll('label').data([0]).join('label').text('signal: ');
  const sel = bar.selectAll<HTMLSelectElement, number>('select.head-signal').data([0]).join('select').attr('class', 'head-signal');
  sel.selectAll<HTMLOptionElement, { value: string; label: string }>('option').data(options, (o) => o.value).join('option').attr('value', (o) => o.value).text((o) => o.label);
  sel.property('value', name).on('change', function () {
    saved.signal = this.value;
    transport.setState(saved);
    render();
  });
  const steps = d.steps, x = xOf(d), L = d.layers, Hh = d.heads;
  const all = steps.flatMap((s) => headValues(s, name)).filter(Number.isFinite);
  const w = 96, h = 44, pad = 4;
  const xs = d3.scaleLinear().domain(steps.length > 1 ? (d3.extent(steps, x) as [number, number]) : [-1, 1]).range([pad, w - pad]);
  const ys = d3.scaleLinear().domain(all.length ? (d3.extent(all) as [number, number]) : [0, 1]).range([h - pad, pad]);
  const grid = body.selectAll<HTMLDivElement, number>('div.multiples').data([0]).join('div').attr('class', 'multiples').style('grid-template-columns', `40px repeat(${Hh}, ${w}px)`);
  const cells = d3.range(L).flatMap((l) => [{ kind: 'label' as const, l, h: -1 }, ...d3.range(Hh).map((hh) => ({ kind: 'chart' as const, l, h: hh }))]);
  const colour = chartColors()[1];
  grid.selectAll<HTMLDivElement, (typeof cells)[number]>('div.cell').data(cells, (c) => `${c.l}.${c.h}`).join('div').attr('class', (c) => `cell ${c.kind}`)
    .attr('data-head', (c) => (c.kind === 'chart' ? `${c.l}.${c.h}` : null))
    .each(function (c) {
      const div = d3.select(this);
      if (c.kind === 'label') return void div.text(`L${c.l}`);
      const i = c.l * Hh + c.h;
      const points = steps.map((s) => ({ s, v: headValues(s, name)[i] })).filter((p) => Number.isFinite(p.v));
      const svg = div.selectAll<SVGSVGElement, number>('svg').data([0]).join('svg').attr('width', w).attr('height', h);
      svg.selectAll('path').data([points]).join('path').attr('fill', 'none').attr('stroke', colour).attr('stroke-width', 1.2)
        .attr('d', d3.line<{ s: Step; v: number }>().x((p) => xs(x(p.s))).y((p) => ys(p.v)));
      const cur = points.find((p) => p.s.index === d.selected);
      svg.selectAll('circle').data(cur ? [cur] : []).join('circle').attr('r', 2.5).attr('fill', 'currentColor').attr('cx', (p) => xs(x(p.s))).attr('cy', (p) => ys(p.v));
      div.attr('title', `L${c.l}.H${c.h} ${name}: ${points.map((p) => `${p.s.step ?? p.s.index}: ${fmt(p.v, 4)}`).join(', ')}`);
      div.attr('data-values', points.map((p) => p.v).join(','));
    });
  body.selectAll('p.hint').data([0]).join('p').attr('class', 'hint').text(`${name}: ${fmt(ys.domain()[0], 4)} … ${fmt(ys.domain()[1], 4)} across every head and step; the dot marks the chosen step.`);
}

onHostMessage((m) => {
  try {
    if (m.type === 'timeline/data') {
      data = m.data;
      render();
    }
  } catch (e) {
    transport.post({ type: 'error', message: (e as Error)?.message ?? String(e) });
  }
});
render();
transport.post({ type: 'ready' });
