/**
 * Zero gradients for TensorFlow.js's comparison kernels. tfjs registers none, so a tape through a
 * comparison of taped values (HYLA's active-unit fraction, `greater(u, 0)` in models/knobs.ts, or a
 * select on one) fails with "gradient function not found for Greater" even though a comparison is
 * piecewise constant: PyTorch's autograd simply does not differentiate through it. Registering
 * d/da = d/db = 0 gives exactly that; kernels that already have a gradient are left alone.
 */
import * as tf from '@tensorflow/tfjs-core';

const COMPARISONS = ['Greater', 'GreaterEqual', 'Less', 'LessEqual', 'Equal', 'NotEqual'];

export function ensureComparisonGradients(): void {
  for (const kernelName of COMPARISONS) {
    if (tf.getGradient(kernelName)) continue;
    tf.registerGradient({
      kernelName,
      inputsToSave: ['a', 'b'],
      gradFunc: (_dy, saved) => {
        const [a, b] = saved as tf.Tensor[];
        return { a: () => tf.zerosLike(a).toFloat(), b: () => tf.zerosLike(b).toFloat() };
      },
    });
  }
}
