/**
 * `headlens ablate` and `headlens sweep` (interventions on heads), and the head roles of
 * `headlens info --heads`. Inputs are checked before any backend starts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BadInputError, type CancelToken } from '../errors';
import { parseArgs, type ArgSpec } from './args';
import { readModel, setupModel } from './load';
import { readIds } from './ids';
import { ABLATION_MODES, controlsFor, documentNll, parseAblations, sequenceNll, sweep, type AblationMode } from '../analysis/interventions';
import { attentionFloatsOf, inductionScores, layerRoleScores, repeatedRandomTokens, ROLES } from '../analysis/roles';
import { atomicWriteFile } from '../io/safetensors';
import type { LoadedModel } from '../runtime/loaded';

const COMMON: ArgSpec = { backend: 'string', threads: 'int', debug: 'boolean', help: 'boolean', model: 'string', config: 'string', tokenizer: 'string', json: 'string', 'text-file': 'string', ids: 'string' };

export const INTERVENTIONS_USAGE = `usage:
  headlens ablate --model P [--config C] (--text-file F | --ids IDS.json) --ablate L.H:mode[,L.H:mode…] [--json OUT]
        modes: zero | mean | adaptive-off; JSON {nll, base_nll}: one row per sequence, nll[b][t] = −log p(ids[b][t+1])
  headlens sweep  --model P [--config C] --text-file F [--mode zero|mean|adaptive-off] [--unit head|layer] [--json OUT]
        every head (or layer) in turn: an L × H table of mean ΔNLL with a bootstrap 95 % interval`;

function interruptible(): CancelToken & { cancelled: boolean } {
  const token = { cancelled: false };
  process.once('SIGINT', () => (token.cancelled = true));
  return token;
}

/** The sequences to run: the ids file's rows (each must fit the model), or the text file as one document. */
function sequencesOf(opts: Record<string, unknown>, lm: LoadedModel): { rows: Int32Array[]; document: boolean } {
  if ((opts['text-file'] === undefined) === (opts.ids === undefined)) throw new BadInputError('give exactly one of --text-file F or --ids IDS.json');
  if (opts.ids !== undefined) return { rows: readIds(opts.ids as string, lm.config.vocab_size, lm.config.block_size).map((r) => Int32Array.from(r)), document: false };
  return { rows: [Int32Array.from(lm.tokenizer.encode(readText(opts['text-file'] as string)))], document: true };
}

function readText(file: string): string {
  if (!fs.existsSync(file)) throw new BadInputError(`no such file: ${file}`);
  const text = fs.readFileSync(file, 'utf8');
  if (!text) throw new BadInputError(`${file} is empty: nothing to run`);
  return text;
}

function checkOut(file: unknown): void {
  if (typeof file !== 'string') return;
  const dir = path.dirname(path.resolve(file));
  if (!fs.existsSync(dir)) throw new BadInputError(`cannot write ${file}: folder ${dir} does not exist`);
}

const toList = (a: ArrayLike<number>) => Array.from(a, (v) => (Number.isFinite(v) ? v : null));

export async function runAblate(argv: string[]): Promise<number> {
  const opts = parseArgs(argv, { ...COMMON, ablate: 'string' }, 'ablate');
  if (opts.help) return usage();
  if (!opts.model) throw new BadInputError('ablate needs --model P');
  if (!opts.ablate) throw new BadInputError('ablate needs --ablate L.H:mode (e.g. 0.1:zero,1.2:adaptive-off)');
  checkOut(opts.json);
  const ck = await readModel(opts);
  const lm = await setupModel(opts, ck);
  try {
    const ablations = parseAblations(opts.ablate as string, lm.info);
    const { rows, document } = sequencesOf(opts, lm);
    const controls = controlsFor(ablations, lm.info.layers, lm.info.heads);
    const token = interruptible();
    const nll: (number | null)[][] = [], base: (number | null)[][] = [];
    for (const ids of rows) {
      if (ids.length < 2) throw new BadInputError('a sequence needs at least 2 tokens');
      if (document) {
        // a document: sliding windows; row t is the NLL of token t + 1
        nll.push(toList((await documentNll(lm, ids, controls, token)).subarray(1)));
        base.push(toList((await documentNll(lm, ids, undefined, token)).subarray(1)));
      } else {
        nll.push(toList(await sequenceNll(lm, ids, controls, token)));
        base.push(toList(await sequenceNll(lm, ids, undefined, token)));
      }
    }
    const d = nll.flat().map((v, i) => (v === null || base.flat()[i] === null ? NaN : v - base.flat()[i]!)).filter(Number.isFinite);
    const mean = d.reduce((a, b) => a + b, 0) / Math.max(1, d.length);
    process.stdout.write(`${ablations.map((a) => `L${a.layer}.H${a.head} ${a.mode}`).join(', ')}: mean ΔNLL ${mean.toFixed(5)} nats over ${d.length} tokens (${lm.runner.name})\n`);
    if (opts.json) atomicWriteFile(opts.json as string, JSON.stringify({ ablate: opts.ablate, nll, base_nll: base }) + '\n');
  } finally {
    await lm.dispose();
  }
  return 0;
}

