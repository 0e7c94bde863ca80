/**
 * CSV metrics with a header row, as Python's `csv.DictWriter` writes them: RFC 4180 quoting
 * (`"a, b"`, `""` for a quote, line breaks inside quotes), CRLF or LF rows, an empty cell meaning
 * "not logged this step" (DictWriter's restval ''). Every column whose cells are numbers is a
 * series; the x is the first of `step`, `iter`, `iter_num`, `global_step` among the columns. A row
 * still being written (no line break yet, or an open quote) is left for the next read.
 */
import type { ParseStep, RunPoint, RunReadResult, StreamParser } from './series';
import { STEP_KEYS, WarningBudget, parseNumber } from './series';
import type { IncrementalRead } from './lines';
import { MAX_LINE_BYTES, completeLinesEnd, displayNameOf, readFromOffset, readWholeFile } from './lines';

const COMMA = 0x2c;
const QUOTE = 0x22;
const CR = 0x0d;
const LF = 0x0a;
const WALL_TIME_COLUMNS = ['wall_time', 'walltime', 'timestamp'];

export interface CsvScan {
  records: string[][];
  /** Characters of the text taken by complete records. */
  consumed: number;
  /** A quote was still open when the text ended (only with `atEnd`). */
  unclosedQuote: boolean;
}

/**
 * The complete records of `text` (RFC 4180). Without `atEnd`, a record not yet ended by a line
 * break outside quotes is left unconsumed; with it, the last record takes the rest of the text.
 * Text after a closing quote and before the next comma is kept (as Python's csv does).
 */
export function scanCsvRecords(text: string, atEnd: boolean): CsvScan {
  const records: string[][] = [];
  let pos = 0;
  let unclosedQuote = false;
  while (pos < text.length) {
    const fields: string[] = [];
    let p = pos;
    for (;;) {
      let field: string;
      if (text.charCodeAt(p) === QUOTE) {
        const quoted = readQuoted(text, p + 1);
        if (quoted.end < 0) {
          if (!atEnd) return { records, consumed: pos, unclosedQuote };
          unclosedQuote = true;
          quoted.end = text.length;
        }
        const stop = nextDelimiter(text, quoted.end);
        field = quoted.value + text.slice(quoted.end, stop);
        p = stop;
      } else {
        const stop = nextDelimiter(text, p);
        field = text.slice(p, stop);
        p = stop;
      }
      fields.push(field);
      const c = text.charCodeAt(p);
      if (c === COMMA) {
        p++;
        continue;
      }
      if (p >= text.length && !atEnd) return { records, consumed: pos, unclosedQuote };
      if (c === CR) p += text.charCodeAt(p + 1) === LF ? 2 : 1;
      else if (c === LF) p++;
      break;
    }
    records.push(fields);
    pos = p;
  }
  return { records, consumed: pos, unclosedQuote };
}

/** A quoted field's value from just after its opening quote; `end` is after the closing quote, -1 if none. */
function readQuoted(text: string, from: number): { value: string; end: number } {
  let value = '';
  let q = from;
  for (;;) {
    const close = text.indexOf('"', q);
    if (close < 0) return { value: value + text.slice(q), end: -1 };
    value += text.slice(q, close);
    if (text.charCodeAt(close + 1) !== QUOTE) return { value, end: close + 1 };
    value += '"';
    q = close + 2;
  }
}

function nextDelimiter(text: string, from: number): number {
  let i = from;
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === COMMA || c === CR || c === LF) break;
  }
  return i;
}

export class CsvParser implements StreamParser {
  private header?: string[];
  private stepColumn = -1;
  private wallTimeColumn = -1;
  private rowsSeen = 0; // records, the header included: row numbers in warnings
  private dataRows = 0;
  private readonly badRows = new WarningBudget(10);

  constructor(private readonly fileName: string) {}

