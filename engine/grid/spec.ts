/**
 * The experiment grid's spec: a JSON file naming a base model config, the data, a step (and
 * optional time) budget, seeds, and named variants grouped in waves (the seed issue's table,
 * karpathy/autoresearch "Attention patterns, GQA, head dim, value embeddings, softcap"). Read and
 * checked here, field by field: every problem is ONE BadInputError line that names the file and
 * the field (`variants[3].config.n_kv_head`) and says what to write instead.
 *
 * A variant's `config` holds the changes it makes over the config its wave starts from. A string
 * value starting with `=` is arithmetic over that config's numbers (`"=n_head/2"`, `"=n_layer+1"`):
 * parsed here by a small expression reader of our own (numbers, config names, + − × ÷, brackets),
 * never evaluated as code.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FAMILIES, type Family } from '../protocol';
import { BadInputError } from '../errors';

/** What a variant's config change may hold: JSON values, or an `=expression` string. */
export type ConfigChange = Record<string, unknown>;

export interface GridVariant {
  id: string;
  /** What it changes, in words (the table's "change" column). */
  change: string;
  wave: number;
  priority: 'normal' | 'low';
  config: ConfigChange;
  /** Config keys it is an alternative for (default: its changed keys); winners combine one per group. */
  group: string;
  /** Its config is the winners of the earlier waves merged (true), or these variants' changes merged. */
  combine?: true | string[];
}

export type WaveStart = 'baseline' | 'winner';

/** Training options every run of the grid shares (TrainParams names). */
export interface GridTrainOptions {
  batchSize?: number;
  seqLen?: number;
  lr?: number;
  minLr?: number;
  warmup?: number;
  gradAccum?: number;
  weightDecay?: number;
  clip?: number;
  betas?: [number, number];
  evalInterval?: number;
  evalIters?: number;
  probeInterval?: number;
}

export interface GridSpec {
  /** The spec file (absolute) and its folder, which relative paths start from. */
  file: string;
  dir: string;
  name: string;
  family: Family;
  base: Record<string, unknown>;
  /** Files, folders or globs of text (absolute), as `headlens train --data` takes them. */
  data: string[];
  valRatio?: number;
  budget: { steps: number; seconds: number | null };
  train: GridTrainOptions;
  seeds: number[];
  variants: GridVariant[];
  /** Per wave: does it start from the baseline or from the earlier waves' winner (default: wave 1 the baseline, later ones the winner). */
  waves: Record<number, WaveStart>;
  /** Choices that override the lowest val loss: `wave1` → a variant id or "baseline"; `combine` → ids to merge. */
  choose: { waves: Record<number, string>; combine?: string[] };
  lowPriority: 'run' | 'skip';
  /** Output folder (absolute): one folder per run, results.json and results.csv. */
  out: string;
  /** The state file beside the spec: finished runs, so that a resumed grid does not redo them. */
  stateFile: string;
  /** The table's exports beside the spec (not in `out`, where a monitor follows the runs' files). */
  exports: { json: string; csv: string };
}

export const BASELINE_ID = 'baseline';

const TOP_KEYS = ['name', 'family', 'base', 'data', 'valRatio', 'budget', 'train', 'seeds', 'variants', 'waves', 'choose', 'lowPriority', 'out', 'description', '$schema'];
const TRAIN_KEYS: Record<keyof GridTrainOptions, 'positive' | 'nonNegative' | 'betas'> = {
  batchSize: 'positive', seqLen: 'positive', lr: 'positive', minLr: 'nonNegative', warmup: 'nonNegative', gradAccum: 'positive',
  weightDecay: 'nonNegative', clip: 'positive', betas: 'betas', evalInterval: 'nonNegative', evalIters: 'positive', probeInterval: 'nonNegative',
};
const INT_TRAIN_KEYS = new Set(['batchSize', 'seqLen', 'warmup', 'gradAccum', 'evalInterval', 'evalIters', 'probeInterval']);
const VARIANT_KEYS = ['id', 'change', 'wave', 'priority', 'config', 'group', 'combine', 'note'];

type Json = Record<string, unknown>;

/** Reads and checks a spec file; `out` (the CLI's --out) overrides the spec's. */
export function readGridSpec(file: string, overrides: { out?: string } = {}): GridSpec {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = fs.readFileSync(abs, 'utf8');
  } catch (e) {
    throw new BadInputError(`cannot read grid spec ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}; check the path`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new BadInputError(`${path.basename(abs)}: not valid JSON (${(e as Error).message.split('\n')[0]}); write the spec as JSON (headlens grid --template autoresearch prints one)`);
  }
  return parseGridSpec(raw, abs, overrides);
}

