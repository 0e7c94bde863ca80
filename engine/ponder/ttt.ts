/**
 * PonderTTT's TTT branch, written once against the op interface (TensorFlow.js with gradients for
 * training; traced to ONNX for onnxruntime): `out = h + TTTLayer(fast_norm(h))` on the frozen
 * base's final hidden state h (after ln_f), as deveworld/ponderTTT `models/base_model_nnx.py:226-249`
 * and `models/ttt_layer_nnx.py` (commit d77657d) compute it. Their quirks are kept (see the
 * fixture README, shared/research/methods.md §2.2):
 *
 *   xqk = x·W_q (Q and K share W_q), XV = x·W_v; XQ, XK = depthwise convs of xqk whose taps are
 *   t−4..t−1 for width 4 (a left pad of w−1, then nnx.Conv's 'SAME' pad of ⌊(w−1)/2⌋ more);
 *   RoPE (interleaved pairs) at positions t mod M; per head and mini-batch of M rows, with fast
 *   weights (W, b) from the mini-batch before (reset to (W1, b1) at every call = every chunk):
 *     G = ∂½‖LN_h(K·W + b) − (V − K)‖²/∂Z          (population variance, closed-form backward)
 *     z̄_i = q_i·W + b − Σ_{j≤i} η_j (1 + q_i·k_j) G_j,  out_i = q_i + LN_h(z̄_i)   (dual form)
 *     W ← W − Σ_j η_j k_jᵀ G_j,  b ← b − Σ_j η_j G_j
 *   η_{h,j} = lr·max(0, 1/(j+1) + τ_j)·exp(γ(j−M+1))·σ(x_j·θ_h + c_h)·(768/C)/d (the same j twice);
 *   Z = post_norm(z̄ rows) ⊙ gelu_tanh(x·W_g), output Z·W_o.
 * Statistics at the last row of each mini-batch, mean over d: ttt_loss_init (at W1, b1),
 * ttt_loss_step_0 (at the mini-batch's W, b: the gate's signal) and ttt_loss_step_1 (after its update).
 *
 * The mini-batch scan is sequential, so the chunk length must be known when the program runs
 * (tfjs: always; ONNX: the graph is traced for one chunk length, the batch stays free).
 */
import type { Ops } from '../models/ops';
import { geluTanh, ropeHostTables } from '../models/layers';
import { ETA_REFERENCE_WIDTH, TTT_LN_EPS, type TttConfig } from './config';

export interface TttOptions {
  /** Multiplies every η (their `gating_scale`): 0 keeps the fast weights at (W1, b1), the paper's "W₀ forward". */
  etaScale?: number;
  /** Also return the fast weights after each mini-batch's update (fastW, fastB). */
  fastWeights?: boolean;
}

export interface TttBranch<T> {
  /** (B, T, C) h + ttt_output: the UPDATE path's hidden state (the SKIP path is h itself). */
  out: T;
  /** (B, T, C) the layer's output Z·W_o. */
  tttOutput: T;
  /** (B, T, C) fast_norm(h), the layer's input. */
  normed: T;
  /** (B, T, H, d) after the causal conv and RoPE; xv = x·W_v. */
  xq: T;
  xk: T;
  xv: T;
  /** (B, H, n_mb, M) the inner-loop step sizes. */
  eta: T;
  /** (B, T, H·d) the dual-form output before post_norm. */
  z: T;
  /** (B, H, n_mb) reconstruction losses at the last row of each mini-batch. */
  lossInit: T;
  lossStep0: T;
  lossStep1: T;
  /** (B, n_mb) MSE of the last row's (V − K) from its sequence mean, over heads and d (K before RoPE). */
  sslTargetVariance: T;
  /** (B, H, n_mb, d, d) and (B, H, n_mb, d), when asked for. */
  fastW?: T;
  fastB?: T;
}

