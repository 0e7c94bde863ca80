/**
 * The maths of the latent-code map and its probe panel, pure (no DOM): PCA of the codes, a seeded
 * 50/50 split, and the two probes of Schug et al. as methods.md §1.5 recommends exposing them —
 * ridge regression (λ = 1 with an intercept column, regularised like the rest as in their
 * regression.py, solved exactly: w = (XᵀX + λI)⁻¹ XᵀY, reported as R² on the test half, averaged
 * over target dimensions) and multinomial logistic regression (L2, full-batch gradient descent with
 * Nesterov momentum on standardised features; reported as accuracy on the test half, with the
 * majority-class share as the baseline). Rows are row-major (n, d) Float64Arrays.
 */

/** A small seeded generator (mulberry32): the split must be the same on every run. */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Split {
  train: Int32Array;
  test: Int32Array;
}

/** A seeded shuffle of 0…n−1 cut in half: the first ⌊n/2⌋ train, the rest test. */
export function splitHalves(n: number, seed = 1): Split {
  const order = Int32Array.from({ length: n }, (_, i) => i);
  const rnd = seededRandom(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  const half = Math.floor(n / 2);
  return { train: order.slice(0, half), test: order.slice(half) };
}

// -- linear algebra ------------------------------------------------------------------------

/** Solve A X = B for symmetric positive definite A (m × m) and B (m × c), by Cholesky. */
export function solveSpd(A: Float64Array, B: Float64Array, m: number, c: number): Float64Array {
  const Lc = new Float64Array(m * m);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j <= i; j++) {
      let s = A[i * m + j];
      for (let k = 0; k < j; k++) s -= Lc[i * m + k] * Lc[j * m + k];
      if (i === j) {
        if (!(s > 0)) throw new Error('the normal equations are not positive definite');
        Lc[i * m + i] = Math.sqrt(s);
      } else Lc[i * m + j] = s / Lc[j * m + j];
    }
  }
  const X = new Float64Array(m * c);
  for (let col = 0; col < c; col++) {
    const y = new Float64Array(m);
    for (let i = 0; i < m; i++) {
      let s = B[i * c + col];
      for (let k = 0; k < i; k++) s -= Lc[i * m + k] * y[k];
      y[i] = s / Lc[i * m + i];
    }
    for (let i = m - 1; i >= 0; i--) {
      let s = y[i];
      for (let k = i + 1; k < m; k++) s -= Lc[k * m + i] * X[k * c + col];
      X[i * c + col] = s / Lc[i * m + i];
    }
  }
  return X;
}

