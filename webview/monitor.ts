/**
 * Sidebar training monitor. Two kinds of runs, overlaid:
 * - training runs of this session (`monitor/event`): loss and validation curves (EMA smoothing),
 *   learning rate, tokens/s, grad norm, the per-head loraFro/loraRel probes, Start/Stop/Pause/Resume;
 * - watched runs (`monitor/run*`: any run followed by the engine, and an experiment grid's run
 *   folders): one chart per series name with a line per run and file (a colour each, in a legend
 *   with a toggle and a remove button), the run's checkpoints as marks under the curves (a click
 *   analyses the active document with that checkpoint), Analyze Across Checkpoints, and the probe
 *   curves — every per-head signal of each checkpoint on the fixed probe text (or on the document),
 *   one chart per layer and a line per head.
 * The grid's table sits below, each variant's checkpoint one click from an analysis. The host keeps
 * everything and replays it when the page loads again; the page's own choices (smoothing, hidden
 * lines, the probe run and signal) survive in the webview state.
 */
import * as d3 from 'd3';
import type { GridTable, MonitorRunSnapshot, RunCheckpoint, RunProbeResult, RunWatchEvent, TrainEvent, TrainProbeRecord, TrainStatusRecord } from '../engine/protocol';
import { getTransport, onHostMessage } from './lib/transport';
import { chartColors } from './lib/theme';
import { fmt } from './lib/view';
import { ema, lineChart, type ChartMark, type ChartSeries } from './lib/runCharts';

interface TrainRun {
  id: string;
  steps: { step: number; loss: number; lr: number; grad: number; tps: number }[];
  evals: { step: number; val: number }[];
  probes: TrainProbeRecord[];
  status: TrainStatusRecord | null;
}

/** A watched run as drawn: per file, per segment, per series its points. */
interface WatchedRun {
  id: string;
  label: string;
  path: string;
  files: Map<string, Map<number, Map<string, [number, number][]>>>;
  checkpoints: Map<string, RunCheckpoint>;
  probes: { probe: RunProbeResult; source: 'probe' | 'document' }[];
  warnings: string[];
  caughtUp: boolean;
}

interface PageState {
  smoothing: number;
  /** Legend keys switched off: a run id, or `runId|file`. */
  hidden: string[];
  probeRun?: string;
  probeSignal?: string;
  probeSource?: 'probe' | 'document';
}

const transport = getTransport();
const saved = transport.getState<Partial<PageState>>() ?? {};
const state: PageState = { smoothing: saved.smoothing ?? 0.6, hidden: saved.hidden ?? [], probeRun: saved.probeRun, probeSignal: saved.probeSignal, probeSource: saved.probeSource };
const trainRuns = new Map<string, TrainRun>();
const watched = new Map<string, WatchedRun>();
let grid: GridTable | null = null;
const root = d3.select('#app');

const bar = root.append('div').attr('class', 'controls');
const status = root.append('div').attr('class', 'status').text('No training run yet.');
for (const [label, command] of [['Start…', 'start'], ['Pause', 'pause'], ['Resume', 'resume'], ['Stop', 'stop']] as const) {
  bar.append('button').attr('class', `cmd-${command}`).text(label).on('click', () => transport.post({ type: 'monitor/command', command, runId: latestTrainRun()?.id }));
}
bar.append('button').attr('class', 'cmd-watch').attr('title', 'Watch a training log, metrics file, TensorBoard logdir or run folder').text('Watch…').on('click', () => transport.post({ type: 'monitor/watch' }));
const sm = root.append('div').attr('class', 'controls');
sm.append('label').attr('for', 'smoothing').text('Smoothing ');
sm.append('input').attr('id', 'smoothing').attr('type', 'range').attr('min', 0).attr('max', 0.99).attr('step', 0.01).property('value', state.smoothing).on('input', function () {
  state.smoothing = +(this as HTMLInputElement).value;
  save();
  schedule();
});
const charts = root.append('div').attr('class', 'charts');
const legend = root.append('div').attr('class', 'legend');
const watchCharts = root.append('div').attr('class', 'watch-charts');
const probeBox = root.append('div').attr('class', 'probes');
const gridBox = root.append('div').attr('class', 'grid');

function save(): void {
  transport.setState(state);
}

// ---------------------------------------------------------------------------------------------
// Training runs of the session

function latestTrainRun(): TrainRun | undefined {
  return [...trainRuns.values()].pop();
}

