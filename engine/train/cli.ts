/**
 * `headlens train` — the trainer's command line (contract in README):
 *   headlens train [--init P] [--config C] [--family F] [--data PATH…] --steps N [--lr 3e-4]
 *     [--min-lr 3e-5] [--warmup 100] [--batch-size 8] [--seq-len 256] [--grad-accum 1]
 *     [--weight-decay 0.1] [--betas 0.9,0.95] [--clip 1.0] [--eval-interval N] [--seed S]
 *     [--out DIR] [--resume CKPT] [--metrics-jsonl FILE] [--overfit-batch EXPECTED.safetensors]
 * A progress bar on a terminal, plain lines otherwise. Ctrl-C stops after the current micro-batch
 * and leaves a checkpoint.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Family, TrainEvent } from '../protocol';
import { FAMILIES } from '../protocol';
import { BadInputError, reportError } from '../errors';
import { parseArgs } from '../cli/args';
import { initBackend, tfjsChoiceOf } from '../runtime/tfjs/backend';
import { buildRun, prepareInputs, type RunSpec } from './setup';
import { runPonderTrain } from '../cli/ponder';
import { runTloraTrain } from '../cli/tlora';

const USAGE = `usage: headlens train [--init P] [--config C] [--family F] [--data PATH…] --steps N
  [--lr 3e-4] [--min-lr 3e-5] [--warmup 100] [--batch-size 8] [--seq-len 256] [--grad-accum 1]
  [--weight-decay 0.1] [--betas 0.9,0.95] [--clip 1.0] [--eval-interval N] [--seed S] [--out DIR]
  [--resume CKPT] [--metrics-jsonl FILE] [--overfit-batch EXPECTED.safetensors]
  [--eval-iters 5] [--probe-interval 10] [--checkpoint-interval 50] [--micro-tokens N (default 65536/width, 256…2048)] [--backend B]
  [--stop-after K]   stop as if interrupted after K steps (leaves a checkpoint to --resume from)
  --ponder --model BASE [--ttt T] [--chunk 16]   train a PonderTTT TTT layer on a frozen base (headlens ponder --help)
  --tlora --model BASE --adapter NAME=PATH …     Temporal LoRA: adapters per domain, then the router (headlens train --tlora --help)
--data takes files, folders and globs; PATH@WEIGHT mixes several sources by weight.
--steps is the total: --resume CKPT continues to it, with the saved run's options, data and --out
unless given again (a-gpt .pt: its TrainConfig and AdamW state).`;

export const TRAIN_ARGS = {
  init: 'string', config: 'string', family: 'string', data: 'list', steps: 'int', lr: 'float', 'min-lr': 'float',
  warmup: 'int', 'batch-size': 'int', 'seq-len': 'int', 'grad-accum': 'int', 'weight-decay': 'float', betas: 'string',
  clip: 'float', 'eval-interval': 'int', 'eval-iters': 'int', seed: 'int', out: 'string', resume: 'string',
  'metrics-jsonl': 'string', 'overfit-batch': 'string', 'probe-interval': 'int', 'checkpoint-interval': 'int',
  'micro-tokens': 'int', backend: 'string', debug: 'boolean', help: 'boolean', 'val-ratio': 'float', 'stop-after': 'int',
} as const;

/** CLI flags → a run spec (validated: one line per bad value). */
export function specFromArgs(o: Record<string, unknown>): RunSpec {
  if (o.steps === undefined) throw new BadInputError('train needs --steps N');
  const positive = (k: string, v: unknown) => {
    if (v !== undefined && !((v as number) > 0)) throw new BadInputError(`train: --${k} must be > 0, got ${v}`);
  };
  for (const k of ['steps', 'lr', 'batch-size', 'seq-len', 'grad-accum', 'eval-iters', 'micro-tokens', 'clip']) positive(k, o[k]);
  for (const k of ['min-lr', 'warmup', 'weight-decay', 'eval-interval', 'probe-interval']) {
    if (o[k] !== undefined && (o[k] as number) < 0) throw new BadInputError(`train: --${k} must be ≥ 0, got ${o[k]}`);
  }
  let betas: [number, number] | undefined;
  if (o.betas !== undefined) {
    const parts = String(o.betas).split(',').map((s) => Number(s.trim()));
    if (parts.length !== 2 || !parts.every((b) => Number.isFinite(b) && b >= 0 && b < 1)) throw new BadInputError(`train: --betas must be two numbers in [0, 1) like 0.9,0.95, got '${o.betas}'`);
    betas = parts as [number, number];
  }
  if (o.family !== undefined && !FAMILIES.includes(o.family as Family)) throw new BadInputError(`train: --family must be one of ${FAMILIES.join(', ')}, got '${o.family}'`);
  const vr = o['val-ratio'] as number | undefined;
  if (vr !== undefined && !(vr > 0 && vr < 1)) throw new BadInputError(`train: --val-ratio must be in (0, 1), got ${vr}`);
  return {
    init: o.init as string | undefined,
    config: o.config as string | undefined,
    family: o.family as Family | undefined,
    data: (o.data as string[] | undefined) ?? [],
    resume: o.resume as string | undefined,
    overfitBatch: o['overfit-batch'] as string | undefined,
    valRatio: vr,
    options: {
      steps: o.steps as number,
      lr: o.lr as number | undefined,
      minLr: o['min-lr'] as number | undefined,
      warmup: o.warmup as number | undefined,
      batchSize: o['batch-size'] as number | undefined,
      seqLen: o['seq-len'] as number | undefined,
      gradAccum: o['grad-accum'] as number | undefined,
      weightDecay: o['weight-decay'] as number | undefined,
      betas,
      clip: o.clip as number | undefined,
      evalInterval: o['eval-interval'] as number | undefined,
      evalIters: o['eval-iters'] as number | undefined,
      seed: o.seed as number | undefined,
      out: o.out as string | undefined,
      probeInterval: o['probe-interval'] as number | undefined,
      checkpointInterval: o['checkpoint-interval'] as number | undefined,
      microTokens: o['micro-tokens'] as number | undefined,
    },
  };
}