/** Eigen-decomposition of a symmetric d × d matrix (cyclic Jacobi): values descending, vectors as rows. */
export function symmetricEigen(S: Float64Array, d: number): { values: number[]; vectors: Float64Array } {
  const A = Float64Array.from(S);
  const V = new Float64Array(d * d);
  for (let i = 0; i < d; i++) V[i * d + i] = 1;
  for (let sweep = 0; sweep < 60; sweep++) {
    let off = 0;
    for (let p = 0; p < d; p++) for (let q = p + 1; q < d; q++) off += A[p * d + q] ** 2;
    if (off < 1e-22) break;
    for (let p = 0; p < d; p++) {
      for (let q = p + 1; q < d; q++) {
        const apq = A[p * d + q];
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (A[q * d + q] - A[p * d + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1), s = t * c;
        for (let k = 0; k < d; k++) {
          const akp = A[k * d + p], akq = A[k * d + q];
          A[k * d + p] = c * akp - s * akq;
          A[k * d + q] = s * akp + c * akq;
        }
        for (let k = 0; k < d; k++) {
          const apk = A[p * d + k], aqk = A[q * d + k];
          A[p * d + k] = c * apk - s * aqk;
          A[q * d + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < d; k++) {
          const vkp = V[k * d + p], vkq = V[k * d + q];
          V[k * d + p] = c * vkp - s * vkq;
          V[k * d + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = [...Array(d).keys()].sort((a, b) => A[b * d + b] - A[a * d + a]);
  const vectors = new Float64Array(d * d);
  order.forEach((col, r) => {
    for (let k = 0; k < d; k++) vectors[r * d + k] = V[k * d + col];
  });
  return { values: order.map((i) => A[i * d + i]), vectors };
}

// -- PCA ------------------------------------------------------------------------------------

export interface Pca {
  /** (n, 2) coordinates on the first two principal components. */
  coords: Float64Array;
  /** Share of the variance each of the two components explains. */
  explained: [number, number];
}

export function pca2(X: Float64Array, n: number, d: number): Pca {
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] += X[i * d + j] / n;
  const cov = new Float64Array(d * d);
  for (let i = 0; i < n; i++) {
    for (let a = 0; a < d; a++) {
      const xa = X[i * d + a] - mean[a];
      for (let b = a; b < d; b++) cov[a * d + b] += xa * (X[i * d + b] - mean[b]);
    }
  }
  for (let a = 0; a < d; a++) for (let b = 0; b < a; b++) cov[a * d + b] = cov[b * d + a];
  const { values, vectors } = symmetricEigen(cov, d);
  const total = values.reduce((s, v) => s + Math.max(0, v), 0) || 1;
  const coords = new Float64Array(n * 2);
  for (let c = 0; c < Math.min(2, d); c++) {
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += (X[i * d + j] - mean[j]) * vectors[c * d + j];
      coords[i * 2 + c] = s;
    }
  }
  return { coords, explained: [Math.max(0, values[0] ?? 0) / total, Math.max(0, values[1] ?? 0) / total] };
}

// -- ridge ----------------------------------------------------------------------------------

/** Targets for a label vector: the indicator of class 1 for two classes, one-hot columns for more. */
export function targetsOf(labels: Int32Array, classes: number): { Y: Float64Array; c: number } {
  const c = classes <= 2 ? 1 : classes;
  const Y = new Float64Array(labels.length * c);
  for (let i = 0; i < labels.length; i++) {
    if (c === 1) Y[i] = labels[i] === 1 ? 1 : 0;
    else Y[i * c + labels[i]] = 1;
  }
  return { Y, c };
}

/** Ridge weights ((d + 1) × c, the intercept last) from the rows `idx`. */
export function ridgeFit(X: Float64Array, d: number, Y: Float64Array, c: number, idx: Int32Array, lambda = 1): Float64Array {
  const m = d + 1;
  const A = new Float64Array(m * m), B = new Float64Array(m * c);
  const row = new Float64Array(m);
  for (const i of idx) {
    for (let j = 0; j < d; j++) row[j] = X[i * d + j];
    row[d] = 1;
    for (let a = 0; a < m; a++) {
      for (let b = a; b < m; b++) A[a * m + b] += row[a] * row[b];
      for (let k = 0; k < c; k++) B[a * c + k] += row[a] * Y[i * c + k];
    }
  }
  for (let a = 0; a < m; a++) {
    A[a * m + a] += lambda;
    for (let b = 0; b < a; b++) A[a * m + b] = A[b * m + a];
  }
  return solveSpd(A, B, m, c);
}

/** R² = 1 − Σ(y − ŷ)² / Σ(y − ȳ)² on rows `idx`, averaged over the target columns that vary there. */
export function rSquared(X: Float64Array, d: number, Y: Float64Array, c: number, W: Float64Array, idx: Int32Array): number {
  let sum = 0, used = 0;
  for (let k = 0; k < c; k++) {
    let mean = 0;
    for (const i of idx) mean += Y[i * c + k] / idx.length;
    let res = 0, tot = 0;
    for (const i of idx) {
      let pred = W[d * c + k];
      for (let j = 0; j < d; j++) pred += X[i * d + j] * W[j * c + k];
      res += (Y[i * c + k] - pred) ** 2;
      tot += (Y[i * c + k] - mean) ** 2;
    }
    if (tot > 1e-12) (sum += 1 - res / tot), used++;
  }
  return used ? sum / used : NaN;
}

export function ridgeProbe(X: Float64Array, d: number, labels: Int32Array, classes: number, split: Split, lambda = 1): number {
  const { Y, c } = targetsOf(labels, classes);
  return rSquared(X, d, Y, c, ridgeFit(X, d, Y, c, split.train, lambda), split.test);
}

// -- logistic -------------------------------------------------------------------------------

export interface LogisticOptions {
  iterations?: number;
  /** L2 penalty on the weights (not the intercept), on the mean loss. */
  l2?: number;
}

/** Standardised copy of the rows with the train rows' mean and deviation (a constant column stays 0). */
function standardise(X: Float64Array, n: number, d: number, train: Int32Array): Float64Array {
  const mean = new Float64Array(d), sd = new Float64Array(d);
  for (const i of train) for (let j = 0; j < d; j++) mean[j] += X[i * d + j] / train.length;
  for (const i of train) for (let j = 0; j < d; j++) sd[j] += (X[i * d + j] - mean[j]) ** 2 / train.length;
  const Z = new Float64Array(n * d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) Z[i * d + j] = sd[j] > 1e-24 ? (X[i * d + j] - mean[j]) / Math.sqrt(sd[j]) : 0;
  return Z;
}

/** Largest eigenvalue of XᵀX/n over the rows (with the intercept): the step size's bound. */
function gramNorm(Z: Float64Array, d: number, idx: Int32Array): number {
  const m = d + 1, G = new Float64Array(m * m);
  for (const i of idx) {
    for (let a = 0; a < m; a++) {
      const xa = a < d ? Z[i * d + a] : 1;
      for (let b = 0; b < m; b++) G[a * m + b] += (xa * (b < d ? Z[i * d + b] : 1)) / idx.length;
    }
  }
  return symmetricEigen(G, m).values[0];
}

/** Class scores (softmax probabilities) of row i into p. */
function softmaxRow(Z: Float64Array, d: number, W: Float64Array, C: number, i: number, p: Float64Array): void {
  let max = -Infinity;
  for (let k = 0; k < C; k++) {
    let s = W[d * C + k];
    for (let j = 0; j < d; j++) s += Z[i * d + j] * W[j * C + k];
    p[k] = s;
    if (s > max) max = s;
  }
  let sum = 0;
  for (let k = 0; k < C; k++) sum += p[k] = Math.exp(p[k] - max);
  for (let k = 0; k < C; k++) p[k] /= sum;
}

/** Multinomial logistic regression fitted on the train half: accuracy on the test half. */
export function logisticProbe(X: Float64Array, d: number, labels: Int32Array, classes: number, split: Split, opts: LogisticOptions = {}): { accuracy: number; baseline: number } {
  const iterations = opts.iterations ?? 300, l2 = opts.l2 ?? 1e-3;
  const n = labels.length, C = Math.max(2, classes), m = d + 1;
  const Z = standardise(X, n, d, split.train);
  // mean softmax cross-entropy is (½·λmax(XᵀX/n))-smooth: a step of its inverse never diverges
  const step = 1 / (0.5 * gramNorm(Z, d, split.train) + l2);
  let W = new Float64Array(m * C), prev = new Float64Array(m * C);
  const grad = new Float64Array(m * C), p = new Float64Array(C), look = new Float64Array(m * C);
  for (let it = 1; it <= iterations; it++) {
    const mom = (it - 1) / (it + 2);
    for (let i = 0; i < look.length; i++) look[i] = W[i] + mom * (W[i] - prev[i]);
    grad.fill(0);
    for (const i of split.train) {
      softmaxRow(Z, d, look, C, i, p);
      p[labels[i]] -= 1;
      for (let k = 0; k < C; k++) {
        const g = p[k] / split.train.length;
        for (let j = 0; j < d; j++) grad[j * C + k] += g * Z[i * d + j];
        grad[d * C + k] += g;
      }
    }
    for (let i = 0; i < d * C; i++) grad[i] += l2 * look[i];
    prev = W;
    W = Float64Array.from(look, (v, i) => v - step * grad[i]);
  }
  let right = 0;
  const counts = new Array(C).fill(0);
  for (const i of split.test) {
    softmaxRow(Z, d, W, C, i, p);
    let best = 0;
    for (let k = 1; k < C; k++) if (p[k] > p[best]) best = k;
    if (best === labels[i]) right++;
    counts[labels[i]]++;
  }
  const nTest = split.test.length || 1;
  return { accuracy: right / nTest, baseline: Math.max(...counts) / nTest };
}
