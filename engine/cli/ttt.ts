/**
 * `headlens ttt`: LoRA test-time training of one document on a causal model, as parameter-golf
 * PR #1784 scores its validation set (engine/ttt/lora.ts). Every option defaults to the record's
 * value. Inputs are read and checked before the runtime starts (a bad value is one line, exit 2);
 * per-chunk progress goes to stderr, a table and the totals to stdout, the JSON to --json:
 *   {chunks: [{chunk, loss_before, loss_after, loss_base, window_start, start, end, trained, delta_fro}],
 *    val_loss, val_bpb, val_loss_base, tokens, bytes, settings}
 * `--lora-init F` starts from adapters named as the fixture's `.ttt.safetensors` (`lora_init.<module>.A/B`);
 * `--lora-out F` writes the trained ones (`lora_final.*`) and the next document's warm start (`lora_init.*.A`).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BadInputError } from '../errors';
import { familyDef } from '../models/registry';
import { atomicWriteFile } from '../io/safetensors';
import { parseArgs, type ArgSpec } from './args';
import { readJsonInput } from './ids';
import { readModel, setupModel } from './load';
import { adapterSpecs, ADAPTER_MODULES, type AdapterModule } from '../ttt/adapters';
import { byteCounterFor } from '../ttt/bytes';
import { readLoraInit, writeAdapters } from '../ttt/files';
import { resolveSettings, runTtt, runnerScorer, type TttResult, type TttSettings } from '../ttt/lora';
import { deltaOf, documentOf, documentOfIds, trainingModelOf, type TttDocument } from '../ttt/session';
import type { LoadedModel } from '../runtime/loaded';

export const TTT_USAGE = `usage:
  headlens ttt --model P [--config C] (--text-file F | --ids DOC.json) [--chunk 48] [--eval-len 2048]
               [--rank 128] [--alpha 144] [--lr 1e-4] [--betas 0,0.999] [--eps 1e-10] [--weight-decay 1.0]
               [--modules q,k,v,o,mlp,head] [--seed N] [--lora-init F.safetensors] [--lora-out F.safetensors] [--json OUT]
  DOC.json: one document as a list of ids. Defaults are parameter-golf #1784's (eval length at most the model's context).`;

const SPEC: ArgSpec = {
  backend: 'string', threads: 'int', debug: 'boolean', help: 'boolean', model: 'string', config: 'string', tokenizer: 'string', json: 'string',
  'text-file': 'string', ids: 'string', chunk: 'int', 'eval-len': 'int', rank: 'int', alpha: 'float', lr: 'float', betas: 'string', eps: 'float',
  'weight-decay': 'float', modules: 'string', seed: 'int', 'lora-init': 'string', 'lora-out': 'string',
};

type Opts = Record<string, unknown>;

function parseBetas(raw: string | undefined): [number, number] | undefined {
  if (raw === undefined) return undefined;
  const parts = raw.split(',').map((x) => Number(x.trim()));
  if (parts.length !== 2 || parts.some((x) => raw.trim() === '' || !Number.isFinite(x))) throw new BadInputError(`ttt: --betas takes two numbers separated by a comma (e.g. 0,0.999), got '${raw}'`);
  return parts as [number, number];
}

function parseModules(raw: string | undefined): AdapterModule[] | undefined {
  if (raw === undefined) return undefined;
  const mods = raw.split(',').map((x) => x.trim()).filter(Boolean);
  const bad = mods.find((m) => !ADAPTER_MODULES.includes(m as AdapterModule));
  if (bad !== undefined || !mods.length) throw new BadInputError(`ttt: --modules takes some of ${ADAPTER_MODULES.join(',')}, got '${raw}'`);
  return mods as AdapterModule[];
}

function givenSettings(opts: Opts): Partial<TttSettings> {
  return {
    chunk: opts.chunk as number | undefined,
    evalLen: opts['eval-len'] as number | undefined,
    rank: opts.rank as number | undefined,
    alpha: opts.alpha as number | undefined,
    lr: opts.lr as number | undefined,
    betas: parseBetas(opts.betas as string | undefined),
    eps: opts.eps as number | undefined,
    weightDecay: opts['weight-decay'] as number | undefined,
    modules: parseModules(opts.modules as string | undefined),
    seed: opts.seed as number | undefined,
  };
}

/** DOC.json: a flat list of ids of the model's vocabulary. */
function readDocIds(file: string, vocab: number): number[] {
  const ids = readJsonInput(file);
  if (!Array.isArray(ids)) throw new BadInputError(`${file}: expected one document as a list of token ids, e.g. [1, 136, 26]`);
  const bad = ids.findIndex((v) => !Number.isInteger(v) || v < 0 || v >= vocab);
  if (bad >= 0) throw new BadInputError(`${file}: id ${JSON.stringify(ids[bad])} at [${bad}] is not an integer in [0, ${vocab}) (the model's vocabulary)`);
  if (ids.length < 2) throw new BadInputError(`${file}: test-time training needs at least 2 ids, got ${ids.length}`);
  return ids as number[];
}

function readText(file: string): string {
  if (!fs.existsSync(file)) throw new BadInputError(`no such file: ${file}`);
  if (fs.statSync(file).isDirectory()) throw new BadInputError(`${file} is a folder: --text-file takes a text file`);
  const text = fs.readFileSync(file, 'utf8');
  if (!text) throw new BadInputError(`${file} is empty: nothing to train on`);
  return text;
}

