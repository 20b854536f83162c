/**
 * Small dense linear algebra on row-major Float64Array matrices (d up to a few hundred).
 *
 * Only what the lap-0 Gaussians (dense, factor, blur) and the metrics need: products,
 * Cholesky factorisation, triangular solves, the inverse of a symmetric positive-definite
 * matrix and multivariate normal draws. Float64 throughout: the posterior covariances of
 * lap 0 mix scales of 1 and s_y^2 = 1e-4, which float32 cannot hold through a factorisation.
 *
 * One Cholesky policy for the whole project (`cholesky`): factor exactly; a matrix that is
 * positive semi-definite up to rounding gets the smallest relative jitter that makes it
 * factorisable; anything else throws. No pivot is ever clamped: a clamped pivot turns an
 * indefinite matrix into an unrelated one without a word.
 *
 * Reference: Golub & Van Loan, "Matrix Computations" (4th ed., 2013), sections 3.1 and 4.2.
 */
import type { Rng } from './rng.js';

/** `a [m, k] @ b [k, n]`, written into `out [m, n]` when given. */
export function matmul(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  m: number,
  k: number,
  n: number,
  out: Float64Array = new Float64Array(m * n),
): Float64Array {
  if (a.length !== m * k || b.length !== k * n || out.length !== m * n) {
    throw new RangeError(`matmul: shapes [${m}, ${k}] @ [${k}, ${n}] do not fit the buffers`);
  }
  out.fill(0);
  // i-p-j order streams rows of b and out, which is what row-major storage rewards.
  for (let i = 0; i < m; i++) {
    const outRow = i * n;
    for (let p = 0; p < k; p++) {
      const aip = a[i * k + p];
      if (aip === 0) continue;
      const bRow = p * n;
      for (let j = 0; j < n; j++) out[outRow + j] += aip * b[bRow + j];
    }
  }
  return out;
}

/** The transpose `[cols, rows]` of `a [rows, cols]`. */
export function transpose(a: ArrayLike<number>, rows: number, cols: number): Float64Array {
  if (a.length !== rows * cols) throw new RangeError(`transpose: ${a.length} elements is not [${rows}, ${cols}]`);
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = a[i * cols + j];
  return out;
}

export interface CholeskyOptions {
  /**
   * First jitter tried when the matrix is not numerically positive definite, relative to
   * the mean of its diagonal; it grows tenfold per retry up to `maxJitter`.
   */
  initialJitter?: number;
  /** Largest relative jitter accepted before giving up. */
  maxJitter?: number;
}

/**
 * Lower-triangular `L [n, n]` with `L L^T = a` (upper triangle zero).
 *
 * A matrix that is positive semi-definite up to rounding gets `jitter * mean(diag) * I`
 * added, smallest jitter first; one that still fails is reported rather than silently
 * regularised into something else.
 */
export function cholesky(a: ArrayLike<number>, n: number, options: CholeskyOptions = {}): Float64Array {
  if (a.length !== n * n) throw new RangeError(`cholesky: ${a.length} elements is not [${n}, ${n}]`);
  const L = new Float64Array(n * n);
  if (tryCholesky(a, n, 0, L)) return L;

  const initialJitter = options.initialJitter ?? 1e-10;
  const maxJitter = options.maxJitter ?? 1e-4;
  let meanDiagonal = 0;
  for (let i = 0; i < n; i++) meanDiagonal += a[i * n + i] / n;
  const scale = meanDiagonal > 0 && Number.isFinite(meanDiagonal) ? meanDiagonal : 1;
  for (let jitter = initialJitter; jitter <= maxJitter * (1 + 1e-9); jitter *= 10) {
    if (tryCholesky(a, n, jitter * scale, L)) return L;
  }
  throw new Error(
    `cholesky: ${n}x${n} matrix is not positive definite, even with a relative jitter of ${maxJitter} ` +
      `(mean diagonal ${meanDiagonal})`,
  );
}

/** Cholesky-Banachiewicz of `a + shift I` into `L`; false on a non-positive pivot. */
function tryCholesky(a: ArrayLike<number>, n: number, shift: number, L: Float64Array): boolean {
  L.fill(0);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let sum = a[i * n + j];
      for (let p = 0; p < j; p++) sum -= L[i * n + p] * L[j * n + p];
      if (i === j) {
        sum += shift;
        if (!(sum > 0) || !Number.isFinite(sum)) return false;
        L[i * n + i] = Math.sqrt(sum);
      } else {
        L[i * n + j] = sum / L[j * n + j];
      }
    }
  }
  return true;
}

