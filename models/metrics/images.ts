/**
 * Image quality metrics on NHWC images in the data range [-2, 2].
 *
 * - PSNR = 10 log10(L^2 / MSE) with peak-to-peak L = 4, the width of [-2, 2]: the same number
 *   as PSNR on [0, 255] images with L = 255, or on [0, 1] with L = 1.
 * - SSIM (Wang, Bovik, Sheikh & Simoncelli, IEEE TIP 2004): local statistics under an 11x11
 *   Gaussian window of sigma 1.5 (valid positions only),
 *       SSIM = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2)),
 *   C1 = (0.01 L)^2, C2 = (0.03 L)^2; averaged over positions, then over channels.
 * - Frechet distance between Gaussians (Dowson & Landau 1982; FID, Heusel et al. 2017):
 *       d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1^1/2 S2 S1^1/2)^1/2),
 *   with both square roots taken through symmetric eigendecompositions, so the matrix under
 *   the root is symmetric positive semi-definite by construction and no complex parts appear
 *   (the product form sqrtm(S1 S2) of common FID code is not symmetric and can return them).
 */
import type { NDArray } from '../ndarray.js';

export const DATA_RANGE = 4;
export const SSIM_WINDOW = 11;
export const SSIM_SIGMA = 1.5;
export const SSIM_K1 = 0.01;
export const SSIM_K2 = 0.03;

export interface PerImage {
  /** One value per image. */
  values: Float64Array;
  mean: number;
}

function checkPair(a: NDArray, b: NDArray): [number, number, number, number] {
  if (a.shape.length !== 4 || a.shape.join(',') !== b.shape.join(',')) {
    throw new RangeError(`expected two image batches [n, H, W, C] of one shape, got [${a.shape}] and [${b.shape}]`);
  }
  return a.shape as [number, number, number, number];
}

function summarise(values: Float64Array): PerImage {
  let sum = 0;
  for (const v of values) sum += v;
  return { values, mean: values.length ? sum / values.length : NaN };
}

/** PSNR of each image (Infinity where identical) and their mean. */
export function psnr(x: NDArray, ref: NDArray, dataRange = DATA_RANGE): PerImage {
  const [n, h, w, c] = checkPair(x, ref);
  const size = h * w * c;
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let se = 0;
    for (let j = i * size; j < (i + 1) * size; j++) se += (x.data[j] - ref.data[j]) ** 2;
    values[i] = 10 * Math.log10((dataRange * dataRange) / (se / size));
  }
  return summarise(values);
}

function gaussianWindow(size: number, sigma: number): Float64Array {
  const r = (size - 1) / 2;
  const k = new Float64Array(size);
  let total = 0;
  for (let j = 0; j < size; j++) total += k[j] = Math.exp(-((j - r) ** 2) / (2 * sigma * sigma));
  for (let j = 0; j < size; j++) k[j] /= total;
  return k;
}

/** Separable 'valid' filtering of an h x w plane. */
function filterValid(
  plane: Float64Array,
  h: number,
  w: number,
  k: Float64Array,
  tmp: Float64Array,
  out: Float64Array,
): void {
  const m = k.length;
  const ow = w - m + 1;
  const oh = h - m + 1;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < ow; x++) {
      let acc = 0;
      for (let j = 0; j < m; j++) acc += k[j] * plane[y * w + x + j];
      tmp[y * ow + x] = acc;
    }
  }
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      let acc = 0;
      for (let j = 0; j < m; j++) acc += k[j] * tmp[(y + j) * ow + x];
      out[y * ow + x] = acc;
    }
  }
}

/** SSIM of each image (mean over positions and channels) and their mean. */
export function ssim(x: NDArray, ref: NDArray, dataRange = DATA_RANGE): PerImage {
  const [n, h, w, c] = checkPair(x, ref);
  if (h < SSIM_WINDOW || w < SSIM_WINDOW)
    throw new RangeError(`SSIM needs images of at least ${SSIM_WINDOW}x${SSIM_WINDOW}, got ${h}x${w}`);
  const k = gaussianWindow(SSIM_WINDOW, SSIM_SIGMA);
  const c1 = (SSIM_K1 * dataRange) ** 2;
  const c2 = (SSIM_K2 * dataRange) ** 2;
  const P = h * w;
  const oh = h - SSIM_WINDOW + 1;
  const ow = w - SSIM_WINDOW + 1;
  const planes = Array.from({ length: 5 }, () => new Float64Array(P));
  const filtered = Array.from({ length: 5 }, () => new Float64Array(oh * ow));
  const tmp = new Float64Array(h * ow);
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let total = 0;
    for (let ch = 0; ch < c; ch++) {
      const [px, py, pxx, pyy, pxy] = planes;
      for (let p = 0; p < P; p++) {
        const a = x.data[(i * P + p) * c + ch];
        const b = ref.data[(i * P + p) * c + ch];
        px[p] = a;
        py[p] = b;
        pxx[p] = a * a;
        pyy[p] = b * b;
        pxy[p] = a * b;
      }
      for (let q = 0; q < 5; q++) filterValid(planes[q], h, w, k, tmp, filtered[q]);
      const [mx, my, mxx, myy, mxy] = filtered;
      let sum = 0;
      for (let p = 0; p < oh * ow; p++) {
        const vx = mxx[p] - mx[p] * mx[p];
        const vy = myy[p] - my[p] * my[p];
        const cov = mxy[p] - mx[p] * my[p];
        sum += ((2 * mx[p] * my[p] + c1) * (2 * cov + c2)) / ((mx[p] * mx[p] + my[p] * my[p] + c1) * (vx + vy + c2));
      }
      total += sum / (oh * ow);
    }
    values[i] = total / c;
  }
  return summarise(values);
}

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

