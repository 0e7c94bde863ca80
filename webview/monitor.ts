/**
 * Sidebar training monitor: live loss and validation curves (EMA smoothing), learning rate,
 * tokens/s, grad norm; per layer/head loraFro and loraRel over steps (the adaptive path growing);
 * run status with Start/Stop/Pause/Resume; several runs overlaid. The host buffers every event
 * and replays them when the view is shown again.
 */
import * as d3 from 'd3';
import type { TrainEvent, TrainProbeRecord, TrainStatusRecord } from '../engine/protocol';
import { getTransport, onHostMessage } from './lib/transport';
import { chartColors } from './lib/theme';
import { fmt } from './lib/view';

interface Run {
  id: string;
  steps: { step: number; loss: number; lr: number; grad: number; tps: number }[];
  evals: { step: number; val: number }[];
  probes: TrainProbeRecord[];
  status: TrainStatusRecord | null;
}

const transport = getTransport();
const savedSmoothing = transport.getState<{ smoothing: number }>()?.smoothing ?? 0.6;
let smoothing = savedSmoothing;
const runs = new Map<string, Run>();
const root = d3.select('#app');

const bar = root.append('div').attr('class', 'controls');
const status = root.append('div').attr('class', 'status').text('No training run yet.');
for (const [label, command] of [['Start…', 'start'], ['Pause', 'pause'], ['Resume', 'resume'], ['Stop', 'stop']] as const) {
  bar.append('button').attr('class', `cmd-${command}`).text(label).on('click', () => transport.post({ type: 'monitor/command', command, runId: latest()?.id }));
}
const sm = root.append('div').attr('class', 'controls');
sm.append('label').attr('for', 'smoothing').text('Smoothing ');
sm.append('input').attr('id', 'smoothing').attr('type', 'range').attr('min', 0).attr('max', 0.99).attr('step', 0.01).property('value', smoothing).on('input', function () {
  smoothing = +(this as HTMLInputElement).value;
  transport.setState({ smoothing });
  render();
});
const charts = root.append('div').attr('class', 'charts');

function latest(): Run | undefined {
  return [...runs.values()].pop();
}

function runOf(id: string): Run {
  let r = runs.get(id);
  if (!r) {
    r = { id, steps: [], evals: [], probes: [], status: null };
    runs.set(id, r);
  }
  return r;
}

function add(e: TrainEvent): void {
  const r = runOf(e.runId);
  if (e.kind === 'step') r.steps.push({ step: e.step, loss: e.loss, lr: e.lr, grad: e.grad_norm, tps: e.tokens_per_s });
  else if (e.kind === 'eval') r.evals.push({ step: e.step, val: e.val_loss });
  else if (e.kind === 'probe') r.probes.push(e);
  else r.status = e;
}

function ema(values: number[], a: number): number[] {
  let s = NaN;
  return values.map((v) => (s = Number.isNaN(s) ? v : a * s + (1 - a) * v));
}

type Series = { id: string; points: [number, number][]; color: string; dashed?: boolean };

/** One line chart: dimensions, scales, axes, marks; keyed joins keep paths across updates. */
function lineChart(id: string, title: string, series: Series[], log = false): void {
  const width = Math.max(220, (root.node() as HTMLElement).clientWidth - 16), height = 120;
  const m = { top: 16, right: 8, bottom: 18, left: 44 };
  const box = charts.selectAll<HTMLDivElement, string>(`div#${id}`).data([id], (d) => d).join((e) => {
    const d = e.append('div').attr('id', (x) => x).attr('class', 'chart');
    const svg = d.append('svg');
    svg.append('text').attr('class', 'title');
    svg.append('g').attr('class', 'x axis');
    svg.append('g').attr('class', 'y axis');
    svg.append('g').attr('class', 'lines');
    return d;
  });
  const svg = box.select('svg').attr('width', width).attr('height', height);
  svg.select('text.title').attr('x', m.left).attr('y', 11).attr('fill', 'currentColor').text(title);
  const all = series.flatMap((s) => s.points);
  const x = d3.scaleLinear().domain(d3.extent(all, (p) => p[0]) as [number, number]).range([m.left, width - m.right]);
  const yDom = d3.extent(all, (p) => p[1]) as [number, number];
  const y = (log && yDom[0] > 0 ? d3.scaleLog() : d3.scaleLinear()).domain(yDom[0] === undefined ? [0, 1] : yDom).nice().range([height - m.bottom, m.top]);
  svg.select<SVGGElement>('g.x').attr('transform', `translate(0,${height - m.bottom})`).call(d3.axisBottom(x).ticks(4).tickSizeOuter(0));
  svg.select<SVGGElement>('g.y').attr('transform', `translate(${m.left},0)`).call(d3.axisLeft(y).ticks(3).tickFormat((v) => fmt(+v, 2)));
  const line = d3.line<[number, number]>().x((p) => x(p[0])).y((p) => y(p[1]));
  svg
    .select('g.lines')
    .selectAll<SVGPathElement, Series>('path')
    .data(series.filter((s) => s.points.length), (s) => s.id)
    .join('path')
    .attr('class', 'line')
    .attr('fill', 'none')
    .attr('stroke', (s) => s.color)
    .attr('stroke-dasharray', (s) => (s.dashed ? '4 3' : null))
    .attr('d', (s) => line(s.points));
}

