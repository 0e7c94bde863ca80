/**
 * The op interface on TensorFlow.js for a model whose weights stay fixed while something else is
 * trained (the test-time adapters): the same maths as TfOps, with the base weights treated as the
 * constants they are during the run.
 *
 * Why: while a gradient tape records, TensorFlow.js saves every op's inputs for the backward pass,
 * and on WASM a saved tensor is a copy (its Identity kernel copies). A family that slices one
 * block's matrices out of a bank (paramgolf's `qo_bank` [2L, C, C], …) then saves a copy of the
 * whole bank at every virtual layer — gigabytes for the record's model, past WASM's 4 GB — and
 * every product with a weight also computes that weight's gradient, which nobody needs. So:
 * - layout ops (slice, squeeze, unsqueeze, reshape, transpose) of a base weight are folded once
 *   into kept constants, outside the tape (`warm` runs the program once on one token untaped);
 * - x @ W with W constant differentiates x only (dx = dy Wᵀ, Wᵀ itself folded once).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from '../protocol';
import { applyHead, type FamilyDef } from '../models/family';
import { TfOps } from '../runtime/tfjs/ops';
import type { TfModel } from '../runtime/tfjs/model';

type Tensor = tf.Tensor;

export class FrozenOps extends TfOps {
  private readonly constants = new Set<Tensor>();
  private readonly folded = new Map<string, Tensor>();

  constructor(model: TfModel) {
    super((name) => {
      const p = model.params.get(name);
      if (!p) throw new Error(`no parameter '${name}' in this ${model.config.family} model`);
      return p;
    });
    for (const p of model.params.values()) this.constants.add(p);
  }

  /** `make()` of a constant, computed once and kept; of anything else, as it is. */
  private fold(x: Tensor, key: string, make: () => Tensor): Tensor {
    if (!this.constants.has(x)) return make();
    const k = `${x.id}|${key}`;
    let t = this.folded.get(k);
    if (!t) {
      t = tf.keep(make());
      this.folded.set(k, t);
      this.constants.add(t);
    }
    return t;
  }

  override slice(x: Tensor, axis: number, start: number, end?: number): Tensor {
    return this.fold(x, `slice ${axis} ${start} ${end}`, () => super.slice(x, axis, start, end));
  }
  override squeeze(x: Tensor, axis: number): Tensor {
    return this.fold(x, `squeeze ${axis}`, () => super.squeeze(x, axis));
  }
  override unsqueeze(x: Tensor, axis: number): Tensor {
    return this.fold(x, `unsqueeze ${axis}`, () => super.unsqueeze(x, axis));
  }
  override reshape(x: Tensor, shape: number[]): Tensor {
    return this.fold(x, `reshape ${shape}`, () => super.reshape(x, shape));
  }
  override transpose(x: Tensor, perm: number[]): Tensor {
    return this.fold(x, `transpose ${perm}`, () => super.transpose(x, perm));
  }

  override matmul(a: Tensor, b: Tensor): Tensor {
    if (b.rank !== 2 || !this.constants.has(b) || this.constants.has(a)) return super.matmul(a, b);
    const K = a.shape[a.rank - 1], N = (b as tf.Tensor2D).shape[1];
    const flat = a.rank === 2 ? a : tf.reshape(a, [-1, K]);
    const y = this.constantRight(b as tf.Tensor2D)(flat as tf.Tensor2D);
    return a.rank === 2 ? y : tf.reshape(y, [...a.shape.slice(0, -1), N]);
  }

  /** x @ W differentiated in x only; Wᵀ (for dy Wᵀ, an untransposed product) folded on first use. */
  private constantRight(w: tf.Tensor2D): (x: tf.Tensor2D) => tf.Tensor2D {
    const f = (x: Tensor | tf.GradSaveFunc) => ({
      value: tf.matMul(x as tf.Tensor2D, w),
      gradFunc: (dy: Tensor) => tf.matMul(dy as tf.Tensor2D, this.transpose(w, [1, 0]) as tf.Tensor2D),
    });
    return tf.customGrad(f) as unknown as (x: tf.Tensor2D) => tf.Tensor2D;
  }

  /** Folds every layout op of the weights the program and its head use: one untaped forward on one token. */
  warm(def: FamilyDef, c: ModelConfig): void {
    tf.tidy(() => {
      const prog = def.program<Tensor>(this, c, { ids: tf.zeros([1, 1], 'int32'), positions: tf.zeros([1], 'int32') });
      for (let l = 0; l < prog.layers; l++) prog.step(l);
      applyHead(this, def.head(c), prog.final());
    });
  }

  dispose(): void {
    tf.dispose([...this.folded.values()]);
    for (const t of this.folded.values()) this.constants.delete(t);
    this.folded.clear();
  }
}
