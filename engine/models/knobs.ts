/**
 * Knobs: attention mechanisms that any family can switch on in its config, written once against
 * the op interface (ops.ts) so every family calls the same maths.
 *
 * GatedAttn (`config.gate`), as openai/parameter-golf PR #1784 `train_gpt.py` (T:686-690; the form
 * of PR #1736) has it: per head h and token t a gate g = σ(n_t · W_g[h]) from the normalised
 * attention input n (the tensor that feeds the q/k/v projection), no bias, one scalar per
 * (token, head), multiplied into the head's attention output before the heads are merged and
 * projected. The weight `attn_gate_w` is [H, C], applied as F.linear; declared `linear: true` it
 * arrives [C, H]. Init N(0, 0.005) (#1784) makes g ≈ 0.5 at the start.
 */
import type { Ops } from './ops';

export interface GatedAttention<T> {
  /** The gated per-head output (B, H, T, d). */
  out: T;
  /** The factor applied per head and token (B, H, T): the `gate` signal. */
  gate: T;
  /** The same factor as (B, T, H): the layout parameter-golf computes it in (fixture name `gate.{l}`). */
  gateByToken: T;
}

/**
 * GatedAttn on one layer's per-head attention output.
 *   out  (B, H, T, d) the heads' attention output (after any head intervention);
 *   n    (B, T, C)    the normalised input that fed the q/k/v projection;
 *   w    (C, H)       `attn_gate_w` as `o.param` gives a `linear: true` parameter;
 *   off  (1, H, 1, 1) or null: 1 switches a head's gate off (factor 1, the ungated head) — the
 *        `adaptiveOffOf` row of the layer.
 */
export function attentionGate<T>(o: Ops<T>, out: T, n: T, w: T, off: T | null): GatedAttention<T> {
  let gate = o.transpose(o.sigmoid(o.matmul(n, w)), [0, 2, 1]); // (B, H, T)
  if (off) {
    const offH = o.squeeze(off, 3); // (1, H, 1)
    gate = o.add(gate, o.mul(offH, o.sub(1, gate))); // off = 1 → 1, off = 0 → σ(·)
  }
  return { out: o.mul(out, o.unsqueeze(gate, 3)), gate, gateByToken: o.transpose(gate, [0, 2, 1]) };
}

// ---------------------------------------------------------------------------------------------
// HYLA (Schug et al., ICLR 2025; smonsays/hypernetwork-attention `hyla/models/attention.py`,
// commit af9805f): the scores' normalisation — softmax over keys, or RMS over the HEAD axis
// (`rms_head`, lines 109-113: masked scores set to 0, then a = s / √(mean_h s² + 1e-6), no gain,
// signed) — and the value network the latent code z_{q,k} = a_{·,q,k} generates (lines 405-413):
// linear (Σ_k a v), or with a ReLU: u_{q,k} = Σ_h a_{h,q,k} v_{h,k}, r = relu(u),
// w_{q,h} = Σ_k a_{h,q,k} r_{q,k}.
//
// The ReLU network's hidden layer is (B, Tq, Tk, d): it is computed in query chunks sized from a
// memory budget, each chunk reading only the keys its queries can see (causal, windowed), so a
// long window never holds it whole. Chunk bounds are static (a traced ONNX graph has a free
// sequence length): with the length unknown the chunks cover the longest sequence the graph runs,
// the last one open-ended, and a chunk past the actual length is an empty slice.
// ---------------------------------------------------------------------------------------------

/** The ε of flax `linen.RMSNorm` (its default), which RMSHead uses. */
export const RMS_HEAD_EPS = 1e-6;
/** jnp.finfo(float32).min: where HYLA's softmax puts masked scores (attention.py:105). */
const F32_MIN = -3.4028234663852886e38;
/** Floats one chunk of the ReLU network's hidden layer may hold, per sequence (≈ 128 MB). */
export const HYLA_HIDDEN_BUDGET = 32 * 1024 * 1024;

export type AttentionNorm = 'softmax' | 'rms_head';
export type ValueNet = 'linear' | 'relu';

/**
 * Which keys each query sees, broadcastable to (B, H, Tq, Tk): `additive` 0 / −∞ (as
 * layers.causalMask builds it), or `keep` true / 1 where visible (bool or 0/1 floats). A mask,
 * not a bias: position biases go in `MixerSpec.bias`.
 */