function render(): void {
  const colors = chartColors();
  const list = [...runs.values()];
  const last = latest();
  status.text(last?.status ? statusText(last) : list.length ? `run ${last?.id}` : 'No training run yet.');
  if (!list.some((r) => r.steps.length || r.probes.length)) {
    charts.selectAll('*').remove();
    return;
  }
  const color = (i: number) => colors[i % colors.length];
  lineChart('loss', 'loss (solid: train, smoothed; dashed: validation)', list.flatMap((r, i) => [
    { id: `${r.id}-train`, color: color(i), points: zip(r.steps.map((s) => s.step), ema(r.steps.map((s) => s.loss), smoothing)) },
    { id: `${r.id}-val`, color: color(i), dashed: true, points: r.evals.map((e) => [e.step, e.val] as [number, number]) },
  ]));
  lineChart('lr', 'learning rate', list.map((r, i) => ({ id: r.id, color: color(i), points: r.steps.map((s) => [s.step, s.lr] as [number, number]) })));
  lineChart('tps', 'tokens / s', list.map((r, i) => ({ id: r.id, color: color(i), points: r.steps.map((s) => [s.step, s.tps] as [number, number]) })));
  lineChart('grad', 'grad norm (before clipping)', list.map((r, i) => ({ id: r.id, color: color(i), points: zip(r.steps.map((s) => s.step), ema(r.steps.map((s) => s.grad), smoothing)) })));
  const probes = last?.probes ?? [];
  if (probes.length && probes[0].loraFro) {
    const { layers, heads } = probes[0];
    for (let l = 0; l < layers; l++) {
      for (const key of ['loraFro', 'loraRel'] as const) {
        lineChart(`${key}-${l}`, `${key} · layer ${l} (one line per head)`, d3.range(heads).map((h) => ({
          id: `h${h}`,
          color: color(h),
          points: probes.filter((p) => p[key]).map((p) => [p.step, p[key]![l * heads + h]] as [number, number]),
        })));
      }
    }
  }
}

function zip(a: number[], b: number[]): [number, number][] {
  return a.map((x, i) => [x, b[i]]);
}

function statusText(r: Run): string {
  const s = r.status!;
  const last = r.steps[r.steps.length - 1];
  const step = last && s.state === 'running' ? last.step + 1 : s.step;
  return `${s.family ?? ''} ${r.id}: ${s.state}${step !== undefined && s.totalSteps ? ` · step ${step}/${s.totalSteps}` : ''}${last ? ` · loss ${fmt(last.loss)}` : ''}${s.message ? ` · ${s.message}` : ''}${s.checkpoint ? ` · ${s.checkpoint}` : ''}`;
}

let pending = false;
function schedule(): void {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => {
    pending = false;
    render();
  });
}

onHostMessage((m) => {
  if (m.type === 'monitor/event') {
    add(m.event);
    schedule();
  } else if (m.type === 'monitor/replay') {
    runs.clear();
    m.events.forEach(add);
    render();
  }
});
render();
transport.post({ type: 'ready' });
