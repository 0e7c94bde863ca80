/**
 * Following a training run as its files grow: one file, or a whole folder (a TensorBoard logdir,
 * a run's output folder). The first `poll()` reads everything there is; later ones read only the
 * bytes written since, from each file's last offset, like `tail -f`. Polling alone is enough (the
 * caller picks the interval); `watch: true` also polls soon after `fs.watch` reports a change.
 *
 * What a follower notices besides new points:
 * - a file that got shorter, was replaced (another inode) or rewritten (the bytes before the offset
 *   changed): read again from 0, as a new segment (`restart`);
 * - a series whose step goes backwards (a run restarted or resumed into the same log): a new segment,
 *   so the curves of the two runs are not joined into a zig-zag;
 * - new files in the folder (event files, *.jsonl, *.csv, *.log, *.txt) and files removed;
 * - checkpoint files (`*.pt`, `*.pth`, `*.safetensors`, `*.bin`, `*.ptz`) appearing or rewritten,
 *   with their mtime and the step in their name when there is one, and checkpoints a log says it saved.
 * Nothing keeps running after `close()`: no timer, no watcher.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BadInputError } from '../errors';
import type { CheckpointInfo, RunPoint, StreamParser } from './series';
import { SegmentTracker } from './series';
import type { IncrementalRead } from './lines';
import { readFromOffset } from './lines';
import { TfEventsParser, isTfEventsName } from './tfevents';
import { JsonlParser } from './jsonl';
import { CsvParser } from './csv';
import type { LogOptions } from './logs';
import { LogParser, compileLogRegex } from './logs';

export type FileFormat = 'tfevents' | 'jsonl' | 'csv' | 'log';

export type RunEvent =
  /** A file is now followed (found in the folder, or the followed file itself). */
  | { type: 'file'; file: string; path: string; format: FileFormat }
  | { type: 'points'; file: string; segment: number; points: RunPoint[] }
  /** A series' step went backwards: the points from here on are a new run in the same file. */
  | { type: 'segment'; file: string; segment: number; step: number }
  /** The file was truncated, replaced or rewritten: read again from the start as a new segment. */
  | { type: 'restart'; file: string; segment: number; reason: 'truncated' | 'replaced' | 'rewritten' }
  | { type: 'warning'; file: string; message: string }
  | { type: 'checkpoint'; checkpoint: CheckpointInfo }
  /** A followed file or a known checkpoint is gone. */
  | { type: 'removed'; file: string }
  /** A text file in the folder that holds no training points after its first MiB: no longer read. */
  | { type: 'ignored'; file: string; reason: string };

export interface FollowOptions {
  /** How to read `.log`/`.txt` files (and a single followed file of unknown type). */
  log?: LogOptions;
  /** Forces the format of a single followed file. */
  format?: FileFormat;
  /** Called with every event, those of `poll()` and those of watch-triggered polls. */
  onEvent?: (event: RunEvent) => void;
  /** Also poll shortly after `fs.watch` reports a change (events then reach `onEvent` only). */
  watch?: boolean;
  /** How long to wait after a watch notification before polling, so a burst of writes is one poll. */
  watchDelayMs?: number;
  /** How deep below a followed folder to look (0: the folder only). Default 3. */
  maxDepth?: number;
}

/** Where a followed file stands, for a status display. */
export interface FollowedFileState {
  file: string;
  path: string;
  format: FileFormat;
  offset: number;
  segment: number;
  /** The log preset in use or detected (logs only). */
  preset?: string;
  /** Reading stopped at a corrupt record; it starts again if the file is rewritten. */
  stopped: boolean;
  ignored: boolean;
}

const CHECKPOINT_NAME = /\.(pt|pth|safetensors|bin|ptz)$/i;
const DATA_SPLIT = /(^|[-_.])(train|val|valid|validation|test|eval)([-_.]|$)/;
const SKIPPED_DIRS = new Set(['node_modules', '__pycache__', 'wandb']);
/** Bytes before the resume offset compared at each poll to tell an append from a rewrite. */
const FINGERPRINT_BYTES = 64;
/** A folder's text file with no points after this many bytes is not a training log. */
const IGNORE_AFTER_BYTES = 1 << 20;
const MAX_FOLDER_ENTRIES = 20000;

/** The format a file name says, or undefined for a file a folder follower leaves alone. */
export function formatOfName(name: string): FileFormat | undefined {
  const base = path.basename(name);
  if (isTfEventsName(base)) return 'tfevents';
  const ext = path.extname(base).toLowerCase();
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  if (ext === '.csv') return 'csv';
  if (ext === '.log' || ext === '.txt') return 'log';
  return undefined;
}

