/**
 * Eigendecomposition of a real symmetric matrix, the one solver of the project (lap-0
 * factor models, Frechet distances). Two algorithms behind one entry point, chosen by width:
 *
 * - k <= JACOBI_MAX_WIDTH: cyclic Jacobi rotations (Golub & Van Loan, "Matrix Computations",
 *   4th ed., Sec. 8.5). O(k^3) per sweep and a handful of sweeps, but accurate to working
 *   precision for every eigenvalue, small ones included, which the square roots of nearly
 *   singular covariances need.
 * - wider: Householder reduction to tridiagonal form and the implicit QL algorithm, as in
 *   EISPACK's tred2 / tql2 (Martin, Reinsch & Wilkinson; Bowdler et al., Handbook for
 *   Automatic Computation, Vol. II, 1971), in the public-domain form of JAMA. One O(k^3)
 *   reduction instead of many sweeps: Inception's 2048 features take about a minute in
 *   JavaScript instead of hours.
 *
 * Both symmetrise their input first ((A + A^T) / 2) and return eigenvalues ascending.
 */

/** Widest matrix solved by Jacobi; wider ones go through the tridiagonal QL algorithm. */
export const JACOBI_MAX_WIDTH = 256;

export interface SymmetricEigen {
  /** Eigenvalues, ascending. */
  values: Float64Array;
  /** Eigenvectors as the columns of a [k, k] row-major matrix, in the order of `values`. */
  vectors: Float64Array;
}

export interface EigenOptions {
  /** False: eigenvalues only (the wide solver then skips accumulating rotations); `vectors` is null. */
  vectors?: boolean;
}

/** Eigenvalues (ascending) of the symmetric `matrix [k, k]` and, by default, its eigenvectors. */
export function symmetricEigen(matrix: ArrayLike<number>, k: number): SymmetricEigen;
export function symmetricEigen(
  matrix: ArrayLike<number>,
  k: number,
  options: EigenOptions,
): { values: Float64Array; vectors: Float64Array | null };
export function symmetricEigen(
  matrix: ArrayLike<number>,
  k: number,
  options: EigenOptions = {},
): { values: Float64Array; vectors: Float64Array | null } {
  if (matrix.length !== k * k) throw new RangeError(`symmetricEigen: ${matrix.length} entries is not [${k}, ${k}]`);
  const vectors = options.vectors ?? true;
  if (k <= JACOBI_MAX_WIDTH) {
    const result = jacobiEigen(matrix, k);
    return vectors ? result : { values: result.values, vectors: null };
  }
  return tridiagonalEigen(matrix, k, vectors);
}

/** Cyclic Jacobi rotations (Golub & Van Loan, Sec. 8.5); eigenvalues ascending. */
function jacobiEigen(matrix: ArrayLike<number>, k: number, maxSweeps = 100): SymmetricEigen {
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

/**
 * Householder + implicit QL; eigenvectors as columns of V [k, k] when `vectors` is true.
 * The working copy of V is stored transposed (`V[c * n + r]` is JAMA's `V[r][c]`), the same
 * arithmetic in the same order as JAMA, with row-wise memory access.
 */
function tridiagonalEigen(
  matrix: ArrayLike<number>,
  k: number,
  vectors: boolean,
): { values: Float64Array; vectors: Float64Array | null } {
  const n = k;
  const V = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) V[i * n + j] = 0.5 * (matrix[i * n + j] + matrix[j * n + i]);
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  tred2(V, d, e, n);
  tql2(V, d, e, n, vectors);
  // tql2 sorts ascending. V is held transposed (eigenvectors as rows): the loops of tred2 and
  // tql2 then walk contiguous rows instead of columns n apart.
  return { values: d, vectors: vectors ? transposeSquare(V, n) : null };
}

function transposeSquare(a: Float64Array, n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) out[j * n + i] = a[i * n + j];
  return out;
}