  push(chunk: Buffer, atEnd: boolean): ParseStep {
    const end = atEnd ? chunk.length : completeLinesEnd(chunk, 0);
    const text = chunk.toString('utf8', 0, end);
    const scan = scanCsvRecords(text, atEnd);
    let consumed = scan.consumed === text.length ? end : Buffer.byteLength(text.slice(0, scan.consumed));
    const points: RunPoint[] = [];
    const warnings: string[] = [];
    for (const rec of scan.records) this.record(rec, points, warnings);
    if (scan.unclosedQuote) warnings.push(`${this.fileName} row ${this.rowsSeen}: a quote is never closed; the rest of the file was read as one cell`);
    if (!atEnd && chunk.length - consumed > MAX_LINE_BYTES) {
      // An unmatched quote would make the rest of a growing file one pending row forever.
      warnings.push(`${this.fileName} row ${this.rowsSeen + 1}: a quote is not closed within ${MAX_LINE_BYTES >> 20} MiB; that row was skipped`);
      const lineEnd = chunk.indexOf(LF, consumed);
      consumed = lineEnd < 0 ? chunk.length : lineEnd + 1;
      this.rowsSeen++;
    }
    return { points, warnings, consumed };
  }

  private record(cells: string[], points: RunPoint[], warnings: string[]): void {
    this.rowsSeen++;
    if (cells.length === 1 && cells[0].trim() === '') return; // a blank line
    if (!this.header) {
      this.setHeader(cells, warnings);
      return;
    }
    const row = this.rowsSeen;
    if (cells.length > this.header.length) {
      this.badRows.add(warnings, `${this.fileName} row ${row}: ${cells.length} cells under a ${this.header.length}-column header; the extra cells were ignored`,
        `${this.fileName} row ${row}: more rows with problems; not reported further`);
    }
    const step = this.stepColumn >= 0 ? parseNumber(cells[this.stepColumn] ?? '') : this.dataRows;
    if (step === undefined || !Number.isFinite(step)) {
      this.badRows.add(warnings, `${this.fileName} row ${row}: the ${this.header[this.stepColumn]} cell "${cells[this.stepColumn] ?? ''}" is not a number; row skipped`,
        `${this.fileName} row ${row}: more rows with problems; not reported further`);
      return;
    }
    this.dataRows++;
    const wallTime = this.wallTimeColumn >= 0 ? parseNumber(cells[this.wallTimeColumn] ?? '') : undefined;
    const n = Math.min(cells.length, this.header.length);
    for (let i = 0; i < n; i++) {
      if (i === this.stepColumn) continue;
      const value = parseNumber(cells[i]);
      if (value === undefined) continue; // empty (not logged this step) or text
      const p: RunPoint = { series: this.header[i], step, value };
      if (wallTime !== undefined && Number.isFinite(wallTime)) p.wallTime = wallTime;
      points.push(p);
    }
  }

  private setHeader(cells: string[], warnings: string[]): void {
    const names = cells.map((c, i) => (i === 0 ? c.replace(/^\uFEFF/, '') : c).trim() || `column ${i + 1}`);
    this.header = names;
    const lower = names.map((n) => n.toLowerCase());
    this.stepColumn = STEP_KEYS.map((k) => lower.indexOf(k)).find((i) => i >= 0) ?? -1;
    this.wallTimeColumn = WALL_TIME_COLUMNS.map((k) => lower.indexOf(k)).find((i) => i >= 0) ?? -1;
    if (this.stepColumn < 0) {
      warnings.push(`${this.fileName}: no ${STEP_KEYS.join('/')} column in the header (${names.join(', ')}); using the row number as the step`);
    }
  }
}

/** Every point of a finished CSV file. */
export function readCsv(file: string, displayName = displayNameOf(file)): RunReadResult {
  return readWholeFile(file, new CsvParser(displayName));
}

/** Points from `offset` on, for a file being written; pass the same parser each time. */
export function readCsvFrom(file: string, parser: CsvParser, offset: number): IncrementalRead {
  return readFromOffset(file, parser, offset);
}

/** Points from CSV text in memory. */
export function parseCsv(text: string, displayName: string): ParseStep {
  return new CsvParser(displayName).push(Buffer.from(text, 'utf8'), true);
}
