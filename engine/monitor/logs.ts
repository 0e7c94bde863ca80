/**
 * Training stdout logs (`python train.py | tee run.log`), read with a preset per trainer or a
 * user's regular expression. The presets follow the print statements of each project (formats as
 * in shared/fixtures/runs/README.md, which cites the lines):
 *
 * - `nanogpt` (karpathy/nanoGPT train.py): `iter N: loss X, time Yms, mfu Z%` → loss, time_ms,
 *   mfu_pct (mfu is printed as -100.00% while still unmeasured: that sentinel is not a value);
 *   `step N: train loss X, val loss Y` → train_loss, val_loss; `saving checkpoint to DIR` → a
 *   checkpoint DIR/ckpt.pt at the eval step before it.
 * - `autoresearch` (karpathy/autoresearch train.py): `\rstep 00012 (11.4%) | loss: 7.49 | lrm: 1.00
 *   | dt: 344ms | tok/sec: 1,524,539 | mfu: 36.8% | epoch: 1 | remaining: 2s` — redrawn with `\r`,
 *   so one physical line holds many steps → pct_done, loss, lrm, dt_ms, tok_per_sec, mfu_pct, epoch,
 *   remaining_s; after `---`, the summary `key: value` lines (val_bpb, …) at the step after the last.
 * - `agpt` (REDDITARUN/a-gpt train/run.py): `step     5 | lr 3.00e-04 | tiny val 5.2122 (ppl
 *   183.49) | … | mixed val 5.7921 (ppl 327.70)` → lr, tiny_val, tiny_ppl, …, mixed_val, mixed_ppl;
 *   `saved best checkpoint: PATH`. (Its per-step train loss is only in tqdm's bar, on stderr.)
 * - `paramgolf` (openai/parameter-golf train_gpt.py): `step:50/20000 train_loss:5.4870
 *   train_time:33884ms step_avg:677.68ms` and `step:178/20000 val_loss:… val_bpb:…` → every
 *   `key:value` (a unit `ms`/`s`/`%` goes into the name); `final_… val_loss:… val_bpb:…` lines at
 *   the last step as `final_…/val_loss`.
 *
 * With no preset, the first line that one preset reads fixes it (their line shapes do not overlap).
 * A user regex needs a named group `step`; every other named group that reads as a number is a
 * series. A bad regex is a BadInputError with one line.
 */
import { BadInputError } from '../errors';
import type { CheckpointInfo, ParseStep, RunPoint, RunReadResult, StreamParser } from './series';
import { NUMBER_PATTERN, parseNumber } from './series';
import type { IncrementalRead } from './lines';
import { LineSplitter, displayNameOf, readFromOffset, readWholeFile } from './lines';

export const LOG_PRESETS = ['nanogpt', 'autoresearch', 'agpt', 'paramgolf'] as const;
export type LogPresetName = (typeof LOG_PRESETS)[number];

export interface LogOptions {
  /** Which trainer wrote the log; detected from the first lines when neither this nor `regex` is given. */
  preset?: LogPresetName;
  /** A JavaScript regular expression with a named group `(?<step>…)`; overrides `preset`. */
  regex?: string;
  /** Flags for `regex` (`i`, `u`, …; `g` and `y` are dropped: each line is matched on its own). */
  regexFlags?: string;
  /** Lines read without recognising a format before the parser reports so (default 2000). */
  detectWithinLines?: number;
}

/** What a line reader adds to and remembers across lines. */
interface LineSink {
  points: RunPoint[];
  checkpoints: CheckpointInfo[];
  /** The step of the last eval line (checkpoint lines follow it) and of the last step line. */
  lastEvalStep?: number;
  lastStep?: number;
  inSummary?: boolean;
}

interface LogPreset {
  name: LogPresetName;
  /** Lines only this trainer prints (startup banners and metric lines), for `detectLogPreset`. */
  signatures: RegExp[];
  /** Reads one line into `sink`; true when the line was one of this trainer's. */
  read(line: string, sink: LineSink): boolean;
}

const NUM = NUMBER_PATTERN;

function push(sink: LineSink, series: string, step: number, value: number | undefined): void {
  if (value !== undefined) sink.points.push({ series, step, value });
}