/**
 * How a triangular solve applies a pivot: multiply by its reciprocal (one division per row,
 * shared by all right-hand sides) or divide by it (one rounding instead of two). Both are
 * kept because each lap-0 family was fitted with one of them and its stored artifacts are
 * reproduced bit for bit: the dense Gaussian multiplies, the factor model divides.
 */
export type PivotRounding = 'reciprocal' | 'divide';

/** Solves `L X = B` in place for lower-triangular `L [n, n]` and `B [n, nrhs]`. */
export function solveLower(
  L: ArrayLike<number>,
  n: number,
  b: Float64Array,
  nrhs = 1,
  pivot: PivotRounding = 'reciprocal',
): Float64Array {
  const divide = pivot === 'divide';
  for (let i = 0; i < n; i++) {
    const diagonal = L[i * n + i];
    const inv = 1 / diagonal;
    for (let r = 0; r < nrhs; r++) {
      let sum = b[i * nrhs + r];
      for (let p = 0; p < i; p++) sum -= L[i * n + p] * b[p * nrhs + r];
      b[i * nrhs + r] = divide ? sum / diagonal : sum * inv;
    }
  }
  return b;
}

/** Solves `L^T X = B` in place for lower-triangular `L [n, n]` and `B [n, nrhs]`. */
export function solveLowerTransposed(
  L: ArrayLike<number>,
  n: number,
  b: Float64Array,
  nrhs = 1,
  pivot: PivotRounding = 'reciprocal',
): Float64Array {
  const divide = pivot === 'divide';
  for (let i = n - 1; i >= 0; i--) {
    const diagonal = L[i * n + i];
    const inv = 1 / diagonal;
    for (let r = 0; r < nrhs; r++) {
      let sum = b[i * nrhs + r];
      for (let p = i + 1; p < n; p++) sum -= L[p * n + i] * b[p * nrhs + r];
      b[i * nrhs + r] = divide ? sum / diagonal : sum * inv;
    }
  }
  return b;
}

/** `X = (L L^T)^{-1} B` for a Cholesky factor `L [n, n]` and `B [n, nrhs]` (B is not modified). */
export function choleskySolve(
  L: ArrayLike<number>,
  n: number,
  b: ArrayLike<number>,
  nrhs = 1,
  pivot: PivotRounding = 'reciprocal',
): Float64Array {
  if (b.length !== n * nrhs) throw new RangeError(`choleskySolve: ${b.length} elements is not [${n}, ${nrhs}]`);
  const x = Float64Array.from(b);
  solveLower(L, n, x, nrhs, pivot);
  return solveLowerTransposed(L, n, x, nrhs, pivot);
}

/** `log det(L L^T)` from the Cholesky factor. */
export function choleskyLogDet(L: ArrayLike<number>, n: number): number {
  let sum = 0;
  for (let i = 0; i < n; i++) sum += Math.log(L[i * n + i]);
  return 2 * sum;
}

/**
 * Inverse of a symmetric positive-definite `a [n, n]` through `cholesky` (so with its
 * policy), dividing by the pivots. Symmetric up to rounding; `symmetrize` it where exact
 * symmetry matters.
 */
export function spdInverse(a: ArrayLike<number>, n: number, options: CholeskyOptions = {}): Float64Array {
  const L = cholesky(a, n, options);
  const identity = new Float64Array(n * n);
  for (let i = 0; i < n; i++) identity[i * n + i] = 1;
  return choleskySolve(L, n, identity, n, 'divide');
}

/** Replaces `a [n, n]` by `(a + a^T) / 2` in place, removing rounding asymmetry. */
export function symmetrize(a: Float64Array, n: number): Float64Array {
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < i; j++) {
      const mean = 0.5 * (a[i * n + j] + a[j * n + i]);
      a[i * n + j] = mean;
      a[j * n + i] = mean;
    }
  }
  return a;
}

/** One draw of `N(mean, L L^T)` into `out` (`mean + L z`, z standard normal). */
export function sampleMvn<T extends Float64Array | Float32Array>(
  rng: Rng,
  mean: ArrayLike<number>,
  cholL: ArrayLike<number>,
  out: T,
): T {
  const n = mean.length;
  if (cholL.length !== n * n || out.length !== n) throw new RangeError(`sampleMvn: mean of ${n} does not fit L or out`);
  const z = rng.fillNormal(new Float64Array(n));
  for (let i = 0; i < n; i++) {
    let sum = mean[i];
    for (let p = 0; p <= i; p++) sum += cholL[i * n + p] * z[p];
    out[i] = sum;
  }
  return out;
}