export type ScoreMask<T> = { additive: T } | { keep: T };

export interface MixerSpec<T> {
  attention: AttentionNorm;
  valueNet: ValueNet;
  /** Score scale, 1/√d_k. */
  scale: number;
  /** Added to the scaled scores before masking and normalisation: a relative-position bias (…, H, Tq, Tk). */
  bias?: T | null;
  /** The longest sequence the graph runs: the chunk count when the length is free. */
  maxLen: number;
  /**
   * A causal mask's left window (query t sees keys t − window … t; null: the whole prefix): the
   * ReLU network's chunks then read only their visible keys. Absent: every key (bidirectional).
   */
  causalWindow?: number | null;
  /** Floats one hidden-layer chunk may hold (default HYLA_HIDDEN_BUDGET). */
  hiddenBudget?: number;
  /** Also return the whole pre-ReLU hidden layer u (B, Tq, Tk, d): small windows only (tests, probes). */
  wantHidden?: boolean;
  /** With the ReLU network, also compute `hylaActive`. */
  wantActive?: boolean;
}

export interface MixerOut<T> {
  /** Per-head output (B, H, Tq, d), before the heads are merged and projected. */
  out: T;
  /** Normalised scores (B, H, Tq, Tk): softmax probabilities, or RMSHead's signed latent codes. */
  attn: T;
  /** u (B, Tq, Tk, d) before the ReLU, when asked for. */
  hidden?: T;
  /** hylaActive (B, H, Tq): fraction of ReLU units active for (t, k*), k* = argmax_k mean_h attn. */
  active?: T;
}

/**
 * Multi-head attention with the HYLA knobs. q (B, H, Tq, d), k and v (B, H, Tk, d) with H heads
 * each (GQA already repeated). softmax + linear is ordinary attention (layers.attention's maths).
 */
export function mixHeads<T>(o: Ops<T>, q: T, k: T, v: T, mask: ScoreMask<T> | null, spec: MixerSpec<T>): MixerOut<T> {
  let scores = o.mul(o.matmul(q, o.transpose(k, [0, 1, 3, 2])), spec.scale); // (B, H, Tq, Tk)
  if (spec.bias) scores = o.add(scores, spec.bias);
  const attn = spec.attention === 'softmax' ? softmaxScores(o, scores, mask) : rmsHeadScores(o, scores, mask);
  if (spec.valueNet === 'linear') return { out: o.matmul(attn, v), attn };
  const net = reluValueNet(o, attn, v, spec);
  return { out: net.out, attn, hidden: net.hidden, active: spec.wantActive ? hylaActive(o, attn, v) : undefined };
}

/** Softmax over keys; masked scores → −∞ (additive) or finfo(float32).min (keep, attention.py:102-108). */
function softmaxScores<T>(o: Ops<T>, s: T, mask: ScoreMask<T> | null): T {
  if (!mask) return o.softmax(s);
  return o.softmax('additive' in mask ? o.add(s, mask.additive) : o.where(keepOf(o, mask), s, F32_MIN));
}

/** RMSHead (attention.py:109-113): masked scores → 0, then RMS-normalised over the head axis. */
function rmsHeadScores<T>(o: Ops<T>, s: T, mask: ScoreMask<T> | null): T {
  const masked = mask ? o.where(keepOf(o, mask), s, 0) : s;
  return o.mul(masked, o.rsqrt(o.add(o.mean(o.square(masked), 1, true), RMS_HEAD_EPS)));
}

/** The mask as a bool "visible" tensor. */
function keepOf<T>(o: Ops<T>, mask: ScoreMask<T>): T {
  if ('additive' in mask) return o.greater(mask.additive, -Infinity);
  return o.dtype(mask.keep) === 'bool' ? mask.keep : o.greater(mask.keep, 0);
}

/** Query rows per hidden-layer chunk: as many as the budget holds for one sequence. */
export function hylaChunkRows(maxKeys: number, d: number, budget = HYLA_HIDDEN_BUDGET): number {
  return Math.max(1, Math.floor(budget / Math.max(1, maxKeys * d)));
}

