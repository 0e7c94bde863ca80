/**
 * TensorFlow.js kernels with hand-written gradients, for the WASM backend's traps (TFJS.md):
 * - only an untransposed 2-D matMul reaches XNNPACK: weights are held pre-transposed ([in, out]),
 *   backward passes transpose explicitly (`mm`);
 * - `Exp` on big tensors is slow: cross-entropy is built on `softmax` with a hand-written gradient,
 *   and the output head + loss run in row chunks (`chunkedHeadLoss`);
 * - `UnsortedSegmentSum` is missing: the embedding gradient goes through `scatterND` (`embed`);
 * - `oneHot(…, 'float32')` is wrong: cast an int32 oneHot instead.
 */
import * as tf from '@tensorflow/tfjs-core';

const splitBackends = new Set(['wasm', 'cpu']);
/** True where batched/transposed matMuls fall off the fast path and must be split into 2-D calls. */
export function wantsSplitMatmul(): boolean {
  return splitBackends.has(tf.getBackend());
}

/** tf.customGrad with a typed signature (its own typing cannot express the trailing `save`). */
function customGrad<F>(f: (...args: never[]) => { value: tf.Tensor; gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor | tf.Tensor[] }): F {
  return tf.customGrad(f as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as F;
}

/** (M, K) @ (K, N) with a gradient that transposes explicitly (fast on WASM). */
export const mm = customGrad<(a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor2D>((a: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
  save([a, b]);
  return {
    value: tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sa, sb] = saved as tf.Tensor2D[];
      return [tf.matMul(dy as tf.Tensor2D, tf.transpose(sb)), tf.matMul(tf.transpose(sa), dy as tf.Tensor2D)];
    },
  };
});

// ---------------------------------------------------------------------------------------------
// Embedding and the chunked output head + cross-entropy
// ---------------------------------------------------------------------------------------------

/** table[ids] with a gradient through scatterND (sums duplicate ids; WASM lacks UnsortedSegmentSum). */
export const embed = customGrad<(table: tf.Tensor2D, ids: tf.Tensor) => tf.Tensor>((table: tf.Tensor, ids: tf.Tensor, save: tf.GradSaveFunc) => {
  const [V, C] = table.shape as [number, number];
  const flat = ids.flatten() as tf.Tensor1D;
  save([flat]);
  const value = tf.gather(table, flat).reshape([...ids.shape, C]);
  return {
    value,
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const idx = (saved[0] as tf.Tensor1D).expandDims(1) as tf.Tensor2D;
      const g = tf.scatterND(idx, dy.reshape([-1, C]), [V, C]);
      return [g, tf.zerosLike(ids)];
    },
  };
});

/**
 * Rows per chunk of the output head: a (rows, V) block of ≈ 128 MB. Fewer, larger chunks are
 * faster on WASM — every matMul against the (V, C) weight re-packs all of it (measured: 166-row
 * chunks spent 0.86 s of a 3.5 s training micro-batch in dH products alone).
 */
export function headChunkRows(vocab: number): number {
  return Math.max(16, Math.floor((32 * 1024 * 1024) / vocab));
}

/**
 * Per-row cross-entropy from logits (R, V) without `exp` over the block: with p = softmax(l),
 * m = max l and p_max = max p = 1/Σexp(l−m):  −log p_t = m − l_t − log p_max (exact, no underflow).
 */
export function crossEntropyRows(logits: tf.Tensor2D, targets: tf.Tensor1D): { ce: tf.Tensor1D; probs: tf.Tensor2D } {
  const probs = tf.softmax(logits) as tf.Tensor2D;
  const m = tf.max(logits, 1);
  const pMax = tf.max(probs, 1);
  const lt = gatherRows(logits, targets);
  return { ce: tf.sub(tf.sub(m, lt), tf.log(pMax)) as tf.Tensor1D, probs };
}

/** x[i, idx[i]] for each row. */
export function gatherRows(x: tf.Tensor2D, idx: tf.Tensor1D): tf.Tensor1D {
  const R = x.shape[0];
  const rows = tf.range(0, R, 1, 'int32');
  const pairs = tf.stack([rows, idx.toInt()], 1) as tf.Tensor2D;
  return tf.gatherND(x, pairs) as tf.Tensor1D;
}

/** oneHot as float32, via int32 (the float32 oneHot kernel is wrong on WASM). */
export function oneHotF32(idx: tf.Tensor1D, depth: number): tf.Tensor2D {
  return tf.cast(tf.oneHot(idx.toInt(), depth), 'float32') as tf.Tensor2D;
}

/** The output head as the chunked loss sees it: logits = softcap(h @ wT + bias). */
export interface HeadOptions {
  softcap?: number;
}

/** Logits of one chunk, the soft cap applied. */
function chunkLogits(hc: tf.Tensor2D, w: tf.Tensor2D, bias: tf.Tensor1D, opts: HeadOptions): tf.Tensor2D {
  const z = tf.add(tf.matMul(hc, w), bias) as tf.Tensor2D;
  return (opts.softcap ? tf.mul(tf.tanh(tf.div(z, opts.softcap)), opts.softcap) : z) as tf.Tensor2D;
}

