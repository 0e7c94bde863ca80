/**
 * Training-run readers (engine/monitor) against independent truth: the files of
 * shared/fixtures/runs, written by (or byte-identical to what is written by) TensorBoard's
 * EventFileWriter and torch's SummaryWriter, nanoGPT, autoresearch and a-gpt print statements,
 * Python's json and csv modules — every value compared with the fixture's expected.json (float32
 * values exactly, as the doubles listed there). Then what a follower must survive, made in temp
 * folders: a log growing, truncated, replaced, rewritten, a run restarted into the same log, a
 * corrupt record, new files and checkpoints appearing, and watch-triggered polls.
 */
import { test, describe, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { REPO } from './helpers/fixtures';
import { BadInputError } from '../engine/errors';
import type { RunPoint, RunReadResult, StreamParser } from '../engine/monitor/series';
import { LineSplitter, readFromOffset, readWholeFile } from '../engine/monitor/lines';
import { groupBySeries, mergeResults, parseNumber, splitSegments } from '../engine/monitor/series';
import { TfEventsParser, crc32c, decodeEvent, maskCrc, readTfEvents, readTfEventsFrom, scanTfRecords } from '../engine/monitor/tfevents';
import { JsonlParser, parseJsonl, readJsonl, readJsonlFrom } from '../engine/monitor/jsonl';
import { CsvParser, parseCsv, readCsv, scanCsvRecords } from '../engine/monitor/csv';
import { LogParser, compileLogRegex, detectLogPreset, parseLog, readLog } from '../engine/monitor/logs';
import type { RunEvent } from '../engine/monitor/tail';
import { RunFollower, checkpointStep, formatOfName, isCheckpointName } from '../engine/monitor/tail';

const RUNS = path.join(REPO, '..', 'shared', 'fixtures', 'runs');
const fx = (name: string) => path.join(RUNS, name);
const MAIN_TB = 'tb/events.out.tfevents.1717000000.host.1234.0';

/** One record of a TensorBoard fixture as expected.json lists it (record 0 has no tag). */
interface TbRecord { index: number; offset: number; data_length: number; wall_time: number; step?: number; tag?: string; kind?: string; encoding?: string; plugin_name?: string; value?: number; file_version?: string; source_writer?: string }
/** A row of numbers keyed by column / field name. */
type Row = Record<string, number>;
/** The parts of expected.json these tests read (keys = file names). */
interface ExpectedRuns {
  [MAIN_TB]: { file_size: number; records: TbRecord[] };
  'tb/new_style.tfevents': { file_size: number; records: TbRecord[] };
  'tb/truncated.tfevents': { file_size: number; complete_records: number; partial_record_offset: number; partial_record_declared_length: number; partial_record_bytes_present: number; partial_record_data_bytes_present: number };
  'nanogpt.log': { iter_lines: Row[]; eval_lines: Row[]; checkpoint_saved_after_eval_at: number[] };
  'autoresearch.log': { steps: Row[]; summary: Row };
  'agpt.log': { eval_lines: Row[]; checkpoint_saved_after_eval_at: number[] };
  'metrics.jsonl': { rows: Row[]; not_json_line: string; not_json_line_number: number };
  'metrics.csv': { rows: Row[]; line_terminator: string };
}
const EXPECTED = JSON.parse(fs.readFileSync(fx('expected.json'), 'utf8')) as ExpectedRuns;

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'headlens-monitor-'));
after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
let tmpCount = 0;
function tmpDir(): string {
  const d = path.join(tmpRoot, `case${tmpCount++}`);
  fs.mkdirSync(d);
  return d;
}

const tbRecords = (file: typeof MAIN_TB | 'tb/new_style.tfevents'): TbRecord[] => EXPECTED[file].records;

/** The scalar points expected.json lists for records [from, to) of a TensorBoard file. */
function tbPoints(records: TbRecord[], from = 0, to = records.length): RunPoint[] {
  return records.slice(from, to).filter((r) => r.tag !== undefined)
    .map((r) => ({ series: r.tag!, step: r.step ?? 0, value: r.value!, wallTime: r.wall_time }));
}

/** Rows of expected.json as points: every key but `xKey` is a series, in row and key order. */
function rowPoints(rows: Row[], xKey: string, skip: (series: string, value: number) => boolean = () => false): RunPoint[] {
  const out: RunPoint[] = [];
  for (const row of rows) {
    for (const [k, v] of Object.entries(row)) if (k !== xKey && !skip(k, v)) out.push({ series: k, step: row[xKey], value: v });
  }
  return out;
}

/** Per series, the (step, value) lists must be equal — the series' order of lines is the file's. */
function assertSameSeries(got: RunPoint[], want: RunPoint[], label: string): void {
  const strip = (ps: RunPoint[]) => new Map([...groupBySeries(ps)].map(([k, v]) => [k, v.map((p) => [p.step, p.value])]));
  const g = strip(got);
  const w = strip(want);
  assert.deepEqual([...g.keys()].sort(), [...w.keys()].sort(), `${label}: series names`);
  for (const [k, v] of w) assert.deepEqual(g.get(k), v, `${label}: series ${k}`);
}

