/**
 * The op interface (models/ops.ts) on TensorFlow.js: eager tensors with gradients. What makes it
 * fast on WASM lives here, not in the families (TFJS.md):
 * - products reach XNNPACK only as untransposed 2-D matMuls: `matmul` flattens (…, M, K) @ (K, N)
 *   to one 2-D call, splits batched products into 2-D calls on wasm/cpu, and its gradient
 *   transposes explicitly (kernels.mm);
 * - embedding gradients go through scatterND (kernels.embed): WASM lacks UnsortedSegmentSum;
 * - int oneHot / cast instead of float oneHot (wrong on WASM).
 */
import * as tf from '@tensorflow/tfjs-core';
import { axesOf, type DType, type Dim, type Operand, type Ops, type TopK } from '../../models/ops';
import { embed, mm, wantsSplitMatmul } from './kernels';

type Tensor = tf.Tensor;

export class TfOps implements Ops<Tensor> {
  readonly runtime = 'tfjs' as const;

  constructor(private readonly params: (name: string) => Tensor) {}

  shape(x: Tensor): Dim[] {
    return x.shape;
  }
  dtype(x: Tensor): DType {
    return x.dtype === 'int32' ? 'int32' : x.dtype === 'bool' ? 'bool' : 'float32';
  }

  param(name: string): Tensor {
    return this.params(name);
  }
  constant(values: Float32Array | Int32Array | Uint8Array, shape: number[], dtype: DType = values instanceof Int32Array ? 'int32' : values instanceof Uint8Array ? 'bool' : 'float32'): Tensor {
    return tf.tensor(values, shape, dtype);
  }

  private pair(a: Operand<Tensor>, b: Operand<Tensor>): [Tensor, Tensor] {
    const ref = typeof a === 'number' ? (b as Tensor) : a;
    const dt = ref.dtype === 'bool' ? 'float32' : ref.dtype;
    return [typeof a === 'number' ? tf.scalar(a, dt) : a, typeof b === 'number' ? tf.scalar(b, dt) : b];
  }

  add(a: Operand<Tensor>, b: Operand<Tensor>): Tensor {
    return tf.add(...this.pair(a, b));
  }
  sub(a: Operand<Tensor>, b: Operand<Tensor>): Tensor {
    return tf.sub(...this.pair(a, b));
  }
  mul(a: Operand<Tensor>, b: Operand<Tensor>): Tensor {
    return tf.mul(...this.pair(a, b));
  }
  div(a: Operand<Tensor>, b: Operand<Tensor>): Tensor {
    return tf.div(...this.pair(a, b));
  }
  maximum(a: Operand<Tensor>, b: Operand<Tensor>): Tensor {
    return tf.maximum(...this.pair(a, b));
  }
  minimum(a: Operand<Tensor>, b: Operand<Tensor>): Tensor {
    return tf.minimum(...this.pair(a, b));
  }
  neg(x: Tensor): Tensor {
    return tf.neg(x);
  }
  abs(x: Tensor): Tensor {
    return tf.abs(x);
  }
  sqrt(x: Tensor): Tensor {
    return tf.sqrt(x);
  }
  rsqrt(x: Tensor): Tensor {
    return tf.rsqrt(x);
  }
  exp(x: Tensor): Tensor {
    return tf.exp(x);
  }
  log(x: Tensor): Tensor {
    return tf.log(x);
  }
  tanh(x: Tensor): Tensor {
    return tf.tanh(x);
  }
  sigmoid(x: Tensor): Tensor {
    return tf.sigmoid(x);
  }
  relu(x: Tensor): Tensor {
    return tf.relu(x);
  }
  erf(x: Tensor): Tensor {
    return tf.erf(x);
  }
  square(x: Tensor): Tensor {
    return tf.square(x);
  }

  less(a: Operand<Tensor>, b: Operand<Tensor>): Tensor {
    return tf.less(...this.pair(a, b));
  }
  lessEqual(a: Operand<Tensor>, b: Operand<Tensor>): Tensor {
    return tf.lessEqual(...this.pair(a, b));
  }
  greater(a: Operand<Tensor>, b: Operand<Tensor>): Tensor {
    return tf.greater(...this.pair(a, b));
  }
  equal(a: Operand<Tensor>, b: Operand<Tensor>): Tensor {
    return tf.equal(...this.pair(a, b));
  }
  and(a: Tensor, b: Tensor): Tensor {
    return tf.logicalAnd(a, b);
  }
  where(cond: Tensor, a: Operand<Tensor>, b: Operand<Tensor>): Tensor {
    const [ta, tb] = this.pair(a, b);
    const shape = tf.broadcast_util.assertAndGetBroadcastShape(tf.broadcast_util.assertAndGetBroadcastShape(cond.shape, ta.shape), tb.shape);
    const fit = (t: Tensor) => (sameShape(t.shape, shape) ? t : tf.broadcastTo(t, shape));
    return tf.where(fit(cond), fit(ta), fit(tb));
  }
  cast(x: Tensor, dtype: DType): Tensor {
    // tfjs-webgpu casts bool → number by relabelling the bool buffer, and a later transpose of it
    // (a reduction over an outer axis makes one) fails to compile: select into a real buffer
    if (x.dtype === 'bool' && dtype !== 'bool' && tf.getBackend() === 'webgpu') return tf.where(x, tf.ones(x.shape, dtype), tf.zeros(x.shape, dtype));
    return tf.cast(x, dtype);
  }

