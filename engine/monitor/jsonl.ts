/**
 * JSON Lines metrics: one object per line, as training scripts write with `json.dumps(record)` per
 * step. Every numeric key is a series (nested objects flatten to `outer/inner`); the x is the first
 * of `step`, `iter`, `iter_num`, `global_step` the object has. A line that is not a JSON object is
 * skipped with a warning naming its line; a last line without its newline is left for the next
 * read while the file grows. Python's json writes `NaN` and `Infinity`, which JSON does not allow;
 * they are read as the numbers they mean (a diverged loss is worth seeing).
 */
import type { ParseStep, RunPoint, RunReadResult, StreamParser } from './series';
import { STEP_KEYS, WarningBudget } from './series';
import type { IncrementalRead } from './lines';
import { LineSplitter, displayNameOf, readFromOffset, readWholeFile } from './lines';

type JsonObject = Record<string, unknown>;

/** Keys holding a wall-clock time in seconds since the epoch (wandb writes `_timestamp`). */
const WALL_TIME_KEYS = ['wall_time', 'walltime', 'timestamp', '_timestamp'];
const MAX_NESTING = 4;

export class JsonlParser implements StreamParser {
  private readonly splitter: LineSplitter;
  private readonly badLines = new WarningBudget(10);
  private objectsRead = 0;
  private warnedNoStep = false;

  constructor(private readonly fileName: string) {
    this.splitter = new LineSplitter(fileName);
  }

  push(chunk: Buffer, atEnd: boolean): ParseStep {
    const split = this.splitter.split(chunk, atEnd);
    const points: RunPoint[] = [];
    const warnings = split.warnings;
    for (let i = 0; i < split.lines.length; i++) this.line(split.lines[i], split.firstLine + i, points, warnings);
    return { points, warnings, consumed: split.consumed };
  }

  private line(text: string, lineNo: number, points: RunPoint[], warnings: string[]): void {
    const trimmed = text.trim();
    if (!trimmed) return;
    const obj = parseJsonObject(trimmed);
    if (!obj) {
      this.badLines.add(warnings, `${this.fileName} line ${lineNo}: not a JSON object; skipped (${snippet(trimmed)})`,
        `${this.fileName} line ${lineNo}: not a JSON object either; this and further such lines are skipped without warnings`);
      return;
    }
    const stepKey = STEP_KEYS.find((k) => typeof obj[k] === 'number' && Number.isFinite(obj[k]));
    const step = stepKey ? (obj[stepKey] as number) : this.objectsRead;
    if (!stepKey && !this.warnedNoStep) {
      warnings.push(`${this.fileName} line ${lineNo}: no ${STEP_KEYS.join('/')} key; using the record's number as the step`);
      this.warnedNoStep = true;
    }
    this.objectsRead++;
    const wallTime = wallTimeOf(obj);
    collectNumbers(obj, '', stepKey, 0, (series, value) => {
      const p: RunPoint = { series, step, value };
      if (wallTime !== undefined) p.wallTime = wallTime;
      points.push(p);
    });
  }
}

/** Calls `emit` for every numeric leaf, nested keys joined with `/`; the step key is not a series. */
function collectNumbers(obj: JsonObject, prefix: string, skipKey: string | undefined, depth: number,
  emit: (series: string, value: number) => void): void {
  for (const key of Object.keys(obj)) {
    if (depth === 0 && key === skipKey) continue;
    const v = obj[key];
    if (typeof v === 'number') emit(prefix + key, v);
    else if (v !== null && typeof v === 'object' && !Array.isArray(v) && depth < MAX_NESTING) {
      collectNumbers(v as JsonObject, `${prefix}${key}/`, skipKey, depth + 1, emit);
    }
  }
}

function wallTimeOf(obj: JsonObject): number | undefined {
  for (const k of WALL_TIME_KEYS) {
    const v = obj[k];
    if (typeof v === 'number' && v > 1e8 && v < 1e11) return v; // seconds since 1973…5138, not a duration
  }
  return undefined;
}

function snippet(text: string): string {
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** A JSON object, or undefined for anything else (another JSON value, or not JSON). */
export function parseJsonObject(text: string): JsonObject | undefined {
  if (text[0] !== '{') return undefined;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    v = parsePythonJson(text);
  }
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as JsonObject) : undefined;
}

const NON_FINITE: Record<string, number> = { NaN: NaN, Infinity: Infinity, '-Infinity': -Infinity };
const SENTINEL = '\u0000nonfinite:';

/**
 * JSON with Python's bare `NaN`, `Infinity`, `-Infinity` (json.dumps' default allow_nan=True):
 * those tokens outside strings become sentinel strings, then numbers again. Undefined if still not JSON.
 */
function parsePythonJson(text: string): unknown {
  if (!/NaN|Infinity/.test(text)) return undefined;
  let out = '';
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      out += c;
      if (c === '\\') out += text[++i] ?? '';
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    const token = ['-Infinity', 'Infinity', 'NaN'].find((t) => text.startsWith(t, i));
    if (token) {
      out += JSON.stringify(SENTINEL + token);
      i += token.length - 1;
    } else out += c;
  }
  try {
    return JSON.parse(out, (_k, v: unknown) => (typeof v === 'string' && v.startsWith(SENTINEL) ? NON_FINITE[v.slice(SENTINEL.length)] : v));
  } catch {
    return undefined;
  }
}

/** Every point of a finished JSONL file (a last line without newline included). */
export function readJsonl(file: string, displayName = displayNameOf(file)): RunReadResult {
  return readWholeFile(file, new JsonlParser(displayName));
}

/** Points from `offset` on, for a file being written; pass the same parser each time. */
export function readJsonlFrom(file: string, parser: JsonlParser, offset: number): IncrementalRead {
  return readFromOffset(file, parser, offset);
}

/** Points from JSONL text in memory. */
export function parseJsonl(text: string, displayName: string): ParseStep {
  return new JsonlParser(displayName).push(Buffer.from(text, 'utf8'), true);
}
