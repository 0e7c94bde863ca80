/**
 * `runs/watch` and `runs/probe` through a real spawned engine (`headlens serve`): every sample of
 * shared/fixtures/runs watched gives exactly the values its expected.json lists; a log growing
 * while watched (appended here, cut mid-line) streams the new points; a TensorBoard file cut in the
 * middle of a record yields the complete records and the rest once the bytes arrive; the JSONL
 * line that is not JSON is skipped with one warning naming it; a checkpoint written beside a run
 * is announced once the engine's readers accept it (a garbage one is a warning), its probe means
 * equal the per-head means of the engine's own analysis; `$/cancel` ends a watch and the engine
 * goes on serving. The checkpoint check itself (half-written, garbage, complete) runs in-process.
 */
import { test, describe, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnEngine, EngineRequestError, type SpawnedEngine } from '../engine/server/client';
import { PROTOCOL_VERSION, type AnalyzeLayerEvent, type RunWatchEvent, type RunWatchParams } from '../engine/protocol';
import { decodeArray } from '../engine/codec';
import { inspectCheckpoint } from '../engine/server/runCheckpoints';
import { ENGINE_JS, REPO, SHARED_FIXTURES } from './helpers/fixtures';

const RUNS = path.join(SHARED_FIXTURES, 'runs');
const MAIN_TB = 'tb/events.out.tfevents.1717000000.host.1234.0';
const STARTER = path.join(REPO, 'media', 'models', 'starter-adaptive.safetensors');
type Row = Record<string, number>;
interface TbRecord { index: number; step?: number; tag?: string; value?: number }
const EXPECTED = JSON.parse(fs.readFileSync(path.join(RUNS, 'expected.json'), 'utf8')) as Record<string, Record<string, unknown>>;

/** series → [step, value] in file order, as expected.json lists them for a fixture. */
type Series = Map<string, [number, number][]>;

function add(out: Series, name: string, step: number, value: number): void {
  if (!out.has(name)) out.set(name, []);
  out.get(name)!.push([step, value]);
}

function rowsSeries(rows: Row[], stepKey = 'step', skip: (k: string, v: number) => boolean = () => false): Series {
  const out: Series = new Map();
  for (const r of rows) for (const [k, v] of Object.entries(r)) if (k !== stepKey && !skip(k, v)) add(out, k, r[stepKey], v);
  return out;
}

function tbSeries(records: TbRecord[]): Series {
  const out: Series = new Map();
  for (const r of records) if (r.tag) add(out, r.tag, r.step ?? 0, r.value!);
  return out;
}

/** What each fixture must give, from expected.json alone. */
function expectedOf(file: string): Series {
  const e = EXPECTED[file];
  switch (file) {
    case MAIN_TB:
    case 'tb/new_style.tfevents':
      return tbSeries(e.records as TbRecord[]);
    case 'tb/truncated.tfevents':
      return tbSeries((EXPECTED[MAIN_TB].records as TbRecord[]).slice(0, e.complete_records as number));
    case 'nanogpt.log': {
      // nanoGPT prints mfu -100.00% until it has measured it: not a value
      const iters = rowsSeries(e.iter_lines as Row[], 'iter', (k, v) => k === 'mfu_pct' && v === -100);
      for (const [k, v] of rowsSeries(e.eval_lines as Row[])) iters.set(k, v);
      return iters;
    }
    case 'autoresearch.log': {
      const steps = e.steps as Row[];
      const out = rowsSeries(steps);
      // the summary after `---` is plotted one step after the last
      for (const [k, v] of Object.entries(e.summary as Row)) add(out, k, steps[steps.length - 1].step + 1, v);
      return out;
    }
    case 'agpt.log':
      return rowsSeries(e.eval_lines as Row[]);
    default:
      return rowsSeries(e.rows as Row[]);
  }
}

/** The points events' series, joined in arrival order. */
function receivedSeries(events: RunWatchEvent[]): Series {
  const out: Series = new Map();
  for (const e of events) {
    if (e.kind !== 'points') continue;
    for (const [name, s] of Object.entries(e.series)) s.steps.forEach((step, i) => add(out, name, step, s.values[i] ?? NaN));
  }
  return out;
}

const count = (s: Series) => [...s.values()].reduce((n, p) => n + p.length, 0);

function assertSameSeries(got: Series, want: Series, label: string): void {
  assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort(), `${label}: series names`);
  for (const [name, points] of want) assert.deepEqual(got.get(name), points, `${label}: ${name}`);
}

let engine: SpawnedEngine;
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'headlens-runs-'));
let tmpCount = 0;
function tmpDir(): string {
  const d = path.join(tmpRoot, `case${tmpCount++}`);
  fs.mkdirSync(d);
  return d;
}