/** `tok/sec` → tok_per_sec, `tiny val` → tiny_val; a unit goes into the name (`dt: 344ms` → dt_ms). */
export function seriesName(label: string, unit = ''): string {
  const base = label.trim().toLowerCase().replace(/\//g, '_per_').replace(/[^a-z0-9]+/g, '_').replace(/^_+|_+$/g, '');
  const suffix = unit === '%' ? '_pct' : unit ? `_${unit.toLowerCase()}` : '';
  return base + suffix;
}

// ---------------------------------------------------------------------------------------------
// nanoGPT

const NANOGPT_ITER = new RegExp(String.raw`\biter (\d+): loss (${NUM})(?:, time (${NUM})ms)?(?:, mfu (${NUM})%)?`);
const NANOGPT_EVAL = new RegExp(String.raw`\bstep (\d+): train loss (${NUM}), val loss (${NUM})`);
const NANOGPT_SAVE = /^saving checkpoint to (.+?)\s*$/;
/** nanoGPT's running_mfu starts at -1.0 (printed -100.00%) until 5 iterations were timed. */
const NANOGPT_MFU_UNKNOWN = -100;

const nanogpt: LogPreset = {
  name: 'nanogpt',
  signatures: [/^Overriding config with \S+:$/, /^tokens per iteration will be: /, NANOGPT_ITER, NANOGPT_EVAL],
  read(line, sink) {
    let m = NANOGPT_ITER.exec(line);
    if (m) {
      const step = Number(m[1]);
      push(sink, 'loss', step, parseNumber(m[2]));
      if (m[3] !== undefined) push(sink, 'time_ms', step, parseNumber(m[3]));
      const mfu = m[4] === undefined ? undefined : parseNumber(m[4]);
      if (mfu !== NANOGPT_MFU_UNKNOWN) push(sink, 'mfu_pct', step, mfu);
      sink.lastStep = step;
      return true;
    }
    if ((m = NANOGPT_EVAL.exec(line))) {
      const step = Number(m[1]);
      push(sink, 'train_loss', step, parseNumber(m[2]));
      push(sink, 'val_loss', step, parseNumber(m[3]));
      sink.lastEvalStep = step;
      return true;
    }
    if ((m = NANOGPT_SAVE.exec(line))) {
      // train.py saves os.path.join(out_dir, 'ckpt.pt')
      sink.checkpoints.push(logCheckpoint(`${m[1].replace(/\/+$/, '')}/ckpt.pt`, sink.lastEvalStep));
      return true;
    }
    return false;
  },
};

function logCheckpoint(path: string, step: number | undefined): CheckpointInfo {
  const c: CheckpointInfo = { path, source: 'log' };
  if (step !== undefined) c.step = step;
  return c;
}

// ---------------------------------------------------------------------------------------------
// autoresearch

// `step 00012 (11.4%) | …` (nanochat, its parent, prints `step 00012/00950 (1.26%) | …`).
const AUTORESEARCH_STEP = new RegExp(String.raw`\bstep (\d+)(?:/\d+)? \((${NUM})%\)((?:\s*\|[^|]*)+)`);
const AUTORESEARCH_FIELD = new RegExp(String.raw`^([^:]+):\s*(${NUM})\s*(ms|s|%|m)?$`);
const AUTORESEARCH_SUMMARY = new RegExp(String.raw`^(\w+):\s+(${NUM})\s*$`);

const autoresearch: LogPreset = {
  name: 'autoresearch',
  signatures: [/^Estimated FLOPs per token: /, /^Time budget: \d+s$/, AUTORESEARCH_STEP],
  read(line, sink) {
    const m = AUTORESEARCH_STEP.exec(line);
    if (m) {
      const step = Number(m[1]);
      push(sink, 'pct_done', step, parseNumber(m[2]));
      for (const field of m[3].split('|')) {
        const f = AUTORESEARCH_FIELD.exec(field.trim());
        if (f) push(sink, seriesName(f[1], f[3]), step, parseNumber(f[2]));
      }
      sink.lastStep = step;
      return true;
    }
    if (line.trim() === '---' && sink.lastStep !== undefined) {
      sink.inSummary = true;
      return true;
    }
    const s = sink.inSummary ? AUTORESEARCH_SUMMARY.exec(line.trim()) : null;
    if (s) {
      // The final eval sees the model after the last step's update: plot it one step further.
      push(sink, s[1], sink.lastStep === undefined ? 0 : sink.lastStep + 1, parseNumber(s[2]));
      return true;
    }
    return false;
  },
};

// ---------------------------------------------------------------------------------------------
// a-gpt

const AGPT_EVAL = /\bstep\s+(\d+) \| (lr .*)$/;
const AGPT_FIELD = new RegExp(String.raw`^(.+?)\s+(${NUM})(?:\s+\((\w+)\s+(${NUM})\))?$`);
const AGPT_SAVE = /^saved best checkpoint: (.+?)\s*$/;

const agpt: LogPreset = {
  name: 'agpt',
  signatures: [/^sampling weights: tiny=/, /^steps\/epoch \(approx\): /, AGPT_EVAL],
  read(line, sink) {
    let m = AGPT_EVAL.exec(line);
    if (m) {
      const step = Number(m[1]);
      for (const field of m[2].split(' | ')) {
        const f = AGPT_FIELD.exec(field.trim());
        if (!f) continue;
        push(sink, seriesName(f[1]), step, parseNumber(f[2]));
        // `tiny val 5.2122 (ppl 183.49)` → tiny_ppl
        if (f[3] !== undefined) push(sink, seriesName(`${f[1].trim().split(/\s+/)[0]} ${f[3]}`), step, parseNumber(f[4]));
      }
      sink.lastEvalStep = step;
      sink.lastStep = step;
      return true;
    }
    if ((m = AGPT_SAVE.exec(line))) {
      sink.checkpoints.push(logCheckpoint(m[1], sink.lastEvalStep));
      return true;
    }
    return false;
  },
};

// ---------------------------------------------------------------------------------------------
// parameter-golf

const PARAMGOLF_STEP = /^step:(\d+)\/\d+((?:\s+\w+:\S+)+)\s*$/;
const PARAMGOLF_FINAL = /^(final_\w+)((?:\s+\w+:\S+)+)\s*$/;
const PARAMGOLF_FIELD = new RegExp(String.raw`^(\w+):(${NUM})(ms|s|%)?$`);

function paramgolfFields(text: string, step: number, prefix: string, sink: LineSink): void {
  for (const token of text.trim().split(/\s+/)) {
    const f = PARAMGOLF_FIELD.exec(token);
    if (f) push(sink, prefix + seriesName(f[1], f[3]), step, parseNumber(f[2]));
  }
}

const paramgolf: LogPreset = {
  name: 'paramgolf',
  signatures: [/^model_params:\d+$/, /^warmup_step:\d+\/\d+$/, PARAMGOLF_STEP],
  read(line, sink) {
    let m = PARAMGOLF_STEP.exec(line);
    if (m) {
      const step = Number(m[1]);
      paramgolfFields(m[2], step, '', sink);
      sink.lastStep = step;
      return true;
    }
    if ((m = PARAMGOLF_FINAL.exec(line)) && sink.lastStep !== undefined) {
      paramgolfFields(m[2], sink.lastStep, `${m[1]}/`, sink);
      return true;
    }
    return false;
  },
};

const PRESETS: readonly LogPreset[] = [nanogpt, autoresearch, agpt, paramgolf];

/** The preset whose banner or metric lines appear first in `lines`, if any. */
export function detectLogPreset(lines: readonly string[]): LogPresetName | undefined {
  for (const line of lines) {
    const hit = PRESETS.find((p) => p.signatures.some((re) => re.test(line)));
    if (hit) return hit.name;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// User regex

export interface CompiledLogRegex {
  regex: RegExp;
  /** Named groups other than `step`: the candidate series. */
  seriesGroups: string[];
}

/** Compiles a user's line regex; BadInputError (one line) when it is invalid or has no `step` group. */
export function compileLogRegex(source: string, flags = ''): CompiledLogRegex {
  let regex: RegExp;
  const lineFlags = flags.replace(/[gy]/g, '');
  try {
    regex = new RegExp(source, lineFlags);
  } catch (e) {
    throw new BadInputError(`training-log regex /${source}/${lineFlags} is not valid: ${(e as Error).message.replace(/\s+/g, ' ')}; write a JavaScript regular expression with a named group (?<step>\\d+)`);
  }
  // Matching the empty alternative lists every named group, matched or not.
  const groups = Object.keys(new RegExp(`(?:${source})|`, lineFlags).exec('')?.groups ?? {});
  if (!groups.includes('step')) {
    throw new BadInputError(`training-log regex /${source}/ has no named group "step"; add one, e.g. iter (?<step>\\d+): loss (?<loss>[\\d.]+)`);
  }
  return { regex, seriesGroups: groups.filter((g) => g !== 'step') };
}

function readWithRegex(compiled: CompiledLogRegex, line: string, sink: LineSink): boolean {
  const m = compiled.regex.exec(line);
  const step = m?.groups ? parseNumber(m.groups.step ?? '') : undefined;
  if (!m?.groups || step === undefined || !Number.isFinite(step)) return false;
  for (const name of compiled.seriesGroups) {
    const text = m.groups[name];
    if (text !== undefined) push(sink, name, step, parseNumber(text));
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// The stream parser

/** A line longer than this is cut before matching (no log line is; a regex must not crawl megabytes). */
const MATCH_CHARS = 64 << 10;

export class LogParser implements StreamParser {
  private readonly splitter: LineSplitter;
  private readonly sink: LineSink = { points: [], checkpoints: [] };
  private locked?: LogPreset;
  private readonly userRegex?: CompiledLogRegex;
  private readonly detectWithin: number;
  private matchedAny = false;
  private linesUnrecognised = 0;
  private reportedUnrecognised = false;

  /** Throws BadInputError for a bad `regex`. */
  constructor(private readonly fileName: string, opts: LogOptions = {}) {
    this.splitter = new LineSplitter(fileName);
    if (opts.regex !== undefined) this.userRegex = compileLogRegex(opts.regex, opts.regexFlags);
    else if (opts.preset) this.locked = presetNamed(opts.preset);
    this.detectWithin = opts.detectWithinLines ?? 2000;
  }

  /** The preset in use: given, or detected once a line matched one; undefined with a user regex. */
  get preset(): LogPresetName | undefined {
    return this.locked?.name;
  }

  /** True once `detectWithinLines` lines went by without one this parser could read. */
  get unrecognised(): boolean {
    return this.reportedUnrecognised;
  }

  push(chunk: Buffer, atEnd: boolean): ParseStep {
    const split = this.splitter.split(chunk, atEnd);
    const warnings = split.warnings;
    for (const raw of split.lines) {
      const line = raw.length > MATCH_CHARS ? raw.slice(0, MATCH_CHARS) : raw;
      if (this.readLine(line)) this.matchedAny = true;
      else this.noteUnread(warnings);
    }
    const points = this.sink.points;
    const checkpoints = this.sink.checkpoints;
    this.sink.points = [];
    this.sink.checkpoints = [];
    const step: ParseStep = { points, warnings, consumed: split.consumed };
    if (checkpoints.length) step.checkpoints = checkpoints;
    return step;
  }

  private readLine(line: string): boolean {
    if (this.userRegex) return readWithRegex(this.userRegex, line, this.sink);
    if (this.locked) return this.locked.read(line, this.sink);
    const hit = PRESETS.find((p) => p.read(line, this.sink));
    if (hit) this.locked = hit;
    return hit !== undefined;
  }

  private noteUnread(warnings: string[]): void {
    if (this.matchedAny || this.reportedUnrecognised) return;
    if (++this.linesUnrecognised < this.detectWithin) return;
    this.reportedUnrecognised = true;
    const first = `the first ${this.detectWithin} lines`;
    warnings.push(this.userRegex ? `${this.fileName}: the regex matched none of ${first}; check it against a line of the log`
      : this.locked ? `${this.fileName}: the ${this.locked.name} preset read none of ${first}; choose another preset or give a regex with a (?<step>…) group`
        : `${this.fileName}: none of ${first} is a ${LOG_PRESETS.join(', ')} training line; choose a preset or give a regex with a (?<step>…) group`);
  }
}

function presetNamed(name: LogPresetName): LogPreset {
  const p = PRESETS.find((x) => x.name === name);
  if (!p) throw new BadInputError(`unknown training-log preset "${name}"; use one of ${LOG_PRESETS.join(', ')} or a regex`);
  return p;
}

/** Every point and checkpoint line of a finished log. */
export function readLog(file: string, opts: LogOptions = {}, displayName = displayNameOf(file)): RunReadResult {
  return readWholeFile(file, new LogParser(displayName, opts));
}

/** Points from `offset` on, for a log being written; pass the same parser each time. */
export function readLogFrom(file: string, parser: LogParser, offset: number): IncrementalRead {
  return readFromOffset(file, parser, offset);
}

/** Points from log text in memory. */
export function parseLog(text: string, displayName: string, opts: LogOptions = {}): ParseStep {
  return new LogParser(displayName, opts).push(Buffer.from(text, 'utf8'), true);
}
