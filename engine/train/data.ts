/**
 * Training data: files, folders and globs of text (e.g. the user's workspace), tokenized once
 * with GPT-2 BPE and cached by content hash; a-gpt's split (the last val_ratio of each source's
 * tokens is validation); several sources mixed by weight (`PATH@WEIGHT`, as a-gpt's four-source
 * config); seeded batch sampling — next-token windows, or a-gpt's masked-denoising batches.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { BadInputError } from '../errors';
import { encodeIds, EOT_ID } from '../tokenizers/gpt2';
import { Rng } from './rng';
import { cacheFolder } from '../io/cache';

const SKIP_DIRS = new Set(['node_modules', '.git', '.hg', '.svn', 'dist', 'out', '__pycache__', '.venv', 'venv', '.e2e-tools', '.cache']);
const MAX_FILE_BYTES = 8 * 1024 * 1024;

export interface Source {
  spec: string;
  weight: number;
  files: string[];
  train: Int32Array;
  val: Int32Array;
}

/** `PATH@WEIGHT` → path and weight (default 1). */
export function parseSourceSpec(spec: string): { pattern: string; weight: number } {
  const m = /^(.*)@([0-9]*\.?[0-9]+(?:e-?\d+)?)$/.exec(spec);
  if (!m) return { pattern: spec, weight: 1 };
  const weight = Number(m[2]);
  if (!(weight > 0)) throw new BadInputError(`--data ${spec}: the weight must be a positive number`);
  return { pattern: m[1], weight };
}

function isGlob(p: string): boolean {
  return /[*?[]/.test(p);
}

/** A glob (`*`, `**`, `?`, `[abc]`) as a regular expression over '/'-separated paths. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*') {
      if (glob[i + 1] === '*') {
        re += glob[i + 2] === '/' ? '(?:.*/)?' : '.*';
        i += glob[i + 2] === '/' ? 2 : 1;
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = glob.indexOf(']', i);
      if (end < 0) re += '\\[';
      else {
        const body = glob.slice(i + 1, end).replace(/\\/g, '\\\\');
        re += body.startsWith('!') ? `[^${body.slice(1)}]` : `[${body}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** Every file below `dir`; folder walks skip build, VCS and dependency folders (a glob names its own). */
function walk(dir: string, out: string[], skip: boolean): void {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (!skip || (!SKIP_DIRS.has(entry.name) && !entry.name.startsWith('.'))) walk(p, out, skip);
    } else if (entry.isFile()) out.push(p);
  }
}

/** Text files of one pattern: a file, a folder (recursive, skipping build/VCS folders) or a glob. */
export function collectFiles(pattern: string): string[] {
  let files: string[] = [];
  if (isGlob(pattern)) {
    const abs = path.resolve(pattern).split(path.sep).join('/');
    const firstGlob = abs.search(/[*?[]/);
    const base = abs.slice(0, abs.lastIndexOf('/', firstGlob) + 1) || '/';
    if (!fs.existsSync(base)) throw new BadInputError(`--data ${pattern}: folder ${base} does not exist`);
    const re = globToRegExp(abs);
    const all: string[] = [];
    walk(base, all, false);
    files = all.filter((f) => re.test(f.split(path.sep).join('/')));
  } else {
    if (!fs.existsSync(pattern)) throw new BadInputError(`--data ${pattern}: no such file or folder`);
    if (fs.statSync(pattern).isDirectory()) walk(pattern, files, true);
    else files = [pattern];
  }
  return files.filter(isTextFile).sort();
}

function isTextFile(file: string): boolean {
  const st = fs.statSync(file);
  if (st.size === 0 || st.size > MAX_FILE_BYTES) return false;
  const fd = fs.openSync(file, 'r');
  const head = Buffer.alloc(Math.min(4096, st.size));
  fs.readSync(fd, head, 0, head.length, 0);
  fs.closeSync(fd);
  return !head.includes(0); // NUL bytes: binary
}

/** Tokens of one file, cached by content hash in `cacheDir`. */
function tokensOf(file: string, cacheDir: string | null): Int32Array {
  const text = fs.readFileSync(file, 'utf8');
  if (!cacheDir) return Int32Array.from(encodeIds(text));
  const hash = createHash('sha256').update(text).digest('hex').slice(0, 32);
  const cached = path.join(cacheDir, `${hash}.gpt2.i32`);
  if (fs.existsSync(cached)) {
    const b = fs.readFileSync(cached);
    if (b.length % 4 === 0) return new Int32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
  }
  const ids = Int32Array.from(encodeIds(text));
  try {
    const tmp = `${cached}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, Buffer.from(ids.buffer));
    fs.renameSync(tmp, cached);
  } catch {
    // the cache is an optimisation: an unwritable cache folder only costs time
  }
  return ids;
}

