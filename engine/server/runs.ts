/**
 * The protocol's run-monitor and grid methods:
 * - `runs/watch`: a RunFollower (engine/monitor/tail.ts) on a file or folder, polled every
 *   `pollMs` and soon after file-system events; its events become RunWatchEvents, points batched
 *   per file, segment and series (a tick at most every 100 ms). Checkpoints are announced only
 *   once the engine's readers accept them (runCheckpoints.ts) and the file has stopped changing.
 *   It ends only by `$/cancel`, and then keeps nothing running.
 * - `runs/probe`: a checkpoint's per-head signal means on a probe text, at low priority (runProbe.ts).
 * - `grid/run`, `grid/template`: the experiment grid (engine/grid), one grid at a time per engine.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { EngineServer, RequestContext } from './server';
import type { GridEvent, RunCheckpoint, RunSeriesPoints, RunWatchEvent, RunWatchParams, RunWatchResult } from '../protocol';
import { BadInputError, CancelledError } from '../errors';
import { RunFollower, type RunEvent } from '../monitor/tail';
import { LOG_PRESETS, type LogOptions, type LogPresetName } from '../monitor/logs';
import type { CheckpointInfo } from '../monitor/series';
import { currentBackend, initBackend } from '../runtime/tfjs/backend';
import { runGrid } from '../grid/runner';
import { gridTemplate } from '../grid/template';
import { inspectCheckpoint } from './runCheckpoints';
import { probeCheckpoint } from './runProbe';

const TICK_MS = 100;
const DEFAULT_POLL_MS = 1000;
/** A checkpoint file unchanged for this long is taken as written (or at the next poll, whichever comes first). */
const SETTLED_MS = 1500;
/** A checkpoint a log line names is looked for this long before it is given up. */
const LOG_CHECKPOINT_WAIT_MS = 5 * 60_000;

let gridRunning: string | null = null;

export function registerRunMethods(server: EngineServer): void {
  server.on('runs/watch', (p, ctx) => new WatchSession(p, ctx).run());
  server.on('runs/probe', (p, ctx) => probeCheckpoint(p, ctx.token));
  server.on('grid/template', async (p) => gridTemplate(p.name ?? 'autoresearch', p.data));
  server.on('grid/run', async (p, ctx) => {
    if (typeof p.spec !== 'string' || !p.spec) throw new BadInputError('grid/run needs `spec`: the path of a grid spec (JSON)');
    if (gridRunning) throw new BadInputError(`a grid is running already (${gridRunning}); stop it first`);
    gridRunning = p.spec;
    try {
      if (!currentBackend()) await initBackend('auto');
      return await runGrid(p.spec, { out: p.out, token: ctx.token, onEvent: (e: GridEvent) => ctx.progress(e) });
    } finally {
      gridRunning = null;
    }
  });
}

function logOptions(p: RunWatchParams): LogOptions {
  if (p.preset !== undefined && !LOG_PRESETS.includes(p.preset as LogPresetName)) throw new BadInputError(`runs/watch: unknown preset '${p.preset}'; use one of ${LOG_PRESETS.join(', ')} or a regex`);
  const opts: LogOptions = {};
  if (p.preset) opts.preset = p.preset;
  if (p.regex !== undefined) {
    if (typeof p.regex !== 'string' || !p.regex) throw new BadInputError('runs/watch: `regex` must be a non-empty regular expression with a (?<step>…) group');
    opts.regex = p.regex;
    if (p.regexFlags) opts.regexFlags = p.regexFlags;
  }
  return opts;
}

/** A checkpoint seen but not announced yet: waiting for its bytes to settle and the readers' word. */
interface PendingCheckpoint {
  info: CheckpointInfo;
  /** size|mtime when last looked at, and since when it has been so. */
  stamp: string;
  since: number;
  firstSeen: number;
}

class WatchSession {
  private readonly buffer: RunEvent[] = [];
  private readonly pending = new Map<string, PendingCheckpoint>();
  /** Announced or refused checkpoints by path → the size|mtime they were judged at. */
  private readonly judged = new Map<string, string>();
  private readonly root: string;
  private files = 0;
  private points = 0;

  constructor(private readonly p: RunWatchParams, private readonly ctx: RequestContext) {
    if (typeof p.path !== 'string' || !p.path) throw new BadInputError('runs/watch needs `path`: a training log, metrics file, event file or run folder');
    this.root = path.resolve(p.path);
  }

  async run(): Promise<RunWatchResult> {
    const follower = new RunFollower(this.root, { log: logOptions(this.p), watch: true, watchDelayMs: TICK_MS, onEvent: (e) => this.buffer.push(e) });
    try {
      follower.start();
      this.flush();
      this.settleCheckpoints(true);
      this.ctx.progress({ kind: 'caught-up', files: this.files, points: this.points } satisfies RunWatchEvent);
      const pollMs = Math.max(TICK_MS, this.p.pollMs ?? DEFAULT_POLL_MS);
      let lastPoll = Date.now();
      while (!this.ctx.token.cancelled) {
        await new Promise((r) => setTimeout(r, TICK_MS));
        if (Date.now() - lastPoll >= pollMs) {
          follower.poll();
          lastPoll = Date.now();
        }
        this.flush();
        this.settleCheckpoints(false);
      }
    } finally {
      follower.close();
    }
    throw new CancelledError();
  }