function checkOut(file: string | undefined, flag: string): void {
  if (!file) return;
  const dir = path.dirname(path.resolve(file));
  if (!fs.existsSync(dir)) throw new BadInputError(`cannot write ${file} (${flag}): folder ${dir} does not exist`);
}

const fmt = (v: number | null, d = 4) => (v === null || !Number.isFinite(v) ? '—' : v.toFixed(d));

export async function runTttCommand(argv: string[]): Promise<number> {
  const opts = parseArgs(argv, SPEC, 'ttt');
  if (opts.help) {
    process.stdout.write(TTT_USAGE + '\n');
    return 0;
  }
  if (!opts.model) throw new BadInputError('ttt needs --model P');
  if ((opts['text-file'] === undefined) === (opts.ids === undefined)) throw new BadInputError('ttt needs exactly one of --text-file F or --ids DOC.json');
  for (const [k, flag] of [['json', '--json'], ['lora-out', '--lora-out']] as const) checkOut(opts[k] as string | undefined, flag);
  const ck = await readModel(opts);
  const def = familyDef(ck.config.family);
  const given = givenSettings(opts);
  const checked = resolveSettings(given, ck.config);
  // --lora-init's adapters bring their rank (--rank, when given, must agree with it)
  const init = opts['lora-init'] ? readLoraInit(opts['lora-init'] as string, adapterSpecs(def, ck.config, checked.modules), given.rank, adapterSpecs(def, ck.config, ADAPTER_MODULES)) : undefined;
  const settings: TttSettings = init ? { ...checked, rank: init.rank } : checked;
  const text = opts['text-file'] !== undefined ? readText(opts['text-file'] as string) : undefined;
  const docIds = opts.ids !== undefined ? readDocIds(opts.ids as string, ck.config.vocab_size) : undefined;
  const lm = await setupModel(opts, ck);
  try {
    const doc = text !== undefined ? documentOf(lm.tokenizer, text) : documentOfIds(lm.tokenizer, docIds!);
    const result = await trainDocument(lm, doc, settings, init?.values);
    report(result, lm, doc, opts);
  } finally {
    await lm.dispose();
  }
  return 0;
}

/** The run on the loaded model, Ctrl-C stopping it between chunks. */
async function trainDocument(lm: LoadedModel, doc: TttDocument, settings: TttSettings, start: TttResult['final'] | undefined): Promise<TttResult> {
  const token = { cancelled: false };
  process.once('SIGINT', () => (token.cancelled = true));
  const { model, owned } = await trainingModelOf(lm);
  const t0 = Date.now();
  process.stderr.write(`scoring ${doc.ids.length} tokens with the base model (${lm.runner.name}), then test-time training on TensorFlow.js\n`);
  try {
    return await runTtt({
      def: familyDef(lm.config.family),
      model,
      score: runnerScorer(lm.runner),
      doc: doc.ids,
      settings,
      start,
      bytes: byteCounterFor(lm.tokenizer, lm.config.vocab_size),
      token,
      onChunk: (c, of) => process.stderr.write(`\rchunk ${c.chunk + 1}/${of}: loss ${fmt(c.lossBefore)} → ${fmt(c.lossAfter)} (base ${fmt(c.lossBase)}), ${((Date.now() - t0) / 1000).toFixed(1)} s   `),
    });
  } finally {
    process.stderr.write('\n');
    if (owned) model.dispose();
  }
}

function report(r: TttResult, lm: LoadedModel, doc: TttDocument, opts: Opts): void {
  const layers = familyDef(lm.config.family).layerCount(lm.config);
  const rows = r.chunks.map((c) => `${String(c.chunk).padStart(5)}  ${`${c.start}–${c.end}`.padEnd(11)} ${String(c.windowStart).padStart(6)}  ${fmt(c.lossBefore).padStart(9)} ${fmt(c.lossAfter).padStart(9)} ${fmt(c.lossBase).padStart(9)}  ${fmt(Math.max(...c.deltaFro), 5)}${c.trained ? '' : '  (last: scored, not trained)'}`);
  process.stdout.write(['chunk  positions   window     before     after      base  max ‖ΔW‖', ...rows].join('\n') + '\n');
  const bpb = r.valBpb === null ? '' : `, ${fmt(r.valBpb)} bits per byte`;
  process.stdout.write(`${r.scoredTokens} tokens in ${r.chunks.length} chunks of ${r.settings.chunk}: val_loss ${fmt(r.valLoss)}${bpb} with TTT, ${fmt(r.valLossBase)} without (rank ${r.settings.rank}, alpha ${r.settings.alpha}, lr ${r.settings.lr}; ${lm.runner.name})\n`);
  if (opts.json) {
    const json = {
      chunks: r.chunks.map((c) => ({ chunk: c.chunk, loss_before: c.lossBefore, loss_after: c.lossAfter, loss_base: c.lossBase, window_start: c.windowStart, start: c.start, end: c.end, trained: c.trained, delta_fro: deltaOf(r.specs, c.deltaFro, layers) })),
      val_loss: r.valLoss,
      val_bpb: r.valBpb,
      val_loss_base: r.valLossBase,
      tokens: doc.ids.length,
      bytes: r.bytes,
      settings: r.settings,
    };
    atomicWriteFile(opts.json as string, JSON.stringify(json, null, 1) + '\n');
    process.stderr.write(`wrote ${opts.json}\n`);
  }
  if (opts['lora-out']) {
    writeAdapters(opts['lora-out'] as string, r.final);
    process.stderr.write(`wrote ${opts['lora-out']}\n`);
  }
}