function trainRunOf(id: string): TrainRun {
  let r = trainRuns.get(id);
  if (!r) trainRuns.set(id, (r = { id, steps: [], evals: [], probes: [], status: null }));
  return r;
}

function addTrain(e: TrainEvent): void {
  const r = trainRunOf(e.runId);
  if (e.kind === 'step') r.steps.push({ step: e.step, loss: e.loss, lr: e.lr, grad: e.grad_norm, tps: e.tokens_per_s });
  else if (e.kind === 'eval') r.evals.push({ step: e.step, val: e.val_loss });
  else if (e.kind === 'probe') r.probes.push(e);
  else r.status = e;
}

const color = (i: number): string => {
  const c = chartColors();
  return i < c.length ? c[i] : d3.schemeTableau10[i % 10];
};

function zip(a: number[], b: number[]): [number, number][] {
  return a.map((x, i) => [x, b[i]]);
}

function renderTraining(): void {
  const list = [...trainRuns.values()];
  const last = latestTrainRun();
  status.text(last?.status ? statusText(last) : list.length ? `run ${last?.id}` : watched.size ? `${watched.size} watched run${watched.size > 1 ? 's' : ''}` : 'No training run yet.');
  if (!list.some((r) => r.steps.length || r.probes.length)) {
    charts.selectAll('*').remove();
    return;
  }
  lineChart(charts, 'loss', 'loss (solid: train, smoothed; dashed: validation)', list.flatMap((r, i) => [
    { id: `${r.id}-train`, color: color(i), points: zip(r.steps.map((s) => s.step), ema(r.steps.map((s) => s.loss), state.smoothing)) },
    { id: `${r.id}-val`, color: color(i), dashed: true, points: r.evals.map((e) => [e.step, e.val] as [number, number]) },
  ]));
  lineChart(charts, 'lr', 'learning rate', list.map((r, i) => ({ id: r.id, color: color(i), points: r.steps.map((s) => [s.step, s.lr] as [number, number]) })));
  lineChart(charts, 'tps', 'tokens / s', list.map((r, i) => ({ id: r.id, color: color(i), points: r.steps.map((s) => [s.step, s.tps] as [number, number]) })));
  lineChart(charts, 'grad', 'grad norm (before clipping)', list.map((r, i) => ({ id: r.id, color: color(i), points: zip(r.steps.map((s) => s.step), ema(r.steps.map((s) => s.grad), state.smoothing)) })));
  const probes = last?.probes ?? [];
  if (probes.length && probes[0].loraFro) {
    const { layers, heads } = probes[0];
    for (let l = 0; l < layers; l++) {
      for (const key of ['loraFro', 'loraRel'] as const) {
        lineChart(charts, `${key}-${l}`, `${key} · layer ${l} (one line per head)`, d3.range(heads).map((h) => ({
          id: `h${h}`,
          color: color(h),
          points: probes.filter((p) => p[key]).map((p) => [p.step, p[key]![l * heads + h]] as [number, number]),
        })));
      }
    }
  }
}

function statusText(r: TrainRun): string {
  const s = r.status!;
  const last = r.steps[r.steps.length - 1];
  const step = last && s.state === 'running' ? last.step + 1 : s.step;
  return `${s.family ?? ''} ${r.id}: ${s.state}${step !== undefined && s.totalSteps ? ` · step ${step}/${s.totalSteps}` : ''}${last ? ` · loss ${fmt(last.loss)}` : ''}${s.message ? ` · ${s.message}` : ''}${s.checkpoint ? ` · ${s.checkpoint}` : ''}`;
}

// ---------------------------------------------------------------------------------------------
// Watched runs: the model

function addWatched(snapshot: MonitorRunSnapshot): void {
  const run: WatchedRun = { id: snapshot.id, label: snapshot.label, path: snapshot.path, files: new Map(), checkpoints: new Map(), probes: [], warnings: [], caughtUp: false };
  watched.set(run.id, run);
  snapshot.events.forEach((e) => applyRunEvent(run, e));
  snapshot.probes.forEach((p) => addProbe(run, p.probe, p.source));
}