  private send(e: RunWatchEvent): void {
    this.ctx.progress(e);
  }

  /** The follower's events since the last tick, as protocol events (points grouped by series). */
  private flush(): void {
    const events = this.buffer.splice(0);
    for (const e of events) {
      switch (e.type) {
        case 'file':
          this.files++;
          this.send({ kind: 'file', file: e.file, path: e.path, format: e.format });
          break;
        case 'points':
          this.points += e.points.length;
          this.send({ kind: 'points', file: e.file, segment: e.segment, series: groupSeries(e.points) });
          break;
        case 'segment':
          this.send({ kind: 'segment', file: e.file, segment: e.segment, reason: 'step-back', step: e.step });
          break;
        case 'restart':
          this.send({ kind: 'segment', file: e.file, segment: e.segment, reason: e.reason });
          break;
        case 'warning':
          this.send({ kind: 'warning', file: e.file, message: e.message });
          break;
        case 'ignored':
          this.send({ kind: 'warning', file: e.file, message: `${e.file}: not followed (${e.reason})` });
          break;
        case 'removed':
          this.send({ kind: 'removed', file: e.file });
          break;
        case 'checkpoint':
          this.noteCheckpoint(e.checkpoint);
          break;
      }
    }
  }

  /** A log's checkpoint path is as printed: relative to the run's folder (the watched one, or the log's). */
  private resolve(info: CheckpointInfo): string {
    if (info.source === 'file' || path.isAbsolute(info.path)) return info.path;
    const isFolder = fs.statSync(this.root, { throwIfNoEntry: false })?.isDirectory() ?? false;
    return path.resolve(isFolder ? this.root : path.dirname(this.root), info.path);
  }

  private noteCheckpoint(info: CheckpointInfo): void {
    const file = this.resolve(info);
    const known = this.pending.get(file);
    const merged: CheckpointInfo = { ...info, path: file, step: info.step ?? known?.info.step };
    this.pending.set(file, { info: merged, stamp: known?.stamp ?? '', since: known?.since ?? 0, firstSeen: known?.firstSeen ?? Date.now() });
  }

  /**
   * Pending checkpoints whose bytes stopped changing are checked and announced. At the first read
   * (`initial`) a file last written more than SETTLED_MS ago counts as settled.
   */
  private settleCheckpoints(initial: boolean): void {
    const now = Date.now();
    for (const [file, c] of this.pending) {
      const st = fs.statSync(file, { throwIfNoEntry: false });
      if (!st) {
        if (now - c.firstSeen > LOG_CHECKPOINT_WAIT_MS) this.pending.delete(file);
        continue;
      }
      const stamp = `${st.size}|${st.mtimeMs}`;
      if (this.judged.get(file) === stamp) {
        this.pending.delete(file);
        continue;
      }
      if (stamp !== c.stamp) {
        c.stamp = stamp;
        c.since = now;
        if (!(initial && now - st.mtimeMs > SETTLED_MS)) continue;
      } else if (now - c.since < SETTLED_MS) continue;
      this.judge(file, c, st, stamp);
    }
  }

  private judge(file: string, c: PendingCheckpoint, st: fs.Stats, stamp: string): void {
    const verdict = inspectCheckpoint(file);
    if (verdict.kind === 'incomplete') {
      c.since = Date.now(); // still being written: look again later
      return;
    }
    this.pending.delete(file);
    this.judged.set(file, stamp);
    if (verdict.kind === 'unloadable') {
      this.send({ kind: 'warning', file: path.basename(file), message: `${path.basename(file)} is not a checkpoint the engine can load: ${verdict.reason}` });
      return;
    }
    const f = verdict.facts;
    const checkpoint: RunCheckpoint = { path: file, step: c.info.step ?? f.step ?? null, mtimeMs: st.mtimeMs, size: st.size, family: f.family, layers: f.layers, heads: f.heads, paramCount: f.paramCount };
    this.send({ kind: 'checkpoint', checkpoint });
  }
}

/** Points by series, in order; non-finite values (NaN, ±Infinity) as null, which JSON can carry. */
function groupSeries(points: { series: string; step: number; value: number }[]): Record<string, RunSeriesPoints> {
  const out: Record<string, RunSeriesPoints> = {};
  for (const p of points) {
    const s = (out[p.series] ??= { steps: [], values: [] });
    s.steps.push(p.step);
    s.values.push(Number.isFinite(p.value) ? p.value : null);
  }
  return out;
}