/** Where token caches live: $HEADLENS_CACHE, else the OS's per-user cache folder (survives reboots), else tmp. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform, home = os.homedir()): string {
  return cacheFolder('tokens', env, platform, home);
}

function ensureCacheDir(dir: string): string | null {
  try {
    fs.mkdirSync(dir, { recursive: true });
    return dir;
  } catch {
    return null; // no cache: every run tokenizes again
  }
}

/** Load every source: files → tokens (EOT between files) → train/val split. */
export function loadSources(specs: string[], opts: { valRatio: number; minTokens: number; cacheDir?: string }): Source[] {
  if (!specs.length) throw new BadInputError('no training data: pass --data PATH (files, folders or globs of text)');
  const cacheDir = ensureCacheDir(opts.cacheDir ?? defaultCacheDir());
  return specs.map((spec) => {
    const { pattern, weight } = parseSourceSpec(spec);
    const files = collectFiles(pattern);
    if (!files.length) throw new BadInputError(`--data ${pattern}: no text files found (empty corpus)`);
    const parts = files.map((f) => tokensOf(f, cacheDir));
    const total = parts.reduce((s, p) => s + p.length + 1, 0);
    const all = new Int32Array(total);
    let o = 0;
    for (const p of parts) {
      all.set(p, o);
      o += p.length;
      all[o++] = EOT_ID;
    }
    const nVal = Math.floor(all.length * opts.valRatio);
    const train = all.subarray(0, all.length - nVal), val = all.subarray(all.length - nVal);
    if (train.length < opts.minTokens || val.length < opts.minTokens) {
      throw new BadInputError(`--data ${pattern}: ${all.length} tokens is too short for windows of ${opts.minTokens} tokens in both the training and validation split (${Math.round(opts.valRatio * 100)}%): add text or lower --seq-len`);
    }
    return { spec, weight, files, train, val };
  });
}

export interface HostBatch {
  B: number;
  T: number;
  inputIds: Int32Array; // (B, T)
  targets: Int32Array; // (B, T)
  mask?: Float32Array; // (B, T) diffusion
  t?: Int32Array; // (B) diffusion
}

export interface DiffusionOptions {
  steps: number;
  maskTokenId: number;
  minMaskRatio: number;
}

/** Pick a source by weight (a-gpt samples one source per micro-batch). */
export function pickSource(sources: Source[], rng: Rng): Source {
  const total = sources.reduce((s, x) => s + x.weight, 0);
  let r = rng.next() * total;
  for (const s of sources) if ((r -= s.weight) < 0) return s;
  return sources[sources.length - 1];
}

/** a-gpt get_batch: random windows x = tok[i:i+T], y = tok[i+1:i+T+1]. */
export function causalBatch(tokens: Int32Array, B: number, T: number, rng: Rng): HostBatch {
  const inputIds = new Int32Array(B * T), targets = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    const i = rng.int(0, tokens.length - T - 1);
    inputIds.set(tokens.subarray(i, i + T), b * T);
    targets.set(tokens.subarray(i + 1, i + T + 1), b * T);
  }
  return { B, T, inputIds, targets };
}

/**
 * a-gpt get_diffusion_batch: clean windows, t ∈ [1, T_d] per row, mask ratio
 * min + (1 − min)·t/T_d, at least one masked token per row, masked ids → mask token.
 */
export function diffusionBatch(tokens: Int32Array, B: number, T: number, rng: Rng, d: DiffusionOptions): HostBatch {
  const inputIds = new Int32Array(B * T), targets = new Int32Array(B * T), mask = new Float32Array(B * T), t = new Int32Array(B);
  for (let b = 0; b < B; b++) {
    const i = rng.int(0, tokens.length - T);
    targets.set(tokens.subarray(i, i + T), b * T);
    t[b] = rng.int(1, d.steps + 1);
    const ratio = d.minMaskRatio + (1 - d.minMaskRatio) * (t[b] / d.steps);
    let any = false;
    for (let k = 0; k < T; k++) {
      if (rng.next() < ratio) {
        mask[b * T + k] = 1;
        any = true;
      }
    }
    if (!any) mask[b * T + rng.int(0, T)] = 1;
    for (let k = 0; k < T; k++) inputIds[b * T + k] = mask[b * T + k] ? d.maskTokenId : targets[b * T + k];
  }
  return { B, T, inputIds, targets, mask, t };
}