  sum(x: Tensor, axes: number | number[], keepDims = false): Tensor {
    return tf.sum(x, axesOf(axes, x.rank), keepDims);
  }
  mean(x: Tensor, axes: number | number[], keepDims = false): Tensor {
    return tf.mean(x, axesOf(axes, x.rank), keepDims);
  }
  max(x: Tensor, axes: number | number[], keepDims = false): Tensor {
    return tf.max(x, axesOf(axes, x.rank), keepDims);
  }
  logSumExp(x: Tensor, axes: number | number[], keepDims = false): Tensor {
    return tf.logSumExp(x, axesOf(axes, x.rank), keepDims);
  }
  argMax(x: Tensor, axis: number): Tensor {
    return tf.argMax(x, axis < 0 ? axis + x.rank : axis);
  }

  reshape(x: Tensor, shape: number[]): Tensor {
    return x.reshape(shape.map((d, i) => (d === 0 ? x.shape[i] : d)));
  }
  transpose(x: Tensor, perm: number[]): Tensor {
    return tf.transpose(x, perm);
  }
  slice(x: Tensor, axis: number, start: number, end?: number): Tensor {
    const a = axis < 0 ? axis + x.rank : axis;
    const n = x.shape[a];
    const s = start < 0 ? Math.max(0, n + start) : Math.min(start, n);
    const e = end === undefined ? n : end < 0 ? Math.max(0, n + end) : Math.min(end, n);
    if (x.rank > 4) {
      // as (before, n, after): the same elements, and a gradient (a pad) of rank 3 — tfjs-webgpu's
      // pad of rank 5 does not compile
      const before = x.shape.slice(0, a).reduce((p, d) => p * d, 1), after = x.shape.slice(a + 1).reduce((p, d) => p * d, 1);
      const part = tf.slice(x.reshape([before, n, after]), [0, s, 0], [before, Math.max(0, e - s), after]);
      return part.reshape(x.shape.map((d, i) => (i === a ? Math.max(0, e - s) : d)));
    }
    const begin = x.shape.map((_, i) => (i === a ? s : 0));
    const size = x.shape.map((d, i) => (i === a ? Math.max(0, e - s) : d));
    return tf.slice(x, begin, size);
  }
  concat(xs: Tensor[], axis: number): Tensor {
    return xs.length === 1 ? xs[0] : tf.concat(xs, axis < 0 ? axis + xs[0].rank : axis);
  }
  unsqueeze(x: Tensor, axis: number): Tensor {
    return tf.expandDims(x, axis < 0 ? axis + x.rank + 1 : axis);
  }
  squeeze(x: Tensor, axis: number): Tensor {
    return tf.squeeze(x, [axis < 0 ? axis + x.rank : axis]);
  }
  gather(x: Tensor, indices: Tensor, axis = 0): Tensor {
    const a = axis < 0 ? axis + x.rank : axis;
    if (a === 0 && x.rank === 2) return embed(x as tf.Tensor2D, indices); // scatterND gradient (WASM)
    return tf.gather(x, indices, a);
  }
  takeAlongLast(x: Tensor, indices: Tensor): Tensor {
    // flat index row·N + idx on the flattened tensor (tfjs has no GatherElements)
    const N = x.shape[x.rank - 1], K = indices.shape[indices.rank - 1];
    const rows = x.size / N;
    const base = tf.mul(tf.range(0, rows, 1, 'int32'), tf.scalar(N, 'int32')).reshape([rows, 1]);
    const flat = tf.add(base, indices.reshape([rows, K]).toInt());
    return tf.gather(x.reshape([-1]), flat.reshape([-1])).reshape(indices.shape);
  }

  matmul(a: Tensor, b: Tensor): Tensor {
    const M = a.shape[a.rank - 2], K = a.shape[a.rank - 1], N = b.shape[b.rank - 1];
    if (b.rank === 2) {
      if (a.rank === 2) return mm(a as tf.Tensor2D, b as tf.Tensor2D);
      return mm(a.reshape([-1, K]) as tf.Tensor2D, b as tf.Tensor2D).reshape([...a.shape.slice(0, -1), N]);
    }
    const batch = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
    const fit = (t: Tensor, r: number, c: number) => {
      const full = [...batch, r, c];
      return (sameShape(t.shape, full) ? t : tf.broadcastTo(t, full)).reshape([-1, r, c]) as tf.Tensor3D;
    };
    return bmm(fit(a, M, K), fit(b, K, N)).reshape([...batch, M, N]);
  }
  softmax(x: Tensor): Tensor {
    return tf.softmax(x);
  }
  layerNorm(x: Tensor, weight: Tensor | null, bias: Tensor | null, eps: number): Tensor {
    const { mean, variance } = tf.moments(x, -1, true);
    let y = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps)));
    if (weight) y = tf.mul(y, weight);
    if (bias) y = tf.add(y, bias);
    return y;
  }
  rmsNorm(x: Tensor, eps: number): Tensor {
    return tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), eps)));
  }
  topk(x: Tensor, k: number): TopK<Tensor> {
    const { values, indices } = tf.topk(x, k);
    return { values, indices };
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Batched (G, M, K) @ (G, K, N), split into G 2-D products where the backend needs it. */
function bmm(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor {
  const g = a.shape[0];
  if (!wantsSplitMatmul()) return tf.matMul(a, b);
  const two = (t: tf.Tensor3D, i: number) => t.slice([i, 0, 0], [1, -1, -1]).reshape([t.shape[1], t.shape[2]]) as tf.Tensor2D;
  if (g === 1) return mm(two(a, 0), two(b, 0)).expandDims(0);
  const outs: tf.Tensor2D[] = [];
  for (let i = 0; i < g; i++) outs.push(mm(two(a, i), two(b, i)));
  return tf.stack(outs);
}
