/**
 * `headlens eval ppl | mc` and `headlens compare` (contracts in --help). Inputs are read and checked
 * first, then the runtime starts; progress goes to stderr, the JSON result to --json (and a short
 * summary to stdout). Ctrl-C stops cleanly between windows.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BadInputError, type CancelToken } from '../errors';
import { parseArgs, type ArgSpec } from './args';
import { readModel, setupModel } from './load';
import { evalPpl, readPplDocuments } from '../eval/ppl';
import { evalMc, readMcFile } from '../eval/mc';
import { compareModels } from '../eval/compare';
import { atomicWriteFile } from '../io/safetensors';

const COMMON: ArgSpec = { backend: 'string', threads: 'int', debug: 'boolean', help: 'boolean', model: 'string', config: 'string', tokenizer: 'string', json: 'string' };

export const EVAL_USAGE = `usage:
  headlens eval ppl --model P [--config C] (--text-file F | --data PATH…) [--context N] [--stride S] [--json OUT]
  headlens eval mc  --model P [--config C] --data FILE.jsonl [--limit N] [--json OUT]
  headlens compare  --model A --model-b B [--config C] [--config-b C] (--text-file F | --text S) [--context N] [--stride S] [--heads] [--json OUT]
                    --heads: both models' heads too (per head and token attention max and entropy, per-head means of every signal, top predictions)`;

/** A cancel token set by Ctrl-C (the run stops at the next window and reports nothing). */
function interruptible(): CancelToken & { cancelled: boolean } {
  const token = { cancelled: false };
  process.once('SIGINT', () => (token.cancelled = true));
  return token;
}

function writeJson(file: string | undefined, value: unknown): void {
  if (!file) return;
  atomicWriteFile(file, JSON.stringify(value, null, 1) + '\n');
  process.stderr.write(`wrote ${file}\n`);
}

function checkOut(file: string | undefined): void {
  if (!file) return;
  const dir = path.dirname(path.resolve(file));
  if (!fs.existsSync(dir)) throw new BadInputError(`cannot write ${file}: folder ${dir} does not exist`);
}

const fmt = (v: number | null, d = 4) => (v === null || !Number.isFinite(v) ? '—' : v.toFixed(d));

export async function runEval(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'ppl') return evalPplCommand(rest);
  if (sub === 'mc') return evalMcCommand(rest);
  if (sub === undefined || sub === '--help' || sub === '-h') {
    process.stdout.write(EVAL_USAGE + '\n');
    return sub === undefined ? 2 : 0;
  }
  throw new BadInputError(`unknown eval '${sub}': use eval ppl or eval mc`);
}

async function evalPplCommand(argv: string[]): Promise<number> {
  const opts = parseArgs(argv, { ...COMMON, 'text-file': 'string', data: 'list', context: 'int', stride: 'int' }, 'eval ppl');
  if (opts.help) return usage();
  if (!opts.model) throw new BadInputError('eval ppl needs --model P');
  const docs = readPplDocuments(opts['text-file'] as string | undefined, (opts.data as string[] | undefined) ?? []);
  checkOut(opts.json as string | undefined);
  const ck = await readModel(opts);
  const lm = await setupModel(opts, ck);
  try {
    const result = await evalPpl(lm, docs, { context: opts.context as number | undefined, stride: opts.stride as number | undefined }, interruptible(), (d, n, done, total) =>
      process.stderr.write(`\rdocument ${d + 1}/${n}: ${done}/${total} tokens   `),
    );
    process.stderr.write('\n');
    process.stdout.write(`${result.tokens} tokens in ${result.documents} document(s): mean NLL ${fmt(result.nll_mean)}, perplexity ${fmt(result.ppl, 3)}, ${fmt(result.bpb)} bits per byte (context ${result.context}, stride ${result.stride}, ${lm.runner.name})\n`);
    for (const [k, s] of Object.entries(result.by_source ?? {})) process.stdout.write(`  ${k}: ${s.tokens} tokens, NLL ${fmt(s.nll_mean)}, ppl ${fmt(s.ppl, 3)}, bpb ${fmt(s.bpb)}\n`);
    writeJson(opts.json as string | undefined, result);
  } finally {
    await lm.dispose();
  }
  return 0;
}

