/**
 * `headlens ponder` — PonderTTT on a document, and `headlens ponder train` (also reached as
 * `headlens train --ponder`) — its TTT layer trained with the base frozen:
 *   headlens ponder --model BASE --ttt TTT.safetensors (--text-file F | --text S | --ids IDS.json)
 *     [--chunk 16] [--target-rate R | --budget B] [--ttt-config C] [--json OUT]
 *   headlens ponder train --model BASE [--ttt TTT.safetensors] [--ttt-config C] [--chunk 16]
 *     [--ssl-weight 0.1] (--data PATH… | --overfit-batch F) --steps N [train options] [--out DIR]
 * Every input is read and checked first (a TTT layer that does not fit the base names the tensor,
 * exit 2), then the runtime starts. Per chunk one line: UPDATE/SKIP, signal, τ; then the
 * perplexity gated vs always-update vs never-update.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TokenInfo, TrainEvent } from '../protocol';
import { BadInputError } from '../errors';
import { atomicWriteFile } from '../io/safetensors';
import { readCheckpoint, readGivenConfig } from '../io/checkpoint';
import { tokenizerFor } from '../runtime/loaded';
import { initRuntime } from '../runtime/select';
import { initBackend, tfjsChoiceOf } from '../runtime/tfjs/backend';
import { TRAIN_ARGS, specFromArgs } from '../train/cli';
import { readTttCheckpoint } from '../ponder/checkpoint';
import { budgetToUpdateRate } from '../ponder/gate';
import { createPonderEngine, encodeResult, ponderDocument, tokenSignals, trainedChunk, type ChunkResult, type PonderResult } from '../ponder/run';
import { buildPonderRun, preparePonderTraining } from '../ponder/train';
import { parseArgs, type ArgSpec } from './args';
import { backendOf } from './load';

export const PONDER_USAGE = `usage:
  headlens ponder --model BASE --ttt TTT.safetensors (--text-file F | --text S | --ids IDS.json)
                  [--chunk 16] [--target-rate 0.5 | --budget 2.0] [--ttt-config C] [--json OUT]
      PonderTTT: the TTT layer on the frozen base, per chunk UPDATE or SKIP by the reconstruction
      gate; perplexity gated vs always-update vs never-update (each chunk run on its own)
  headlens ponder train --model BASE [--ttt TTT.safetensors | --ttt-config C] [--chunk 16] [--ssl-weight 0.1]
                  (--data PATH… | --overfit-batch F) --steps N [--lr 3e-4] [--batch-size 8] [--out DIR] …
      trains the TTT layer with the base frozen (same options as headlens train; also: headlens train --ponder)`;

const RUN_ARGS: ArgSpec = {
  model: 'string', config: 'string', ttt: 'string', 'ttt-config': 'string', text: 'string', 'text-file': 'string', ids: 'string',
  chunk: 'int', 'target-rate': 'float', budget: 'float', json: 'string', backend: 'string', threads: 'int', tokenizer: 'string', debug: 'boolean', help: 'boolean',
};

export async function runPonder(argv: string[]): Promise<number> {
  if (argv[0] === 'train') return runPonderTrain(argv.slice(1));
  const o = parseArgs(argv, RUN_ARGS, 'ponder');
  if (o.help) return usage();
  if (!o.model) throw new BadInputError('ponder needs --model BASE (the frozen base the TTT layer sits on)');
  if (!o.ttt) throw new BadInputError('ponder needs --ttt TTT.safetensors (the PonderTTT TTT layer)');
  const targetRate = rateOf(o);
  const json = o.json as string | undefined;
  if (json && !fs.existsSync(path.dirname(path.resolve(json)))) throw new BadInputError(`cannot write ${json}: folder ${path.dirname(path.resolve(json))} does not exist`);
  const base = await readCheckpoint({ path: o.model as string, config: o.config as string | undefined });
  const ttt = readTttCheckpoint(o.ttt as string, { base: { config: base.config, path: o.model as string }, given: tttConfigArg(o['ttt-config']) });
  const { tokenizer } = tokenizerFor(o.model as string, o.tokenizer as string | undefined);
  const input = readInput(o, base.config.vocab_size);
  const tokens = input.text !== undefined ? tokenizer.tokenize(input.text) : input.ids!.map((id, index) => ({ index, id, text: tokenizer.tokenText(id), start: 0, end: 0 }));
  const ids = Int32Array.from(tokens, (t) => t.id);
  const runtime = await initRuntime(backendOf(o), (o.threads as number | undefined) ?? 0);
  const engine = await createPonderEngine(base, ttt, runtime, (m) => process.stderr.write(`headlens: ${m}\n`));
  try {
    if (ttt.note) process.stderr.write(`note: ${ttt.note}\n`);
    const token = { cancelled: false };
    process.once('SIGINT', () => (token.cancelled = true));
    const r = await ponderDocument(engine, ids, { chunk: (o.chunk as number | undefined) ?? trainedChunk(ttt), targetRate }, token, (c) => process.stdout.write(chunkLine(c) + '\n'));
    const pct = (x: number) => `${(100 * x).toFixed(0)} %`;
    process.stdout.write(
      `perplexity: gated ${r.ppl.gated.toFixed(3)} (UPDATE ${pct(r.updateRate)} of ${r.chunks.length} chunks, target ${pct(r.targetRate)}), ` +
        `always-update ${r.ppl.always.toFixed(3)}, never-update ${r.ppl.never.toFixed(3)}` +
        ` — chunks of ${r.chunk} tokens, each on its own${r.unscored ? `, ${r.unscored} token(s) at the end unscored` : ''} (${r.backend})\n`,
    );
    if (json) {
      atomicWriteFile(json, JSON.stringify(plainResult(r, tokens, ttt.note), null, 1) + '\n');
      process.stderr.write(`wrote ${json}\n`);
    }
  } finally {
    await engine.dispose();
  }
  return 0;
}

/** The protocol's result with plain arrays (null where not scored) instead of encoded ones. */
function plainResult(r: PonderResult, tokens: TokenInfo[], note?: string): Record<string, unknown> {
  const plain = (a: Float32Array) => Array.from(a, (v) => (Number.isFinite(v) ? v : null));
  const s = tokenSignals(r, tokens.length);
  return {
    ...encodeResult(r, tokens, note),
    nll: { gated: plain(r.nll.gated), always: plain(r.nll.always), never: plain(r.nll.never) },
    signals: { tttUpdate: plain(s.tttUpdate), tttSignal: plain(s.tttSignal) },
  };
}

