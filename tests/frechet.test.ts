import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { JACOBI_MAX_WIDTH, symmetricEigen } from '../models/eigen.js';
import { frechetDistance } from '../models/metrics/frechet.js';
import { Rng } from '../models/rng.js';

/**
 * Q diag(d) Q for the Householder reflection Q = I - 2 v v^T / |v|^2: a dense symmetric
 * matrix with eigenvalues d and eigenvectors the columns of Q, built in O(k^2) as
 * D - beta (D v) v^T - beta v (D v)^T + beta^2 (v^T D v) v v^T.
 */
function reflected(d: Float64Array, v: Float64Array): Float64Array {
  const k = d.length;
  let vv = 0;
  for (const x of v) vv += x * x;
  const beta = 2 / vv;
  const dv = Float64Array.from(v, (x, i) => d[i] * x);
  let vdv = 0;
  for (let i = 0; i < k; i++) vdv += v[i] * dv[i];
  const out = new Float64Array(k * k);
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < k; j++) {
      out[i * k + j] = -beta * (dv[i] * v[j] + v[i] * dv[j]) + beta * beta * vdv * v[i] * v[j];
    }
    out[i * k + i] += d[i];
  }
  return out;
}

/**
 * Two Gaussians whose covariances share the eigenvectors Q (so they commute) with spectra a
 * and b, the last `zeros` entries of a being zero (rank-deficient, as feature covariances of
 * fewer samples than features are). Then
 *     d^2 = |mu1 - mu2|^2 + sum_i (a_i + b_i - 2 sqrt(a_i b_i)) = |mu1 - mu2|^2 + sum_i (sqrt a_i - sqrt b_i)^2.
 */
function commutingPair(k: number, zeros: number, seed: number) {
  const rng = Rng.derive(seed, `frechet-test/${k}`);
  const v = rng.fillNormal(new Float64Array(k));
  const a = Float64Array.from({ length: k }, (_, i) => (i >= k - zeros ? 0 : 0.05 + 2 * rng.uniform()));
  const b = Float64Array.from({ length: k }, () => 0.05 + 2 * rng.uniform());
  const mu1 = rng.fillNormal(new Float64Array(k), 0.1);
  const mu2 = rng.fillNormal(new Float64Array(k), 0.1);
  let expected = 0;
  for (let i = 0; i < k; i++) expected += (mu1[i] - mu2[i]) ** 2 + (Math.sqrt(a[i]) - Math.sqrt(b[i])) ** 2;
  return { mu1, mu2, cov1: reflected(a, v), cov2: reflected(b, v), a, b, v, expected };
}

describe('Frechet distance against a closed form', () => {
  it(`Jacobi width (k = 64 <= ${JACOBI_MAX_WIDTH})`, () => {
    const { mu1, mu2, cov1, cov2, expected } = commutingPair(64, 8, 1);
    const got = frechetDistance(mu1, cov1, mu2, cov2);
    // The 8 zero eigenvalues come back as +-eps |S1|: their clamped square roots bound the
    // error (about 2e-9 relative here).
    assert.ok(Math.abs(got - expected) <= 1e-8 * expected, `${got} vs ${expected}`);
    const swapped = frechetDistance(mu2, cov2, mu1, cov1);
    assert.ok(Math.abs(swapped - expected) <= 1e-8 * expected, `${swapped} vs ${expected}`);
  });

  it('Inception width (k = 2048, tridiagonal QL), rank-deficient first covariance', () => {
    const k = 2048;
    const { mu1, mu2, cov1, cov2, expected } = commutingPair(k, 256, 2);
    const got = frechetDistance(mu1, cov1, mu2, cov2);
    // As above, with 256 zero eigenvalues (about 1e-8 relative at widths 512 and 1024).
    assert.ok(Math.abs(got - expected) <= 1e-7 * expected, `${got} vs ${expected} (difference ${got - expected})`);
  });
});

describe('symmetricEigen past the Jacobi width', () => {
  it('returns the spectrum ascending and orthonormal eigenvectors (k = 300)', () => {
    const k = 300;
    const rng = Rng.derive(3, 'eigen-test');
    const d = Float64Array.from({ length: k }, (_, i) => (i % 3 === 0 ? -1 : 1) * (1 + rng.uniform()));
    const v = rng.fillNormal(new Float64Array(k));
    const a = reflected(d, v);
    const { values, vectors } = symmetricEigen(a, k);
    const sorted = Float64Array.from(d).sort();
    for (let i = 0; i < k; i++) assert.ok(Math.abs(values[i] - sorted[i]) < 1e-12, `eigenvalue ${i}`);
    // A V = V diag(values) and V^T V = I.
    let residual = 0;
    let orthogonality = 0;
    for (let i = 0; i < k; i++) {
      for (let e = 0; e < k; e++) {
        let av = 0;
        let vtv = 0;
        for (let p = 0; p < k; p++) {
          av += a[i * k + p] * vectors[p * k + e];
          vtv += vectors[p * k + i] * vectors[p * k + e];
        }
        residual = Math.max(residual, Math.abs(av - values[e] * vectors[i * k + e]));
        orthogonality = Math.max(orthogonality, Math.abs(vtv - (i === e ? 1 : 0)));
      }
    }
    assert.ok(residual < 1e-12 && orthogonality < 1e-12, `residual ${residual}, orthogonality ${orthogonality}`);
    assert.equal(symmetricEigen(a, k, { vectors: false }).vectors, null);
    assert.deepEqual(symmetricEigen(a, k, { vectors: false }).values, values);
  });
});
