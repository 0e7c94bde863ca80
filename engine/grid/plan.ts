/**
 * From a spec and its state to the grid's table and the runs still to do — a pure function, run
 * again after every finished run, so that a resumed grid picks up exactly where it stopped.
 *
 * The rules (the seed issue's): the baseline (the base config) runs first. Wave 1 starts from the
 * baseline; each later wave from the winner so far (or the baseline, `waves: {"2": {"from":
 * "baseline"}}`). A wave's winner is its variant with the lowest mean val loss that beats the
 * config it started from — or the one `choose: {"wave1": "5A"}` names ("none" keeps the start). A
 * `combine` variant merges the winners: every variant that beat its wave's start, best first, one
 * per group (the knob it is an alternative for: 2A/2C/2B/2D all set window_pattern), unless
 * `choose.combine` lists them. Low-priority variants run after the others of their wave
 * (`lowPriority: "skip"` leaves them out). Runs of the same full config are one run.
 */
import * as path from 'node:path';
import type { GridRow, GridTable, GridWaveChoice, ModelConfig } from '../protocol';
import { BadInputError } from '../errors';
import { countParams, familyDef } from '../models/registry';
import { GPT2_VOCAB_SIZE } from '../tokenizers/gpt2';
import { DEFAULT_OPTIONS } from '../train/trainer';
import { BASELINE_ID, applyChanges, type GridSpec, type GridVariant } from './spec';
import { runKey, type GridState, type RunRecord } from './state';

export interface PlannedRun {
  variant: string;
  seed: number;
  key: string;
  config: ModelConfig;
  dir: string;
  wave: number;
}

export interface GridPlan {
  table: GridTable;
  /** Runs not finished yet whose configs are known, in the order they run. */
  next: PlannedRun[];
}

/** A row while it is being planned: its variant, full config and runs. */
interface Work {
  variant: GridVariant | null;
  row: GridRow;
  config: ModelConfig | null;
  runs: PlannedRun[];
}

/**
 * The family's full config for a variant, as the trainer builds it (GPT-2's vocabulary for our
 * corpora, the block size from the sequence length), with every changed key checked: a key the
 * family does not have would otherwise be dropped without a word.
 */
export function completeConfig(spec: GridSpec, config: Record<string, unknown>, field: string): ModelConfig {
  const given: Record<string, unknown> = { vocab_size: GPT2_VOCAB_SIZE, ...config, family: spec.family };
  let full: ModelConfig;
  try {
    full = familyDef(spec.family).defaults(spec.family, { ...given, block_size: (given.block_size as number | undefined) ?? spec.train.seqLen ?? DEFAULT_OPTIONS.seqLen });
  } catch (e) {
    if (e instanceof BadInputError) throw new BadInputError(`${path.basename(spec.file)}: ${field}: ${e.message}`);
    throw e;
  }
  for (const k of Object.keys(config)) {
    if (!(k in full)) throw new BadInputError(`${path.basename(spec.file)}: ${field}.${k}: not a config key of the ${spec.family} family (its keys: ${Object.keys(full).join(', ')})`);
  }
  return full;
}

/** Checks every variant against the base config now, so that a typo fails before hours of training. */
export function checkVariants(spec: GridSpec): void {
  const base = completeConfig(spec, spec.base, 'base');
  spec.variants.forEach((v, i) => {
    if (!v.combine) completeConfig(spec, applyChanges(base as unknown as Record<string, unknown>, v.config, `variants[${i}].config`), `variants[${i}] (${v.id})`);
  });
}