/** Checks a parsed spec; `file` names it in messages and anchors its relative paths. */
export function parseGridSpec(raw: unknown, file: string, overrides: { out?: string } = {}): GridSpec {
  const where = path.basename(file);
  const fail = (field: string, what: string): never => {
    throw new BadInputError(`${where}: ${field}: ${what}`);
  };
  if (!isObject(raw)) fail('(top level)', 'expected a JSON object with base, data, budget and variants');
  const o = raw as Json;
  for (const k of Object.keys(o)) if (!TOP_KEYS.includes(k)) fail(k, `unknown field; the spec takes ${TOP_KEYS.filter((x) => x !== '$schema').join(', ')}`);
  const dir = path.dirname(file);
  const family = readFamily(o.family, fail);
  const base = isObject(o.base) ? (o.base as Json) : fail('base', 'expected an object: the model config every variant starts from (family config keys, e.g. n_layer, n_embd)');
  const variants = readVariants(o.variants, fail);
  const stem = path.basename(file).replace(/\.json$/i, '');
  const outRaw = overrides.out ?? (o.out === undefined ? undefined : typeof o.out === 'string' && o.out ? o.out : fail('out', 'expected a folder path'));
  const spec: GridSpec = {
    file,
    dir,
    name: o.name === undefined ? stem : typeof o.name === 'string' ? o.name : fail('name', 'expected a string'),
    family,
    base: { ...base, family },
    data: readData(o.data, dir, fail),
    valRatio: o.valRatio === undefined ? undefined : readNumber(o.valRatio, 'valRatio', fail, (v) => v > 0 && v < 1, 'a number between 0 and 1'),
    budget: readBudget(o.budget, fail),
    train: readTrain(o.train, fail),
    seeds: readSeeds(o.seeds, fail),
    variants,
    waves: readWaves(o.waves, variants, fail),
    choose: readChoose(o.choose, variants, fail),
    lowPriority: o.lowPriority === undefined ? 'run' : o.lowPriority === 'run' || o.lowPriority === 'skip' ? o.lowPriority : fail('lowPriority', `expected "run" or "skip", got ${JSON.stringify(o.lowPriority)}`),
    out: path.resolve(dir, outRaw ?? `${stem}.grid`),
    stateFile: path.join(dir, `${stem}.state.json`),
    exports: { json: path.join(dir, `${stem}.results.json`), csv: path.join(dir, `${stem}.results.csv`) },
  };
  checkDataAvoidsOutputs(spec, fail);
  return spec;
}

function isObject(v: unknown): boolean {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function readFamily(v: unknown, fail: (f: string, w: string) => never): Family {
  if (v === undefined) return 'autoresearch';
  if (typeof v !== 'string' || !FAMILIES.includes(v as Family)) fail('family', `expected one of ${FAMILIES.join(', ')}, got ${JSON.stringify(v)}`);
  return v as Family;
}

function readNumber(v: unknown, field: string, fail: (f: string, w: string) => never, ok: (v: number) => boolean, want: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) fail(field, `expected ${want}, got ${JSON.stringify(v)}`);
  return v as number;
}

function readData(v: unknown, dir: string, fail: (f: string, w: string) => never): string[] {
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || !list.length) fail('data', 'expected a non-empty list of files, folders or globs of text (relative to the spec)');
  return (list as unknown[]).map((d, i) => {
    if (typeof d !== 'string' || !d.trim()) fail(`data[${i}]`, 'expected a path (a file, folder or glob of text)');
    const [pattern, weight] = splitWeight(d as string);
    return `${path.resolve(dir, pattern)}${weight}`;
  });
}

/** `PATH@WEIGHT` (a-gpt's source mixing) keeps its weight when the path is resolved. */
function splitWeight(d: string): [string, string] {
  const m = /^(.*)(@[0-9]*\.?[0-9]+(?:e-?\d+)?)$/.exec(d);
  return m ? [m[1], m[2]] : [d, ''];
}