function applyRunEvent(run: WatchedRun, e: RunWatchEvent): void {
  if (e.kind === 'file') {
    if (!run.files.has(e.file)) run.files.set(e.file, new Map());
  } else if (e.kind === 'points') {
    let file = run.files.get(e.file);
    if (!file) run.files.set(e.file, (file = new Map()));
    let seg = file.get(e.segment);
    if (!seg) file.set(e.segment, (seg = new Map()));
    for (const [name, s] of Object.entries(e.series)) {
      let pts = seg.get(name);
      if (!pts) seg.set(name, (pts = []));
      s.steps.forEach((step, i) => pts!.push([step, s.values[i] ?? NaN]));
    }
  } else if (e.kind === 'checkpoint') run.checkpoints.set(e.checkpoint.path, e.checkpoint);
  else if (e.kind === 'warning') run.warnings.push(e.message);
  else if (e.kind === 'removed') {
    run.files.delete(e.file);
    for (const p of run.checkpoints.keys()) if (p.endsWith(`/${e.file}`) || p.endsWith(`\\${e.file.replace(/\//g, '\\')}`)) run.checkpoints.delete(p);
  } else if (e.kind === 'caught-up') run.caughtUp = true;
}

function addProbe(run: WatchedRun, probe: RunProbeResult, source: 'probe' | 'document'): void {
  run.probes = run.probes.filter((p) => !(p.source === source && p.probe.checkpoint === probe.checkpoint && p.probe.step === probe.step));
  run.probes.push({ probe, source });
}

/** Legend entries in order: each run, then its files when it has more than one. A colour per line group. */
function lineGroups(): { key: string; run: WatchedRun; file: string | null; color: string }[] {
  const out: { key: string; run: WatchedRun; file: string | null; color: string }[] = [];
  let i = trainRuns.size;
  for (const run of watched.values()) {
    const files = [...run.files.keys()];
    if (files.length <= 1) out.push({ key: run.id, run, file: files[0] ?? null, color: color(i++) });
    else for (const f of files) out.push({ key: `${run.id}|${f}`, run, file: f, color: color(i++) });
  }
  return out;
}

const isHidden = (key: string) => state.hidden.includes(key);

function toggle(key: string, visible: boolean): void {
  state.hidden = visible ? state.hidden.filter((k) => k !== key) : [...new Set([...state.hidden, key])];
  save();
  schedule();
}

// ---------------------------------------------------------------------------------------------
// Watched runs: the legend, the curves with their checkpoint marks

function renderLegend(groups: ReturnType<typeof lineGroups>): void {
  const runs = legend.selectAll<HTMLDivElement, WatchedRun>('div.run').data([...watched.values()], (r) => r.id).join((e) => {
    const d = e.append('div').attr('class', 'run');
    const head = d.append('div').attr('class', 'run-head');
    head.append('input').attr('type', 'checkbox').attr('class', 'toggle');
    head.append('span').attr('class', 'swatch');
    head.append('span').attr('class', 'label');
    head.append('button').attr('class', 'across').attr('title', 'Analyze Across Checkpoints: this run\'s checkpoints in order on the active document').text('⟲');
    head.append('button').attr('class', 'remove').attr('title', 'Stop watching and remove').text('×');
    d.append('div').attr('class', 'files');
    d.append('div').attr('class', 'ckpts');
    return d;
  });
  runs.attr('data-run', (r) => r.id);
  runs.select('.run-head .label').text((r) => `${r.label}${r.caughtUp ? '' : ' (reading…)'}${r.warnings.length ? ` · ${r.warnings.length} warning${r.warnings.length > 1 ? 's' : ''}` : ''}`).attr('title', (r) => [r.path, ...r.warnings.slice(-3)].join('\n'));
  const own = (r: WatchedRun) => groups.find((g) => g.key === r.id);
  runs.select<HTMLSpanElement>('.run-head .swatch').style('background', (r) => own(r)?.color ?? 'transparent');
  runs.select<HTMLInputElement>('.run-head .toggle').property('checked', (r) => !isHidden(r.id)).on('change', function (_ev, r) {
    toggle(r.id, (this as HTMLInputElement).checked);
  });
  runs.select('button.remove').on('click', (_ev, r) => transport.post({ type: 'monitor/removeRun', runId: r.id }));
  runs.select('button.across').on('click', (_ev, r) => transport.post({ type: 'monitor/analyzeAcross', runId: r.id }));
  runs.each(function (r) {
    const d = d3.select(this);
    const files = groups.filter((g) => g.run === r && g.key !== r.id);
    const rows = d.select('.files').selectAll<HTMLLabelElement, (typeof files)[number]>('label.file').data(files, (g) => g.key).join((e) => {
      const l = e.append('label').attr('class', 'file');
      l.append('input').attr('type', 'checkbox');
      l.append('span').attr('class', 'swatch');
      l.append('span').attr('class', 'name');
      return l;
    });
    rows.attr('data-key', (g) => g.key);
    rows.select<HTMLSpanElement>('.swatch').style('background', (g) => g.color);
    rows.select('.name').text((g) => g.file ?? '');
    rows.select<HTMLInputElement>('input').property('checked', (g) => !isHidden(g.key)).on('change', function (_ev, g) {
      toggle(g.key, (this as HTMLInputElement).checked);
    });
    const ckpts = [...r.checkpoints.values()].sort((a, b) => (a.step ?? Infinity) - (b.step ?? Infinity));
    const items = d.select('.ckpts').selectAll<HTMLButtonElement, RunCheckpoint>('button.ckpt').data(ckpts, (c) => c.path).join('button').attr('class', 'ckpt');
    items.attr('data-path', (c) => c.path).attr('title', (c) => `${c.path}\n${c.family}, ${c.layers} layers × ${c.heads} heads, ${c.paramCount.toLocaleString('en')} parameters — click to analyse the active document with it`)
      .text((c) => `${c.step !== null ? `step ${c.step}` : 'step ?'} · ${basename(c.path)}`)
      .on('click', (_ev, c) => transport.post({ type: 'monitor/analyzeCheckpoint', path: c.path }));
  });
}

