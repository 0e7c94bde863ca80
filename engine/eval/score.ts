/**
 * Scoring token sequences with a loaded model: the NLL of every token after the first, each with the
 * context the sliding-window rule gives it (analysis/windows.ts). Shared by perplexity, multiple
 * choice and compare; the runtime does the work (onnxruntime or TensorFlow.js), only NLLs come back.
 */
import { throwIfCancelled, type CancelToken } from '../errors';
import type { LoadedModel } from '../runtime/loaded';
import { slidingWindows, type Window } from '../analysis/windows';
import { nllBatchRows, type HostControls } from '../runtime/runner';

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
 * Scores `ids` with windows of `context` tokens every `stride`. Windows of the same length go
 * through the runtime together (as many as `nllBatchRows` allows). Diffusion models score every
 * token as itself (a denoiser at t = 0), which is what their NLL means.
 */
export async function scoreIds(lm: LoadedModel, ids: Int32Array, context: number, stride: number, token?: CancelToken, progress?: Progress, controls?: HostControls): Promise<Scored> {
  const n = ids.length;
  const nll = new Float32Array(n).fill(NaN);
  const ctx = new Int32Array(n);
  const windows = slidingWindows(n, context, stride);
  const causal = lm.info.causal;
  const perCall = (T: number) => Math.max(1, Math.floor(nllBatchRows(lm.config.vocab_size) / T));
  for (let i = 0; i < windows.length; ) {
    throwIfCancelled(token);
    const T = windows[i].end - windows[i].begin;
    let j = i + 1;
    while (j < windows.length && j - i < perCall(T) && windows[j].end - windows[j].begin === T) j++;
    const batch = windows.slice(i, j), B = batch.length;
    const flat = new Int32Array(B * T), targets = new Int32Array(B * T);
    batch.forEach((w, b) => {
      flat.set(ids.subarray(w.begin, w.end), b * T);
      for (let p = 0; p < T; p++) targets[b * T + p] = causal ? (w.begin + p + 1 < n ? ids[w.begin + p + 1] : -1) : ids[w.begin + p];
    });
    const out = await lm.runner.nll({ ids: flat, targets, B, T, controls }, token);
    batch.forEach((w, b) => {
      for (let p = w.ownFrom; p < Math.min(w.ownTo, n); p++) {
        const target = causal ? p + 1 : p;
        if (target >= n) continue;
        nll[target] = out[b * T + p - w.begin];
        ctx[target] = causal ? p - w.begin + 1 : w.end - w.begin;
      }
    });
    progress?.(Math.min(batch[B - 1].ownTo, n), n);
    i = j;
  }
  return { nll, context: ctx, windows };
}
