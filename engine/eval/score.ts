/**
 * Scoring token sequences with a loaded model: the NLL of every token after the first, each with the
 * context the sliding-window rule gives it (analysis/windows.ts). Shared by perplexity, multiple
 * choice and compare; the runtime does the work (onnxruntime or TensorFlow.js), only NLLs come back.
 */
import { throwIfCancelled, type CancelToken } from '../errors';
import type { LoadedModel } from '../runtime/loaded';
import { slidingWindows, type Window } from '../analysis/windows';

export interface Scored {
  /** nll[i] = −log p(ids[i] | context): NaN for i = 0 (no context) and for unscored tokens. */
  nll: Float32Array;
  /** Tokens of context each scored token had. */
  context: Int32Array;
  windows: Window[];
}

/** Progress callback: tokens scored so far of the total. */
export type Progress = (done: number, total: number) => void;

/**
 * Scores `ids` with windows of `context` tokens every `stride`. Diffusion models score every token
 * as itself (a denoiser at t = 0), which is what their NLL means.
 */
export async function scoreIds(lm: LoadedModel, ids: Int32Array, context: number, stride: number, token?: CancelToken, progress?: Progress): Promise<Scored> {
  const n = ids.length;
  const nll = new Float32Array(n).fill(NaN);
  const ctx = new Int32Array(n);
  const windows = slidingWindows(n, context, stride);
  const causal = lm.info.causal;
  for (const w of windows) {
    throwIfCancelled(token);
    const win = ids.subarray(w.begin, w.end);
    const targets = causal ? Int32Array.from({ length: win.length }, (_, p) => (w.begin + p + 1 < n ? ids[w.begin + p + 1] : -1)) : Int32Array.from(win);
    const gen = lm.runner.analyzeWindow({ ids: Int32Array.from(win), targets, topK: 1, attention: () => false, audit: [] }, token);
    let step = await gen.next();
    while (!step.done) step = await gen.next();
    const out = step.value;
    for (let p = w.ownFrom; p < Math.min(w.ownTo, n); p++) {
      const target = causal ? p + 1 : p;
      if (target >= n) continue;
      nll[target] = out.nll[p - w.begin];
      ctx[target] = causal ? p - w.begin + 1 : w.end - w.begin;
    }
    progress?.(Math.min(w.ownTo, n), n);
  }
  return { nll, context: ctx, windows };
}