function basename(p: string): string {
  return p.split(/[\\/]/).pop() ?? p;
}

/** A series name's place: losses first, then the rest in order of appearance. */
function seriesOrder(names: string[]): string[] {
  const rank = (n: string) => (/loss/i.test(n) ? 0 : /bpb|ppl|acc/i.test(n) ? 1 : 2);
  return [...names].sort((a, b) => rank(a) - rank(b));
}

function renderWatched(groups: ReturnType<typeof lineGroups>): void {
  const visible = groups.filter((g) => !isHidden(g.run.id) && !isHidden(g.key));
  const names = seriesOrder([...new Set(visible.flatMap((g) => filesOf(g).flatMap((segs) => [...segs.values()].flatMap((s) => [...s.keys()]))))]);
  const marks: ChartMark[] = visible.flatMap((g) => (g.file === null || g.key === g.run.id ? [...g.run.checkpoints.values()] : [...g.run.checkpoints.values()].filter((c) => inFileFolder(c.path, g.file!))).filter((c) => c.step !== null).map((c) => ({ key: c.path, x: c.step!, color: g.color, title: `${g.run.label}: step ${c.step} · ${basename(c.path)} — click to analyse the active document with it` })));
  const uniqueMarks = [...new Map(marks.map((k) => [k.key, k])).values()];
  watchCharts.selectAll<HTMLDivElement, string>('div.chart').data(names, (d) => d).exit().remove();
  names.forEach((name, i) => {
    const series: ChartSeries[] = visible.flatMap((g) => filesOf(g).flatMap((segs) => [...segs.entries()].flatMap(([seg, s]) => {
      const pts = s.get(name);
      if (!pts?.length) return [];
      const smooth = /val|eval|test/i.test(name) ? pts : zip(pts.map((p) => p[0]), ema(pts.map((p) => p[1]), state.smoothing));
      return [{ id: `${g.key}#${seg}`, color: g.color, dashed: seg > 0, points: smooth }];
    })));
    lineChart(watchCharts, `w-${i}`, name, series, { marks: uniqueMarks, data: { series: name }, onMark: (k) => transport.post({ type: 'monitor/analyzeCheckpoint', path: k.key }) });
  });
}

/** The segments of a line group: its one file, or every file of a run with one. */
function filesOf(g: ReturnType<typeof lineGroups>[number]): Map<number, Map<string, [number, number][]>>[] {
  return g.file === null ? [] : [g.run.files.get(g.file)!].filter(Boolean);
}

/** A checkpoint under the same folder as a run's file (a grid variant's metrics.jsonl and its last.safetensors). */
function inFileFolder(checkpoint: string, file: string): boolean {
  const dir = file.includes('/') ? file.slice(0, file.lastIndexOf('/')) : '';
  const norm = checkpoint.replace(/\\/g, '/');
  return dir === '' ? true : norm.includes(`/${dir}/`);
}

