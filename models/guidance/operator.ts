/**
 * Linear observation operators of a batch, y_i = A_i x_i, seen only through two products:
 *
 *     apply:    x [n, d] -> A x [n, m]
 *     adjoint:  v [n, m] -> A^T v [n, d]
 *
 * which is all that posterior guidance needs, so a mask (m = d, elementwise) or a blur (a
 * convolution and its transpose) can be written without ever forming the matrix. The vector
 * channels store every operator dense, [n, m, d]; `denseOperator` wraps that layout.
 * Float64 throughout: the guidance solves mix s_y^2 = 1e-4 with sigma^2 up to 1e2.
 */
import type { NDArray } from '../ndarray.js';

export interface LinearOperator {
  /** n: observations in the batch. */
  readonly rows: number;
  /** d: dimension of x per row. */
  readonly inDim: number;
  /** m: dimension of y per row. */
  readonly outDim: number;
  apply(x: Float64Array): Float64Array;
  adjoint(v: Float64Array): Float64Array;
}

/** One dense matrix per row: A [n, m, d], row-major. */
export function denseOperator(A: NDArray | { shape: readonly number[]; data: ArrayLike<number> }): LinearOperator {
  if (A.shape.length !== 3) throw new RangeError(`denseOperator: A must be [n, m, d], got [${A.shape.join(', ')}]`);
  const [n, m, d] = A.shape;
  const a = A.data;
  return {
    rows: n,
    inDim: d,
    outDim: m,
    apply(x) {
      checkLength('apply', x, n * d);
      const out = new Float64Array(n * m);
      for (let i = 0; i < n; i++) {
        for (let r = 0; r < m; r++) {
          const row = (i * m + r) * d;
          let acc = 0;
          for (let c = 0; c < d; c++) acc += a[row + c] * x[i * d + c];
          out[i * m + r] = acc;
        }
      }
      return out;
    },
    adjoint(v) {
      checkLength('adjoint', v, n * m);
      const out = new Float64Array(n * d);
      for (let i = 0; i < n; i++) {
        for (let r = 0; r < m; r++) {
          const row = (i * m + r) * d;
          const vr = v[i * m + r];
          if (vr === 0) continue;
          for (let c = 0; c < d; c++) out[i * d + c] += a[row + c] * vr;
        }
      }
      return out;
    },
  };
}

function checkLength(what: string, v: ArrayLike<number>, expected: number): void {
  if (v.length !== expected) throw new RangeError(`operator ${what}: got ${v.length} values, expected ${expected}`);
}
