/**
 * AdamW with PyTorch's semantics (torch.optim.AdamW, the single-tensor path): decoupled weight
 * decay `p ← p·(1 − lr·wd)` on every parameter (a-gpt passes model.parameters() as one group),
 * then `m ← β1·m + (1−β1)·g`, `v ← β2·v + (1−β2)·g²`,
 * `p ← p − (lr / (1−β1^t)) · m / (√v / √(1−β2^t) + eps)`.
 * Also global gradient-norm clipping as torch.nn.utils.clip_grad_norm_ (coef = max/(norm + 1e-6)).
 */
import * as tf from '@tensorflow/tfjs-core';

export interface AdamWOptions {
  betas: [number, number];
  eps: number;
  weightDecay: number;
}

export class AdamW {
  readonly m = new Map<string, tf.Variable>();
  readonly v = new Map<string, tf.Variable>();
  step = 0;

  constructor(private readonly params: Map<string, tf.Variable>, readonly opts: AdamWOptions) {
    for (const [name, p] of params) {
      this.m.set(name, tf.variable(tf.zerosLike(p), false));
      this.v.set(name, tf.variable(tf.zerosLike(p), false));
    }
  }

  /** One update with learning rate `lr`. `grads` by parameter name. */
  update(grads: Map<string, tf.Tensor>, lr: number): void {
    this.step++;
    const [b1, b2] = this.opts.betas;
    const bc1 = 1 - b1 ** this.step;
    const bc2Sqrt = Math.sqrt(1 - b2 ** this.step);
    const stepSize = lr / bc1;
    for (const [name, p] of this.params) {
      const g = grads.get(name);
      if (!g) continue;
      tf.tidy(() => {
        const m = this.m.get(name)!, v = this.v.get(name)!;
        const decayed = tf.mul(p, 1 - lr * this.opts.weightDecay);
        const m1 = tf.add(tf.mul(m, b1), tf.mul(g, 1 - b1));
        const v1 = tf.add(tf.mul(v, b2), tf.mul(tf.square(g), 1 - b2));
        const denom = tf.add(tf.div(tf.sqrt(v1), bc2Sqrt), this.opts.eps);
        m.assign(m1);
        v.assign(v1);
        p.assign(tf.sub(decayed, tf.mul(tf.div(m1, denom), stepSize)));
      });
    }
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
    this.m.clear();
    this.v.clear();
  }
}

/** Global L2 norm of all gradients (before clipping). */
export async function globalNorm(grads: Map<string, tf.Tensor>): Promise<number> {
  // stack + sum, not addN: WebGPU's AddN over many inputs returned wrong sums (seen with 28+ inputs)
  const sq = tf.tidy(() => tf.sum(tf.stack([...grads.values()].map((g) => tf.sum(tf.square(g))))));
  const v = (await sq.data())[0];
  sq.dispose();
  return Math.sqrt(v);
}

/** Scale gradients in place so that their global norm is at most `maxNorm` (PyTorch's rule). */
export function clipGrads(grads: Map<string, tf.Tensor>, norm: number, maxNorm: number): void {
  const coef = maxNorm / (norm + 1e-6);
  if (!(coef < 1)) return;
  for (const [k, g] of grads) {
    grads.set(k, tf.mul(g, coef));
    g.dispose();
  }
}
