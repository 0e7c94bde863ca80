/**
 * Running an experiment grid: the runs `planGrid` says are next, one after another, each with our
 * trainer (engine/train: the same data, seed list and budget for every variant), in this process.
 * Every run writes `metrics.jsonl` (the rows `headlens train --metrics-jsonl` writes, so the monitor
 * can follow the grid's folder), `last.safetensors` and `best.safetensors` into its own folder. The
 * state file is saved before and after each run, the table and its JSON/CSV exports (beside the
 * spec) after each.
 * A time budget stops a run like autoresearch's TIME_BUDGET (training seconds, first step
 * included) and then measures it; `$/cancel` (the token) stops the current run after its
 * micro-batch and leaves it to run again on resume.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { GridEvent, GridTable, TrainEvalRecord, TrainEvent } from '../protocol';
import { CancelledError, throwIfCancelled, type CancelToken } from '../errors';
import { countParams } from '../models/registry';
import { tokenByteLength } from '../tokenizers/gpt2';
import { buildRun, prepareInputs, type RunInputs, type RunSpec } from '../train/setup';
import { readGridSpec, type GridSpec } from './spec';
import { checkVariants, planGrid, type PlannedRun } from './plan';
import { loadState, lockGrid, saveState, type GridState, type RunOutcome, type RunRecord } from './state';
import { gridCsv } from './table';
import { atomicWriteFile } from '../io/safetensors';

export interface GridRunOptions {
  /** Output folder over the spec's own. */
  out?: string;
  token?: CancelToken;
  onEvent?: (e: GridEvent) => void;
}

/** Runs (or resumes) the grid of `specFile` to its end; the final table. */
export async function runGrid(specFile: string, opts: GridRunOptions = {}): Promise<GridTable> {
  const spec = readGridSpec(specFile, { out: opts.out });
  checkVariants(spec);
  const release = lockGrid(spec);
  try {
    fs.mkdirSync(spec.out, { recursive: true });
    const state = loadState(spec);
    const attempted = new Set<string>();
    let plan = planGrid(spec, state);
    publish(spec, plan.table, opts);
    for (;;) {
      const run = plan.next.find((r) => !attempted.has(r.key));
      if (!run) break;
      throwIfCancelled(opts.token);
      attempted.add(run.key);
      const waiting = plan.table.rows.filter((r) => r.status === 'waiting').length * spec.seeds.length;
      const total = attempted.size + plan.next.filter((r) => !attempted.has(r.key)).length + waiting;
      publish(spec, planGrid(spec, state, run.key).table, opts);
      await runOne(spec, state, run, opts, attempted.size, total);
      plan = planGrid(spec, state);
      publish(spec, plan.table, opts);
    }
    return plan.table;
  } finally {
    release();
  }
}

/** The table to the caller, and its JSON and CSV exports beside the spec. */
function publish(spec: GridSpec, table: GridTable, opts: GridRunOptions): void {
  writeExports(spec, table);
  opts.onEvent?.({ kind: 'table', table });
}

export function writeExports(spec: GridSpec, table: GridTable): void {
  atomicWriteFile(spec.exports.json, JSON.stringify(table, null, 1));
  atomicWriteFile(spec.exports.csv, gridCsv(table));
}

async function runOne(spec: GridSpec, state: GridState, run: PlannedRun, opts: GridRunOptions, index: number, total: number): Promise<void> {
  const record: RunRecord = { key: run.key, variant: run.variant, seed: run.seed, dir: run.dir, status: 'running', config: run.config, startedAt: new Date().toISOString() };
  state.runs[run.key] = record;
  saveState(spec, state);
  const event = (s: 'started' | 'finished' | 'failed', message?: string) => opts.onEvent?.({ kind: 'run', variant: run.variant, seed: run.seed, dir: run.dir, state: s, index, total, ...(message ? { message } : {}) });
  event('started');
  try {
    fs.rmSync(run.dir, { recursive: true, force: true }); // what an interrupted attempt left
    fs.mkdirSync(run.dir, { recursive: true });
    const { outcome, data } = await trainRun(spec, run, opts);
    Object.assign(record, { status: 'done', result: outcome, data, finishedAt: new Date().toISOString() });
    event('finished');
  } catch (e) {
    if (e instanceof CancelledError) {
      saveState(spec, state); // stays `running`: the next start runs it again
      throw e;
    }
    Object.assign(record, { status: 'failed', message: (e as Error).message.split('\n')[0], finishedAt: new Date().toISOString() });
    event('failed', record.message);
  }
  saveState(spec, state);
  fs.writeFileSync(path.join(run.dir, 'run.json'), JSON.stringify(record, null, 1));
}

/** The trainer's options for one run of the grid. */
function runSpecOf(spec: GridSpec, run: PlannedRun): RunSpec {
  const steps = spec.budget.steps;
  return {
    family: spec.family,
    config: run.config as unknown as Record<string, unknown>,
    data: spec.data,
    valRatio: spec.valRatio,
    options: {
      ...spec.train,
      steps,
      seed: run.seed,
      out: run.dir,
      checkpointInterval: steps,
      probeInterval: spec.train.probeInterval ?? 0,
      evalInterval: spec.train.evalInterval ?? steps,
    },
  };
}

/** Step statistics as the run goes: training seconds and tokens (for the time budget and tok/s). */
class StepClock {
  seconds = 0;
  steps = 0;
  private laterSeconds = 0;
  private laterTokens = 0;