function assertOneLineBad(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof BadInputError, `not a BadInputError: ${e}`);
    assert.ok(!e.message.includes('\n'), `message is not one line: ${e.message}`);
    assert.match(e.message, re);
    return true;
  });
}

const pointsOf = (events: RunEvent[]): RunPoint[] => events.flatMap((e) => (e.type === 'points' ? e.points : []));
const ofType = <T extends RunEvent['type']>(events: RunEvent[], type: T) => events.filter((e): e is Extract<RunEvent, { type: T }> => e.type === type);

// -----------------------------------------------------------------------------------------------

describe('TensorBoard event files', () => {
  test('CRC-32C and its mask match the test vectors tensorboard checks (README)', () => {
    assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
    assert.equal(crc32c(Buffer.alloc(32)), 0x8a9136aa);
    assert.equal(maskCrc(crc32c(Buffer.from('\x1a\x11CRC test, one two', 'latin1'))), 0x5794d08a);
  });

  test('record framing: every offset and data length of the main file', () => {
    const bytes = fs.readFileSync(fx(MAIN_TB));
    assert.equal(bytes.length, EXPECTED[MAIN_TB].file_size);
    const scan = scanTfRecords(bytes, 0, true);
    assert.equal(scan.problem, undefined);
    assert.equal(scan.consumed, bytes.length);
    assert.deepEqual(scan.records.map((r) => [r.offset, r.data.length]), tbRecords(MAIN_TB).map((r) => [r.offset, r.data_length]));
  });

  test('record 0 is the file-version event; the others say how they stored their scalar', () => {
    const scan = scanTfRecords(fs.readFileSync(fx(MAIN_TB)), 0, true);
    const want = tbRecords(MAIN_TB);
    const first = decodeEvent(scan.records[0].data);
    assert.equal(first.wallTime, want[0].wall_time);
    assert.equal(first.fileVersion, want[0].file_version);
    assert.equal(first.sourceWriter, want[0].source_writer);
    assert.deepEqual(first.values, []);
    for (let i = 1; i < want.length; i++) {
      const ev = decodeEvent(scan.records[i].data);
      assert.equal(ev.values.length, 1, `record ${i}`);
      const v = ev.values[0];
      assert.equal(v.encoding, want[i].kind === 'simple_value' ? 'simple_value' : want[i].encoding, `record ${i} encoding`);
      assert.equal(v.pluginName, want[i].plugin_name, `record ${i} plugin`);
    }
  });

  test('main file: every scalar, step and wall time, float32 values exactly as the listed doubles', () => {
    const r = readTfEvents(fx(MAIN_TB));
    assert.deepEqual(r.warnings, []);
    assert.deepEqual(r.points, tbPoints(tbRecords(MAIN_TB)));
    const counts = [...groupBySeries(r.points)].map(([k, v]) => [k, v.length]);
    assert.deepEqual(counts, [['train/loss', 20], ['train/lr', 20], ['val/loss', 4]]);
  });

  test('new_style.tfevents: float_val scalars without a tensor_shape', () => {
    const file = 'tb/new_style.tfevents';
    const r = readTfEvents(fx(file));
    assert.deepEqual(r.warnings, []);
    assert.deepEqual(r.points, tbPoints(tbRecords(file)));
    assert.equal(r.points.length, 5);
  });

  test('truncated.tfevents: records 0..24 read, then ONE warning naming the file, the offset and the cut', () => {
    const t = EXPECTED['tb/truncated.tfevents'];
    const r = readTfEvents(fx('tb/truncated.tfevents'));
    assert.deepEqual(r.points, tbPoints(tbRecords(MAIN_TB), 0, t.complete_records));
    assert.equal(r.warnings.length, 1);
    assert.match(r.warnings[0], /truncated\.tfevents/);
    assert.match(r.warnings[0], new RegExp(`offset ${t.partial_record_offset}\\b`));
    assert.match(r.warnings[0], new RegExp(`truncated.*data: ${t.partial_record_data_bytes_present} of ${t.partial_record_declared_length} bytes`));
    const counts = Object.fromEntries([...groupBySeries(r.points)].map(([k, v]) => [k, v.map((p) => p.step)]));
    assert.deepEqual(counts['train/loss'], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.deepEqual(counts['train/lr'], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.deepEqual(counts['val/loss'], [0, 5]);
  });

  test('read incrementally, the cut record is where to resume, and resuming after the rest arrives reads it', () => {
    const t = EXPECTED['tb/truncated.tfevents'];
    const first = readTfEventsFrom(fx('tb/truncated.tfevents'), 0);
    assert.deepEqual(first.warnings, []);
    assert.equal(first.stopped, false);
    assert.equal(first.nextOffset, t.partial_record_offset);
    assert.equal(first.pendingBytes, t.partial_record_bytes_present);
    assert.equal(first.points.length, 24);

    const copy = path.join(tmpDir(), 'events.out.tfevents.1.host.1.0');
    const whole = fs.readFileSync(fx(MAIN_TB));
    fs.writeFileSync(copy, whole.subarray(0, t.file_size));
    fs.appendFileSync(copy, whole.subarray(t.file_size));
    const rest = readTfEventsFrom(copy, first.nextOffset);
    assert.deepEqual(rest.warnings, []);
    assert.equal(rest.nextOffset, whole.length);
    assert.equal(rest.pendingBytes, 0);
    assert.deepEqual(rest.points, tbPoints(tbRecords(MAIN_TB), t.complete_records));
  });

  test('a flipped data byte: reading stops at that record with one warning, everything before kept', () => {
    const rec = tbRecords(MAIN_TB)[10];
    const bytes = Buffer.from(fs.readFileSync(fx(MAIN_TB)));
    bytes[rec.offset + 12 + 5] ^= 0x40;
    const file = path.join(tmpDir(), 'events.out.tfevents.2.host.1.0');
    fs.writeFileSync(file, bytes);
    const r = readTfEvents(file);
    assert.deepEqual(r.points, tbPoints(tbRecords(MAIN_TB), 0, 10));
    assert.equal(r.warnings.length, 1);
    assert.match(r.warnings[0], new RegExp(`events\\.out\\.tfevents\\.2\\.host\\.1\\.0: corrupt record at offset ${rec.offset}: the data's CRC`));
    const inc = readTfEventsFrom(file, 0);
    assert.equal(inc.stopped, true);
    assert.equal(inc.nextOffset, rec.offset);
    assert.equal(inc.warnings.length, 1);
  });

  test('a flipped length byte is caught by the header CRC', () => {
    const rec = tbRecords(MAIN_TB)[3];
    const bytes = Buffer.from(fs.readFileSync(fx(MAIN_TB)));
    bytes[rec.offset] ^= 0x01;
    const file = path.join(tmpDir(), 'bad-length.tfevents');
    fs.writeFileSync(file, bytes);
    const r = readTfEvents(file);
    assert.deepEqual(r.points, tbPoints(tbRecords(MAIN_TB), 0, 3));
    assert.equal(r.warnings.length, 1);
    assert.match(r.warnings[0], new RegExp(`bad-length\\.tfevents: corrupt record at offset ${rec.offset}: the length's CRC`));
  });
});

// -----------------------------------------------------------------------------------------------

describe('JSONL metrics', () => {
  const want = EXPECTED['metrics.jsonl'];

  test('metrics.jsonl: every value exactly, the non-JSON line skipped with one warning naming line 11', () => {
    const r = readJsonl(fx('metrics.jsonl'));
    assert.deepEqual(r.points, rowPoints(want.rows, 'step'));
    assert.equal(r.warnings.length, 1);
    assert.match(r.warnings[0], new RegExp(`^metrics\\.jsonl line ${want.not_json_line_number}: not a JSON object`));
    assert.ok(r.warnings[0].includes(want.not_json_line));
  });

  test('a partial last line waits for its newline while the file grows', () => {
    const lines = fs.readFileSync(fx('metrics.jsonl'), 'utf8').split('\n');
    const file = path.join(tmpDir(), 'm.jsonl');
    const half = Math.floor(lines[2].length / 2);
    fs.writeFileSync(file, `${lines[0]}\n${lines[1]}\n${lines[2].slice(0, half)}`);
    const parser = new JsonlParser('m.jsonl');
    const a = readJsonlFrom(file, parser, 0);
    assert.deepEqual(a.points, rowPoints(want.rows.slice(0, 2), 'step'));
    assert.equal(a.pendingBytes, half);
    fs.appendFileSync(file, `${lines[2].slice(half)}\n`);
    const b = readJsonlFrom(file, parser, a.nextOffset);
    assert.deepEqual(b.points, rowPoints(want.rows.slice(2, 3), 'step'));
    assert.equal(b.pendingBytes, 0);
    assert.deepEqual([...a.warnings, ...b.warnings], []);
  });

  test("Python's NaN/Infinity, nested objects, iter as x, and no step key at all", () => {
    // json.dumps({"iter": 3, "loss": float("nan"), "grad": {"norm": float("inf")}, "note": "NaN here"})
    const r = parseJsonl('{"iter": 3, "loss": NaN, "grad": {"norm": Infinity}, "note": "NaN here"}\n', 'n.jsonl');
    assert.deepEqual(r.warnings, []);
    assert.equal(r.points.length, 2);
    assert.deepEqual([r.points[0].series, r.points[0].step], ['loss', 3]);
    assert.ok(Number.isNaN(r.points[0].value));
    assert.deepEqual(r.points[1], { series: 'grad/norm', step: 3, value: Infinity });
    const noStep = parseJsonl('{"loss": 2}\n{"loss": 1}\n', 's.jsonl');
    assert.deepEqual(noStep.points.map((p) => [p.step, p.value]), [[0, 2], [1, 1]]);
    assert.equal(noStep.warnings.length, 1);
    assert.match(noStep.warnings[0], /s\.jsonl line 1: no step\/iter\/iter_num\/global_step key/);
  });
});

// -----------------------------------------------------------------------------------------------

describe('CSV metrics', () => {
  test('metrics.csv (CRLF, empty cells): the same values as expected.json', () => {
    const bytes = fs.readFileSync(fx('metrics.csv'), 'latin1');
    assert.ok(bytes.includes(EXPECTED['metrics.csv'].line_terminator));
    const r = readCsv(fx('metrics.csv'));
    assert.deepEqual(r.warnings, []);
    assert.deepEqual(r.points, rowPoints(EXPECTED['metrics.csv'].rows, 'step'));
  });

  // Made by CPython's csv.DictWriter(buf, fieldnames=['step', 'loss', 'note, quoted', 'lr']) with
  // rows {0, 2.5, 'warm "up"\r\nphase', 1e-4}, {1, '', 'a,b', 2e-4}, {2, float('nan'), '', 3e-4}.
  const QUOTED = 'step,loss,"note, quoted",lr\r\n0,2.5,"warm ""up""\r\nphase",0.0001\r\n1,,"a,b",0.0002\r\n2,nan,,0.0003\r\n';

  test('RFC 4180 quoting: commas, doubled quotes and a line break inside quotes', () => {
    const scan = scanCsvRecords(QUOTED, true);
    assert.deepEqual(scan.records, [
      ['step', 'loss', 'note, quoted', 'lr'],
      ['0', '2.5', 'warm "up"\r\nphase', '0.0001'],
      ['1', '', 'a,b', '0.0002'],
      ['2', 'nan', '', '0.0003'],
    ]);
    const r = parseCsv(QUOTED, 'q.csv');
    assert.deepEqual(r.warnings, []);
    assert.deepEqual(r.points.filter((p) => !Number.isNaN(p.value)), [
      { series: 'loss', step: 0, value: 2.5 }, { series: 'lr', step: 0, value: 1e-4 },
      { series: 'lr', step: 1, value: 2e-4 }, { series: 'lr', step: 2, value: 3e-4 },
    ]);
    assert.ok(r.points.some((p) => p.series === 'loss' && p.step === 2 && Number.isNaN(p.value)));
  });

  test('a row whose quoted cell is still open waits, whatever line breaks it holds', () => {
    const cut = QUOTED.indexOf('phase');
    const scan = scanCsvRecords(QUOTED.slice(0, cut), false);
    assert.equal(scan.records.length, 1);
    assert.equal(scan.consumed, QUOTED.indexOf('0,2.5'));
  });
});

// -----------------------------------------------------------------------------------------------

describe('stdout logs', () => {
  test('nanoGPT: iter and eval lines, every value; the -100% mfu sentinel is no value; checkpoints', () => {
    const want = EXPECTED['nanogpt.log'];
    const r = readLog(fx('nanogpt.log'));
    assert.deepEqual(r.warnings, []);
    const expected = [
      ...rowPoints(want.iter_lines, 'iter', (k, v) => k === 'mfu_pct' && v === -100),
      ...rowPoints(want.eval_lines, 'step'),
    ];
    assertSameSeries(r.points, expected, 'nanogpt.log');
    assert.equal(groupBySeries(r.points).get('mfu_pct')?.[0].step, 5);
    assert.deepEqual(r.checkpoints?.map((c) => c.step), want.checkpoint_saved_after_eval_at);
    assert.ok(r.checkpoints?.every((c) => c.source === 'log' && c.path === 'out-shakespeare-char/ckpt.pt'));
  });

  test('autoresearch: the \\r-separated progress steps, every field, and the summary after ---', () => {
    const want = EXPECTED['autoresearch.log'];
    const r = readLog(fx('autoresearch.log'));
    assert.deepEqual(r.warnings, []);
    const summaryStep = want.steps.length; // after the last step's update
    const summary = Object.entries(want.summary).map(([series, value]) => ({ series, step: summaryStep, value }));
    assertSameSeries(r.points, [...rowPoints(want.steps, 'step'), ...summary], 'autoresearch.log');
  });

  test('a-gpt: every eval field with its perplexity, and the best-checkpoint lines', () => {
    const want = EXPECTED['agpt.log'];
    const r = readLog(fx('agpt.log'));
    assert.deepEqual(r.warnings, []);
    assertSameSeries(r.points, rowPoints(want.eval_lines, 'step'), 'agpt.log');
    assert.deepEqual(r.checkpoints?.map((c) => [c.step, c.path]), want.checkpoint_saved_after_eval_at.map((s) => [s, 'checkpoints/adaptive_best.pt']));
  });

  test('the preset is detected from the first lines, and an explicit preset reads the same', () => {
    for (const [file, preset] of [['nanogpt.log', 'nanogpt'], ['autoresearch.log', 'autoresearch'], ['agpt.log', 'agpt']] as const) {
      const firstLines = fs.readFileSync(fx(file), 'utf8').split('\n').slice(0, 25);
      assert.equal(detectLogPreset(firstLines), preset, file);
      const parser = new LogParser(file);
      parser.push(fs.readFileSync(fx(file)), true);
      assert.equal(parser.preset, preset, file);
      assert.deepEqual(readLog(fx(file), { preset }).points, readLog(fx(file)).points, file);
    }
    assert.equal(detectLogPreset(['hello', 'world']), undefined);
  });

  test('parameter-golf train_gpt.py lines: key:value fields with units in the names', () => {
    // Lines as train_gpt.py's log0 f-strings print them (f"step:{step}/{args.iterations}
    // train_loss:{…:.4f} train_time:{…:.0f}ms step_avg:{…:.2f}ms", the val line, a final_… line),
    // values from a seed log published with parameter-golf runs.
    const text = [
      'model_params:25517137', 'warmup_step:1/20',
      'step:1/20000 train_loss:6.9334 train_time:719ms step_avg:719.43ms',
      'step:2/20000 train_loss:8.1833 train_time:1520ms step_avg:759.85ms',
      'step:178/20000 val_loss:5.0593 val_bpb:2.9964 train_time:120672ms step_avg:677.93ms',
      'stopping_early: wallclock_cap train_time:120672ms step:178/20000',
      'final_int8_zlib_roundtrip val_loss:5.3358 val_bpb:3.1601 eval_time:15338ms', '',
    ].join('\n');
    const r = parseLog(text, 'train_seed42.log');
    assert.deepEqual(r.warnings, []);
    assertSameSeries(r.points, [
      { series: 'train_loss', step: 1, value: 6.9334 }, { series: 'train_time_ms', step: 1, value: 719 }, { series: 'step_avg_ms', step: 1, value: 719.43 },
      { series: 'train_loss', step: 2, value: 8.1833 }, { series: 'train_time_ms', step: 2, value: 1520 }, { series: 'step_avg_ms', step: 2, value: 759.85 },
      { series: 'val_loss', step: 178, value: 5.0593 }, { series: 'val_bpb', step: 178, value: 2.9964 },
      { series: 'train_time_ms', step: 178, value: 120672 }, { series: 'step_avg_ms', step: 178, value: 677.93 },
      { series: 'final_int8_zlib_roundtrip/val_loss', step: 178, value: 5.3358 },
      { series: 'final_int8_zlib_roundtrip/val_bpb', step: 178, value: 3.1601 },
      { series: 'final_int8_zlib_roundtrip/eval_time_ms', step: 178, value: 15338 },
    ], 'paramgolf');
  });

  test('a user regex: step plus every numeric named group; non-numbers are no points', () => {
    const want = EXPECTED['nanogpt.log'];
    const r = readLog(fx('nanogpt.log'), { regex: String.raw`^iter (?<step>\d+): loss (?<loss>\S+), time (?<ms>[\d.]+)ms, mfu (?<mfu>\S+)` });
    assert.deepEqual(r.warnings, []);
    const byName = groupBySeries(r.points);
    assert.deepEqual(byName.get('loss')?.map((p) => [p.step, p.value]), want.iter_lines.map((l) => [l.iter, l.loss]));
    assert.deepEqual(byName.get('ms')?.map((p) => p.value), want.iter_lines.map((l) => l.time_ms));
    assert.equal(byName.has('mfu'), false, 'mfu captured with its % is not a number');
  });

  test('a bad user regex, or one without a step group, is a one-line BadInputError', () => {
    assertOneLineBad(() => compileLogRegex('iter (?<step>\\d+'), /training-log regex .* is not valid: .*Invalid regular expression/);
    assertOneLineBad(() => new LogParser('x.log', { regex: '(?<loss>[\\d.]+)' }), /has no named group "step"/);
    assertOneLineBad(() => new RunFollower(fx('nanogpt.log'), { log: { regex: '(' } }), /is not valid/);
  });

  test('a log no preset reads says so once, after its first lines', () => {
    const r = parseLog(Array.from({ length: 50 }, (_, i) => `epoch ${i} done`).join('\n'), 'other.log', { detectWithinLines: 20 });
    assert.equal(r.points.length, 0);
    assert.equal(r.warnings.length, 1);
    assert.match(r.warnings[0], /^other\.log: none of the first 20 lines is a nanogpt, autoresearch, agpt, paramgolf training line/);
  });
});

// -----------------------------------------------------------------------------------------------

describe('checkpoint names and file formats', () => {
  test('steps from names', () => {
    assert.equal(checkpointStep('model_000500.pt'), 500);
    assert.equal(checkpointStep('ckpt_1000.pt'), 1000);
    assert.equal(checkpointStep('step-200.safetensors'), 200);
    assert.equal(checkpointStep('out/checkpoint-1500/model.safetensors'), 1500);
    assert.equal(checkpointStep('optim_000500_rank0.pt'), 500);
    assert.equal(checkpointStep('model.000300.pt'), 300);
    for (const none of ['ckpt.pt', 'adaptive_best.pt', 'model-00001-of-00002.safetensors', 'epoch3.pt', 'gpt2-124M.pt', 'final_model.int8.ptz']) {
      assert.equal(checkpointStep(none), undefined, none);
    }
  });

  test('which names are checkpoints and which are followed as metrics', () => {
    for (const yes of ['ckpt.pt', 'a.pth', 'model.safetensors', 'pytorch_model.bin', 'final_model.int8.ptz']) assert.ok(isCheckpointName(yes), yes);
    for (const no of ['train.bin', 'val.bin', 'fineweb_val_000000.bin', 'metrics.csv', 'x.pt.tmp']) assert.ok(!isCheckpointName(no), no);
    assert.equal(formatOfName('events.out.tfevents.1717000000.host.1234.0'), 'tfevents');
    assert.equal(formatOfName('new_style.tfevents'), 'tfevents');
    assert.equal(formatOfName('metrics.jsonl'), 'jsonl');
    assert.equal(formatOfName('metrics.csv'), 'csv');
    assert.equal(formatOfName('run.log'), 'log');
    assert.equal(formatOfName('stdout.txt'), 'log');
    assert.equal(formatOfName('model.pt'), undefined);
  });
});

// -----------------------------------------------------------------------------------------------

describe('RunFollower', () => {
  const nanogptLines = fs.readFileSync(fx('nanogpt.log'), 'utf8').split('\n');
  /** The points nanogpt.log's lines [0, n) hold, as the whole-file reader finds them. */
  const nanogptPoints = (from: number, to: number): RunPoint[] => parseLog(nanogptLines.slice(from, to).join('\n') + '\n', 'x', { preset: 'nanogpt' }).points;

  test('a growing log: the first poll reads all, later polls exactly the appended points', () => {
    const file = path.join(tmpDir(), 'train.log');
    fs.writeFileSync(file, nanogptLines.slice(0, 60).join('\n') + '\n');
    const f = new RunFollower(file);
    const first = f.start();
    assert.deepEqual(ofType(first, 'file').map((e) => [e.file, e.format]), [['train.log', 'log']]);
    assert.deepEqual(pointsOf(first), nanogptPoints(0, 60));
    assert.ok(nanogptPoints(0, 60).length > 0);

    fs.appendFileSync(file, nanogptLines.slice(60, 66).join('\n') + '\n');
    const second = f.poll();
    assert.deepEqual(pointsOf(second), nanogptPoints(60, 66));
    assert.ok(pointsOf(second).length >= 6);
    assert.deepEqual(f.poll(), []);

    fs.appendFileSync(file, nanogptLines[66].slice(0, 10)); // half a line: nothing yet
    assert.deepEqual(f.poll(), []);
    fs.appendFileSync(file, nanogptLines[66].slice(10) + '\n');
    assert.deepEqual(pointsOf(f.poll()), nanogptPoints(66, 67));
    assert.equal(f.state[0].preset, 'nanogpt');
    f.close();
    assert.deepEqual(f.poll(), []);
  });

  test('truncation: the file rewritten shorter is read again from 0 as a new segment', () => {
    const file = path.join(tmpDir(), 'train.log');
    fs.writeFileSync(file, nanogptLines.slice(0, 80).join('\n') + '\n');
    const f = new RunFollower(file);
    f.start();
    fs.writeFileSync(file, nanogptLines.slice(0, 58).join('\n') + '\n');
    const events = f.poll();
    assert.deepEqual(ofType(events, 'restart').map((e) => [e.reason, e.segment]), [['truncated', 1]]);
    assert.deepEqual(ofType(events, 'points').map((e) => e.segment), [1]);
    assert.deepEqual(pointsOf(events), nanogptPoints(0, 58));
    f.close();
  });

  test('rotation: a new file in its place (another inode) restarts from 0', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'train.log');
    fs.writeFileSync(file, nanogptLines.slice(0, 60).join('\n') + '\n');
    const f = new RunFollower(file);
    f.start();
    fs.renameSync(file, path.join(dir, 'train.log.1'));
    fs.writeFileSync(path.join(dir, 'next.tmp'), nanogptLines.slice(0, 70).join('\n') + '\n');
    fs.renameSync(path.join(dir, 'next.tmp'), file);
    const events = f.poll();
    assert.deepEqual(ofType(events, 'restart').map((e) => e.reason), ['replaced']);
    assert.deepEqual(pointsOf(events), nanogptPoints(0, 70));
    f.close();
  });

  test('rewritten in place past the old length (truncate, then the new run wrote more): restart', () => {
    const file = path.join(tmpDir(), 'metrics.jsonl');
    fs.writeFileSync(file, '{"step": 0, "loss": 5}\n{"step": 1, "loss": 4}\n');
    const f = new RunFollower(file);
    f.start();
    fs.writeFileSync(file, '{"step": 0, "loss": 9}\n{"step": 1, "loss": 8}\n{"step": 2, "loss": 7}\n');
    const events = f.poll();
    assert.deepEqual(ofType(events, 'restart').map((e) => e.reason), ['rewritten']);
    assert.deepEqual(pointsOf(events).map((p) => p.value), [9, 8, 7]);
    f.close();
  });

  test('a restarted run appended to the same log: steps go back, a new segment, no zig-zag', () => {
    const file = path.join(tmpDir(), 'train.log');
    fs.writeFileSync(file, nanogptLines.join('\n'));
    const f = new RunFollower(file);
    const first = f.start();
    assert.deepEqual(ofType(first, 'segment'), []);
    fs.appendFileSync(file, nanogptLines.slice(47, 60).join('\n') + '\n'); // the startup of a second run and its iters 0..
    const events = f.poll();
    assert.deepEqual(ofType(events, 'segment').map((e) => [e.segment, e.step]), [[1, 0]]);
    const segs = ofType(events, 'points');
    assert.ok(segs.every((e) => e.segment === 1));
    assert.deepEqual(pointsOf(events), nanogptPoints(47, 60));
    f.close();
  });

  test('splitSegments cuts a whole-file read the same way', () => {
    const pts: RunPoint[] = [0, 1, 2, 0, 1].map((step) => ({ series: 'loss', step, value: step }));
    assert.deepEqual(splitSegments(pts).map((s) => [s.segment, s.points.map((p) => p.step)]), [[0, [0, 1, 2]], [1, [0, 1]]]);
  });

  test('a folder: its event files, JSONL and CSV, new files, checkpoints appearing and rewritten', () => {
    const dir = tmpDir();
    fs.mkdirSync(path.join(dir, 'tb'));
    fs.copyFileSync(fx(MAIN_TB), path.join(dir, MAIN_TB));
    fs.copyFileSync(fx('metrics.jsonl'), path.join(dir, 'metrics.jsonl'));
    fs.writeFileSync(path.join(dir, 'requirements.txt'), 'torch\nnumpy\n');
    const f = new RunFollower(dir);
    const first = f.start();
    assert.deepEqual(ofType(first, 'file').map((e) => [e.file, e.format]).sort(), [['metrics.jsonl', 'jsonl'], ['requirements.txt', 'log'], [MAIN_TB, 'tfevents']]);
    assert.deepEqual(ofType(first, 'points').filter((e) => e.file === MAIN_TB).flatMap((e) => e.points), tbPoints(tbRecords(MAIN_TB)));
    assert.deepEqual(ofType(first, 'points').filter((e) => e.file === 'metrics.jsonl').flatMap((e) => e.points), rowPoints(EXPECTED['metrics.jsonl'].rows, 'step'));
    assert.equal(ofType(first, 'warning').length, 1, 'the non-JSON line of metrics.jsonl');
    assert.deepEqual(f.poll(), []);

    const ckpt = path.join(dir, 'model_000500.pt');
    fs.writeFileSync(ckpt, 'not really a checkpoint');
    fs.copyFileSync(fx('metrics.csv'), path.join(dir, 'metrics.csv'));
    const second = f.poll();
    const found = ofType(second, 'checkpoint').map((e) => e.checkpoint);
    assert.deepEqual(found.map((c) => [c.path, c.step, c.source, c.size, c.mtimeMs]), [[ckpt, 500, 'file', 23, fs.statSync(ckpt).mtimeMs]]);
    assert.deepEqual(ofType(second, 'file').map((e) => e.file), ['metrics.csv']);
    assert.deepEqual(pointsOf(second), rowPoints(EXPECTED['metrics.csv'].rows, 'step'));

    fs.writeFileSync(ckpt, 'rewritten, a little longer');
    fs.writeFileSync(path.join(dir, 'ckpt.pt'), '');
    const third = f.poll();
    assert.deepEqual(ofType(third, 'checkpoint').map((e) => [path.basename(e.checkpoint.path), e.checkpoint.step]), [['ckpt.pt', undefined], ['model_000500.pt', 500]]);

    fs.rmSync(path.join(dir, 'metrics.csv'));
    assert.deepEqual(f.poll(), [{ type: 'removed', file: 'metrics.csv' }]);
    f.close();
  });

  test('an event file being written: a cut record waits, the rest comes with the next poll', () => {
    const dir = tmpDir();
    const t = EXPECTED['tb/truncated.tfevents'];
    const whole = fs.readFileSync(fx(MAIN_TB));
    const file = path.join(dir, 'events.out.tfevents.1717000000.host.1234.0');
    fs.writeFileSync(file, whole.subarray(0, t.file_size));
    const f = new RunFollower(dir);
    const first = f.start();
    assert.deepEqual(ofType(first, 'warning'), []);
    assert.deepEqual(pointsOf(first), tbPoints(tbRecords(MAIN_TB), 0, t.complete_records));
    assert.equal(f.state[0].offset, t.partial_record_offset);
    fs.appendFileSync(file, whole.subarray(t.file_size));
    assert.deepEqual(pointsOf(f.poll()), tbPoints(tbRecords(MAIN_TB), t.complete_records));
    f.close();
  });

  test('a corrupt record in a followed file: one warning, then nothing more from it', () => {
    const dir = tmpDir();
    const bytes = Buffer.from(fs.readFileSync(fx(MAIN_TB)));
    const rec = tbRecords(MAIN_TB)[20];
    bytes[rec.offset + 14] ^= 0xff;
    const file = path.join(dir, 'events.out.tfevents.3.host.1.0');
    fs.writeFileSync(file, bytes);
    const f = new RunFollower(file);
    const first = f.start();
    assert.deepEqual(pointsOf(first), tbPoints(tbRecords(MAIN_TB), 0, 20));
    assert.equal(ofType(first, 'warning').length, 1);
    assert.match(ofType(first, 'warning')[0].message, new RegExp(`offset ${rec.offset}`));
    fs.appendFileSync(file, Buffer.alloc(10));
    assert.deepEqual(f.poll(), []);
    assert.equal(f.state[0].stopped, true);
    f.close();
  });

  test('with watch: an append reaches onEvent without a poll call; close() leaves nothing running', async () => {
    const before = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap').length;
    const file = path.join(tmpDir(), 'train.log');
    fs.writeFileSync(file, nanogptLines.slice(0, 60).join('\n') + '\n');
    let resolvePoints: (points: RunPoint[]) => void = () => {};
    const appended = new Promise<RunPoint[]>((resolve) => (resolvePoints = resolve));
    let started = false;
    const f = new RunFollower(file, {
      watch: true, watchDelayMs: 10,
      onEvent: (e) => {
        if (started && e.type === 'points') resolvePoints(e.points);
      },
    });
    f.start();
    started = true;
    fs.appendFileSync(file, nanogptLines.slice(60, 62).join('\n') + '\n');
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('no watch-triggered poll within 5 s')), 5000)));
    try {
      assert.deepEqual(await Promise.race([appended, deadline]), nanogptPoints(60, 62));
    } finally {
      clearTimeout(timer);
    }
    assert.ok(process.getActiveResourcesInfo().includes('FSEventWrap'), 'the watcher is running');
    f.close();
    // A closed handle is released in the loop's close phase, after the next check phase.
    for (let turn = 0; turn < 2; turn++) await new Promise((resolve) => setImmediate(resolve));
    const left = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap').length;
    assert.ok(left <= before, `resources before ${before}, after close ${left}: ${process.getActiveResourcesInfo()}`);
  });

  test('following something that is not there is a one-line BadInputError', () => {
    assertOneLineBad(() => new RunFollower(path.join(tmpRoot, 'no-such-run')), /cannot follow .*no-such-run: no such file or folder/);
  });
});