// ---------------------------------------------------------------------------------------------
// Probe curves: per layer, a line per head over the checkpoints

function renderProbes(): void {
  const withProbes = [...watched.values()].filter((r) => r.probes.length);
  if (!withProbes.length) {
    probeBox.selectAll('*').remove();
    return;
  }
  const run = withProbes.find((r) => r.id === state.probeRun) ?? withProbes[withProbes.length - 1];
  const sources = [...new Set(run.probes.map((p) => p.source))];
  const source = sources.includes(state.probeSource ?? 'probe') ? state.probeSource ?? 'probe' : sources[0];
  const probes = run.probes.filter((p) => p.source === source).map((p) => p.probe).sort((a, b) => (a.step ?? 0) - (b.step ?? 0));
  const signalNames = ['entropy', ...new Set(probes.flatMap((p) => Object.keys(p.signals)))];
  const signal = signalNames.includes(state.probeSignal ?? '') ? state.probeSignal! : signalNames.length > 1 ? signalNames[1] : 'entropy';
  const controls = probeBox.selectAll<HTMLDivElement, number>('div.controls').data([0]).join((e) => {
    const d = e.append('div').attr('class', 'controls');
    d.append('span').text('Probes ');
    d.append('select').attr('class', 'probe-run');
    d.append('select').attr('class', 'probe-source');
    d.append('select').attr('class', 'probe-signal');
    return d;
  });
  fillSelect(controls.select('select.probe-run'), withProbes.map((r) => ({ value: r.id, label: r.label })), run.id, (v) => (state.probeRun = v));
  fillSelect(controls.select('select.probe-source'), sources.map((s) => ({ value: s, label: s === 'probe' ? 'on the probe text' : 'on the document' })), source, (v) => (state.probeSource = v as 'probe' | 'document'));
  fillSelect(controls.select('select.probe-signal'), signalNames.map((s) => ({ value: s, label: s === 'entropy' ? 'attention entropy' : s })), signal, (v) => (state.probeSignal = v));
  const first = probes[0];
  const L = first?.layers ?? 0, H = first?.heads ?? 0;
  const charts = d3.range(L).map((l) => `probe-${l}`);
  probeBox.selectAll<HTMLDivElement, string>('div.chart').data(charts, (d) => d).exit().remove();
  const x = (p: RunProbeResult, i: number) => p.step ?? i;
  for (let l = 0; l < L; l++) {
    lineChart(probeBox, `probe-${l}`, `${signal} · layer ${l} (one line per head)`, d3.range(H).map((h) => ({
      id: `h${h}`,
      color: color(h),
      points: probes.map((p, i) => [x(p, i), (signal === 'entropy' ? p.entropy : p.signals[signal] ?? [])[l * H + h] ?? NaN] as [number, number]),
    })), { data: { layer: String(l), signal } });
  }
  if (probes.some((p) => p.meanNll !== null)) {
    lineChart(probeBox, 'probe-nll', `mean NLL ${source === 'probe' ? 'of the probe text' : 'of the document'}`, [{ id: 'nll', color: color(0), points: probes.map((p, i) => [x(p, i), p.meanNll ?? NaN] as [number, number]) }]);
  }
}

function fillSelect<D, P extends d3.BaseType>(sel: d3.Selection<d3.BaseType, D, P, unknown>, options: { value: string; label: string }[], value: string, set: (v: string) => void): void {
  sel.selectAll<HTMLOptionElement, { value: string }>('option').data(options, (o) => o.value).join('option').attr('value', (o) => o.value).text((o) => (o as { label: string }).label);
  sel.property('value', value).on('change', function () {
    set((this as HTMLSelectElement).value);
    save();
    schedule();
  });
}

// ---------------------------------------------------------------------------------------------
// The grid's table