/**
 * A checkpoint by its extension. A `.bin` named for a data split (nanoGPT's `train.bin`,
 * parameter-golf's `fineweb_val_000000.bin`) holds tokens, not weights.
 */
export function isCheckpointName(name: string): boolean {
  if (!CHECKPOINT_NAME.test(name)) return false;
  const base = path.basename(name).toLowerCase();
  return !(base.endsWith('.bin') && DATA_SPLIT.test(base.slice(0, -4)));
}

/**
 * The training step a checkpoint's name gives: `model_000500.pt` → 500, `ckpt_1000.pt` → 1000,
 * `step-200.safetensors` → 200, `checkpoint-1500/model.safetensors` → 1500, `optim_000500_rank0.pt`
 * → 500; undefined for `ckpt.pt`, `adaptive_best.pt`, shards like `model-00001-of-00002.safetensors`
 * and epochs (`epoch3.pt`).
 */
export function checkpointStep(relPath: string): number | undefined {
  const parts = relPath.split(/[\\/]/);
  const stem = parts[parts.length - 1].replace(/\.[A-Za-z0-9]+$/, '').replace(/[_-]rank\d+$/i, '');
  const fromName = stepInStem(stem);
  if (fromName !== undefined) return fromName;
  const parent = parts.length > 1 ? parts[parts.length - 2] : '';
  const fromDir = /^(?:checkpoint|ckpt|step|iter|global_step)[-_]?(\d+)$/i.exec(parent);
  return fromDir ? Number(fromDir[1]) : undefined;
}

function stepInStem(stem: string): number | undefined {
  if (/-of-\d+$/i.test(stem) || /epoch[-_]?\d+$/i.test(stem)) return undefined;
  const labelled = /(?:^|[^a-z])(?:step|iter|it|global_step)[-_.=]?(\d+)(?!.*\d)/i.exec(stem);
  if (labelled) return Number(labelled[1]);
  const trailing = /(?:^|[-_.])(\d+)$/.exec(stem);
  return trailing ? Number(trailing[1]) : undefined;
}

interface FollowedFile {
  rel: string;
  abs: string;
  format: FileFormat;
  parser: StreamParser;
  offset: number;
  ino: number;
  dev: number;
  /** The bytes just before `offset`, as read. */
  fingerprint: Buffer;
  segments: SegmentTracker;
  sawPoints: boolean;
  stopped: boolean;
  ignored: boolean;
}

interface KnownCheckpoint {
  mtimeMs: number;
  size: number;
}

export class RunFollower {
  private readonly root: string;
  private readonly isFolder: boolean;
  private readonly files = new Map<string, FollowedFile>();
  private readonly checkpoints = new Map<string, KnownCheckpoint>();
  private watcher?: fs.FSWatcher;
  private pendingPoll?: NodeJS.Timeout;
  private closed = false;
  private warnedFolderSize = false;

  /** `target`: a file or a folder that exists. Throws BadInputError otherwise (and for a bad log regex). */
  constructor(target: string, private readonly opts: FollowOptions = {}) {
    this.root = path.resolve(target);
    let st: fs.Stats;
    try {
      st = fs.statSync(this.root);
    } catch {
      throw new BadInputError(`cannot follow ${target}: no such file or folder; start the run first or choose the folder it writes to`);
    }
    this.isFolder = st.isDirectory();
    if (!this.isFolder && !st.isFile()) throw new BadInputError(`cannot follow ${target}: not a file or folder`);
    if (opts.log?.regex !== undefined) compileLogRegex(opts.log.regex, opts.log.regexFlags); // fail now, not at the first poll
  }

  /** The first read (everything so far), and `fs.watch` started when asked for. */
  start(): RunEvent[] {
    const events = this.poll();
    if (this.opts.watch && !this.watcher && !this.closed) this.startWatching();
    return events;
  }

  /** Reads what was written since the last poll; returns the events (also given to `onEvent`). */
  poll(): RunEvent[] {
    if (this.closed) return [];
    const events: RunEvent[] = [];
    if (this.isFolder) this.scanFolder(events);
    else this.pollSingleFile(events);
    for (const e of events) this.opts.onEvent?.(e);
    return events;
  }

  /** Stops watching; later polls return nothing. */
  close(): void {
    this.closed = true;
    if (this.pendingPoll) clearTimeout(this.pendingPoll);
    this.pendingPoll = undefined;
    this.watcher?.close();
    this.watcher = undefined;
  }

  get state(): FollowedFileState[] {
    return [...this.files.values()].map((f) => {
      const s: FollowedFileState = { file: f.rel, path: f.abs, format: f.format, offset: f.offset, segment: f.segments.segment, stopped: f.stopped, ignored: f.ignored };
      if (f.parser instanceof LogParser && f.parser.preset) s.preset = f.parser.preset;
      return s;
    });
  }