export function planGrid(spec: GridSpec, state: GridState, activeKey?: string): GridPlan {
  const dirs = new DirNames(spec, state);
  const baseline = planRow(spec, state, dirs, null, completeConfig(spec, spec.base, 'base'), null, activeKey);
  const works: Work[] = [baseline];
  const waves: GridWaveChoice[] = [];
  const improvers: { work: Work; gain: number }[] = [];
  let chain = baseline;
  let ready = isFinished(baseline);
  for (const wave of [...new Set(spec.variants.map((v) => v.wave))].sort((a, b) => a - b)) {
    const fromBaseline = (spec.waves[wave] ?? (wave === 1 ? 'baseline' : 'winner')) === 'baseline';
    const start = fromBaseline ? baseline : chain;
    // until the earlier waves are decided, the start of a wave that follows the winner is not known
    const startLabel = ready || fromBaseline ? start.row.id : `the winner so far`;
    const waveWorks = waveVariants(spec, wave).map((v) => {
      if (v.priority === 'low' && spec.lowPriority === 'skip') return skippedRow(spec, v, startLabel, 'skipped: low priority (lowPriority "skip")');
      if (!ready) return skippedRow(spec, v, startLabel, `waits for ${wave === 1 ? 'the baseline' : `wave ${wave - 1}'s winner`}`, 'waiting');
      return variantRow(spec, state, dirs, v, start, improvers, baseline.config!, activeKey);
    });
    works.push(...waveWorks);
    const decided = ready && waveWorks.every((w) => w.row.status === 'skipped' || w.row.status === 'failed' || isFinished(w));
    const choice = chooseWinner(spec, wave, waveWorks, start, decided);
    waves.push({ ...choice.summary, from: startLabel });
    if (!decided) {
      ready = false;
      continue;
    }
    for (const w of waveWorks) {
      if (!w.variant?.combine && w.row.valLoss !== null && start.row.valLoss !== null && w.row.valLoss < start.row.valLoss) improvers.push({ work: w, gain: start.row.valLoss - w.row.valLoss });
    }
    if (choice.winner) {
      choice.winner.row.winner = true;
      chain = choice.winner;
    }
  }
  markShared(works);
  fillDeltas(works.map((w) => w.row));
  const next = uniqueRuns(works.filter((w) => w.row.status !== 'skipped' && w.row.status !== 'waiting').flatMap((w) => w.runs).filter((r) => state.runs[r.key]?.status !== 'done'));
  const done = !next.length && works.every((w) => w.row.status !== 'waiting');
  return { table: { name: spec.name, spec: spec.file, out: spec.out, stateFile: spec.stateFile, exports: spec.exports, rows: works.map((w) => w.row), waves, notes: notesOf(spec, state, works), done }, next };
}

/** A wave's variants: the normal ones first, then the low-priority ones, each in spec order. */
function waveVariants(spec: GridSpec, wave: number): GridVariant[] {
  const inWave = spec.variants.filter((v) => v.wave === wave);
  return [...inWave.filter((v) => v.priority === 'normal'), ...inWave.filter((v) => v.priority === 'low')];
}

function variantRow(spec: GridSpec, state: GridState, dirs: DirNames, v: GridVariant, start: Work, improvers: { work: Work; gain: number }[], base: ModelConfig, activeKey?: string): Work {
  const index = spec.variants.indexOf(v);
  const field = `variants[${index}] (${v.id})`;
  try {
    const combined = v.combine ? combinedConfig(spec, v, improvers, base) : null;
    const config = combined?.config ?? applyChanges(start.config as unknown as Record<string, unknown>, v.config, `variants[${index}].config`);
    const full = completeConfig(spec, config, field);
    const work = planRow(spec, state, dirs, v, full, start.row.id, activeKey);
    work.row.changes = changesOver(start.config!, full);
    if (combined) work.row.change = combined.merged.length ? `${v.change} (${combined.merged.join(' + ')})` : v.change;
    if (combined && !combined.merged.length) work.row.note = 'nothing to combine: no earlier variant beat its wave\'s start';
    return work;
  } catch (e) {
    if (!(e instanceof BadInputError)) throw e;
    return skippedRow(spec, v, start.row.id, `invalid config: ${e.message}`, 'failed');
  }
}

/** The winners' changes merged over the base config, best first, one per group; and whose they are. */
function combinedConfig(spec: GridSpec, v: GridVariant, improvers: { work: Work; gain: number }[], base: ModelConfig): { config: Record<string, unknown>; merged: string[] } {
  const ids = Array.isArray(v.combine) ? v.combine : spec.choose.combine;
  const picks = ids ? ids.map((id) => spec.variants.find((x) => x.id === id)!) : [...improvers].sort((a, b) => b.gain - a.gain).map((i) => i.work.variant!);
  let config = { ...(base as unknown as Record<string, unknown>) };
  const groups = new Set<string>();
  const merged: string[] = [];
  for (const pick of picks) {
    if (groups.has(pick.group)) continue;
    groups.add(pick.group);
    merged.push(pick.id);
    config = applyChanges(config, pick.config, `variants[${spec.variants.indexOf(pick)}].config`);
  }
  return { config, merged };
}

/** The keys whose values differ from the start config: what the row shows as its change. */
function changesOver(start: ModelConfig, full: ModelConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const a = start as unknown as Record<string, unknown>, b = full as unknown as Record<string, unknown>;
  for (const k of Object.keys(b)) if (JSON.stringify(a[k]) !== JSON.stringify(b[k])) out[k] = b[k];
  return out;
}

function emptyRow(spec: GridSpec, v: GridVariant | null, from: string | null): GridRow {
  return {
    id: v?.id ?? BASELINE_ID,
    change: v?.change ?? 'the base config',
    wave: v?.wave ?? 0,
    priority: v?.priority ?? 'normal',
    from,
    changes: {},
    status: 'pending',
    seedsDone: 0,
    seeds: spec.seeds.length,
    valLoss: null, valLossStd: null, bpb: null, tokPerS: null, params: null, wallS: null, delta: null, deltaStd: null,
    winner: false,
    checkpoints: [],
    dirs: [],
  };
}

function skippedRow(spec: GridSpec, v: GridVariant, from: string, note: string, status: GridRow['status'] = 'skipped'): Work {
  const row = emptyRow(spec, v, from);
  row.status = status;
  row.changes = { ...v.config };
  row.note = note;
  return { variant: v, row, config: null, runs: [] };
}

/** A row with one run per seed, and what the state says of them. */
function planRow(spec: GridSpec, state: GridState, dirs: DirNames, v: GridVariant | null, config: ModelConfig, from: string | null, activeKey?: string): Work {
  const row = emptyRow(spec, v, from);
  const runs = spec.seeds.map((seed) => {
    const key = runKey({ family: spec.family, config, train: spec.train, budget: spec.budget, seed, data: spec.data, valRatio: spec.valRatio });
    return { variant: row.id, seed, key, config, dir: dirs.dirFor(row.id, seed, key), wave: row.wave };
  });
  const records = runs.map((r) => state.runs[r.key]);
  row.params = countParams(config);
  fillResults(row, records.filter((r): r is RunRecord => r?.status === 'done'));
  row.dirs = runs.map((r) => r.dir);
  row.status = statusOf(records, runs.some((r) => r.key === activeKey));
  const failed = records.find((r) => r?.status === 'failed');
  if (failed) row.note = `failed: ${failed.message ?? 'see the log'}`;
  else if (records.some((r) => r?.status === 'running') && row.status !== 'running') row.note = 'interrupted: runs again';
  return { variant: v, row, config, runs };
}

function statusOf(records: (RunRecord | undefined)[], active: boolean): GridRow['status'] {
  if (active) return 'running';
  if (records.every((r) => r?.status === 'done')) return 'done';
  if (records.some((r) => r?.status === 'failed') && records.every((r) => r?.status === 'done' || r?.status === 'failed')) return 'failed';
  return 'pending';
}

function isFinished(w: Work): boolean {
  return w.row.status === 'done';
}

function mean(xs: number[]): number | null {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null;
}

/** Sample standard deviation (n − 1), null below two values. */
export function sampleStd(xs: number[]): number | null {
  if (xs.length < 2) return null;
  const m = mean(xs)!;
  return Math.sqrt(xs.reduce((s, x) => s + (x - m) ** 2, 0) / (xs.length - 1));
}

function fillResults(row: GridRow, done: RunRecord[]): void {
  const results = done.map((r) => r.result!).filter(Boolean);
  row.seedsDone = results.length;
  if (!results.length) return;
  const pick = (f: (r: (typeof results)[number]) => number | null) => results.map(f).filter((x): x is number => x !== null && Number.isFinite(x));
  row.valLoss = mean(pick((r) => r.valLoss));
  row.valLossStd = sampleStd(pick((r) => r.valLoss));
  row.bpb = mean(pick((r) => r.bpb));
  row.tokPerS = mean(pick((r) => r.tokPerS));
  row.params = results[0].params;
  row.wallS = mean(pick((r) => r.wallS));
  row.checkpoints = results.map((r) => r.checkpoint).filter((c): c is string => !!c);
  if (results.some((r) => r.timeLimited)) row.note = `stopped by the time budget at step ${Math.min(...results.map((r) => r.steps))}`;
}

/** Δ vs the baseline and the spread of that difference. */
function fillDeltas(rows: GridRow[]): void {
  const base = rows[0];
  for (const r of rows) {
    if (r.valLoss === null || base.valLoss === null) continue;
    r.delta = r.valLoss - base.valLoss;
    r.deltaStd = r.valLossStd !== null && base.valLossStd !== null ? Math.sqrt(r.valLossStd ** 2 + base.valLossStd ** 2) : null;
  }
}

function chooseWinner(spec: GridSpec, wave: number, works: Work[], start: Work, decided: boolean): { winner: Work | null; summary: GridWaveChoice } {
  const chosen = spec.choose.waves[wave];
  const summary = (winner: Work | null, reason: string) => ({ winner, summary: { wave, from: start.row.id, winner: winner?.row.id ?? null, reason } });
  if (!decided) return summary(null, 'unfinished');
  if (chosen === 'none') return summary(null, `chosen in the spec: none (wave ${wave + 1} starts from ${start.row.id})`);
  if (chosen) {
    const w = works.find((x) => x.row.id === chosen);
    if (w && w.config && w.row.status === 'done') return summary(w, `chosen in the spec (choose.wave${wave})`);
    return summary(null, `chosen in the spec: ${chosen}, which has no result (${w?.row.note ?? w?.row.status ?? 'not run'})`);
  }
  const scored = works.filter((w) => w.config && w.row.valLoss !== null).sort((a, b) => a.row.valLoss! - b.row.valLoss!);
  const best = scored[0];
  if (!best) return summary(null, 'no variant has a result');
  if (start.row.valLoss === null || best.row.valLoss! >= start.row.valLoss) return summary(null, `none beat ${start.row.id} (best: ${best.row.id}, val loss ${best.row.valLoss!.toFixed(4)})`);
  return summary(best, `lowest val loss (${best.row.valLoss!.toFixed(4)} vs ${start.row.valLoss.toFixed(4)} for ${start.row.id})`);
}

/** Rows whose runs another row made (the same full config) say so. */
function markShared(works: Work[]): void {
  const owner = new Map<string, string>();
  for (const w of works) {
    for (const r of w.runs) {
      const first = owner.get(r.key);
      if (first === undefined) owner.set(r.key, w.row.id);
      else if (first !== w.row.id && !w.row.note) w.row.note = `the same config as ${first}: its run is shared`;
    }
  }
}

function uniqueRuns(runs: PlannedRun[]): PlannedRun[] {
  const seen = new Set<string>();
  return runs.filter((r) => !seen.has(r.key) && seen.add(r.key));
}

function notesOf(spec: GridSpec, state: GridState, works: Work[]): string[] {
  const notes: string[] = [];
  const keys = new Set(works.flatMap((w) => w.runs.map((r) => r.key)));
  const data = new Set(Object.values(state.runs).filter((r) => keys.has(r.key) && r.status === 'done' && r.data).map((r) => r.data));
  if (data.size > 1) notes.push(`the training data changed between runs (${data.size} different token sets): compare with care, or delete ${path.basename(spec.stateFile)} to run the grid again`);
  const skipped = works.filter((w) => w.row.status === 'skipped').map((w) => w.row.id);
  if (skipped.length) notes.push(`not run (low priority): ${skipped.join(', ')}`);
  if (spec.seeds.length > 1) notes.push(`${spec.seeds.length} seeds per variant: val loss is their mean, ± the seed-to-seed standard deviation; Δ ± √(std² + std_baseline²)`);
  return notes;
}

/** Run folders: `<out>/<id>` (`-seed<S>` with several seeds); a folder another config's run holds gets the run's key. */
class DirNames {
  private readonly owner = new Map<string, string>();

  constructor(private readonly spec: GridSpec, private readonly state: GridState) {
    for (const r of Object.values(state.runs)) this.owner.set(r.dir, r.key);
  }

  dirFor(id: string, seed: number, key: string): string {
    const known = this.state.runs[key];
    if (known) return known.dir;
    const base = path.join(this.spec.out, this.spec.seeds.length > 1 ? `${id}-seed${seed}` : id);
    const holder = this.owner.get(base);
    const dir = holder === undefined || holder === key ? base : `${base}-${key.slice(0, 6)}`;
    this.owner.set(dir, key);
    return dir;
  }
}
