/**
 * Follow a model through its checkpoints (Analyze Across Checkpoints…): the checkpoints of one run
 * in a folder, ordered by step (from the name — `model_000500.pt`, `ckpt_1000.pt`,
 * `checkpoint-1500/` — else our training checkpoints' own `step`, else the file's mtime), each
 * analysed on the same text: per token NLL over steps, per head every signal and the attention
 * entropy over steps. Streamed checkpoint by checkpoint; results are cached per (checkpoint, text).
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CheckpointEntry, TimelineEvent } from '../protocol';
import { BadInputError, throwIfCancelled, type CancelToken } from '../errors';
import { encodeArray } from '../codec';
import { readCheckpoint, type LoadRequest } from '../io/checkpoint';
import { checkpointStep, isCheckpointName } from '../monitor/tail';
import { familyDef } from '../models/registry';
import { analyzeText } from './analyze';
import { AnalysisRecord } from './record';
import { modelInfo, type LoadedModel } from '../runtime/loaded';
import { createRunner, type RuntimeState } from '../runtime/select';

/** Our own checkpoints keep the step in their metadata (read from the header only). */
function metadataStep(file: string): number | undefined {
  if (!file.endsWith('.safetensors')) return undefined;
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, 'r');
    const len = Buffer.alloc(8);
    fs.readSync(fd, len, 0, 8, 0);
    const n = Number(len.readBigUInt64LE(0));
    if (n > 64 * 1024 * 1024) return undefined;
    const header = Buffer.alloc(n);
    fs.readSync(fd, header, 0, n, 8);
    const state = JSON.parse(JSON.parse(header.toString('utf8')).__metadata__?.state ?? 'null');
    return typeof state?.step === 'number' ? state.step : undefined;
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** The checkpoints under a folder (two levels deep), ordered by step, then mtime. */
export function listCheckpoints(folder: string): CheckpointEntry[] {
  if (!fs.existsSync(folder) || !fs.statSync(folder).isDirectory()) throw new BadInputError(`${folder} is not a folder of checkpoints`);
  const found: CheckpointEntry[] = [];
  const walk = (dir: string, depth: number) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory() && depth < 2 && !e.name.startsWith('.') && e.name !== 'node_modules') walk(p, depth + 1);
      else if (e.isFile() && isCheckpointName(e.name) && !e.name.startsWith('optim')) {
        const rel = path.relative(folder, p);
        found.push({ path: p, step: checkpointStep(rel) ?? metadataStep(p) ?? null, mtimeMs: fs.statSync(p).mtimeMs });
      }
    }
  };
  walk(folder, 0);
  if (!found.length) throw new BadInputError(`${folder}: no checkpoints found (.safetensors, .pt, .pth, .bin, .ptz)`);
  return found.sort((a, b) => (a.step ?? Infinity) - (b.step ?? Infinity) || a.mtimeMs - b.mtimeMs);
}

const cache = new Map<string, TimelineEvent>();

function cacheKey(file: string, text: string, extra: string): string {
  const st = fs.statSync(file);
  return `${file}|${st.mtimeMs}|${st.size}|${crypto.createHash('sha1').update(text).digest('hex')}|${extra}`;
}

/** One checkpoint analysed: NLL per position, per-head signal and entropy means. */
async function analyseOne(lm: LoadedModel, text: string, index: number, entry: CheckpointEntry, token?: CancelToken): Promise<TimelineEvent> {
  const events = [];
  const gen = analyzeText(lm, { text, includeAttention: false, causalityAudit: false }, token);
  let result;
  for (;;) {
    const s = await gen.next();
    if (s.done) {
      result = s.value;
      break;
    }
    events.push(s.value);
  }
  const r = AnalysisRecord.from(events, lm.info, result);
  const L = r.L, H = r.H, N = r.N;
  const mean = (f: (l: number, h: number, t: number) => number) =>
    Array.from({ length: L * H }, (_, i) => {
      const l = Math.floor(i / H), h = i % H;
      let s = 0, n = 0;
      for (let t = 0; t < N; t++) {
        const v = f(l, h, t);
        if (Number.isFinite(v)) (s += v), n++;
      }
      return n ? s / n : NaN;
    });
  const headSignals: Record<string, number[]> = {};
  for (const spec of r.headTokenSignals()) headSignals[spec.name] = mean((l, h, t) => r.signalAt(spec.name, t, l, h));
  for (const spec of r.specs.filter((s) => s.scope === 'head')) {
    headSignals[spec.name] = Array.from({ length: L * H }, (_, i) => {
      const vals = r.windows.map((_, w) => r.headSignal(spec.name, Math.floor(i / H), w)?.[i % H]).filter((v): v is number => Number.isFinite(v));
      return vals.length ? vals.reduce((a, b) => a + b, 0) / vals.length : NaN;
    });
  }
  return {
    index,
    path: entry.path,
    step: entry.step,
    nll: encodeArray(r.nll, [N]),
    meanNll: result.meanNll,
    headSignals,
    entropy: mean((l, h, t) => r.headEntropy[(l * H + h) * N + t]),
  };
}

/**
 * Each checkpoint in turn on the current runtime (its runner freed before the next loads). They must
 * be one architecture's: a checkpoint of another shape is refused with its name.
 */
export async function* analyseTimeline(paths: string[], text: string, config: LoadRequest['config'], state: RuntimeState, tokenizer: LoadedModel['tokenizer'], token?: CancelToken): AsyncGenerator<TimelineEvent, number> {
  if (!paths.length) throw new BadInputError('no checkpoints to analyse');
  const entries = paths.map((p) => ({ path: p, step: checkpointStep(path.basename(p)) ?? metadataStep(p) ?? null, mtimeMs: fs.existsSync(p) ? fs.statSync(p).mtimeMs : 0 }));
  let first: { layers: number; heads: number } | null = null;
  for (const [index, entry] of entries.entries()) {
    throwIfCancelled(token);
    const key = cacheKey(entry.path, text, JSON.stringify(config ?? null));
    const hit = cache.get(key);
    if (hit) {
      yield { ...hit, index };
      continue;
    }
    const ck = await readCheckpoint({ path: entry.path, config });
    const info = modelInfo(ck, tokenizer.info);
    if (first && (info.layers !== first.layers || info.heads !== first.heads)) {
      throw new BadInputError(`${path.basename(entry.path)}: ${info.layers} layers × ${info.heads} heads, but the first checkpoint has ${first.layers} × ${first.heads}: a timeline needs one run's checkpoints`);
    }
    first ??= { layers: info.layers, heads: info.heads };
    const runner = await createRunner(familyDef(ck.config.family), ck.config, ck.weights, state);
    try {
      const ev = await analyseOne({ info, config: ck.config, weights: ck.weights, tokenizer, runner, dispose: () => runner.dispose() }, text, index, entry, token);
      cache.set(key, ev);
      yield ev;
    } finally {
      await runner.dispose();
    }
  }
  return entries.length;
}
