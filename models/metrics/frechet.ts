/**
 * Frechet distance between Gaussians (Dowson & Landau 1982), which FID applies to Gaussian
 * fits of image features (Heusel et al. 2017):
 *
 *     d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1^1/2 S2 S1^1/2)^1/2).
 *
 * With S1 = V L V^T and B = L^1/2 V^T, S1^1/2 S2 S1^1/2 = V (B S2 B^T) V^T, so the trace of
 * its square root is the sum of the square roots of the eigenvalues of C = B S2 B^T. C is
 * symmetric positive semi-definite by construction, so no complex parts appear (the product
 * form sqrtm(S1 S2) of common FID code is not symmetric and can return them). Both
 * eigendecompositions go through `symmetricEigen`, at any width (Inception's 2048 included).
 */
import { symmetricEigen } from '../eigen.js';
import type { NDArray } from '../ndarray.js';

export interface GaussianStats {
  mean: Float64Array;
  /** [k, k] row-major, unbiased (divided by n - 1). */
  cov: Float64Array;
  count: number;
}

/** Mean and covariance of feature rows [n, k] (two passes, for accuracy). */
export function gaussianStats(features: NDArray): GaussianStats {
  if (features.shape.length !== 2) throw new RangeError(`features must be [n, k], got [${features.shape}]`);
  const [n, k] = features.shape;
  if (n < 2) throw new RangeError(`a covariance needs at least 2 rows, got ${n}`);
  const mean = new Float64Array(k);
  for (let i = 0; i < n; i++) for (let j = 0; j < k; j++) mean[j] += features.data[i * k + j];
  for (let j = 0; j < k; j++) mean[j] /= n;
  const cov = new Float64Array(k * k);
  const row = new Float64Array(k);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < k; j++) row[j] = features.data[i * k + j] - mean[j];
    for (let a = 0; a < k; a++) {
      const ra = row[a];
      if (ra === 0) continue;
      for (let b = a; b < k; b++) cov[a * k + b] += ra * row[b];
    }
  }
  for (let a = 0; a < k; a++) {
    for (let b = a; b < k; b++) {
      cov[a * k + b] /= n - 1;
      cov[b * k + a] = cov[a * k + b];
    }
  }
  return { mean, cov, count: n };
}

/** Squared Frechet distance between N(mu1, cov1) and N(mu2, cov2); covariances [k, k] row-major. */
export function frechetDistance(
  mu1: ArrayLike<number>,
  cov1: ArrayLike<number>,
  mu2: ArrayLike<number>,
  cov2: ArrayLike<number>,
): number {
  const k = mu1.length;
  if (mu2.length !== k || cov1.length !== k * k || cov2.length !== k * k) {
    throw new RangeError(
      `frechetDistance: means of ${mu1.length} and ${mu2.length}, covariances of ${cov1.length} and ${cov2.length} entries`,
    );
  }
  let meanTerm = 0;
  for (let i = 0; i < k; i++) meanTerm += (mu1[i] - mu2[i]) ** 2;
  let traces = 0;
  for (let i = 0; i < k; i++) traces += cov1[i * k + i] + cov2[i * k + i];
  const { values, vectors: V } = symmetricEigen(cov1, k);
  const B = new Float64Array(k * k);
  for (let e = 0; e < k; e++) {
    const root = Math.sqrt(Math.max(values[e], 0));
    for (let j = 0; j < k; j++) B[e * k + j] = root * V[j * k + e];
  }
  const T = new Float64Array(k * k);
  for (let i = 0; i < k; i++) {
    for (let p = 0; p < k; p++) {
      const b = B[i * k + p];
      if (b === 0) continue;
      for (let j = 0; j < k; j++) T[i * k + j] += b * cov2[p * k + j];
    }
  }
  const C = new Float64Array(k * k);
  for (let i = 0; i < k; i++) {
    for (let j = i; j < k; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += T[i * k + p] * B[j * k + p];
      C[i * k + j] = C[j * k + i] = s;
    }
  }
  const middle = symmetricEigen(C, k, { vectors: false }).values;
  let traceRoot = 0;
  for (const v of middle) traceRoot += Math.sqrt(Math.max(v, 0));
  // Rounding can take an exact zero slightly negative.
  return Math.max(0, meanTerm + traces - 2 * traceRoot);
}

/** Frechet distance between the Gaussian fits of two feature sets [n, k] (FID on those features). */
export function featureFrechetDistance(a: NDArray, b: NDArray): number {
  const sa = gaussianStats(a);
  const sb = gaussianStats(b);
  return frechetDistance(sa.mean, sa.cov, sb.mean, sb.cov);
}
