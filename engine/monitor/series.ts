/**
 * The normalised model every training-run reader produces: a point is one value of one named series
 * at one step (TensorBoard's scalar model: tag, step, value, wall time). Readers of TensorBoard event
 * files, JSONL, CSV and stdout logs all return a `RunReadResult`; the follower (tail.ts) streams the
 * same points as they are written. Also here: the number syntax the text formats share, merging
 * results, and the segment tracker that splits a restarted run (steps going backwards) into
 * separate curves.
 */

/** One value of one series at one step. `value` may be NaN or ±Infinity when the run logged one
 * (a diverged loss is worth seeing); `wallTime` is seconds since the epoch when the file has it. */
export interface RunPoint {
  series: string;
  step: number;
  value: number;
  wallTime?: number;
}

/** A checkpoint: a file seen in a followed folder (`source: 'file'`) or one a log line says was
 * saved (`source: 'log'`, path as printed, relative to the run's working folder). */
export interface CheckpointInfo {
  path: string;
  source: 'file' | 'log';
  /** From the file name (`model_000500.pt`) or, for a log line, the step of the eval before it. */
  step?: number;
  mtimeMs?: number;
  size?: number;
}

export interface RunReadResult {
  points: RunPoint[];
  /** One line each, naming the file and where; reading went on past them unless they say it stopped. */
  warnings: string[];
  checkpoints?: CheckpointInfo[];
}

/** What a stream parser made of the bytes it was given. */
export interface ParseStep extends RunReadResult {
  /** Bytes used from the start of the chunk; the rest is an incomplete unit to pass again with more. */
  consumed: number;
  /** The file cannot be read further (a corrupt record): stop, keep what came before. */
  stopped?: boolean;
}

/**
 * A reader of one file format fed consecutive chunks of a file. `atEnd` says no more bytes will
 * follow (a whole-file read): an incomplete last unit is then parsed or reported instead of kept.
 */
export interface StreamParser {
  push(chunk: Buffer, atEnd: boolean): ParseStep;
}

export function emptyResult(): RunReadResult {
  return { points: [], warnings: [] };
}

/** Appends `more` into `into` (points, warnings, checkpoints) and returns `into`. */
export function appendResult(into: RunReadResult, more: RunReadResult): RunReadResult {
  for (const p of more.points) into.points.push(p);
  for (const w of more.warnings) into.warnings.push(w);
  if (more.checkpoints?.length) {
    into.checkpoints ??= [];
    for (const c of more.checkpoints) into.checkpoints.push(c);
  }
  return into;
}

/** Several results as one, in the order given. */
export function mergeResults(...results: RunReadResult[]): RunReadResult {
  return results.reduce((acc, r) => appendResult(acc, r), emptyResult());
}

/** The same points with every series renamed `prefix/series` (files of one folder side by side). */
export function prefixSeries(points: RunPoint[], prefix: string): RunPoint[] {
  return points.map((p) => ({ ...p, series: `${prefix}/${p.series}` }));
}

/** Points grouped by series, each group in the order read; series in order of first appearance. */
export function groupBySeries(points: RunPoint[]): Map<string, RunPoint[]> {
  const groups = new Map<string, RunPoint[]>();
  for (const p of points) {
    let g = groups.get(p.series);
    if (!g) groups.set(p.series, (g = []));
    g.push(p);
  }
  return groups;
}

/** Series names in order of first appearance. */
export function seriesNames(points: RunPoint[]): string[] {
  return [...groupBySeries(points).keys()];
}

/**
 * Splits one file's points into segments: a series whose step goes backwards means the run was
 * restarted (or resumed from an earlier checkpoint) and appends to the same log, so everything from
 * there on is a new segment and curves do not zig-zag. Equal steps are not a restart (a summary
 * written at the last step, two writers of one tag).
 */
export class SegmentTracker {
  private lastStep = new Map<string, number>();
  private current = 0;

  get segment(): number {
    return this.current;
  }

  /** The segment of `p`; starts a new one when `p.step` is below its series' last step. */
  place(p: RunPoint): number {
    const last = this.lastStep.get(p.series);
    if (last !== undefined && p.step < last) {
      this.current++;
      this.lastStep.clear();
    }
    this.lastStep.set(p.series, p.step);
    return this.current;
  }

  /** A new segment whatever the steps (the file was truncated or replaced). */
  restart(): number {
    this.lastStep.clear();
    return ++this.current;
  }
}

/** Points cut into runs of one segment each, in order. */
export function splitSegments(points: RunPoint[], tracker = new SegmentTracker()): { segment: number; points: RunPoint[] }[] {
  const out: { segment: number; points: RunPoint[] }[] = [];
  for (const p of points) {
    const seg = tracker.place(p);
    const tail = out[out.length - 1];
    if (tail && tail.segment === seg) tail.points.push(p);
    else out.push({ segment: seg, points: [p] });
  }
  return out;
}

/** The decimal syntax of logs and CSV cells: `1,541,333`, `-1.5e-05`, `.5`, and Python's `nan`/`inf`. */
export const NUMBER_PATTERN = String.raw`[-+]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|[nN]a[nN]|[iI]nf(?:inity)?)`;
const WHOLE_NUMBER = new RegExp(`^${NUMBER_PATTERN}$`);

/**
 * A number as text writes it, or undefined when the text is not one. Thousands separators are
 * dropped (`f"{n:,}"`); `nan`, `inf`, `-inf`, `Infinity` are what Python and JavaScript print.
 */
export function parseNumber(text: string): number | undefined {
  const t = text.trim();
  if (!WHOLE_NUMBER.test(t)) return undefined;
  const lower = t.toLowerCase();
  if (lower.endsWith('nan')) return NaN;
  if (lower.includes('inf')) return lower.startsWith('-') ? -Infinity : Infinity;
  const n = Number(t.includes(',') ? t.replace(/,/g, '') : t);
  return Number.isNaN(n) ? undefined : n;
}

/** The keys that mean "x" in JSONL and CSV, in order of preference. */
export const STEP_KEYS = ['step', 'iter', 'iter_num', 'global_step'] as const;

/**
 * Caps repeated warnings of one kind: the first `limit` pass, then one line saying the rest of the
 * file's such problems are not reported (a garbage file must not become a million warnings).
 */
export class WarningBudget {
  private used = 0;
  constructor(private readonly limit = 10) {}

  /** Pushes `message` (or, once, the "no more" line) onto `warnings`. */
  add(warnings: string[], message: string, suppressedNote: string): void {
    if (this.used < this.limit) warnings.push(message);
    else if (this.used === this.limit) warnings.push(suppressedNote);
    this.used++;
  }
}