export async function runSweep(argv: string[]): Promise<number> {
  const opts = parseArgs(argv, { ...COMMON, mode: 'string', unit: 'string' }, 'sweep');
  if (opts.help) return usage();
  if (!opts.model) throw new BadInputError('sweep needs --model P');
  const mode = ((opts.mode as string | undefined) ?? 'zero') as AblationMode;
  if (!ABLATION_MODES.includes(mode)) throw new BadInputError(`--mode must be zero, mean or adaptive-off, got ${mode}`);
  const unit = ((opts.unit as string | undefined) ?? 'head') as 'head' | 'layer';
  if (unit !== 'head' && unit !== 'layer') throw new BadInputError(`--unit must be head or layer, got ${unit}`);
  if (!opts['text-file']) throw new BadInputError('sweep needs --text-file F');
  const text = readText(opts['text-file'] as string);
  checkOut(opts.json);
  const lm = await setupModel(opts, await readModel(opts));
  try {
    const ids = Int32Array.from(lm.tokenizer.encode(text));
    const cells = [];
    const t0 = Date.now();
    const gen = sweep(lm, ids, mode, unit, interruptible());
    for (;;) {
      const s = await gen.next();
      if (s.done) break;
      const c = s.value;
      cells.push({ layer: c.layer, head: c.head, mean: c.mean, lo: c.lo, hi: c.hi, n: c.n });
      process.stderr.write(`\r${cells.length} of ${unit === 'head' ? lm.info.layers * lm.info.heads : lm.info.layers} ablated   `);
    }
    process.stderr.write(`\n${cells.length} ablations in ${Date.now() - t0} ms on ${lm.runner.name}\n`);
    const H = lm.info.heads;
    process.stdout.write(`mean ΔNLL (nats) with each ${unit} ${mode === 'zero' ? 'zeroed' : mode === 'mean' ? 'mean-ablated' : 'adaptive path off'}\n`);
    for (let l = 0; l < lm.info.layers; l++) {
      const row = cells.filter((c) => c.layer === l);
      process.stdout.write(`L${l}  ${row.map((c) => `${c.mean >= 0 ? '+' : ''}${c.mean.toFixed(4)} [${c.lo.toFixed(4)}, ${c.hi.toFixed(4)}]`).join('  ')}\n`);
    }
    if (opts.json) atomicWriteFile(opts.json as string, JSON.stringify({ mode, unit, layers: lm.info.layers, heads: H, cells }) + '\n');
  } finally {
    await lm.dispose();
  }
  return 0;
}

/** `info --heads`: the induction test and the detector scores on its repeated random sequence. */
export async function headRolesReport(lm: LoadedModel): Promise<string> {
  const n = Math.max(2, Math.min(50, Math.floor(lm.config.block_size / 2)));
  const vocab = Math.min(lm.config.vocab_size, lm.tokenizer.vocabSize);
  const ids = repeatedRandomTokens(n, 0, vocab, 42);
  const gen = lm.runner.analyzeWindow({ ids, targets: Int32Array.from({ length: ids.length }, (_, p) => (p + 1 < ids.length ? ids[p + 1] : -1)), topK: 1, attention: () => true, audit: [] });
  const lines = [`head roles on ${n} seeded random tokens repeated twice (induction test), TransformerLens "mul" scores:`, `        ${'induction'.padStart(10)}${ROLES.map((r) => r.padStart(11)).join('')}`];
  for (;;) {
    const s = await gen.next();
    if (s.done) break;
    const attn = attentionFloatsOf(s.value)!;
    const ind = inductionScores(attn, n, lm.info.heads);
    const roles = layerRoleScores(attn, ids, lm.info.heads);
    for (let h = 0; h < lm.info.heads; h++) lines.push(`L${s.value.layer}.H${h}`.padEnd(8) + ind[h].toFixed(3).padStart(10) + ROLES.map((r) => roles[r][h].toFixed(3).padStart(11)).join(''));
  }
  return lines.join('\n');
}

function usage(): number {
  process.stdout.write(INTERVENTIONS_USAGE + '\n');
  return 0;
}
