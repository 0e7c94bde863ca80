/**
 * Temporal LoRA on the command line:
 *   headlens tlora-eval --model CKPT [--base BASE] [--config C] (--text-file F | --text S) [--context N] [--stride S] [--json OUT]
 *     the loss with the router's mixture vs uniform, each adapter alone, no adapter and the base
 *     alone; per token the dominant adapter (eval/tlora.ts);
 *   headlens train --tlora --model BASE --adapter NAME=PATH [--adapter NAME=PATH …] --steps N [--router-steps M] …
 *     one adapter per domain (base frozen), then the router (adapters frozen), as their script
 *     trains them (train/tlora.ts); writes their checkpoint format, a safetensors twin and a sidecar.
 * Inputs are checked before any backend starts; bad input is one line and exit 2.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TloraLossesResult, TrainEvent } from '../protocol';
import { BadInputError, reportError, type CancelToken } from '../errors';
import { decodeArray } from '../codec';
import { readCheckpoint } from '../io/checkpoint';
import { atomicWriteFile } from '../io/safetensors';
import { initBackend, tfjsChoiceOf } from '../runtime/tfjs/backend';
import { initRuntime } from '../runtime/select';
import { tloraLosses } from '../eval/tlora';
import { TLORA_TRAIN_DEFAULTS, buildTloraRun, prepareTloraInputs, type TloraRunSpec } from '../train/tlora';
import { parseArgs, type ArgSpec } from './args';
import { backendOf, setupModel } from './load';

export const TLORA_EVAL_USAGE = `usage: headlens tlora-eval --model CKPT [--base BASE] [--config C] (--text-file F | --text S)
  [--context N] [--stride S] [--json OUT] [--backend B]
CKPT: their temporal_lora_checkpoint.pt or our tlora .pt/.safetensors; BASE: the GPT-2 it sits on
(else "base" in --config or in the sidecar CKPT.json). Reports the mean NLL with the router's
mixture, uniform weights, each adapter alone, no adapter (their forward, ln_f skipped) and the base
alone (its own forward), and the dominant adapter of every token.`;

export const TLORA_TRAIN_USAGE = `usage: headlens train --tlora --model BASE --adapter NAME=PATH [--adapter NAME=PATH …] --steps N
  [--router-steps M (default N)] [--lr 1e-4] [--router-lr 2e-3] [--batch-size 8] [--router-batch-size 16]
  [--seq-len 32] [--router-seq-len 64] [--rank 8] [--alpha 16] [--distill-weight 0.5] [--seed 42]
  [--eval-interval N] [--eval-iters 5] [--out DIR] [--metrics-jsonl FILE] [--backend B]
Trains one adapter per NAME on its PATHs (files, folders, globs; repeat NAME=PATH for more paths)
with the GPT-2 base frozen, then the Time Mixer router on every domain with the adapters frozen, as
temporal_lora.py does (Adam, their learning rates; Active Sleep from the second adapter on). Writes
DIR/tlora.pt (their checkpoint format), DIR/tlora.safetensors and DIR/tlora.json (names the base).`;

const EVAL_ARGS: ArgSpec = { model: 'string', base: 'string', config: 'string', tokenizer: 'string', text: 'string', 'text-file': 'string', context: 'int', stride: 'int', json: 'string', backend: 'string', threads: 'int', debug: 'boolean', help: 'boolean' };

const TRAIN_ARGS: ArgSpec = {
  tlora: 'boolean', model: 'string', adapter: 'list', steps: 'int', 'router-steps': 'int', lr: 'float', 'router-lr': 'float',
  'batch-size': 'int', 'router-batch-size': 'int', 'seq-len': 'int', 'router-seq-len': 'int', rank: 'int', alpha: 'float',
  'distill-weight': 'float', seed: 'int', 'eval-interval': 'int', 'eval-iters': 'int', out: 'string', 'metrics-jsonl': 'string',
  backend: 'string', debug: 'boolean', help: 'boolean',
};

const fmt = (v: number | null, d = 4) => (v === null || !Number.isFinite(v) ? '—' : v.toFixed(d));

function checkOut(file: string | undefined, flag: string): void {
  if (!file) return;
  const dir = path.dirname(path.resolve(file));
  if (!fs.existsSync(dir)) throw new BadInputError(`${flag} ${file}: folder ${dir} does not exist`);
}

function readText(opts: Record<string, unknown>): string {
  if ((opts.text === undefined) === (opts['text-file'] === undefined)) throw new BadInputError('tlora-eval needs exactly one of --text S or --text-file F');
  const file = opts['text-file'] as string | undefined;
  if (file === undefined) return opts.text as string;
  if (!fs.existsSync(file) || fs.statSync(file).isDirectory()) throw new BadInputError(`--text-file ${file}: no such file`);
  const text = fs.readFileSync(file, 'utf8');
  if (!text) throw new BadInputError(`--text-file ${file}: the file is empty`);
  return text;
}

/** The report as a table, the dominant adapters' shares below it. */
export function formatLosses(r: TloraLossesResult): string {
  const w = Math.max(12, ...r.rows.map((x) => x.name.length));
  const lines = [`${'route'.padEnd(w)}  mean NLL    ppl        tokens`];
  const mixture = r.rows[0].nll_mean;
  for (const row of r.rows) {
    const delta = row.nll_mean !== null && mixture !== null && row !== r.rows[0] ? `  (${row.nll_mean - mixture >= 0 ? '+' : ''}${fmt(row.nll_mean - mixture)} vs mixture)` : '';
    lines.push(`${row.name.padEnd(w)}  ${fmt(row.nll_mean).padStart(8)}  ${(row.ppl !== null && row.ppl >= 1e6 ? row.ppl.toExponential(2) : fmt(row.ppl, 2)).padStart(9)}  ${String(row.tokens).padStart(6)}${delta}`);
  }
  const counts = r.adapters.map((_, k) => r.dominant.filter((d) => d === k).length);
  const n = Math.max(1, r.dominant.length);
  lines.push(`dominant adapter by token: ${r.adapters.map((a, k) => `${a} ${((100 * counts[k]) / n).toFixed(1)} %`).join(' · ')}`);
  return lines.join('\n');
}