/** fast_norm(h) → TTT layer → residual; h (B, T, C) with T a known multiple of the mini-batch size. */
export function tttBranch<T>(o: Ops<T>, c: TttConfig, h: T, opts: TttOptions = {}): TttBranch<T> {
  const P = (n: string) => o.param(`fast_layer.${n}`);
  const T = o.shape(h)[1];
  const { num_heads: H, head_dim: d, mini_batch_size: M } = c;
  if (T === null) throw new Error('the TTT layer needs a known chunk length (trace the graph for one)');
  if (T % M !== 0 || T === 0) throw new Error(`chunk length ${T} is not a multiple of the TTT mini-batch size ${M}`);
  const n = T / M;
  const x = o.layerNorm(h, o.param('fast_norm.scale'), o.param('fast_norm.bias'), TTT_LN_EPS); // (B, T, C)
  const xqk = o.matmul(x, P('wq.kernel')); // (B, T, H·d)
  const xvFlat = o.matmul(x, P('wv.kernel'));
  const xqConv = causalConv(o, xqk, P('conv_q.kernel'), P('conv_q.bias'), c.conv_width, T);
  const xkConv = causalConv(o, xqk, P('conv_k.kernel'), P('conv_k.bias'), c.conv_width, T);
  const sslTargetVariance = targetVariance(o, xvFlat, xkConv, n, M);
  const rope = ropeAtMiniBatchPositions(o, c, T);
  const heads = (v: T) => o.reshape(v, [0, 0, H, d]); // (B, T, H, d)
  const xq = rotate(o, heads(xqConv), rope), xk = rotate(o, heads(xkConv), rope), xv = heads(xvFlat);
  const eta = stepSizes(o, c, x, n, opts.etaScale); // (B, H, n, M)
  const scan = miniBatchScan(o, c, toMiniBatches(o, xq, c, n), toMiniBatches(o, xk, c, n), toMiniBatches(o, xv, c, n), eta, n, !!opts.fastWeights);
  const z = o.reshape(o.transpose(scan.rows, [0, 2, 1, 3]), [0, 0, H * d]); // (B, H, T, d) → (B, T, H·d)
  const gate = geluTanh(o, o.matmul(x, P('wg.kernel')));
  const tttOutput = o.matmul(o.mul(gate, o.layerNorm(z, P('post_norm.scale'), P('post_norm.bias'), TTT_LN_EPS)), P('wo.kernel'));
  return {
    out: o.add(h, tttOutput), tttOutput, normed: x, xq, xk, xv, eta, z,
    lossInit: scan.lossInit, lossStep0: scan.lossStep0, lossStep1: scan.lossStep1, sslTargetVariance,
    ...(scan.fastW ? { fastW: scan.fastW, fastB: scan.fastB } : {}),
  };
}

/**
 * `_apply_causal_conv` (ttt_layer_nnx.py:406-423): pad w−1 zeros on the left, nnx.Conv with its
 * 'SAME' padding (lax puts ⌊(w−1)/2⌋ more on the left), keep the first T rows. Output row t is
 * b + Σ_j k[j]·x[t + j − offset] with offset = ⌊(w−1)/2⌋ + w − 1: for w = 4 the taps t−4..t−1.
 * Depthwise: the Flax kernel [w, 1, F] holds one weight per tap and channel.
 */
function causalConv<T>(o: Ops<T>, x: T, kernel: T, bias: T, width: number, T: number): T {
  const offset = Math.floor((width - 1) / 2) + width - 1;
  const F = o.shape(x)[2] as number;
  const taps = o.reshape(kernel, [width, F]);
  // zeros (B, offset, F) that follow the batch dimension, which may be unknown here
  const zeros = () => o.add(o.mul(o.slice(x, 1, 0, 1), 0), o.constant(new Float32Array(offset * F), [1, offset, F]));
  const padded = offset > 0 ? o.concat([zeros(), x], 1) : x; // (B, offset + T, F)
  let y: T = bias;
  for (let j = 0; j < width; j++) y = o.add(y, o.mul(o.slice(padded, 1, j, j + T), o.slice(taps, 0, j, j + 1)));
  return y;
}

/** ssl_target_variance (lines 543-560): per mini-batch, mean over heads and d of ((v − k)_last − mean_t(v − k))². */
function targetVariance<T>(o: Ops<T>, xv: T, xk: T, n: number, M: number): T {
  const target = o.sub(xv, xk); // (B, T, F)
  const mean = o.mean(target, 1, true); // (B, 1, F)
  const last = o.squeeze(o.slice(o.reshape(target, [0, n, M, -1]), 2, M - 1, M), 2); // (B, n, F)
  return o.mean(o.square(o.sub(last, mean)), 2); // (B, n)
}

interface Rope<T> {
  cos: T; // (T, 1, d): broadcast over heads
  sin: T;
  rot: T; // (d, d)
}

/**
 * RoPE tables at positions t mod M (their `position_ids % mini_batch_size`, each chunk starting at
 * position 0): freqs θ^(−2i/d) in float32 as their numpy precompute, pairs (2i, 2i+1) rotated as
 * complex numbers.
 */