function readBudget(v: unknown, fail: (f: string, w: string) => never): GridSpec['budget'] {
  if (!isObject(v)) fail('budget', 'expected an object like {"steps": 60} or {"steps": 200, "seconds": 120}');
  const b = v as Json;
  for (const k of Object.keys(b)) if (k !== 'steps' && k !== 'seconds') fail(`budget.${k}`, 'unknown field; the budget takes steps and seconds');
  const steps = readNumber(b.steps, 'budget.steps', fail, (x) => Number.isInteger(x) && x > 0, 'a whole number of optimizer steps ≥ 1');
  const seconds = b.seconds === undefined || b.seconds === null ? null : readNumber(b.seconds, 'budget.seconds', fail, (x) => x > 0, 'seconds of training > 0, or null');
  return { steps, seconds };
}

function readTrain(v: unknown, fail: (f: string, w: string) => never): GridTrainOptions {
  if (v === undefined) return {};
  if (!isObject(v)) fail('train', 'expected an object of training options (batchSize, seqLen, lr, warmup, evalIters, …)');
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v as Json)) {
    const kind = TRAIN_KEYS[k as keyof GridTrainOptions];
    if (!kind) fail(`train.${k}`, `unknown option; use ${Object.keys(TRAIN_KEYS).join(', ')}`);
    if (kind === 'betas') {
      if (!Array.isArray(x) || x.length !== 2 || !x.every((b) => typeof b === 'number' && b >= 0 && b < 1)) fail(`train.${k}`, 'expected two numbers in [0, 1) like [0.9, 0.95]');
      out[k] = x;
      continue;
    }
    const integer = INT_TRAIN_KEYS.has(k);
    out[k] = readNumber(x, `train.${k}`, fail, (n) => (kind === 'positive' ? n > 0 : n >= 0) && (!integer || Number.isInteger(n)), `${integer ? 'a whole number' : 'a number'} ${kind === 'positive' ? '> 0' : '≥ 0'}`);
  }
  return out as GridTrainOptions;
}

function readSeeds(v: unknown, fail: (f: string, w: string) => never): number[] {
  if (v === undefined) return [1337];
  const list = typeof v === 'number' ? [v] : v;
  if (!Array.isArray(list) || !list.length) fail('seeds', 'expected a list of whole numbers, e.g. [1337] or [1337, 1338, 1339]');
  const seeds = (list as unknown[]).map((s, i) => readNumber(s, `seeds[${i}]`, fail, (x) => Number.isInteger(x) && x >= 0, 'a whole number ≥ 0'));
  if (new Set(seeds).size !== seeds.length) fail('seeds', `lists a seed twice (${seeds.join(', ')})`);
  return seeds;
}

function readVariants(v: unknown, fail: (f: string, w: string) => never): GridVariant[] {
  if (!Array.isArray(v) || !v.length) fail('variants', 'expected a non-empty list of {id, change, wave, config}');
  const seen = new Set<string>([BASELINE_ID]);
  const variants = (v as unknown[]).map((x, i) => readVariant(x, `variants[${i}]`, seen, fail));
  const ids = new Set(variants.map((x) => x.id));
  variants.forEach((x, i) => {
    if (Array.isArray(x.combine)) {
      for (const id of x.combine) if (!ids.has(id) || id === x.id) fail(`variants[${i}].combine`, `'${id}' is not another variant's id`);
    }
  });
  return variants;
}

function readVariant(x: unknown, field: string, seen: Set<string>, fail: (f: string, w: string) => never): GridVariant {
  if (!isObject(x)) fail(field, 'expected an object {id, change, wave, config}');
  const o = x as Json;
  for (const k of Object.keys(o)) if (!VARIANT_KEYS.includes(k)) fail(`${field}.${k}`, `unknown field; a variant takes ${VARIANT_KEYS.join(', ')}`);
  if (typeof o.id !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(o.id)) fail(`${field}.id`, `expected a short name of letters, digits, '.', '_' or '-' (it names the run's folder), got ${JSON.stringify(o.id)}`);
  const id = o.id as string;
  if (seen.has(id)) fail(`${field}.id`, id === BASELINE_ID ? `'${BASELINE_ID}' is the base config's own row; name the variant otherwise` : `'${id}' is used twice`);
  seen.add(id);
  const wave = readNumber(o.wave ?? 1, `${field}.wave`, fail, (w) => Number.isInteger(w) && w >= 1, 'a whole number ≥ 1');
  const priority = o.priority === undefined ? 'normal' : o.priority === 'normal' || o.priority === 'low' ? o.priority : fail(`${field}.priority`, `expected "normal" or "low", got ${JSON.stringify(o.priority)}`);
  const combine = readCombine(o.combine, `${field}.combine`, fail);
  const config = o.config === undefined && combine ? {} : isObject(o.config) ? (o.config as Json) : fail(`${field}.config`, 'expected an object of config changes, e.g. {"window_pattern": "SSLL"}');
  if (!combine && !Object.keys(config).length) fail(`${field}.config`, 'changes nothing; give the config keys it changes (the base config is the baseline row already)');
  for (const [k, val] of Object.entries(config)) if (typeof val === 'string' && val.startsWith('=')) parseExpression(val.slice(1), `${field}.config.${k}`);
  const group = o.group === undefined ? Object.keys(config).sort().join('+') : typeof o.group === 'string' && o.group ? o.group : fail(`${field}.group`, 'expected a name');
  const change = o.change === undefined ? describeChange(config) : typeof o.change === 'string' ? o.change : fail(`${field}.change`, 'expected a description in words');
  return { id, change, wave, priority, config, group, ...(combine ? { combine } : {}) };
}