/** The JSON written by --json: the rows, then per token its text, dominant adapter, weights and NLL per row. */
function lossesJson(r: TloraLossesResult, model: string): unknown {
  const weights = decodeArray(r.weights), nll = decodeArray(r.nll), K = r.adapters.length, N = r.tokens.length;
  const num = (v: number) => (Number.isFinite(v) ? v : null);
  return {
    model, adapters: r.adapters, context: r.context, stride: r.stride, rows: r.rows,
    tokens: r.tokens.map((t, i) => ({
      index: t.index, text: t.text, start: t.start, end: t.end, dominant: r.adapters[r.dominant[i]],
      weights: Object.fromEntries(r.adapters.map((a, k) => [a, weights[i * K + k]])),
      nll: Object.fromEntries(r.rows.map((row, j) => [row.name, num(nll[j * N + i])])),
    })),
  };
}

function interruptible(): CancelToken {
  const token = { cancelled: false };
  process.once('SIGINT', () => (token.cancelled = true));
  return token;
}

export async function runTloraEval(argv: string[]): Promise<number> {
  const opts = parseArgs(argv, EVAL_ARGS, 'tlora-eval');
  if (opts.help) {
    process.stdout.write(TLORA_EVAL_USAGE + '\n');
    return 0;
  }
  if (!opts.model) throw new BadInputError('tlora-eval needs --model CKPT (a Temporal LoRA checkpoint)');
  const text = readText(opts);
  checkOut(opts.json as string | undefined, '--json');
  // --base joins --config's keys: both are the user's, so a relative path is from the working folder
  const config = opts.base ? { ...readConfigFile(opts.config as string | undefined), base: opts.base as string } : (opts.config as string | undefined);
  const ck = await readCheckpoint({ path: opts.model as string, config });
  if (ck.config.family !== 'tlora') throw new BadInputError(`${opts.model}: not a Temporal LoRA checkpoint (this is a ${ck.config.family} model)`);
  const lm = await setupModel(opts, ck);
  try {
    const state = await initRuntime(backendOf(opts), (opts.threads as number | undefined) ?? 0);
    const r = await tloraLosses(lm, text, { context: opts.context as number | undefined, stride: opts.stride as number | undefined }, state, interruptible());
    process.stdout.write(`${formatLosses(r)}\n`);
    if (lm.info.note) process.stderr.write(`note: ${lm.info.note}\n`);
    if (opts.json) {
      atomicWriteFile(opts.json as string, JSON.stringify(lossesJson(r, opts.model as string), null, 1) + '\n');
      process.stderr.write(`wrote ${opts.json}\n`);
    }
  } finally {
    await lm.dispose();
  }
  return 0;
}