/**
 * attention.py:410-412 one query chunk at a time: u = einsum(hqk,khd→qkd), r = relu(u),
 * w = einsum(hqk,qkd→qhd). Each einsum is one batched product: over (b, k) (Tq, H) @ (H, d), then
 * over (b, q) (H, Tk) @ (Tk, d).
 */
function reluValueNet<T>(o: Ops<T>, a: T, v: T, spec: MixerSpec<T>): { out: T; hidden?: T } {
  const T = o.shape(a)[2] ?? spec.maxLen; // the sequence length where it is known, else the longest run
  const d = o.shape(v)[3] as number;
  const window = spec.wantHidden ? undefined : spec.causalWindow; // the whole hidden layer needs every key
  const rows = chunkRows(T, d, window, spec.hiddenBudget);
  const outs: T[] = [], hiddens: T[] = [];
  for (let s = 0; s < T; s += rows) {
    const e = s + rows < T ? s + rows : undefined; // open-ended last chunk: a free length stays free
    const ks = window === undefined || window === null ? 0 : Math.max(0, s - window);
    const ke = window === undefined ? undefined : e; // causal: no key after the chunk's last query
    const aChunk = part(o, part(o, a, 2, s, e), 3, ks, ke); // (B, H, Tc, Kc)
    const vChunk = part(o, v, 2, ks, ke); // (B, H, Kc, d)
    const uByKey = o.matmul(o.transpose(aChunk, [0, 3, 2, 1]), o.transpose(vChunk, [0, 2, 1, 3])); // (B, Kc, Tc, d)
    const u = o.transpose(uByKey, [0, 2, 1, 3]); // (B, Tc, Kc, d)
    const w = o.matmul(o.transpose(aChunk, [0, 2, 1, 3]), o.relu(u)); // (B, Tc, H, d)
    outs.push(o.transpose(w, [0, 2, 1, 3])); // (B, H, Tc, d)
    if (spec.wantHidden) hiddens.push(u);
  }
  return { out: o.concat(outs, 2), hidden: spec.wantHidden ? o.concat(hiddens, 1) : undefined };
}

/** x[start:end] along an axis; x itself when that is all of it (no node). */
function part<T>(o: Ops<T>, x: T, axis: number, start: number, end: number | undefined): T {
  return start === 0 && end === undefined ? x : o.slice(x, axis, start, end);
}

/** Query rows per chunk: a chunk reads at most min(T, window + rows) keys (T without a window). */
function chunkRows(T: number, d: number, window: number | null | undefined, budget?: number): number {
  if (window === undefined || window === null || window + 1 >= T) return hylaChunkRows(T, d, budget);
  return Math.min(window + 1, hylaChunkRows(Math.min(T, 2 * (window + 1)), d, budget));
}

/**
 * Per query t the generated network's hidden units at its main key k* (the analysis's latent key,
 * argmax_k mean_h a): u_{t,k*} = Σ_h a_{h,t,k*} v_{h,k*}, active where > 0. One value per token,
 * given to every head: the heads share the units. a and v are read at k* by gathers (O(T·H·d)).
 */
function hylaActive<T>(o: Ops<T>, a: T, v: T): T {
  const kStar = o.argMax(o.mean(a, 1), -1); // (B, Tq)
  const intZeros = (x: T) => o.cast(o.mul(x, 0), 'int32');
  const aIdx = o.add(o.unsqueeze(o.unsqueeze(kStar, 1), -1), intZeros(o.slice(o.slice(a, 2, 0, 1), 3, 0, 1))); // (B, H, Tq, 1)
  const aAt = o.squeeze(o.takeAlongLast(a, aIdx), -1); // (B, H, Tq)
  const vByDim = o.transpose(v, [0, 1, 3, 2]); // (B, H, d, Tk)
  const vIdx = o.add(o.unsqueeze(o.unsqueeze(kStar, 1), 1), intZeros(o.slice(vByDim, 3, 0, 1))); // (B, H, d, Tq)
  const uAt = o.sum(o.mul(o.takeAlongLast(vByDim, vIdx), o.unsqueeze(aAt, 2)), 1); // (B, d, Tq)
  const frac = o.mean(o.cast(o.greater(uAt, 0), 'float32'), 1); // (B, Tq)
  return o.add(o.unsqueeze(frac, 1), o.mul(aAt, 0)); // (B, H, Tq)
}