function tred2(V: Float64Array, d: Float64Array, e: Float64Array, n: number): void {
  for (let j = 0; j < n; j++) d[j] = V[j * n + (n - 1)];
  for (let i = n - 1; i > 0; i--) {
    let scale = 0;
    let h = 0;
    for (let k = 0; k < i; k++) scale += Math.abs(d[k]);
    if (scale === 0) {
      e[i] = d[i - 1];
      for (let j = 0; j < i; j++) {
        d[j] = V[j * n + (i - 1)];
        V[j * n + i] = 0;
        V[i * n + j] = 0;
      }
    } else {
      for (let k = 0; k < i; k++) {
        d[k] /= scale;
        h += d[k] * d[k];
      }
      let f = d[i - 1];
      let g = Math.sqrt(h);
      if (f > 0) g = -g;
      e[i] = scale * g;
      h -= f * g;
      d[i - 1] = f - g;
      for (let j = 0; j < i; j++) e[j] = 0;
      for (let j = 0; j < i; j++) {
        f = d[j];
        V[i * n + j] = f;
        g = e[j] + V[j * n + j] * f;
        for (let k = j + 1; k <= i - 1; k++) {
          g += V[j * n + k] * d[k];
          e[k] += V[j * n + k] * f;
        }
        e[j] = g;
      }
      f = 0;
      for (let j = 0; j < i; j++) {
        e[j] /= h;
        f += e[j] * d[j];
      }
      const hh = f / (h + h);
      for (let j = 0; j < i; j++) e[j] -= hh * d[j];
      for (let j = 0; j < i; j++) {
        f = d[j];
        g = e[j];
        for (let k = j; k <= i - 1; k++) V[j * n + k] -= f * e[k] + g * d[k];
        d[j] = V[j * n + (i - 1)];
        V[j * n + i] = 0;
      }
    }
    d[i] = h;
  }
  for (let i = 0; i < n - 1; i++) {
    V[i * n + (n - 1)] = V[i * n + i];
    V[i * n + i] = 1;
    const h = d[i + 1];
    if (h !== 0) {
      for (let k = 0; k <= i; k++) d[k] = V[(i + 1) * n + k] / h;
      for (let j = 0; j <= i; j++) {
        let g = 0;
        for (let k = 0; k <= i; k++) g += V[(i + 1) * n + k] * V[j * n + k];
        for (let k = 0; k <= i; k++) V[j * n + k] -= g * d[k];
      }
    }
    for (let k = 0; k <= i; k++) V[(i + 1) * n + k] = 0;
  }
  for (let j = 0; j < n; j++) {
    d[j] = V[j * n + (n - 1)];
    V[j * n + (n - 1)] = 0;
  }
  V[(n - 1) * n + (n - 1)] = 1;
  e[0] = 0;
}

function tql2(V: Float64Array, d: Float64Array, e: Float64Array, n: number, rotate: boolean): void {
  for (let i = 1; i < n; i++) e[i - 1] = e[i];
  e[n - 1] = 0;
  let f = 0;
  let tst1 = 0;
  const eps = 2 ** -52;
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(d[l]) + Math.abs(e[l]));
    let m = l;
    while (m < n) {
      if (Math.abs(e[m]) <= eps * tst1) break;
      m++;
    }
    if (m > l) {
      for (let iter = 0; iter < 64; iter++) {
        let g = d[l];
        let p = (d[l + 1] - g) / (2 * e[l]);
        let r = Math.hypot(p, 1);
        if (p < 0) r = -r;
        d[l] = e[l] / (p + r);
        d[l + 1] = e[l] * (p + r);
        const dl1 = d[l + 1];
        let h = g - d[l];
        for (let i = l + 2; i < n; i++) d[i] -= h;
        f += h;
        p = d[m];
        let c = 1;
        let c2 = c;
        let c3 = c;
        const el1 = e[l + 1];
        let s = 0;
        let s2 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i];
          h = c * p;
          r = Math.hypot(p, e[i]);
          e[i + 1] = s * r;
          s = e[i] / r;
          c = p / r;
          p = c * d[i] - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]);
          for (let k = 0; rotate && k < n; k++) {
            h = V[(i + 1) * n + k];
            V[(i + 1) * n + k] = s * V[i * n + k] + c * h;
            V[i * n + k] = c * V[i * n + k] - s * h;
          }
        }
        p = (-s * s2 * c3 * el1 * e[l]) / dl1;
        e[l] = s * p;
        d[l] = c * p;
        if (Math.abs(e[l]) <= eps * tst1) break;
      }
    }
    d[l] += f;
    e[l] = 0;
  }
  // Sort ascending, with the vectors.
  for (let i = 0; i < n - 1; i++) {
    let k = i;
    let p = d[i];
    for (let j = i + 1; j < n; j++) {
      if (d[j] < p) {
        k = j;
        p = d[j];
      }
    }
    if (k !== i) {
      d[k] = d[i];
      d[i] = p;
      for (let j = 0; j < n; j++) {
        const t = V[i * n + j];
        V[i * n + j] = V[k * n + j];
        V[k * n + j] = t;
      }
    }
  }
}
