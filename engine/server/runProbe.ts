/**
 * Per-head probe curves of a watched run: each checkpoint analysed (engine/analysis/analyze.ts, no
 * attention maps, no causality audit) on one fixed probe text, and every per-head signal of its
 * family, with the attention entropy, averaged over the tokens (as the trainer's own probe records
 * and the checkpoint timeline do). Low priority: one probe at a time, queued, each yielding to the
 * event loop after every layer so that the user's requests go first; a cancelled probe stops at
 * the next layer and frees its model.
 */
import * as path from 'node:path';
import type { AnalyzeEvent, AnalyzeResult, RunProbeParams, RunProbeResult } from '../protocol';
import { BadInputError, throwIfCancelled, type CancelToken } from '../errors';
import { analyzeText } from '../analysis/analyze';
import { AnalysisRecord } from '../analysis/record';
import { loadModel, type LoadedModel } from '../runtime/loaded';
import { currentRuntime, initRuntime } from '../runtime/select';
import { checkpointStep } from '../monitor/tail';

const DEFAULT_PROBE_TOKENS = 256;
let queue: Promise<unknown> = Promise.resolve();

/** Runs after the probes queued before it (one at a time). */
export function probeCheckpoint(p: RunProbeParams, token?: CancelToken, step?: number | null): Promise<RunProbeResult> {
  const run = queue.then(() => probeNow(p, token, step));
  queue = run.catch(() => undefined);
  return run;
}

/** A macrotask turn: timers and I/O of other requests run before the next layer. */
const yieldTurn = () => new Promise<void>((r) => setTimeout(r, 0));

async function probeNow(p: RunProbeParams, token: CancelToken | undefined, step?: number | null): Promise<RunProbeResult> {
  if (typeof p.checkpoint !== 'string' || !p.checkpoint) throw new BadInputError('runs/probe needs `checkpoint`: the path of a checkpoint');
  if (typeof p.text !== 'string' || !p.text.trim()) throw new BadInputError('runs/probe needs a non-empty probe `text`');
  throwIfCancelled(token);
  const lm = await loadModel({ path: p.checkpoint, config: p.config }, currentRuntime() ?? (await initRuntime()));
  try {
    const text = probeText(lm, p.text, p.maxTokens ?? DEFAULT_PROBE_TOKENS);
    const events: AnalyzeEvent[] = [];
    const gen = analyzeText(lm, { text, includeAttention: false, causalityAudit: false, topK: 1 }, token);
    let result: AnalyzeResult;
    for (;;) {
      const s = await gen.next();
      if (s.done) {
        result = s.value;
        break;
      }
      events.push(s.value);
      await yieldTurn();
      throwIfCancelled(token);
    }
    return summarise(p.checkpoint, step ?? checkpointStep(path.basename(p.checkpoint)) ?? null, lm, AnalysisRecord.from(events, lm.info, result), result);
  } finally {
    await lm.dispose();
  }
}

/** The probe text cut to its first `maxTokens` tokens (and one window of the model). */
function probeText(lm: LoadedModel, text: string, maxTokens: number): string {
  const limit = Math.max(2, Math.min(maxTokens, lm.config.block_size));
  const tokens = lm.tokenizer.tokenize(text);
  return tokens.length <= limit ? text : text.slice(0, tokens[limit - 1].end);
}

function summarise(checkpoint: string, step: number | null, lm: LoadedModel, r: AnalysisRecord, result: AnalyzeResult): RunProbeResult {
  const { L, H, N } = r;
  const meanOverTokens = (f: (l: number, h: number, t: number) => number) =>
    Array.from({ length: L * H }, (_, i) => {
      const l = Math.floor(i / H), h = i % H;
      let s = 0, n = 0;
      for (let t = 0; t < N; t++) {
        const v = f(l, h, t);
        if (Number.isFinite(v)) (s += v), n++;
      }
      return n ? s / n : NaN;
    });
  const signals: Record<string, number[]> = {};
  for (const spec of r.headTokenSignals()) signals[spec.name] = meanOverTokens((l, h, t) => r.signalAt(spec.name, t, l, h));
  for (const spec of r.specs.filter((s) => s.scope === 'head')) {
    signals[spec.name] = Array.from({ length: L * H }, (_, i) => r.headSignal(spec.name, Math.floor(i / H), 0)?.[i % H] ?? NaN);
  }
  return {
    checkpoint,
    step,
    family: lm.info.family,
    layers: L,
    heads: H,
    tokens: N,
    meanNll: result.meanNll,
    entropy: meanOverTokens((l, h, t) => r.headEntropy[(l * H + h) * N + t]),
    signals,
  };
}
