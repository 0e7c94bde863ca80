/**
 * The grid's state file, beside its spec (`<spec>.state.json`): one record per run, keyed by what
 * defines the run (family, full config, training options, budget, seed, data) so a resumed grid
 * never redoes a finished run, reuses one whose config another variant already ran, and re-runs a
 * run that was under way when the process died (its record still says `running`). Written
 * atomically (a temporary file renamed over it) after every change; a lock file keeps a second
 * process off the same grid.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Family, ModelConfig } from '../protocol';
import { BadInputError } from '../errors';
import { atomicWriteFile } from '../io/safetensors';
import type { GridSpec, GridTrainOptions } from './spec';

export const STATE_FORMAT = 'headlens-grid-state-1';

/** What a finished run measured. */
export interface RunOutcome {
  /** Validation loss after the last step (nats per token, the trainer's fixed-seed batches). */
  valLoss: number;
  /** valLoss in bits per UTF-8 byte of the validation text. */
  bpb: number | null;
  /** Training tokens per second (the first step, which compiles, left out when there are more). */
  tokPerS: number | null;
  params: number;
  /** Seconds from building the model to the saved checkpoint. */
  wallS: number;
  steps: number;
  /** Stopped by the time budget before budget.steps. */
  timeLimited: boolean;
  checkpoint: string | null;
}

export interface RunRecord {
  key: string;
  variant: string;
  seed: number;
  dir: string;
  status: 'running' | 'done' | 'failed';
  config: ModelConfig;
  result?: RunOutcome;
  message?: string;
  /** A hash of the training tokens it saw. */
  data?: string;
  startedAt: string;
  finishedAt?: string;
}

export interface GridState {
  format: typeof STATE_FORMAT;
  spec: string;
  runs: Record<string, RunRecord>;
}

export function emptyState(spec: GridSpec): GridState {
  return { format: STATE_FORMAT, spec: path.basename(spec.file), runs: {} };
}

/** The state beside the spec, or an empty one; a file that is not ours is refused, not overwritten. */
export function loadState(spec: GridSpec): GridState {
  if (!fs.existsSync(spec.stateFile)) return emptyState(spec);
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(spec.stateFile, 'utf8'));
  } catch (e) {
    throw new BadInputError(`${spec.stateFile}: not a grid state file (${(e as Error).message.split('\n')[0]}); move it away to start the grid afresh`);
  }
  const s = raw as Partial<GridState>;
  if (!s || s.format !== STATE_FORMAT || typeof s.runs !== 'object' || s.runs === null) {
    throw new BadInputError(`${spec.stateFile}: not a Head Lens grid state file (format ${JSON.stringify(s?.format)}); move it away to start the grid afresh`);
  }
  return s as GridState;
}

export function saveState(spec: GridSpec, state: GridState): void {
  atomicWriteFile(spec.stateFile, JSON.stringify(state, null, 1));
}

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v as object).sort().map((k) => [k, canonical((v as Record<string, unknown>)[k])]));
  return v;
}

/** Everything that defines a run, hashed: two variants with the same full config share one run. */
export function runKey(p: { family: Family; config: ModelConfig; train: GridTrainOptions; budget: GridSpec['budget']; seed: number; data: string[]; valRatio?: number }): string {
  const text = JSON.stringify(canonical({ ...p, valRatio: p.valRatio ?? null }));
  return crypto.createHash('sha1').update(text).digest('hex').slice(0, 16);
}

/**
 * Holds `<state>.lock` while a grid runs; a lock left by a process that is gone is taken over.
 * Returns the release function.
 */
export function lockGrid(spec: GridSpec): () => void {
  const lock = `${spec.stateFile}.lock`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(lock, String(process.pid), { flag: 'wx' });
      return () => fs.rmSync(lock, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new BadInputError(`${lock}: cannot write the grid's lock file (${(e as NodeJS.ErrnoException).code}); check the folder's permissions`);
      const pid = Number(fs.readFileSync(lock, 'utf8'));
      if (pid && pid !== process.pid && processAlive(pid)) throw new BadInputError(`${path.basename(spec.file)}: this grid is running already (process ${pid}); wait for it or stop it first`);
      fs.rmSync(lock, { force: true }); // left by a crash
    }
  }
  throw new BadInputError(`${lock}: cannot take the grid's lock file; remove it if no grid is running`);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
