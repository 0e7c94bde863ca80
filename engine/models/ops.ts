/**
 * The op interface every model family is written against — the one definition of each family's
 * maths. Two runtimes implement it:
 *   - TensorFlow.js (`runtime/tfjs/ops.ts`): eager tensors with gradients, for training and as
 *     the fallback for inference;
 *   - ONNX (`runtime/onnx/builder.ts`): each call records a graph node; the traced graph runs on
 *     onnxruntime (native CPU kernels, WebGPU, CUDA).
 *
 * Semantics follow ONNX/numpy: elementwise ops broadcast; reductions take negative axes; a number
 * operand becomes a scalar of the other operand's dtype. Batch and sequence dimensions may be
 * unknown when a graph is traced (`shape()` gives null for them), so family code never computes
 * with them: reshapes use 0 (copy the input's dimension at that index) and -1 (inferred), masks and
 * position tables come from the `positions` input, and products keep their leading dimensions.
 */

export type DType = 'float32' | 'int32' | 'bool';
/** A dimension: a number, or null where it is known only at run time (batch, sequence length). */
export type Dim = number | null;
export type Operand<T> = T | number;

export interface TopK<T> {
  values: T;
  indices: T; // int32
}

export interface Ops<T> {
  readonly runtime: 'tfjs' | 'onnx';

  shape(x: T): Dim[];
  dtype(x: T): DType;

  // ---- leaves ----
  /** A model weight by its PyTorch name, in stored layout (nn.Linear weights transposed, [in, out]). */
  param(name: string): T;
  /** A constant tensor (tables, masks); int32 / bool values as Int32Array / Uint8Array. */
  constant(values: Float32Array | Int32Array | Uint8Array, shape: number[], dtype?: DType): T;

  // ---- elementwise ----
  add(a: Operand<T>, b: Operand<T>): T;
  sub(a: Operand<T>, b: Operand<T>): T;
  mul(a: Operand<T>, b: Operand<T>): T;
  div(a: Operand<T>, b: Operand<T>): T;
  maximum(a: Operand<T>, b: Operand<T>): T;
  minimum(a: Operand<T>, b: Operand<T>): T;
  neg(x: T): T;
  abs(x: T): T;
  sqrt(x: T): T;
  /** 1 / sqrt(x). */
  rsqrt(x: T): T;
  exp(x: T): T;
  log(x: T): T;
  tanh(x: T): T;
  sigmoid(x: T): T;
  relu(x: T): T;
  erf(x: T): T;
  square(x: T): T;

  // ---- comparison and selection (bool results) ----
  less(a: Operand<T>, b: Operand<T>): T;
  lessEqual(a: Operand<T>, b: Operand<T>): T;
  greater(a: Operand<T>, b: Operand<T>): T;
  equal(a: Operand<T>, b: Operand<T>): T;
  and(a: T, b: T): T;
  /** cond ? a : b, broadcasting all three. */
  where(cond: T, a: Operand<T>, b: Operand<T>): T;
  cast(x: T, dtype: DType): T;

  // ---- reductions ----
  sum(x: T, axes: number | number[], keepDims?: boolean): T;
  mean(x: T, axes: number | number[], keepDims?: boolean): T;
  max(x: T, axes: number | number[], keepDims?: boolean): T;
  /** log Σ exp over the axes, computed stably. */
  logSumExp(x: T, axes: number | number[], keepDims?: boolean): T;
  /** Index of the maximum along one axis (int32; the first on ties). */
  argMax(x: T, axis: number): T;

  // ---- layout ----
  /** 0 copies the input's dimension at the same index; -1 is inferred (ONNX Reshape). */
  reshape(x: T, shape: number[]): T;
  transpose(x: T, perm: number[]): T;
  /** x[start:end] along one axis; negative indices count from the end; `end` omitted = to the end. */
  slice(x: T, axis: number, start: number, end?: number): T;
  concat(xs: T[], axis: number): T;
  unsqueeze(x: T, axis: number): T;
  squeeze(x: T, axis: number): T;
  /** x.take(indices, axis): embedding lookups (differentiable with respect to x). */
  gather(x: T, indices: T, axis?: number): T;
  /** x[..., indices[..., j]] along the last axis (ONNX GatherElements): indices have x's rank. */
  takeAlongLast(x: T, indices: T): T;

  // ---- network ----
  /** (..., M, K) @ (..., K, N); leading dimensions broadcast. */
  matmul(a: T, b: T): T;
  /** Softmax over the last axis. */
  softmax(x: T): T;
  /** LayerNorm over the last axis (biased variance, as PyTorch); weight / bias may be absent. */
  layerNorm(x: T, weight: T | null, bias: T | null, eps: number): T;
  /** RMSNorm over the last axis without a weight: x / sqrt(mean(x²) + eps). */
  rmsNorm(x: T, eps: number): T;
  /** Largest k along the last axis, descending. */
  topk(x: T, k: number): TopK<T>;
}

/** Normalise an axis argument to non-negative axes for a tensor of `rank`. */
export function axesOf(axes: number | number[], rank: number): number[] {
  return (Array.isArray(axes) ? axes : [axes]).map((a) => (a < 0 ? a + rank : a));
}