const GRID_COLUMNS: { title: string; cell: (r: GridTable['rows'][number]) => string; num?: boolean }[] = [
  { title: 'id', cell: (r) => r.id },
  { title: 'change', cell: (r) => r.change },
  { title: 'wave', cell: (r) => `${r.wave}${r.priority === 'low' ? ' (low)' : ''}` },
  { title: 'val loss', cell: (r) => (r.valLossStd !== null ? `${fmt(r.valLoss, 4)} ±${fmt(r.valLossStd, 4)}` : fmt(r.valLoss, 4)), num: true },
  { title: 'bpb', cell: (r) => fmt(r.bpb, 3), num: true },
  { title: 'tok/s', cell: (r) => (r.tokPerS === null ? '—' : d3.format('.3~s')(r.tokPerS)), num: true },
  { title: 'params', cell: (r) => (r.params === null ? '—' : d3.format('.3~s')(r.params)), num: true },
  { title: 'wall s', cell: (r) => fmt(r.wallS, 1), num: true },
  { title: 'Δ vs baseline', cell: (r) => (r.delta === null ? '—' : `${r.delta >= 0 ? '+' : '−'}${Math.abs(r.delta).toFixed(4)}${r.deltaStd !== null ? ` ±${r.deltaStd.toFixed(4)}` : ''}`), num: true },
  { title: 'status', cell: (r) => `${r.status}${r.note ? `: ${r.note}` : ''}` },
];

function renderGrid(): void {
  if (!grid) {
    gridBox.selectAll('*').remove();
    return;
  }
  const t = grid;
  gridBox.selectAll<HTMLHeadingElement, string>('h4').data([t.name]).join('h4').text((n) => `Grid: ${n}${t.done ? '' : ' (running or unfinished)'}`);
  const table = gridBox.selectAll<HTMLTableElement, number>('table.grid-table').data([0]).join((e) => {
    const tb = e.append('table').attr('class', 'grid-table');
    tb.append('thead').append('tr').selectAll('th').data([...GRID_COLUMNS.map((c) => c.title), 'checkpoint']).join('th').text((d) => d);
    tb.append('tbody');
    return tb;
  });
  const rows = table.select('tbody').selectAll<HTMLTableRowElement, GridTable['rows'][number]>('tr').data(t.rows, (r) => r.id).join('tr');
  rows.attr('data-id', (r) => r.id).classed('winner', (r) => r.winner).attr('title', (r) => `${r.from ? `from ${r.from}: ` : ''}${JSON.stringify(r.changes)}`);
  rows.selectAll<HTMLTableCellElement, string>('td.v').data((r) => GRID_COLUMNS.map((c) => c.cell(r))).join('td').attr('class', (_d, i) => `v${GRID_COLUMNS[i].num ? ' num' : ''}`).text((d) => d);
  rows.selectAll<HTMLTableCellElement, GridTable['rows'][number]>('td.ck').data((r) => [r]).join('td').attr('class', 'ck').each(function (r) {
    d3.select(this).selectAll<HTMLButtonElement, string>('button.ckpt').data(r.checkpoints, (c) => c).join('button').attr('class', 'ckpt').attr('data-path', (c) => c).attr('title', (c) => `${c} — click to analyse the active document with it`).text(r.checkpoints.length > 1 ? (_c: string, i: number) => `seed ${i + 1}` : () => 'analyse')
      .on('click', (_ev, c) => transport.post({ type: 'monitor/analyzeCheckpoint', path: c }));
  });
  gridBox.selectAll<HTMLParagraphElement, string>('p.wave').data(t.waves.map((w) => `wave ${w.wave} from ${w.from}: ${w.winner ? `winner ${w.winner}` : 'no winner'} (${w.reason})`)).join('p').attr('class', 'wave').text((d) => d);
  gridBox.selectAll<HTMLParagraphElement, string>('p.note').data(t.notes).join('p').attr('class', 'note').text((d) => d);
}

// ---------------------------------------------------------------------------------------------

function render(): void {
  renderTraining();
  const groups = lineGroups();
  renderLegend(groups);
  renderWatched(groups);
  renderProbes();
  renderGrid();
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
  if (m.type === 'monitor/event') addTrain(m.event);
  else if (m.type === 'monitor/replay') {
    trainRuns.clear();
    m.events.forEach(addTrain);
  } else if (m.type === 'monitor/runs') {
    watched.clear();
    m.runs.forEach(addWatched);
    grid = m.grid;
  } else if (m.type === 'monitor/runAdded') addWatched(m.run);
  else if (m.type === 'monitor/runEvent') {
    const run = watched.get(m.runId);
    if (run) applyRunEvent(run, m.event);
  } else if (m.type === 'monitor/runProbe') {
    const run = watched.get(m.runId);
    if (run) addProbe(run, m.probe, m.source);
  } else if (m.type === 'monitor/runRemoved') watched.delete(m.runId);
  else if (m.type === 'monitor/grid') grid = m.table;
  else return;
  schedule();
});
render();
transport.post({ type: 'ready' });