function chunkLine(c: ChunkResult): string {
  const tau = c.tau === null ? '(calibrating)' : c.tau.toFixed(4);
  return `chunk ${String(c.index).padStart(4)}  tokens ${c.start}–${c.end}  ${c.decision.padEnd(6)}  signal ${c.signal.toFixed(4)}  τ ${tau}  loss update ${c.lossUpdate.toFixed(3)} skip ${c.lossSkip.toFixed(3)}`;
}

/** --ttt-config: a JSON file, or the JSON object itself ('{"num_heads": 2, …}'). */
function tttConfigArg(v: unknown): Record<string, unknown> {
  if (typeof v !== 'string') return {};
  if (!v.trim().startsWith('{')) return readGivenConfig(v);
  try {
    return readGivenConfig(JSON.parse(v) as Record<string, unknown>);
  } catch (e) {
    throw new BadInputError(`--ttt-config: not valid JSON (${(e as Error).message.split('\n')[0]})`);
  }
}

function rateOf(o: Record<string, unknown>): number | undefined {
  if (o['target-rate'] !== undefined && o.budget !== undefined) throw new BadInputError('ponder: give --target-rate or --budget, not both');
  if (o.budget !== undefined) return budgetToUpdateRate(o.budget as number);
  const r = o['target-rate'] as number | undefined;
  if (r !== undefined && !(r >= 0 && r <= 1)) throw new BadInputError(`ponder: --target-rate must be in [0, 1], got ${r}`);
  return r;
}