/** --config's keys (a JSON file), so that --base can join them. */
function readConfigFile(file: string | undefined): Record<string, unknown> {
  if (!file) return {};
  if (!fs.existsSync(file)) throw new BadInputError(`no such config file: ${file}`);
  try {
    const v = JSON.parse(fs.readFileSync(file, 'utf8'));
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch (e) {
    throw new BadInputError(`${file}: not a JSON object (${(e as Error).message.split('\n')[0]})`);
  }
}

/** `--adapter NAME=PATH` (repeated): the adapters in first-seen order, each with its paths. */
export function parseAdapters(specs: string[]): { name: string; data: string[] }[] {
  const out: { name: string; data: string[] }[] = [];
  for (const s of specs) {
    const eq = s.indexOf('=');
    if (eq <= 0 || eq === s.length - 1) throw new BadInputError(`--adapter ${s}: expected NAME=PATH (e.g. --adapter python=src/)`);
    const name = s.slice(0, eq), data = s.slice(eq + 1);
    const known = out.find((a) => a.name === name);
    if (known) known.data.push(data);
    else out.push({ name, data: [data] });
  }
  return out;
}

function specOf(o: Record<string, unknown>): TloraRunSpec {
  if (!o.model) throw new BadInputError('train --tlora needs --model BASE (the GPT-2 the adapters sit on)');
  if (o.steps === undefined) throw new BadInputError('train --tlora needs --steps N (steps of each adapter phase)');
  return {
    base: o.model as string,
    adapters: parseAdapters((o.adapter as string[] | undefined) ?? []),
    rank: o.rank as number | undefined,
    alpha: o.alpha as number | undefined,
    options: {
      steps: o.steps as number,
      routerSteps: o['router-steps'] as number | undefined,
      lr: o.lr as number | undefined,
      routerLr: o['router-lr'] as number | undefined,
      batchSize: o['batch-size'] as number | undefined,
      routerBatchSize: o['router-batch-size'] as number | undefined,
      seqLen: o['seq-len'] as number | undefined,
      routerSeqLen: o['router-seq-len'] as number | undefined,
      distillWeight: o['distill-weight'] as number | undefined,
      seed: o.seed as number | undefined,
      evalInterval: o['eval-interval'] as number | undefined,
      evalIters: o['eval-iters'] as number | undefined,
      out: (o.out as string | undefined) ?? TLORA_TRAIN_DEFAULTS.out,
    },
  };
}

/** Steps and evaluations on stderr; --metrics-jsonl gets the records as the normal trainer writes them. */
function printer(total: number, metrics: number | null): (e: TrainEvent) => void {
  return (e) => {
    if (e.kind === 'step') process.stderr.write(`step ${e.step + 1}/${total} loss ${e.loss.toFixed(4)} grad ${e.grad_norm.toFixed(3)}\n`);
    else if (e.kind === 'eval') process.stderr.write(`step ${e.step}: val_loss ${e.val_loss.toFixed(4)}${e.val_by_source ? ` (${Object.entries(e.val_by_source).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(', ')})` : ''}\n`);
    else if (e.kind === 'status' && e.message) process.stderr.write(`${e.message}\n`);
    if (metrics !== null && (e.kind === 'step' || e.kind === 'eval')) {
      const { runId: _r, kind, ...rest } = e;
      fs.writeSync(metrics, JSON.stringify(kind === 'step' ? rest : { kind, ...rest }) + '\n');
    }
  };
}

export async function runTloraTrain(argv: string[]): Promise<number> {
  const debug = argv.includes('--debug');
  try {
    const o = parseArgs(argv, TRAIN_ARGS, 'train --tlora');
    if (o.help) {
      process.stdout.write(TLORA_TRAIN_USAGE + '\n');
      return 0;
    }
    checkOut(o['metrics-jsonl'] as string | undefined, '--metrics-jsonl');
    const inputs = await prepareTloraInputs(specOf(o)); // bad input fails before a backend is probed
    await initBackend(tfjsChoiceOf((o.backend as string | undefined) ?? process.env.HEADLENS_BACKEND ?? 'auto'));
    const metrics = o['metrics-jsonl'] ? fs.openSync(o['metrics-jsonl'] as string, 'w') : null;
    const total = inputs.domains.length * inputs.opts.steps + inputs.opts.routerSteps;
    const run = buildTloraRun(inputs, `cli-${process.pid}`, printer(total, metrics));
    const onSignal = () => {
      process.stderr.write('\nstopping after the current step…\n');
      run.trainer.control.stopRequested = true;
    };
    process.once('SIGINT', onSignal);
    try {
      const r = await run.trainer.run();
      const where = r.files ? `; wrote ${r.files.pt}, ${r.files.safetensors} and ${r.files.sidecar}` : ' (no --out: nothing written)';
      process.stderr.write(`${r.stopped ? `stopped at step ${run.trainer.step}` : `done: ${run.trainer.step} steps`}${where}\n`);
    } finally {
      process.removeListener('SIGINT', onSignal);
      if (metrics !== null) fs.closeSync(metrics);
      run.dispose();
    }
    return 0;
  } catch (e) {
    return reportError(e, debug);
  }
}