export interface SymmetricEigen {
  /** Eigenvalues, ascending. */
  values: Float64Array;
  /** Eigenvectors as the columns of a [k, k] row-major matrix, in the order of `values`. */
  vectors: Float64Array;
}

/**
 * Eigendecomposition of a symmetric matrix by cyclic Jacobi rotations (Golub & Van Loan,
 * "Matrix Computations", 4th ed., Sec. 8.5): slow (O(k^3) per sweep, a handful of sweeps) but
 * accurate to working precision for every eigenvalue, small ones included, which the
 * square roots of nearly singular covariances need. Meant for k up to a few hundred.
 */
export function symmetricEigen(matrix: ArrayLike<number>, k: number, maxSweeps = 100): SymmetricEigen {
  if (matrix.length !== k * k) throw new RangeError(`symmetricEigen: ${matrix.length} entries is not [${k}, ${k}]`);
  const a = Float64Array.from(matrix);
  for (let i = 0; i < k; i++) {
    for (let j = i + 1; j < k; j++) {
      const mean = 0.5 * (a[i * k + j] + a[j * k + i]);
      a[i * k + j] = a[j * k + i] = mean;
    }
  }
  const v = new Float64Array(k * k);
  for (let i = 0; i < k; i++) v[i * k + i] = 1;
  let scale = 0;
  for (const x of a) scale += x * x;
  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    let off = 0;
    for (let p = 0; p < k; p++) for (let q = p + 1; q < k; q++) off += a[p * k + q] ** 2;
    if (off <= 1e-30 * scale || off === 0) break;
    for (let p = 0; p < k - 1; p++) {
      for (let q = p + 1; q < k; q++) {
        const apq = a[p * k + q];
        if (apq === 0) continue;
        const theta = (a[q * k + q] - a[p * k + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const cs = 1 / Math.sqrt(t * t + 1);
        const sn = t * cs;
        a[p * k + p] -= t * apq;
        a[q * k + q] += t * apq;
        a[p * k + q] = a[q * k + p] = 0;
        for (let r = 0; r < k; r++) {
          if (r !== p && r !== q) {
            const arp = a[r * k + p];
            const arq = a[r * k + q];
            a[r * k + p] = a[p * k + r] = cs * arp - sn * arq;
            a[r * k + q] = a[q * k + r] = sn * arp + cs * arq;
          }
          const vrp = v[r * k + p];
          const vrq = v[r * k + q];
          v[r * k + p] = cs * vrp - sn * vrq;
          v[r * k + q] = sn * vrp + cs * vrq;
        }
      }
    }
  }
  const order = Array.from({ length: k }, (_, i) => i).sort((i, j) => a[i * k + i] - a[j * k + j]);
  const values = new Float64Array(k);
  const vectors = new Float64Array(k * k);
  order.forEach((src, dst) => {
    values[dst] = a[src * k + src];
    for (let r = 0; r < k; r++) vectors[r * k + dst] = v[r * k + src];
  });
  return { values, vectors };
}

/** The PSD square root V sqrt(max(L, 0)) V^T of a symmetric matrix. */
export function symmetricSqrt(matrix: ArrayLike<number>, k: number): Float64Array {
  const { values, vectors } = symmetricEigen(matrix, k);
  const out = new Float64Array(k * k);
  for (let e = 0; e < k; e++) {
    const root = Math.sqrt(Math.max(values[e], 0));
    if (root === 0) continue;
    for (let i = 0; i < k; i++) {
      const vi = vectors[i * k + e] * root;
      if (vi === 0) continue;
      for (let j = 0; j < k; j++) out[i * k + j] += vi * vectors[j * k + e];
    }
  }
  return out;
}

function multiply(a: Float64Array, b: Float64Array, k: number): Float64Array {
  const out = new Float64Array(k * k);
  for (let i = 0; i < k; i++) {
    for (let p = 0; p < k; p++) {
      const aip = a[i * k + p];
      if (aip === 0) continue;
      for (let j = 0; j < k; j++) out[i * k + j] += aip * b[p * k + j];
    }
  }
  return out;
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
  const root1 = symmetricSqrt(cov1, k);
  const middle = multiply(multiply(root1, Float64Array.from(cov2), k), root1, k);
  const { values } = symmetricEigen(middle, k);
  let traceRoot = 0;
  for (const v of values) traceRoot += Math.sqrt(Math.max(v, 0));
  // Rounding can take an exact zero slightly negative.
  return Math.max(0, meanTerm + traces - 2 * traceRoot);
}

/** Frechet distance between the Gaussian fits of two feature sets [n, k] (FID on those features). */
export function featureFrechetDistance(a: NDArray, b: NDArray): number {
  const sa = gaussianStats(a);
  const sb = gaussianStats(b);
  return frechetDistance(sa.mean, sa.cov, sb.mean, sb.cov);
}