function readCombine(v: unknown, field: string, fail: (f: string, w: string) => never): GridVariant['combine'] {
  if (v === undefined || v === false) return undefined;
  if (v === true) return true;
  if (Array.isArray(v) && v.length && v.every((s) => typeof s === 'string')) return v as string[];
  return fail(field, 'expected true (the winners of the earlier waves) or a list of variant ids');
}

/** `{window_pattern: "SSLL"}` → `window_pattern SSLL`. */
export function describeChange(config: ConfigChange): string {
  return Object.entries(config).map(([k, v]) => `${k} ${v === null ? 'none' : String(v)}`).join(', ');
}

function readWaves(v: unknown, variants: GridVariant[], fail: (f: string, w: string) => never): Record<number, WaveStart> {
  const out: Record<number, WaveStart> = {};
  if (v === undefined) return out;
  if (!isObject(v)) fail('waves', 'expected an object like {"2": {"from": "winner"}}');
  const known = new Set(variants.map((x) => x.wave));
  for (const [k, rule] of Object.entries(v as Json)) {
    const wave = Number(k.replace(/^wave/, ''));
    if (!known.has(wave)) fail(`waves.${k}`, `no variant is in wave ${k} (waves: ${[...known].sort((a, b) => a - b).join(', ')})`);
    const from = isObject(rule) ? (rule as Json).from : rule;
    if (from !== 'baseline' && from !== 'winner') fail(`waves.${k}.from`, `expected "baseline" or "winner", got ${JSON.stringify(from)}`);
    out[wave] = from as WaveStart;
  }
  return out;
}

function readChoose(v: unknown, variants: GridVariant[], fail: (f: string, w: string) => never): GridSpec['choose'] {
  const out: GridSpec['choose'] = { waves: {} };
  if (v === undefined) return out;
  if (!isObject(v)) fail('choose', 'expected an object like {"wave1": "5A"}');
  for (const [k, id] of Object.entries(v as Json)) {
    if (k === 'combine') {
      if (!Array.isArray(id) || !id.every((x) => typeof x === 'string' && variants.some((y) => y.id === x && !y.combine))) fail('choose.combine', 'expected a list of ids of (non-combining) variants to merge');
      out.combine = id as string[];
      continue;
    }
    const m = /^wave(\d+)$/.exec(k);
    if (!m) fail(`choose.${k}`, 'unknown choice; use wave1, wave2, … or combine');
    const wave = Number(m![1]);
    const inWave = variants.filter((x) => x.wave === wave).map((x) => x.id);
    if (!inWave.length) fail(`choose.${k}`, `no variant is in wave ${wave}`);
    if (typeof id !== 'string' || (id !== BASELINE_ID && id !== 'none' && !inWave.includes(id))) fail(`choose.${k}`, `expected one of ${inWave.join(', ')} or "none", got ${JSON.stringify(id)}`);
    out.waves[wave] = id === BASELINE_ID ? 'none' : (id as string);
  }
  return out;
}

/**
 * The data must not take in the grid's own files: they change while it runs (metrics, state), so
 * the runs would not train on the same text.
 */