// -----------------------------------------------------------------------------------------------

describe('reading in chunks', () => {
  test('any chunk size gives what one whole read gives, for every fixture', () => {
    const cases: [string, () => StreamParser][] = [
      [MAIN_TB, () => new TfEventsParser('f')], ['tb/truncated.tfevents', () => new TfEventsParser('f')],
      ['tb/new_style.tfevents', () => new TfEventsParser('f')], ['metrics.jsonl', () => new JsonlParser('f')],
      ['metrics.csv', () => new CsvParser('f')], ['nanogpt.log', () => new LogParser('f')],
      ['autoresearch.log', () => new LogParser('f')], ['agpt.log', () => new LogParser('f')],
    ];
    for (const [file, make] of cases) {
      const whole = readWholeFile(fx(file), make());
      for (const chunkBytes of [1, 5, 13, 64]) {
        const r = readFromOffset(fx(file), make(), 0, { atEnd: true, chunkBytes });
        assert.deepEqual({ points: r.points, warnings: r.warnings, checkpoints: r.checkpoints }, { ...whole, checkpoints: whole.checkpoints }, `${file} in ${chunkBytes}-byte chunks`);
      }
    }
  });

  test('a CRLF cut between two chunks is one line break, and a lone CR is one too', () => {
    const s = new LineSplitter('f');
    const a = s.split(Buffer.from('x\r'), false);
    assert.deepEqual([a.lines, a.consumed], [[], 0]);
    const b = s.split(Buffer.from('x\r\ny\rz\n'), false);
    assert.deepEqual([b.lines, b.firstLine, b.consumed], [['x', 'y', 'z'], 1, 7]);
    const c = s.split(Buffer.from('w'), true);
    assert.deepEqual([c.lines, c.firstLine], [['w'], 4]);
  });
});

describe('shared helpers', () => {
  test('numbers as logs print them', () => {
    assert.equal(parseNumber('1,541,333'), 1541333);
    assert.equal(parseNumber('-1.5e-05'), -1.5e-5);
    assert.equal(parseNumber('.5'), 0.5);
    assert.ok(Number.isNaN(parseNumber('nan')!));
    assert.equal(parseNumber('-inf'), -Infinity);
    for (const no of ['', ' ', '0x10', '1,5', '12ms', 'abc']) assert.equal(parseNumber(no), undefined, JSON.stringify(no));
  });

  test('mergeResults keeps order and checkpoints', () => {
    const a: RunReadResult = { points: [{ series: 'a', step: 0, value: 1 }], warnings: ['w1'] };
    const b: RunReadResult = { points: [{ series: 'b', step: 1, value: 2 }], warnings: [], checkpoints: [{ path: 'c.pt', source: 'log', step: 1 }] };
    assert.deepEqual(mergeResults(a, b), { points: [...a.points, ...b.points], warnings: ['w1'], checkpoints: b.checkpoints });
  });
});