  // -------------------------------------------------------------------------------------------
  // Watching

  private startWatching(): void {
    try {
      this.watcher = fs.watch(this.root, () => this.schedulePoll());
      this.watcher.on('error', (e) => this.watchFailed(e));
    } catch (e) {
      this.watchFailed(e as Error);
    }
  }

  private watchFailed(e: Error): void {
    this.watcher?.close();
    this.watcher = undefined;
    this.opts.onEvent?.({ type: 'warning', file: path.basename(this.root), message: `cannot watch ${this.root} (${e.message}); changes are seen at the next poll only` });
  }

  private schedulePoll(): void {
    if (this.closed || this.pendingPoll) return;
    this.pendingPoll = setTimeout(() => {
      this.pendingPoll = undefined;
      this.poll();
    }, this.opts.watchDelayMs ?? 100);
  }

  // -------------------------------------------------------------------------------------------
  // Finding files

  private pollSingleFile(events: RunEvent[]): void {
    const rel = path.basename(this.root);
    let f = this.files.get(rel);
    if (!f) {
      const st = statOrUndefined(this.root);
      if (!st) return; // not there (yet, again): the next poll looks again
      const format = this.opts.format ?? formatOfName(rel) ?? 'log';
      f = this.follow(rel, this.root, format, st, events, false);
    }
    this.pollFile(f, events);
  }

  private scanFolder(events: RunEvent[]): void {
    const seen = new Set<string>();
    for (const entry of this.listFolder(events)) {
      seen.add(entry.rel);
      if (isCheckpointName(entry.rel)) this.noteCheckpoint(entry, events);
      else {
        const format = formatOfName(entry.rel);
        if (!format) continue;
        const f = this.files.get(entry.rel) ?? this.follow(entry.rel, entry.abs, format, entry.stat, events, true);
        this.pollFile(f, events);
      }
    }
    for (const rel of [...this.files.keys(), ...this.checkpoints.keys()]) {
      if (seen.has(rel)) continue;
      this.files.delete(rel);
      this.checkpoints.delete(rel);
      events.push({ type: 'removed', file: rel });
    }
  }

  /** Files under the root, depth-limited, sorted, hidden and package folders skipped. */
  private listFolder(events: RunEvent[]): { rel: string; abs: string; stat: fs.Stats }[] {
    const out: { rel: string; abs: string; stat: fs.Stats }[] = [];
    const maxDepth = this.opts.maxDepth ?? 3;
    const walk = (dir: string, relDir: string, depth: number): void => {
      let names: string[];
      try {
        names = fs.readdirSync(dir).sort();
      } catch {
        return; // removed meanwhile, or not readable: nothing to follow there
      }
      for (const name of names) {
        if (out.length >= MAX_FOLDER_ENTRIES) return this.warnFolderSize(events);
        if (name.startsWith('.')) continue;
        const abs = path.join(dir, name);
        const rel = relDir ? `${relDir}/${name}` : name;
        const st = statOrUndefined(abs);
        if (!st) continue;
        if (st.isDirectory()) {
          if (depth < maxDepth && !SKIPPED_DIRS.has(name)) walk(abs, rel, depth + 1);
        } else if (st.isFile()) out.push({ rel, abs, stat: st });
      }
    };
    walk(this.root, '', 0);
    return out;
  }

  private warnFolderSize(events: RunEvent[]): void {
    if (this.warnedFolderSize) return;
    this.warnedFolderSize = true;
    events.push({ type: 'warning', file: path.basename(this.root), message: `${this.root} has more than ${MAX_FOLDER_ENTRIES} files; only the first are followed (choose the run's own folder)` });
  }

  private noteCheckpoint(entry: { rel: string; abs: string; stat: fs.Stats }, events: RunEvent[]): void {
    const known = this.checkpoints.get(entry.rel);
    const { mtimeMs, size } = entry.stat;
    if (known && known.mtimeMs === mtimeMs && known.size === size) return;
    this.checkpoints.set(entry.rel, { mtimeMs, size });
    const checkpoint: CheckpointInfo = { path: entry.abs, source: 'file', mtimeMs, size };
    const step = checkpointStep(entry.rel);
    if (step !== undefined) checkpoint.step = step;
    events.push({ type: 'checkpoint', checkpoint });
  }

  // -------------------------------------------------------------------------------------------
  // Reading one file

