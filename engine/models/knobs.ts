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