  add(e: Extract<TrainEvent, { kind: 'step' }>): void {
    this.seconds += e.elapsed_s;
    if (this.steps++ > 0) {
      this.laterSeconds += e.elapsed_s;
      this.laterTokens += e.tokens_per_s * e.elapsed_s;
    }
  }

  tokensPerSecond(first: number): number | null {
    if (this.laterSeconds > 0) return this.laterTokens / this.laterSeconds;
    return first > 0 ? first : null;
  }
}

async function trainRun(spec: GridSpec, run: PlannedRun, opts: GridRunOptions): Promise<{ outcome: RunOutcome; data: string }> {
  const started = Date.now();
  const inputs = prepareInputs(runSpecOf(spec, run));
  const metrics = fs.openSync(path.join(run.dir, 'metrics.jsonl'), 'w');
  const clock = new StepClock();
  let firstTps = 0, lastEval: TrainEvalRecord | null = null, timeLimited = false;
  const runId = `grid:${run.variant}${spec.seeds.length > 1 ? `:seed${run.seed}` : ''}`;
  const record = (e: TrainEvent) => {
    if (e.kind === 'step' || e.kind === 'eval') {
      const { runId: _r, kind, ...rest } = e;
      fs.writeSync(metrics, JSON.stringify(kind === 'step' ? rest : { kind, ...rest }) + '\n');
    }
    opts.onEvent?.({ kind: 'train', variant: run.variant, seed: run.seed, event: e });
  };
  const prepared = await buildRun(inputs, runId, (e) => {
    if (e.kind === 'step') {
      if (!clock.steps) firstTps = e.tokens_per_s;
      clock.add(e);
      if (spec.budget.seconds !== null && clock.seconds >= spec.budget.seconds && clock.steps < spec.budget.steps) {
        timeLimited = true;
        prepared.trainer.control.stopRequested = true;
      }
    } else if (e.kind === 'eval') lastEval = e;
    record(e);
  });
  const trainer = prepared.trainer;
  const stopOnCancel = setInterval(() => {
    if (opts.token?.cancelled) trainer.control.stopRequested = true;
  }, 50);
  try {
    const result = await trainer.run();
    if (opts.token?.cancelled) throw new CancelledError('the grid was stopped');
    const final = lastEval as TrainEvalRecord | null;
    let valLoss = final && final.step === trainer.step ? final.val_loss : null;
    let bySource = final && final.step === trainer.step ? final.val_by_source : undefined;
    if (valLoss === null) {
      // stopped by the time budget before its evaluation: measure the model as it is
      trainer.control.stopRequested = false;
      const v = await trainer.evaluate();
      valLoss = v.valLoss;
      bySource = v.bySource ?? undefined;
      record({ kind: 'eval', runId, step: trainer.step, val_loss: v.valLoss, ...(v.bySource ? { val_by_source: v.bySource } : {}) });
    }
    const outcome: RunOutcome = {
      valLoss,
      bpb: bitsPerByte(inputs, valLoss, bySource),
      tokPerS: clock.tokensPerSecond(firstTps),
      params: countParams(prepared.model.config),
      wallS: (Date.now() - started) / 1000,
      steps: trainer.step,
      timeLimited,
      checkpoint: result.checkpoint,
    };
    return { outcome, data: dataHash(inputs) };
  } finally {
    clearInterval(stopOnCancel);
    fs.closeSync(metrics);
    prepared.dispose();
  }
}

/** UTF-8 bytes per token of a validation split (<|endoftext|> separators spell no text: 0 bytes). */
function bytesPerToken(tokens: Int32Array): number {
  let bytes = 0;
  for (const id of tokens) bytes += tokenByteLength(id);
  return bytes / Math.max(1, tokens.length);
}

/**
 * val loss (nats per token) in bits per byte: ÷ ln 2 and ÷ the validation text's bytes per token
 * (per source with several, weighted as the trainer weights their losses). autoresearch's val_bpb
 * sums nats and bytes over its eval tokens; ours converts the mean over the trainer's val batches.
 */
function bitsPerByte(inputs: RunInputs, valLoss: number, bySource: Record<string, number> | undefined): number | null {
  if (inputs.data.kind !== 'corpus') return valLoss / Math.LN2 / Math.max(1e-9, bytesPerToken(inputs.data.batch.targets));
  const sources = inputs.data.sources;
  if (!bySource || sources.length < 2) return valLoss / Math.LN2 / Math.max(1e-9, bytesPerToken(sources[0].val));
  const total = sources.reduce((s, x) => s + x.weight, 0);
  return sources.reduce((s, x) => s + (x.weight / total) * (bySource[x.spec] ?? valLoss) / Math.LN2 / Math.max(1e-9, bytesPerToken(x.val)), 0);
}

/** A hash of the tokens a run trains and validates on: runs of one grid must see the same. */
function dataHash(inputs: RunInputs): string {
  const h = crypto.createHash('sha1');
  if (inputs.data.kind === 'fixed') h.update(Buffer.from(inputs.data.batch.inputIds.buffer));
  else for (const s of inputs.data.sources) h.update(s.spec).update(Buffer.from(s.train.buffer, s.train.byteOffset, s.train.byteLength)).update(Buffer.from(s.val.buffer, s.val.byteOffset, s.val.byteLength));
  return h.digest('hex').slice(0, 16);
}