  private follow(rel: string, abs: string, format: FileFormat, st: fs.Stats, events: RunEvent[], inFolder: boolean): FollowedFile {
    const f: FollowedFile = {
      rel, abs, format, parser: this.parserFor(format, rel, inFolder), offset: 0, ino: st.ino, dev: st.dev,
      fingerprint: Buffer.alloc(0), segments: new SegmentTracker(), sawPoints: false, stopped: false, ignored: false,
    };
    this.files.set(rel, f);
    events.push({ type: 'file', file: rel, path: abs, format });
    return f;
  }

  private parserFor(format: FileFormat, rel: string, inFolder: boolean): StreamParser {
    switch (format) {
      case 'tfevents': return new TfEventsParser(rel);
      case 'jsonl': return new JsonlParser(rel);
      case 'csv': return new CsvParser(rel);
      case 'log': {
        // In a folder, a text file that is no training log is dropped quietly (IGNORE_AFTER_BYTES).
        const opts: LogOptions = { ...this.opts.log };
        if (inFolder) opts.detectWithinLines = Infinity;
        return new LogParser(rel, opts);
      }
    }
  }

  private pollFile(f: FollowedFile, events: RunEvent[]): void {
    if (f.ignored) return;
    const st = statOrUndefined(f.abs);
    if (!st) return;
    const reason = this.restartReason(f, st);
    if (reason) this.restart(f, st, reason, events);
    if (f.stopped || st.size <= f.offset) return;
    let read: IncrementalRead;
    try {
      read = readFromOffset(f.abs, f.parser, f.offset);
    } catch (e) {
      if (e instanceof BadInputError) return; // vanished between stat and open: the next poll sees it
      throw e;
    }
    for (const message of read.warnings) events.push({ type: 'warning', file: f.rel, message });
    this.emitPoints(f, read.points, events);
    for (const checkpoint of read.checkpoints ?? []) events.push({ type: 'checkpoint', checkpoint });
    f.offset = read.nextOffset;
    f.stopped = read.stopped;
    f.fingerprint = readBytes(f.abs, Math.max(0, f.offset - FINGERPRINT_BYTES), f.offset);
    this.maybeIgnore(f, events);
  }

  private restartReason(f: FollowedFile, st: fs.Stats): 'truncated' | 'replaced' | 'rewritten' | undefined {
    if (st.ino !== f.ino || st.dev !== f.dev) return 'replaced';
    if (st.size < f.offset) return 'truncated';
    if (f.offset > 0 && !readBytes(f.abs, f.offset - f.fingerprint.length, f.offset).equals(f.fingerprint)) return 'rewritten';
    return undefined;
  }

  private restart(f: FollowedFile, st: fs.Stats, reason: 'truncated' | 'replaced' | 'rewritten', events: RunEvent[]): void {
    f.parser = this.parserFor(f.format, f.rel, this.isFolder);
    f.offset = 0;
    f.ino = st.ino;
    f.dev = st.dev;
    f.fingerprint = Buffer.alloc(0);
    f.stopped = false;
    events.push({ type: 'restart', file: f.rel, segment: f.segments.restart(), reason });
  }

  /** Points as `points` events, one per segment, with a `segment` event where a step went back. */
  private emitPoints(f: FollowedFile, points: RunPoint[], events: RunEvent[]): void {
    if (!points.length) return;
    f.sawPoints = true;
    let batch: RunPoint[] = [];
    let segment = f.segments.segment;
    for (const p of points) {
      const s = f.segments.place(p);
      if (s !== segment) {
        if (batch.length) events.push({ type: 'points', file: f.rel, segment, points: batch });
        events.push({ type: 'segment', file: f.rel, segment: s, step: p.step });
        batch = [];
        segment = s;
      }
      batch.push(p);
    }
    events.push({ type: 'points', file: f.rel, segment, points: batch });
  }

  private maybeIgnore(f: FollowedFile, events: RunEvent[]): void {
    if (!this.isFolder || f.sawPoints || f.format === 'tfevents' || f.offset < IGNORE_AFTER_BYTES) return;
    f.ignored = true;
    events.push({ type: 'ignored', file: f.rel, reason: `no training points in its first ${IGNORE_AFTER_BYTES >> 20} MiB` });
  }
}

function statOrUndefined(p: string): fs.Stats | undefined {
  try {
    return fs.statSync(p);
  } catch {
    return undefined;
  }
}

/** Bytes [start, end) of a file (fewer if it is shorter now; empty if it is gone). */
function readBytes(file: string, start: number, end: number): Buffer {
  if (end <= start) return Buffer.alloc(0);
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return Buffer.alloc(0);
  }
  try {
    const buf = Buffer.alloc(end - start);
    const got = fs.readSync(fd, buf, 0, buf.length, start);
    return buf.subarray(0, got);
  } finally {
    fs.closeSync(fd);
  }
}