/** A watch in progress: its events as they come, waits on them, and `$/cancel`. */
interface Watch {
  events: RunWatchEvent[];
  until(pred: (events: RunWatchEvent[]) => boolean, what: string, ms?: number): Promise<void>;
  cancel(): Promise<unknown>;
}

function watch(params: RunWatchParams): Watch {
  const events: RunWatchEvent[] = [];
  const waiters: (() => void)[] = [];
  const abort = new AbortController();
  const done = engine.connection.request('runs/watch', { pollMs: 200, ...params }, {
    token: abort.signal,
    onProgress: (e) => {
      events.push(e);
      waiters.splice(0).forEach((w) => w());
    },
  });
  done.catch(() => undefined);
  const until = async (pred: (ev: RunWatchEvent[]) => boolean, what: string, ms = 20_000) => {
    const deadline = Date.now() + ms;
    while (!pred(events)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; events: ${JSON.stringify(events).slice(0, 800)}`);
      // woken by the next event, the deadline, or a failed request
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([new Promise<void>((r) => waiters.push(r)), new Promise((r) => (timer = setTimeout(r, left))), done.then(() => undefined, (e) => { throw e; })]);
      clearTimeout(timer);
    }
  };
  return { events, until, cancel: () => (abort.abort(), done.then(() => 'resolved', (e) => e)) };
}

const caughtUp = (ev: RunWatchEvent[]) => ev.some((e) => e.kind === 'caught-up');

describe('runs/watch and runs/probe through a spawned engine', () => {
  before(async () => {
    engine = spawnEngine(ENGINE_JS, { args: ['--backend', 'wasm'] });
    await engine.connection.request('initialize', { clientName: 'test', protocolVersion: PROTOCOL_VERSION, backend: 'wasm' });
  });
  after(() => {
    engine?.dispose();
    fs.rmSync(tmpRoot, { recursive: true, force: true });
  });

  for (const file of ['tb/events.out.tfevents.1717000000.host.1234.0', 'tb/truncated.tfevents', 'tb/new_style.tfevents', 'nanogpt.log', 'autoresearch.log', 'agpt.log', 'metrics.jsonl', 'metrics.csv']) {
    test(`${file}: every value expected.json lists, nothing else`, async () => {
      const w = watch({ path: path.join(RUNS, file) });
      await w.until(caughtUp, 'the first read');
      assertSameSeries(receivedSeries(w.events), expectedOf(file), file);
      assert.equal(w.events.filter((e) => e.kind === 'file').length, 1);
      const cancelled = await w.cancel();
      assert.ok(cancelled instanceof EngineRequestError && cancelled.cancelled, `a cancelled watch answers Cancelled, got ${cancelled}`);
    });
  }

  test('a log growing while watched (appended mid-line): the new points arrive, in order', async () => {
    const dir = tmpDir();
    const log = path.join(dir, 'train.log');
    const text = fs.readFileSync(path.join(RUNS, 'nanogpt.log'), 'utf8');
    const cut1 = text.indexOf('iter 12:'), cut2 = text.indexOf('iter 25:') + 5; // the second cut inside a line
    fs.writeFileSync(log, text.slice(0, cut1));
    const w = watch({ path: log, preset: 'nanogpt' });
    await w.until(caughtUp, 'the first read');
    const want = expectedOf('nanogpt.log');
    const firstCount = count(receivedSeries(w.events));
    assert.ok(firstCount > 0 && firstCount < count(want), `first read: ${firstCount} points`);
    fs.appendFileSync(log, text.slice(cut1, cut2));
    await w.until((ev) => receivedSeries(ev).get('loss')?.some(([s]) => s === 24) ?? false, 'iter 24 after the first append');
    assert.ok(!receivedSeries(w.events).get('loss')!.some(([s]) => s === 25), 'a half-written line is not read');
    fs.appendFileSync(log, text.slice(cut2));
    await w.until((ev) => count(receivedSeries(ev)) === count(want), 'every point after the second append');
    assertSameSeries(receivedSeries(w.events), want, 'grown log');
    await w.cancel();
  });

  test('a rotated log (renamed away, a new file in its place) and a restarted run are new segments', async () => {
    const dir = tmpDir();
    const log = path.join(dir, 'train.log');
    const line = (i: number, loss: number) => `iter ${i}: loss ${loss.toFixed(4)}, time 10.00ms, mfu 1.00%\n`;
    fs.writeFileSync(log, [0, 1, 2].map((i) => line(i, 5 - i)).join(''));
    const w = watch({ path: log, preset: 'nanogpt' });
    await w.until(caughtUp, 'the first read');
    fs.renameSync(log, `${log}.1`);
    fs.writeFileSync(log, [0, 1].map((i) => line(i, 9 - i)).join(''));
    await w.until((ev) => ev.some((e) => e.kind === 'points' && e.segment === 1), 'the new file as segment 1');
    const seg = w.events.find((e): e is Extract<RunWatchEvent, { kind: 'segment' }> => e.kind === 'segment')!;
    assert.equal(seg.reason, 'replaced');
    // the same run restarted into the same file: steps go back
    fs.appendFileSync(log, [0, 1].map((i) => line(i, 7 - i)).join(''));
    await w.until((ev) => ev.some((e) => e.kind === 'segment' && e.reason === 'step-back'), 'the restart');
    const bySegment = (n: number) => w.events.flatMap((e) => (e.kind === 'points' && e.segment === n ? e.series.loss.values : []));
    assert.deepEqual([bySegment(0), bySegment(1), bySegment(2)], [[5, 4, 3], [9, 8], [7, 6]]);
    await w.cancel();
  });

  test('a TensorBoard file cut in the middle of a record: the complete records, then the rest once written', async () => {
    const dir = tmpDir();
    const full = fs.readFileSync(path.join(RUNS, MAIN_TB));
    const cut = fs.readFileSync(path.join(RUNS, 'tb/truncated.tfevents'));
    assert.deepEqual(cut, full.subarray(0, cut.length), 'the truncated fixture is a prefix of the main one');
    const file = path.join(dir, 'events.out.tfevents.1717000000.host.1234.0');
    fs.writeFileSync(file, cut);
    const w = watch({ path: dir });
    await w.until(caughtUp, 'the first read');
    assertSameSeries(receivedSeries(w.events), expectedOf('tb/truncated.tfevents'), 'cut file');
    assert.deepEqual(w.events.filter((e) => e.kind === 'warning'), [], 'a record still being written is no error');
    fs.appendFileSync(file, full.subarray(cut.length));
    const want = expectedOf(MAIN_TB);
    await w.until((ev) => count(receivedSeries(ev)) === count(want), 'the remaining records');
    assertSameSeries(receivedSeries(w.events), want, 'completed file');
    await w.cancel();
  });

  test('the JSONL line that is not JSON is skipped with one warning naming it', async () => {
    const w = watch({ path: path.join(RUNS, 'metrics.jsonl') });
    await w.until(caughtUp, 'the first read');
    const warnings = w.events.filter((e): e is Extract<RunWatchEvent, { kind: 'warning' }> => e.kind === 'warning');
    assert.equal(warnings.length, 1, JSON.stringify(warnings));
    assert.match(warnings[0].message, new RegExp(`metrics\\.jsonl line ${EXPECTED['metrics.jsonl'].not_json_line_number}: not a JSON object`));
    assert.equal(count(receivedSeries(w.events)), count(expectedOf('metrics.jsonl')));
    await w.cancel();
  });

  test('a user regex with named groups reads a log no preset knows', async () => {
    const dir = tmpDir();
    const log = path.join(dir, 'custom.txt');
    fs.writeFileSync(log, 'epoch 1 it=10 loss=2.5 acc=0.1\nnoise\nepoch 1 it=20 loss=2.25 acc=0.2\n');
    const w = watch({ path: log, regex: String.raw`it=(?<step>\d+) loss=(?<loss>[\d.]+) acc=(?<acc>[\d.]+)` });
    await w.until(caughtUp, 'the first read');
    assertSameSeries(receivedSeries(w.events), new Map([['loss', [[10, 2.5], [20, 2.25]]], ['acc', [[10, 0.1], [20, 0.2]]]]), 'regex');
    await w.cancel();
    await assert.rejects(engine.connection.request('runs/watch', { path: log, regex: 'loss=(\\d+)' }), (e: unknown) => e instanceof EngineRequestError && /named group "step"/.test(e.message));
  });

  test('a checkpoint written beside the run is announced with its step and family; a garbage one is a warning', async () => {
    const dir = tmpDir();
    fs.copyFileSync(path.join(RUNS, 'metrics.jsonl'), path.join(dir, 'metrics.jsonl'));
    const w = watch({ path: dir });
    await w.until(caughtUp, 'the first read');
    fs.writeFileSync(path.join(dir, 'broken_000100.pt'), 'this is not a checkpoint');
    fs.copyFileSync(STARTER, path.join(dir, 'ckpt_000200.safetensors'));
    await w.until((ev) => ev.some((e) => e.kind === 'checkpoint') && ev.some((e) => e.kind === 'warning' && e.message.includes('broken_000100.pt')), 'the checkpoint and the warning');
    const marks = w.events.filter((e): e is Extract<RunWatchEvent, { kind: 'checkpoint' }> => e.kind === 'checkpoint').map((e) => e.checkpoint);
    assert.equal(marks.length, 1);
    assert.deepEqual({ step: marks[0].step, family: marks[0].family, layers: marks[0].layers, heads: marks[0].heads, file: path.basename(marks[0].path) }, { step: 200, family: 'adaptive', layers: 2, heads: 4, file: 'ckpt_000200.safetensors' });
    assert.equal(marks[0].size, fs.statSync(STARTER).size);
    await w.cancel();
  });

  test('runs/probe: per-head means equal those of the engine\'s own analysis of the same text', async () => {
    const text = fs.readFileSync(path.join(REPO, 'media', 'samples', 'attention.py'), 'utf8');
    const probe = await engine.connection.request('runs/probe', { checkpoint: STARTER, text, maxTokens: 64 });
    assert.deepEqual([probe.family, probe.layers, probe.heads, probe.tokens], ['adaptive', 2, 4, 64]);
    // the reference: analyze the same 64 tokens with the checkpoint loaded, and average here
    await engine.connection.request('model/load', { path: STARTER });
    const layers: AnalyzeLayerEvent[] = [];
    let tokensText = '';
    await engine.connection.request('analyze', { text, includeAttention: false, causalityAudit: false, window: 64, stride: 64 }, {
      onProgress: (e) => {
        if (e.kind === 'tokens' && e.window === 0) tokensText = text.slice(0, e.tokens[e.tokens.length - 1].end);
        if (e.kind === 'layer' && e.window === 0) layers.push(e);
      },
    });
    assert.ok(tokensText.length > 0);
    const H = 4, T = 64;
    const meanRows = (a: Float32Array) => Array.from({ length: H }, (_, h) => a.subarray(h * T, (h + 1) * T).reduce((s, x) => s + x, 0) / T);
    for (const ev of layers) {
      const l = ev.layer;
      const ent = meanRows(decodeArray(ev.headEntropy) as Float32Array);
      ent.forEach((v, h) => assert.ok(Math.abs(probe.entropy[l * H + h] - v) < 1e-5, `entropy L${l}.H${h}: ${probe.entropy[l * H + h]} vs ${v}`));
      const rel = meanRows(decodeArray(ev.signals!.loraRel) as Float32Array);
      rel.forEach((v, h) => assert.ok(Math.abs(probe.signals.loraRel[l * H + h] - v) <= 1e-6 * Math.max(1, Math.abs(v)), `loraRel L${l}.H${h}`));
      const fro = decodeArray(ev.signals!.loraFro);
      for (let h = 0; h < H; h++) assert.ok(Math.abs(probe.signals.loraFro[l * H + h] - fro[h]) <= 1e-6 * Math.max(1, fro[h]), `loraFro L${l}.H${h}`);
    }
    assert.equal(layers.length, 2);
  });

  test('a cancelled probe answers Cancelled and the engine goes on serving', async () => {
    const abort = new AbortController();
    const text = fs.readFileSync(path.join(REPO, 'media', 'samples', 'attention.py'), 'utf8');
    const pending = engine.connection.request('runs/probe', { checkpoint: STARTER, text }, { token: abort.signal });
    abort.abort();
    await assert.rejects(pending, (e: unknown) => e instanceof EngineRequestError && e.cancelled);
    assert.ok(await engine.connection.request('model/info', {}));
  });

  test('a path that does not exist is one line of bad input', async () => {
    await assert.rejects(engine.connection.request('runs/watch', { path: path.join(tmpRoot, 'nope.log') }), (e: unknown) => e instanceof EngineRequestError && /cannot follow .*nope\.log: no such file or folder/.test(e.message) && !e.message.includes('\n'));
  });
});

describe('the checkpoint check (in-process)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'headlens-ckcheck-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('half a safetensors file is incomplete, the whole one loadable, text unloadable', () => {
    const bytes = fs.readFileSync(STARTER);
    const half = path.join(dir, 'model_000050.safetensors');
    fs.writeFileSync(half, bytes.subarray(0, bytes.length >> 1));
    assert.equal(inspectCheckpoint(half).kind, 'incomplete');
    fs.writeFileSync(half, bytes);
    const whole = inspectCheckpoint(half);
    assert.equal(whole.kind, 'loadable');
    if (whole.kind === 'loadable') assert.deepEqual([whole.facts.family, whole.facts.layers, whole.facts.heads], ['adaptive', 2, 4]);
    const junk = path.join(dir, 'junk.pt');
    fs.writeFileSync(junk, 'not a zip');
    const verdict = inspectCheckpoint(junk);
    assert.equal(verdict.kind, 'unloadable');
  });
});