function ropeAtMiniBatchPositions<T>(o: Ops<T>, c: TttConfig, T: number): Rope<T> {
  const d = c.head_dim, M = c.mini_batch_size;
  const host = ropeHostTables({ layout: 'interleaved', headDim: d, base: c.rope_theta, maxLen: M });
  const cos = new Float32Array(T * d), sin = new Float32Array(T * d);
  for (let t = 0; t < T; t++) {
    cos.set(host.cos.subarray((t % M) * d, (t % M + 1) * d), t * d);
    sin.set(host.sin.subarray((t % M) * d, (t % M + 1) * d), t * d);
  }
  return { cos: o.constant(cos, [T, 1, d]), sin: o.constant(sin, [T, 1, d]), rot: o.constant(host.rot, [d, d]) };
}

function rotate<T>(o: Ops<T>, x: T, r: Rope<T>): T {
  return o.add(o.mul(x, r.cos), o.mul(o.matmul(x, r.rot), r.sin));
}

/** (B, T, H, d) → (B, H, n, M, d) */
function toMiniBatches<T>(o: Ops<T>, x: T, c: TttConfig, n: number): T {
  return o.transpose(o.reshape(x, [0, n, c.mini_batch_size, c.num_heads, c.head_dim]), [0, 3, 1, 2, 4]);
}

/** η (B, H, n, M) as `get_eta` (lines 460-515): the position factor and the per-head sigmoid at the same j. */
function stepSizes<T>(o: Ops<T>, c: TttConfig, x: T, n: number, etaScale: number | undefined): T {
  const { num_heads: H, mini_batch_size: M, hidden_dim: C } = c;
  const kernels = o.concat(Array.from({ length: H }, (_, h) => o.param(`fast_layer.learnable_ttt_lr_layers.${h}.kernel`)), 1); // (C, H)
  const biases = o.concat(Array.from({ length: H }, (_, h) => o.param(`fast_layer.learnable_ttt_lr_layers.${h}.bias`)), 0); // (H)
  const lr = o.sigmoid(o.add(o.matmul(x, kernels), biases)); // (B, T, H)
  const perHead = o.transpose(o.reshape(lr, [0, n, M, H]), [0, 3, 1, 2]); // (B, H, n, M)
  const inverse = Float32Array.from({ length: M }, (_, j) => 1 / (j + 1));
  const decay = Float32Array.from({ length: M }, (_, j) => Math.exp(c.eta_decay_rate * (j - (M - 1))));
  const tokenIdx = o.mul(o.maximum(o.add(o.param('fast_layer.learnable_token_idx'), o.constant(inverse, [M])), 0), o.constant(decay, [M])); // (M)
  let eta = o.div(o.mul(o.mul(o.mul(tokenIdx, c.ttt_base_lr), perHead), ETA_REFERENCE_WIDTH / C), c.head_dim);
  if (etaScale !== undefined) eta = o.mul(eta, etaScale);
  return eta;
}

/** LayerNorm over d with the population variance (TTTLayerNorm), keeping what its backward needs. */
function headNorm<T>(o: Ops<T>, z: T, scale: T, bias: T): { y: T; xhat: T; rstd: T } {
  const centred = o.sub(z, o.mean(z, -1, true));
  const rstd = o.rsqrt(o.add(o.mean(o.square(centred), -1, true), TTT_LN_EPS));
  const xhat = o.mul(centred, rstd);
  return { y: o.add(o.mul(xhat, scale), bias), xhat, rstd };
}

/** The vector-Jacobian product of headNorm: ∂/∂z of ⟨g, LN(z)⟩ = rstd·(gγ − mean(gγ) − x̂·mean(gγ·x̂)). */
function headNormBackward<T>(o: Ops<T>, g: T, n: { xhat: T; rstd: T }, scale: T): T {
  const gx = o.mul(g, scale);
  const inner = o.sub(o.sub(gx, o.mean(gx, -1, true)), o.mul(n.xhat, o.mean(o.mul(gx, n.xhat), -1, true)));
  return o.mul(n.rstd, inner);
}

/** mean over d of the last row's squared residual: (B, H, M, d) → (B, H). */
function lastRowLoss<T>(o: Ops<T>, residual: T, M: number): T {
  return o.mean(o.square(o.slice(residual, 2, M - 1, M)), [2, 3]);
}

