/**
 * What the analysis computes from a layer's attention and from the logits (DESIGN.md, "What the
 * analysis reports"), written once against the op interface so that every runtime computes it on
 * its device and reads back only small arrays:
 *   per head and query: max attention, argmax key, entropy (nats), mean attended distance;
 *   per query: k* = argmax_k mean_h attn[h][t][k] and the latent code z[t][k*] (one value per head);
 *   per position: NLL of the target, top-k ids and probabilities — never the full logits.
 */
import type { Ops } from '../models/ops';

export interface LayerSummaries<T> {
  headMax: T; // (B, H, T)
  headArgmax: T; // (B, H, T) int32
  headEntropy: T; // (B, H, T)
  headDistance: T; // (B, H, T)
  latentKey: T; // (B, T) int32
  latentCode: T; // (B, T, H)
}

/**
 * probs (B, H, T, T) — softmax rows, or HYLA's signed RMS-normalised codes (entropy is then of
 * |a| normalised per row; for softmax that is the ordinary entropy). dist (T, T) = |t − k|;
 * keys (T) = the key positions 0 … T−1 (int32).
 */
export function layerSummaries<T>(o: Ops<T>, probs: T, dist: T, keys: T): LayerSummaries<T> {
  const p = o.abs(probs);
  const rowSum = o.maximum(o.sum(p, -1, true), 1e-30);
  const q = o.div(p, rowSum);
  const headEntropy = o.neg(o.sum(o.mul(q, o.log(o.maximum(q, 1e-30))), -1));
  const meanP = o.mean(probs, 1); // (B, T, T)
  const latentKey = o.argMax(meanP, -1); // (B, T)
  // one-hot of k* by comparing key positions: (B, 1, T, T) against the (T) key positions
  const pick = o.cast(o.equal(o.unsqueeze(o.unsqueeze(latentKey, -1), 1), keys), 'float32');
  const code = o.sum(o.mul(probs, pick), -1); // (B, H, T)
  return {
    headMax: o.max(probs, -1),
    headArgmax: o.argMax(probs, -1),
    headEntropy,
    headDistance: o.div(o.sum(o.mul(p, dist), -1), o.squeeze(rowSum, -1)),
    latentKey,
    latentCode: o.transpose(code, [0, 2, 1]),
  };
}

export interface Predictions<T> {
  nll: T; // (…) −log p(target)
  topIds: T; // (…, K) int32
  topProbs: T; // (…, K)
}

/** NLL of `targets` (…, int32) and the top-k of softmax(logits (…, V)), via log-sum-exp (no full softmax). */
/** −log p(target) from logits (…, V) and targets (…): logsumexp − the target's logit. */
export function predictionsNll<T>(o: Ops<T>, logits: T, targets: T): T {
  return o.squeeze(o.sub(o.logSumExp(logits, -1, true), o.takeAlongLast(logits, o.unsqueeze(targets, -1))), -1);
}

export function predictions<T>(o: Ops<T>, logits: T, targets: T, k: number): Predictions<T> {
  const lse = o.logSumExp(logits, -1, true); // (…, 1)
  const target = o.takeAlongLast(logits, o.unsqueeze(targets, -1)); // (…, 1)
  const top = o.topk(logits, k);
  return {
    nll: o.squeeze(o.sub(lse, target), -1),
    topIds: top.indices,
    topProbs: o.exp(o.sub(top.values, lse)),
  };
}

export interface LensPredictions<T> extends Predictions<T> {
  /** 1 + the number of ids scored above the target (1 = the model's top guess). */
  rank: T; // (…) int32
}

/** The logit lens of residual rows: the predictions plus the target's rank (probability = exp(−nll)). */
export function lensPredictions<T>(o: Ops<T>, logits: T, targets: T, k: number): LensPredictions<T> {
  const p = predictions(o, logits, targets, k);
  const target = o.takeAlongLast(logits, o.unsqueeze(targets, -1)); // (…, 1)
  const above = o.sum(o.cast(o.greater(logits, target), 'float32'), -1);
  return { ...p, rank: o.cast(o.add(above, 1), 'int32') };
}
