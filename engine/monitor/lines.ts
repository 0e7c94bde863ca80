/**
 * Reading a file from a byte offset through a `StreamParser`, in bounded chunks, and splitting text
 * into lines for the text formats. A line ends at `\n`, `\r\n` or a lone `\r`: progress lines that
 * redraw themselves with `\r` (autoresearch's `print(f"\r…", end="")`, tqdm) are lines too. Only
 * complete lines are decoded, so a multi-byte UTF-8 character is never cut, and an incomplete last
 * line is handed back as unconsumed bytes for the next read of a growing file.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BadInputError } from '../errors';
import type { RunReadResult, StreamParser } from './series';
import { appendResult, emptyResult } from './series';

const LF = 0x0a;
const CR = 0x0d;
const LINE_BREAKS = /\r\n|\r|\n/;
/** A "line" longer than this is not a log line (a binary or minified file): skipped with a warning. */
export const MAX_LINE_BYTES = 8 << 20;
const CHUNK_BYTES = 8 << 20;

export interface SplitLines {
  lines: string[];
  /** 1-based number of `lines[0]`. */
  firstLine: number;
  consumed: number;
  warnings: string[];
}

/** Cuts consecutive chunks of one file into lines, counting them. */
export class LineSplitter {
  private linesSeen = 0;
  private skippingLongLine = false;

  constructor(private readonly fileName: string, private readonly maxLineBytes = MAX_LINE_BYTES) {}

  split(chunk: Buffer, atEnd: boolean): SplitLines {
    const warnings: string[] = [];
    let start = 0;
    if (this.skippingLongLine) {
      const t = firstBreak(chunk);
      if (t < 0) return { lines: [], firstLine: this.linesSeen + 1, consumed: chunk.length, warnings };
      start = t + 1;
      this.skippingLongLine = false;
      this.linesSeen++;
    }
    const end = atEnd ? chunk.length : completeLinesEnd(chunk, start);
    if (end <= start) {
      if (!atEnd && chunk.length - start > this.maxLineBytes) {
        warnings.push(`${this.fileName}: line ${this.linesSeen + 1} is longer than ${this.maxLineBytes >> 20} MiB; skipped (is this a text log?)`);
        this.skippingLongLine = true;
        return { lines: [], firstLine: this.linesSeen + 1, consumed: chunk.length, warnings };
      }
      return { lines: [], firstLine: this.linesSeen + 1, consumed: start, warnings };
    }
    const lines = chunk.toString('utf8', start, end).split(LINE_BREAKS);
    if (lines[lines.length - 1] === '') lines.pop(); // the text ended with a break
    const firstLine = this.linesSeen + 1;
    this.linesSeen += lines.length;
    return { lines, firstLine, consumed: end, warnings };
  }
}

function firstBreak(chunk: Buffer): number {
  const lf = chunk.indexOf(LF);
  const cr = chunk.indexOf(CR);
  if (lf < 0) return cr;
  return cr < 0 ? lf : Math.min(lf, cr);
}

/**
 * The end of the last complete line at or after `start` (one past its break), or `start` when there
 * is none. A `\r` that is the chunk's last byte is held back: it may be the first half of `\r\n`.
 */
export function completeLinesEnd(chunk: Buffer, start: number): number {
  let limit = chunk.length - 1;
  if (limit >= start && chunk[limit] === CR) limit--;
  if (limit < start) return start;
  const lastBreak = Math.max(chunk.lastIndexOf(LF, limit), chunk.lastIndexOf(CR, limit));
  return lastBreak < start ? start : lastBreak + 1;
}

/** What one read from an offset gave, and where the next one resumes. */
export interface IncrementalRead extends RunReadResult {
  /** The byte offset to resume from: just after the last complete unit. */
  nextOffset: number;
  /** Bytes after `nextOffset` that form an incomplete unit (waiting for the writer). */
  pendingBytes: number;
  /** The parser gave up on the file (a corrupt record); nothing after `nextOffset` was read. */
  stopped: boolean;
  /** The file's size when it was read. */
  size: number;
}

export interface ReadOptions {
  /** No more bytes will come: parse or report an incomplete last unit instead of waiting. */
  atEnd?: boolean;
  chunkBytes?: number;
}

/**
 * Feeds `file` from byte `offset` to its current end through `parser`, chunk by chunk, so a large
 * file never sits in memory whole. Throws BadInputError when the file cannot be opened.
 */
export function readFromOffset(file: string, parser: StreamParser, offset: number, opts: ReadOptions = {}): IncrementalRead {
  const fd = openForReading(file);
  try {
    const size = fs.fstatSync(fd).size;
    return readOpenFile(fd, size, parser, offset, opts);
  } finally {
    fs.closeSync(fd);
  }
}

/** The whole file through `parser`, an incomplete end reported rather than waited for. */
export function readWholeFile(file: string, parser: StreamParser): RunReadResult {
  const r = readFromOffset(file, parser, 0, { atEnd: true });
  const result: RunReadResult = { points: r.points, warnings: r.warnings };
  if (r.checkpoints) result.checkpoints = r.checkpoints;
  return result;
}

/** How warnings name a file: its base name (the follower passes paths relative to its folder). */
export function displayNameOf(file: string): string {
  return path.basename(file);
}

function openForReading(file: string): number {
  try {
    return fs.openSync(file, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    throw new BadInputError(`cannot read training log ${file}: ${code}; check the path and its permissions`);
  }
}

function readOpenFile(fd: number, size: number, parser: StreamParser, offset: number, opts: ReadOptions): IncrementalRead {
  const chunkBytes = opts.chunkBytes ?? CHUNK_BYTES;
  const acc = emptyResult();
  let pos = offset;
  let carry = Buffer.alloc(0);
  let stopped = false;
  while (pos < size) {
    const want = Math.min(chunkBytes, size - pos);
    const fresh = Buffer.allocUnsafe(want);
    const got = fs.readSync(fd, fresh, 0, want, pos);
    if (got <= 0) break; // the file shrank under us: the next poll sees it
    pos += got;
    const chunk = carry.length ? Buffer.concat([carry, fresh.subarray(0, got)]) : fresh.subarray(0, got);
    const step = parser.push(chunk, opts.atEnd === true && pos >= size);
    appendResult(acc, step);
    carry = chunk.subarray(step.consumed);
    if (step.stopped) {
      stopped = true;
      break;
    }
  }
  return { ...acc, nextOffset: pos - carry.length, pendingBytes: stopped ? 0 : carry.length, stopped, size };
}