/** --text, --text-file, or --ids: a JSON list of ids (or a list holding one such list). */
function readInput(o: Record<string, unknown>, vocab: number): { text?: string; ids?: number[] } {
  const given = ['text', 'text-file', 'ids'].filter((k) => o[k] !== undefined);
  if (given.length !== 1) throw new BadInputError('ponder needs exactly one of --text S, --text-file F or --ids IDS.json');
  if (o.text !== undefined) {
    if (!o.text) throw new BadInputError('nothing to run: the text is empty');
    return { text: o.text as string };
  }
  const file = (o['text-file'] ?? o.ids) as string;
  if (!fs.existsSync(file)) throw new BadInputError(`no such file: ${file}`);
  if (fs.statSync(file).isDirectory()) throw new BadInputError(`${file} is a folder, not a file`);
  const raw = fs.readFileSync(file, 'utf8');
  if (o['text-file'] !== undefined) {
    if (!raw) throw new BadInputError(`nothing to run: ${file} is empty`);
    return { text: raw };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (e) {
    throw new BadInputError(`${file}: not valid JSON (${(e as Error).message.split('\n')[0]})`);
  }
  const ids = Array.isArray(parsed) && parsed.length === 1 && Array.isArray(parsed[0]) ? parsed[0] : parsed;
  if (!Array.isArray(ids) || !ids.length) throw new BadInputError(`${file}: expected a list of token ids, e.g. [15496, 995] (or [[…]] with one sequence)`);
  ids.forEach((v, i) => {
    if (!Number.isInteger(v) || v < 0 || v >= vocab) throw new BadInputError(`${file}: id ${JSON.stringify(v)} at [${i}] is not an integer in [0, ${vocab}) (the base's vocabulary)`);
  });
  return { ids: ids as number[] };
}

/** headlens train's options and ours (built on use: train/cli.ts imports this module too). */
const trainPonderArgs = (): ArgSpec => ({ ...TRAIN_ARGS, model: 'string', ttt: 'string', 'ttt-config': 'string', chunk: 'int', 'ssl-weight': 'float', ponder: 'boolean' });

/** `headlens ponder train` / `headlens train --ponder`. */
export async function runPonderTrain(argv: string[]): Promise<number> {
  const o = parseArgs(argv, trainPonderArgs(), 'ponder train');
  if (o.help) return usage();
  for (const k of ['init', 'family']) if (o[k] !== undefined) throw new BadInputError(`ponder train: --${k} does not apply (the base is --model, the TTT layer --ttt)`);
  if (!o.model) throw new BadInputError('ponder train needs --model BASE (the frozen base)');
  if (o['seq-len'] !== undefined) throw new BadInputError('ponder train: each training sequence is one chunk: give --chunk N instead of --seq-len');
  const sslWeight = o['ssl-weight'] as number | undefined;
  if (sslWeight !== undefined && !(sslWeight >= 0)) throw new BadInputError(`ponder train: --ssl-weight must be ≥ 0, got ${sslWeight}`);
  const run = specFromArgs(o);
  const metricsFile = o['metrics-jsonl'] as string | undefined;
  if (metricsFile && !fs.existsSync(path.dirname(path.resolve(metricsFile)))) throw new BadInputError(`--metrics-jsonl ${metricsFile}: folder ${path.dirname(path.resolve(metricsFile))} does not exist`);
  const inputs = await preparePonderTraining({
    base: o.model as string, baseConfig: o.config as string | undefined, ttt: o.ttt as string | undefined, tttConfig: tttConfigArg(o['ttt-config']),
    chunk: o.chunk as number | undefined, sslWeight, data: run.data, overfitBatch: run.overfitBatch, valRatio: run.valRatio, resume: run.resume, options: run.options,
  });
  await initBackend(tfjsChoiceOf((o.backend as string | undefined) ?? process.env.HEADLENS_BACKEND ?? 'auto'));
  const metrics = metricsFile ? fs.openSync(metricsFile, run.resume ? 'a' : 'w') : null;
  const prepared = await buildPonderRun(inputs, `cli-${process.pid}`, (e) => {
    printEvent(e, inputs.run.opts.steps);
    if (metrics !== null && e.kind !== 'status') {
      const { runId: _r, kind, ...rest } = e;
      fs.writeSync(metrics, JSON.stringify(kind === 'step' ? rest : { kind, ...rest }) + '\n');
    }
  });
  process.stderr.write(`${prepared.note}\n`);
  const onSignal = () => {
    process.stderr.write('\nstopping after the current micro-batch…\n');
    prepared.trainer.control.stopRequested = true;
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  if (o['stop-after'] !== undefined) prepared.trainer.stopAfter = o['stop-after'] as number;
  try {
    const result = await prepared.trainer.run();
    const where = result.checkpoint ? `; TTT layer ${result.checkpoint}` : '';
    process.stderr.write(result.stopped ? `stopped at step ${prepared.trainer.step}${where}; resume with --resume ${result.checkpoint}\n` : `done: ${prepared.trainer.step} steps, best val_loss ${prepared.trainer.bestValLoss?.toFixed(4) ?? '—'}${where}\n`);
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    if (metrics !== null) fs.closeSync(metrics);
    prepared.dispose();
  }
  return 0;
}

function printEvent(e: TrainEvent, total: number): void {
  if (e.kind === 'step') process.stderr.write(`step ${e.step + 1}/${total} loss ${e.loss.toFixed(4)} lr ${e.lr.toExponential(2)} grad ${e.grad_norm.toFixed(3)} ${e.tokens_per_s.toFixed(0)} tok/s\n`);
  else if (e.kind === 'eval') process.stderr.write(`step ${e.step}: val_loss ${e.val_loss.toFixed(4)}\n`);
}

function usage(): number {
  process.stdout.write(PONDER_USAGE + '\n');
  return 0;
}