/** The same loss of the last row's reconstruction at fast weights (W, b): k and target (B, H, 1, d). */
function rowLoss<T>(o: Ops<T>, kLast: T, targetLast: T, W: T, b: T, scale: T, bias: T): T {
  return o.mean(o.square(o.sub(headNorm(o, o.add(o.matmul(kLast, W), b), scale, bias).y, targetLast)), [2, 3]);
}

interface ScanOut<T> {
  rows: T; // (B, H, T, d)
  lossInit: T;
  lossStep0: T;
  lossStep1: T;
  fastW?: T;
  fastB?: T;
}

/** The lax.scan of `ttt` / `process_mini_batch` (lines 586-741), unrolled over the n mini-batches. */
function miniBatchScan<T>(o: Ops<T>, c: TttConfig, Q: T, K: T, V: T, eta: T, n: number, keepWeights: boolean): ScanOut<T> {
  const { num_heads: H, head_dim: d, mini_batch_size: M } = c;
  const P = (name: string) => o.param(`fast_layer.${name}`);
  const lnScale = o.reshape(P('ttt_norm.scale'), [1, H, 1, d]), lnBias = o.reshape(P('ttt_norm.bias'), [1, H, 1, d]);
  const W0 = o.unsqueeze(P('W1'), 0), b0 = o.unsqueeze(P('b1'), 0); // (1, H, d, d), (1, H, 1, d)
  const keep = new Float32Array(M * M);
  for (let i = 0; i < M; i++) for (let j = 0; j <= Math.min(M - 1, i + c.causal_k); j++) keep[i * M + j] = 1;
  const causal = o.constant(keep, [M, M]); // tril(·, k = causal_k)
  let W = W0, b = b0;
  const rows: T[] = [], init: T[] = [], step0: T[] = [], step1: T[] = [], Ws: T[] = [], bs: T[] = [];
  const at = (x: T, i: number) => o.squeeze(o.slice(x, 2, i, i + 1), 2);
  for (let i = 0; i < n; i++) {
    const q = at(Q, i), k = at(K, i), v = at(V, i), e = at(eta, i); // (B, H, M, d), e (B, H, M)
    const target = o.sub(v, k);
    const fwd = headNorm(o, o.add(o.matmul(k, W), b), lnScale, lnBias);
    const residual = o.sub(fwd.y, target);
    let G = headNormBackward(o, residual, fwd, lnScale); // (B, H, M, d)
    if (c.max_grad_norm !== null) G = o.mul(G, o.minimum(1, o.div(c.max_grad_norm, o.add(o.sqrt(o.sum(o.square(G), [2, 3], true)), 1e-6))));
    const kLast = o.slice(k, 2, M - 1, M), targetLast = o.slice(target, 2, M - 1, M); // (B, H, 1, d)
    step0.push(lastRowLoss(o, residual, M));
    init.push(rowLoss(o, kLast, targetLast, W0, b0, lnScale, lnBias));
    // dual form: (1 + q_i·k_j) masked to j ≤ i + causal_k, columns scaled by η_j
    const weights = o.mul(o.mul(o.add(o.matmul(q, o.transpose(k, [0, 1, 3, 2])), 1), causal), o.unsqueeze(e, 2)); // (B, H, M, M)
    const zBar = o.sub(o.add(o.matmul(q, W), b), o.matmul(weights, G));
    rows.push(o.add(q, headNorm(o, zBar, lnScale, lnBias).y));
    const eCol = o.unsqueeze(e, 3); // (B, H, M, 1)
    W = o.sub(W, o.matmul(o.transpose(o.mul(k, eCol), [0, 1, 3, 2]), G)); // (B, H, d, d)
    b = o.sub(b, o.sum(o.mul(eCol, G), 2, true)); // (B, H, 1, d)
    step1.push(rowLoss(o, kLast, targetLast, W, b, lnScale, lnBias));
    if (keepWeights) {
      Ws.push(o.unsqueeze(W, 2));
      bs.push(b);
    }
  }
  const stack = (xs: T[]) => o.concat(xs.map((x) => o.unsqueeze(x, 2)), 2); // (B, H) each → (B, H, n)
  const out: ScanOut<T> = { rows: o.concat(rows, 2), lossInit: stack(init), lossStep0: stack(step0), lossStep1: stack(step1) };
  if (keepWeights) {
    out.fastW = o.concat(Ws, 2); // (B, H, n, d, d)
    out.fastB = o.concat(bs, 2); // (B, H, n, d): each b is (B, H, 1, d)
  }
  return out;
}
