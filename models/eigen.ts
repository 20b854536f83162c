/**
 * Symmetric eigendecomposition in O(k^3) for the wide features of FID (Inception's 2048):
 * Householder reduction to tridiagonal form, then the implicit QL algorithm, as in EISPACK's
 * tred2 / tql2 (Martin, Reinsch & Wilkinson; Bowdler et al., Handbook for Automatic
 * Computation, Vol. II, 1971), in the public-domain form of JAMA. `models/metrics/images.ts`'s
 * cyclic Jacobi is more accurate for tiny eigenvalues but costs many sweeps of O(k^3); here one
 * reduction does, which takes 2048 x 2048 from hours to about a minute in JavaScript.
 */

/** Eigenvalues (ascending) and, when `vectors` is true, eigenvectors as columns of V [k, k]. */
export function tridiagonalEigen(
  matrix: ArrayLike<number>,
  k: number,
  vectors = true,
): { values: Float64Array; vectors: Float64Array | null } {
  const n = k;
  const V = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) V[i * n + j] = 0.5 * (matrix[i * n + j] + matrix[j * n + i]);
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  tred2(V, d, e, n);
  tql2(V, d, e, n, vectors);
  // tql2 sorts ascending.
  return { values: d, vectors: vectors ? V : null };
}

function tred2(V: Float64Array, d: Float64Array, e: Float64Array, n: number): void {
  for (let j = 0; j < n; j++) d[j] = V[(n - 1) * n + j];
  for (let i = n - 1; i > 0; i--) {
    let scale = 0;
    let h = 0;
    for (let k = 0; k < i; k++) scale += Math.abs(d[k]);
    if (scale === 0) {
      e[i] = d[i - 1];
      for (let j = 0; j < i; j++) {
        d[j] = V[(i - 1) * n + j];
        V[i * n + j] = 0;
        V[j * n + i] = 0;
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
        V[j * n + i] = f;
        g = e[j] + V[j * n + j] * f;
        for (let k = j + 1; k <= i - 1; k++) {
          g += V[k * n + j] * d[k];
          e[k] += V[k * n + j] * f;
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
        for (let k = j; k <= i - 1; k++) V[k * n + j] -= f * e[k] + g * d[k];
        d[j] = V[(i - 1) * n + j];
        V[i * n + j] = 0;
      }
    }
    d[i] = h;
  }
  for (let i = 0; i < n - 1; i++) {
    V[(n - 1) * n + i] = V[i * n + i];
    V[i * n + i] = 1;
    const h = d[i + 1];
    if (h !== 0) {
      for (let k = 0; k <= i; k++) d[k] = V[k * n + i + 1] / h;
      for (let j = 0; j <= i; j++) {
        let g = 0;
        for (let k = 0; k <= i; k++) g += V[k * n + i + 1] * V[k * n + j];
        for (let k = 0; k <= i; k++) V[k * n + j] -= g * d[k];
      }
    }
    for (let k = 0; k <= i; k++) V[k * n + i + 1] = 0;
  }
  for (let j = 0; j < n; j++) {
    d[j] = V[(n - 1) * n + j];
    V[(n - 1) * n + j] = 0;
  }
  V[(n - 1) * n + n - 1] = 1;
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
            h = V[k * n + i + 1];
            V[k * n + i + 1] = s * V[k * n + i] + c * h;
            V[k * n + i] = c * V[k * n + i] - s * h;
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
        const t = V[j * n + i];
        V[j * n + i] = V[j * n + k];
        V[j * n + k] = t;
      }
    }
  }
}

/** Squared Frechet distance between two Gaussians, through `tridiagonalEigen` (any width). */
export function frechetDistanceWide(
  mu1: ArrayLike<number>,
  cov1: ArrayLike<number>,
  mu2: ArrayLike<number>,
  cov2: ArrayLike<number>,
): number {
  const k = mu1.length;
  let meanTerm = 0;
  for (let i = 0; i < k; i++) meanTerm += (mu1[i] - mu2[i]) ** 2;
  let traces = 0;
  for (let i = 0; i < k; i++) traces += cov1[i * k + i] + cov2[i * k + i];
  const { values, vectors } = tridiagonalEigen(cov1, k);
  const V = vectors!;
  // R = V sqrt(L) V^T; middle = R cov2 R. With B = sqrt(L) V^T, middle = B^T (V^T... ): its
  // eigenvalues equal those of C = B cov2 B^T (similar up to an orthogonal change of basis).
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
  const middle = tridiagonalEigen(C, k, false).values;
  let traceRoot = 0;
  for (const v of middle) traceRoot += Math.sqrt(Math.max(v, 0));
  return Math.max(0, meanTerm + traces - 2 * traceRoot);
}