function checkDataAvoidsOutputs(spec: GridSpec, fail: (f: string, w: string) => never): void {
  const own = [spec.file, spec.stateFile, spec.exports.csv, path.join(spec.out, '<variant>', 'metrics.jsonl')];
  spec.data.forEach((d, i) => {
    const [pattern] = splitWeight(d);
    if (/[*?[]/.test(pattern)) return; // a glob names its files itself
    const rel = own.map((f) => path.relative(pattern, f)).find((r) => r && !r.startsWith('..') && !path.isAbsolute(r) && !r.split(path.sep).slice(0, -1).some(skippedByDataWalk));
    if (rel !== undefined) fail(`data[${i}]`, `${pattern} holds the grid's own files (${rel}), which change while it runs; point data at the text folder, or put the spec (or "out") in a hidden folder such as .headlens/`);
  });
}

/** Folders the training data's folder walk leaves out (engine/train/data.ts): hidden ones and build/VCS folders. */
function skippedByDataWalk(segment: string): boolean {
  return segment.startsWith('.') || ['node_modules', 'dist', 'out', '__pycache__', 'venv'].includes(segment);
}

// ---------------------------------------------------------------------------------------------
// `=expression` values: arithmetic over the config's numbers

type Expr = { kind: 'num'; value: number } | { kind: 'name'; name: string } | { kind: 'neg'; arg: Expr } | { kind: 'bin'; op: '+' | '-' | '*' | '/'; a: Expr; b: Expr };

/** Parses `n_head/2`, `n_layer + 1`, `(n_embd / 64) * 2`; BadInputError naming `field` otherwise. */
export function parseExpression(text: string, field: string): Expr {
  const tokens = text.match(/\s*(\d+(?:\.\d+)?|[A-Za-z_][A-Za-z0-9_]*|[-+*/()]|\S)/g)?.map((t) => t.trim()) ?? [];
  let i = 0;
  const bad = (why: string): never => {
    throw new BadInputError(`${field}: '=${text}' is not arithmetic over config numbers (${why}); write e.g. "=n_head/2"`);
  };
  const primary = (): Expr => {
    const t = tokens[i++];
    if (t === undefined) return bad('it ends too early');
    if (t === '(') {
      const e = sum();
      if (tokens[i++] !== ')') bad("a '(' is not closed");
      return e;
    }
    if (t === '-') return { kind: 'neg', arg: primary() };
    if (/^\d/.test(t)) return { kind: 'num', value: Number(t) };
    if (/^[A-Za-z_]/.test(t)) return { kind: 'name', name: t };
    return bad(`unexpected '${t}'`);
  };
  const product = (): Expr => {
    let e = primary();
    while (tokens[i] === '*' || tokens[i] === '/') e = { kind: 'bin', op: tokens[i++] as '*' | '/', a: e, b: primary() };
    return e;
  };
  const sum = (): Expr => {
    let e = product();
    while (tokens[i] === '+' || tokens[i] === '-') e = { kind: 'bin', op: tokens[i++] as '+' | '-', a: e, b: product() };
    return e;
  };
  const e = sum();
  if (i < tokens.length) bad(`unexpected '${tokens[i]}'`);
  return e;
}

/** The value of an expression over `config`'s numeric keys. */
export function evaluateExpression(e: Expr, config: Record<string, unknown>, field: string): number {
  switch (e.kind) {
    case 'num':
      return e.value;
    case 'name': {
      const v = config[e.name];
      if (typeof v !== 'number') throw new BadInputError(`${field}: '${e.name}' is not a number in the config it starts from (${v === undefined ? 'not set' : JSON.stringify(v)})`);
      return v;
    }
    case 'neg':
      return -evaluateExpression(e.arg, config, field);
    case 'bin': {
      const a = evaluateExpression(e.a, config, field), b = evaluateExpression(e.b, config, field);
      if (e.op === '/' && b === 0) throw new BadInputError(`${field}: divides by zero`);
      return e.op === '+' ? a + b : e.op === '-' ? a - b : e.op === '*' ? a * b : a / b;
    }
  }
}

/** `changes` applied over `config`: `=expressions` evaluated against `config`, the rest as given. */
export function applyChanges(config: Record<string, unknown>, changes: ConfigChange, field: string): Record<string, unknown> {
  const out = { ...config };
  for (const [k, v] of Object.entries(changes)) {
    out[k] = typeof v === 'string' && v.startsWith('=') ? evaluateExpression(parseExpression(v.slice(1), `${field}.${k}`), config, `${field}.${k}`) : v;
  }
  return out;
}