/**
 * Weighted mean cross-entropy of `softcap(hidden @ wT + bias)` against `targets`: Σ w_i·CE_i with
 * weights `w` (1/N for a plain mean; mask/Σmask for diffusion). The (N, V) logits are never held
 * at once: forward walks row chunks and computes the gradient at the same time (the loss is a
 * scalar, so dL/dlogits = w_i·(p − onehot) is known in the forward; through the cap it is
 * multiplied by 1 − (l/cap)²), stashing dh, dW and db for backward.
 */
export function chunkedHeadLoss(hidden: tf.Tensor2D, wT: tf.Tensor2D, bias: tf.Tensor1D, targets: tf.Tensor1D, weights: tf.Tensor1D, opts: HeadOptions = {}): tf.Scalar {
  return chunkedHeadLossGrad(opts)(hidden, wT, bias, targets, weights);
}

type LossFn = (hidden: tf.Tensor2D, wT: tf.Tensor2D, bias: tf.Tensor1D, targets: tf.Tensor1D, weights: tf.Tensor1D) => tf.Scalar;
const lossFns = new Map<string, LossFn>();

function chunkedHeadLossGrad(opts: HeadOptions): LossFn {
  const key = JSON.stringify(opts);
  const known = lossFns.get(key);
  if (known) return known;
  const fn = customGrad<LossFn>((hidden: tf.Tensor, wT: tf.Tensor, bias: tf.Tensor, targets: tf.Tensor, weights: tf.Tensor, save: tf.GradSaveFunc) => {
    const h = hidden as tf.Tensor2D, w = wT as tf.Tensor2D;
    const N = h.shape[0], V = w.shape[1];
    const rows = headChunkRows(V);
    let loss = tf.scalar(0);
    let dW = tf.zerosLike(w) as tf.Tensor2D;
    let dB = tf.zerosLike(bias) as tf.Tensor1D;
    const dhParts: tf.Tensor[] = [];
    const wVC = tf.transpose(w) as tf.Tensor2D; // (V, C), once for every chunk
    for (let r0 = 0; r0 < N; r0 += rows) {
      const n = Math.min(rows, N - r0);
      const [l2, dW2, dB2, dh] = tf.tidy(() => {
        const hc = h.slice([r0, 0], [n, -1]) as tf.Tensor2D;
        const tc = (targets as tf.Tensor1D).slice([r0], [n]);
        const wc = (weights as tf.Tensor1D).slice([r0], [n]);
        const logits = chunkLogits(hc, w, bias as tf.Tensor1D, opts);
        const { ce, probs } = crossEntropyRows(logits, tc);
        let g = tf.mul(tf.sub(probs, oneHotF32(tc, V)), wc.expandDims(1)) as tf.Tensor2D; // dL/dlogits
        if (opts.softcap) g = tf.mul(g, tf.sub(1, tf.square(tf.div(logits, opts.softcap)))) as tf.Tensor2D; // through the cap
        return [tf.add(loss, tf.sum(tf.mul(ce, wc))), tf.add(dW, tf.matMul(tf.transpose(hc), g)), tf.add(dB, tf.sum(g, 0)), tf.matMul(g, wVC)];
      });
      tf.dispose([loss, dW, dB]);
      loss = l2 as tf.Scalar;
      dW = dW2 as tf.Tensor2D;
      dB = dB2 as tf.Tensor1D;
      dhParts.push(dh);
    }
    wVC.dispose();
    const dH = dhParts.length === 1 ? dhParts[0] : tf.concat(dhParts, 0);
    // The forward runs inside a tidy: `save` keeps dH, dW and dB alive until backprop (only when taping).
    save([dH, dW, dB]);
    return {
      value: loss,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [tf.mul(saved[0], dy), tf.mul(saved[1], dy), tf.mul(saved[2], dy), tf.zerosLike(targets), tf.zerosLike(weights)],
    };
  });
  lossFns.set(key, fn);
  return fn;
}

/** The same loss without gradients (evaluation): chunked, nothing stashed. */
export function chunkedHeadLossNoGrad(h: tf.Tensor2D, w: tf.Tensor2D, bias: tf.Tensor1D, targets: tf.Tensor1D, weights: tf.Tensor1D, opts: HeadOptions = {}): tf.Scalar {
  const N = h.shape[0], V = w.shape[1];
  const rows = headChunkRows(V);
  let loss = tf.scalar(0);
  for (let r0 = 0; r0 < N; r0 += rows) {
    const n = Math.min(rows, N - r0);
    const next = tf.tidy(() => {
      const { ce } = crossEntropyRows(chunkLogits(h.slice([r0, 0], [n, -1]) as tf.Tensor2D, w, bias, opts), targets.slice([r0], [n]));
      return tf.add(loss, tf.sum(tf.mul(ce, weights.slice([r0], [n]))));
    });
    loss.dispose();
    loss = next as tf.Scalar;
  }
  return loss;
}