/** A one-line terminal progress bar, or plain lines when not a TTY. */
function progressPrinter(total: number): (e: TrainEvent) => void {
  const tty = process.stderr.isTTY;
  let lastLine = 0;
  return (e) => {
    if (e.kind === 'step') {
      const done = e.step + 1;
      const text = `step ${done}/${total} loss ${e.loss.toFixed(4)} lr ${e.lr.toExponential(2)} grad ${e.grad_norm.toFixed(3)} ${e.tokens_per_s.toFixed(0)} tok/s`;
      if (tty) {
        const width = 24, filled = Math.round((done / total) * width);
        process.stderr.write(`\r[${'#'.repeat(filled)}${' '.repeat(width - filled)}] ${text}\x1b[K`);
      } else if (done === total || Date.now() - lastLine > 2000 || done <= 3) {
        process.stderr.write(text + '\n');
        lastLine = Date.now();
      }
    } else if (e.kind === 'eval') {
      process.stderr.write(`${tty ? '\n' : ''}step ${e.step}: val_loss ${e.val_loss.toFixed(4)}\n`);
    }
  };
}

export async function runTrainCommand(argv: string[]): Promise<number> {
  const debug = argv.includes('--debug');
  try {
    if (argv.includes('--ponder')) return await runPonderTrain(argv); // PonderTTT's TTT layer on a frozen base (cli/ponder.ts)
    if (argv.includes('--tlora')) return await runTloraTrain(argv); // Temporal LoRA's adapters and router (cli/tlora.ts)
    const o = parseArgs(argv, TRAIN_ARGS, 'train');
    if (o.help) {
      process.stdout.write(USAGE + '\n');
      return 0;
    }
    const spec = specFromArgs(o);
    const metricsFile = o['metrics-jsonl'] as string | undefined;
    if (metricsFile) {
      const dir = path.dirname(path.resolve(metricsFile));
      if (!fs.existsSync(dir)) throw new BadInputError(`--metrics-jsonl ${metricsFile}: folder ${dir} does not exist`);
    }
    const inputs = prepareInputs(spec); // bad data or paths fail before a backend is probed
    await initBackend(tfjsChoiceOf((o.backend as string | undefined) ?? process.env.HEADLENS_BACKEND ?? 'auto'));
    const metrics = metricsFile ? fs.openSync(metricsFile, spec.resume ? 'a' : 'w') : null;
    const print = progressPrinter(spec.options.steps);
    const run = await buildRun(inputs, `cli-${process.pid}`, (e) => {
      print(e);
      if (metrics !== null && (e.kind === 'step' || e.kind === 'eval' || e.kind === 'probe')) {
        const { runId: _r, kind, ...rest } = e;
        fs.writeSync(metrics, JSON.stringify(kind === 'step' ? rest : { kind, ...rest }) + '\n');
      }
    });
    if (run.note) process.stderr.write(`${run.note}\n`);
    // Ctrl-C or a polite kill: finish the current micro-batch, save, exit 0 (a second Ctrl-C kills)
    const onSignal = () => {
      process.stderr.write('\nstopping after the current micro-batch…\n');
      run.trainer.control.stopRequested = true;
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    if (o['stop-after'] !== undefined) run.trainer.stopAfter = o['stop-after'] as number;
    const result = await run.trainer.run();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    if (metrics !== null) fs.closeSync(metrics);
    if (process.stderr.isTTY) process.stderr.write('\n');
    const where = result.checkpoint ? `; checkpoint ${result.checkpoint}` : '';
    process.stderr.write(result.stopped ? `stopped at step ${run.trainer.step}${where}; resume with --resume ${result.checkpoint}\n` : `done: ${run.trainer.step} steps, best val_loss ${run.trainer.bestValLoss?.toFixed(4) ?? '—'}${where}\n`);
    run.dispose();
    return 0;
  } catch (e) {
    return reportError(e, debug);
  }
}
