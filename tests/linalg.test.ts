import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  cholesky,
  choleskyLogDet,
  choleskySolve,
  matmul,
  solveLower,
  solveLowerTransposed,
  spdInverse,
  transpose,
} from '../models/linalg.js';
import { Rng } from '../models/rng.js';

function maxAbsDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

function identity(n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) out[i * n + i] = 1;
  return out;
}

/** B B^T + n I for a Gaussian B: symmetric positive definite, condition number modest. */
function randomSpd(rng: Rng, n: number): Float64Array {
  const B = rng.fillNormal(new Float64Array(n * n));
  const a = matmul(B, transpose(B, n, n), n, n, n);
  for (let i = 0; i < n; i++) a[i * n + i] += n;
  return a;
}

describe('the one Cholesky policy', () => {
  const rng = Rng.derive(11, 'linalg-test');
  const n = 12;
  const spd = randomSpd(rng, n);

  it('factors an SPD matrix exactly, reading only its lower triangle', () => {
    const L = cholesky(spd, n);
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) assert.equal(L[i * n + j], 0);
    assert.ok(maxAbsDifference(matmul(L, transpose(L, n, n), n, n, n), spd) < 1e-11);
    const lowerOnly = Float64Array.from(spd, (v, q) => (q % n > Math.floor(q / n) ? 0 : v));
    assert.deepEqual(cholesky(lowerOnly, n), L);
  });

  it('adds the smallest relative jitter that factors a singular PSD matrix, and only then', () => {
    // Rank 2 in 4 dimensions: PSD, singular, so the first exact attempt fails.
    const u = [1, 2, -1, 0.5];
    const v = [0, 1, 1, -2];
    const a = Float64Array.from({ length: 16 }, (_, q) => {
      const i = Math.floor(q / 4);
      const j = q % 4;
      return u[i] * u[j] + v[i] * v[j];
    });
    const L = cholesky(a, 4);
    const rebuilt = matmul(L, transpose(L, 4, 4), 4, 4, 4);
    // What was added sits on the diagonal and is tiny relative to the mean diagonal (3.1875).
    const added = Float64Array.from(rebuilt, (x, q) => x - a[q]);
    for (let q = 0; q < 16; q++) {
      if (q % 5 === 0) assert.ok(added[q] > 0 && added[q] < 1e-4 * 3.1875, `diagonal ${q}: ${added[q]}`);
      else assert.ok(Math.abs(added[q]) < 1e-12, `off-diagonal ${q}: ${added[q]}`);
    }
    assert.throws(() => cholesky(a, 4, { maxJitter: 0 }), /not positive definite/);
  });

  it('throws on an indefinite matrix instead of clamping its pivot', () => {
    // Eigenvalues 3 and -1: no jitter up to 1e-4 of the mean diagonal makes it definite.
    assert.throws(() => cholesky(Float64Array.of(1, 2, 2, 1), 2), /cholesky: 2x2 matrix is not positive definite/);
    const indefinite = Float64Array.from(spd);
    indefinite[(n - 1) * n + (n - 1)] = -1;
    assert.throws(() => cholesky(indefinite, n), /12x12 matrix is not positive definite/);
    assert.throws(() => spdInverse(indefinite, n), /not positive definite/);
    assert.throws(() => cholesky(Float64Array.of(1, 0, 0, NaN), 2), /not positive definite/);
    assert.throws(() => cholesky(new Float64Array(5), 2), RangeError);
  });

  it('solves, inverts and takes log-determinants through the factor', () => {
    const L = cholesky(spd, n);
    const b = rng.fillNormal(new Float64Array(n * 3));
    for (const pivot of ['reciprocal', 'divide'] as const) {
      const x = choleskySolve(L, n, b, 3, pivot);
      assert.ok(maxAbsDifference(matmul(spd, x, n, n, 3), b) < 1e-10, pivot);
      // L (L^T x) = b, step by step.
      const y = solveLower(L, n, Float64Array.from(b), 3, pivot);
      assert.deepEqual(solveLowerTransposed(L, n, y, 3, pivot), x);
    }
    assert.ok(maxAbsDifference(matmul(spdInverse(spd, n), spd, n, n, n), identity(n)) < 1e-10);
    // det(diag(d)) = prod d.
    const d = [0.5, 2, 3, 1e-3];
    const diagonal = Float64Array.from({ length: 16 }, (_, q) => (q % 5 === 0 ? d[q / 5] : 0));
    const logDet = choleskyLogDet(cholesky(diagonal, 4), 4);
    assert.ok(Math.abs(logDet - Math.log(0.5 * 2 * 3 * 1e-3)) < 1e-12);
  });
});