async function evalMcCommand(argv: string[]): Promise<number> {
  const opts = parseArgs(argv, { ...COMMON, data: 'string', limit: 'int' }, 'eval mc');
  if (opts.help) return usage();
  if (!opts.model) throw new BadInputError('eval mc needs --model P');
  if (!opts.data) throw new BadInputError('eval mc needs --data FILE.jsonl (HellaSwag: ctx, endings, label per line)');
  const limit = opts.limit as number | undefined;
  if (limit !== undefined && limit < 1) throw new BadInputError(`--limit must be ≥ 1, got ${limit}`);
  const items = readMcFile(opts.data as string, limit);
  checkOut(opts.json as string | undefined);
  const lm = await setupModel(opts, await readModel(opts));
  try {
    const r = await evalMc(lm, items, interruptible(), (d, n) => process.stderr.write(`\ritem ${d}/${n}   `));
    process.stderr.write('\n');
    if (r.truncated_items) process.stderr.write(`note: ${r.truncated_items} context(s) were cut from the left to fit the model's ${r.context}-token context\n`);
    process.stdout.write(`${r.items.length} items: accuracy ${fmt(r.acc_sum, 3)} by sum, ${fmt(r.acc_per_token, 3)} per token, ${fmt(r.acc_per_byte, 3)} per byte (${lm.runner.name})\n`);
    writeJson(opts.json as string | undefined, r);
  } finally {
    await lm.dispose();
  }
  return 0;
}

export async function runCompare(argv: string[]): Promise<number> {
  const opts = parseArgs(argv, { ...COMMON, 'model-b': 'string', 'config-b': 'string', 'tokenizer-b': 'string', text: 'string', 'text-file': 'string', context: 'int', stride: 'int', heads: 'boolean' }, 'compare');
  if (opts.help) return usage();
  if (!opts.model || !opts['model-b']) throw new BadInputError('compare needs --model A and --model-b B');
  if ((opts.text === undefined) === (opts['text-file'] === undefined)) throw new BadInputError('compare needs exactly one of --text S or --text-file F');
  let text = opts.text as string | undefined;
  const file = opts['text-file'] as string | undefined;
  if (file !== undefined) {
    if (!fs.existsSync(file)) throw new BadInputError(`no such file: ${file}`);
    text = fs.readFileSync(file, 'utf8');
  }
  if (!text) throw new BadInputError(`nothing to compare: ${file ? `${file} is empty` : 'the text is empty'}`);
  checkOut(opts.json as string | undefined);
  const ckA = await readModel(opts), ckB = await readModel(opts, 'b');
  const a = await setupModel(opts, ckA);
  try {
    const b = await setupModel(opts, ckB, 'b');
    try {
      const r = await compareModels(a, b, text, { context: opts.context as number | undefined, stride: opts.stride as number | undefined, heads: opts.heads === true }, interruptible(), (m, d, n) => process.stderr.write(`\rmodel ${m}: ${d}/${n} tokens   `));
      process.stderr.write('\n');
      const s = r.summary;
      const line = (label: string, i: { mean: number; lo: number; hi: number; n: number }) => `  ${label.padEnd(16)} ${fmt(i.mean).padStart(8)}  [${fmt(i.lo)}, ${fmt(i.hi)}]  n=${i.n}`;
      process.stdout.write(`ΔNLL = NLL(A) − NLL(B), nats (negative: A is better); mean NLL A ${fmt(s.mean_nll_a)}, B ${fmt(s.mean_nll_b)}; bootstrap 95 % intervals\n`);
      process.stdout.write([line('all tokens', s.overall), ...Object.entries(s.by_class).map(([k, v]) => line(k, v)), line('repeated', s.repeated), line('first occurrence', s.first)].join('\n') + '\n');
      if (r.heads) {
        for (const [name, h] of [['A', r.heads.a], ['B', r.heads.b]] as const) {
          const keys = Object.keys(h.means);
          process.stdout.write(`model ${name}: per-head means over the tokens (${keys.join(', ')})\n`);
          for (let i = 0; i < h.layers * h.heads; i++) process.stdout.write(`  L${Math.floor(i / h.heads)}.H${i % h.heads}`.padEnd(10) + keys.map((k) => fmt(h.means[k][i]).padStart(10)).join('') + '\n');
        }
      }
      writeJson(opts.json as string | undefined, r);
    } finally {
      await b.dispose();
    }
  } finally {
    await a.dispose();
  }
  return 0;
}

function usage(): number {
  process.stdout.write(EVAL_USAGE + '\n');
  return 0;
}
