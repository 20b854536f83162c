import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { symmetricEigen } from '../models/eigen.js';
import { featureFrechetDistance, frechetDistance, gaussianStats } from '../models/metrics/frechet.js';
import { psnr, ssim, SSIM_K1 } from '../models/metrics/images.js';
import { ndarray, type NDArray } from '../models/ndarray.js';
import { Rng } from '../models/rng.js';

function images(shape: number[], fill: (i: number) => number): NDArray {
  const a = ndarray(shape);
  for (let i = 0; i < a.data.length; i++) a.data[i] = fill(i);
  return a;
}

function close(a: number, b: number, tol: number, what = ''): void {
  assert.ok(Math.abs(a - b) <= tol, `${what} ${a} vs ${b}`);
}

/** A random orthogonal matrix (Gram-Schmidt on Gaussian columns). */
function orthogonal(rng: Rng, k: number): Float64Array {
  const q = rng.fillNormal(new Float64Array(k * k));
  for (let j = 0; j < k; j++) {
    for (let p = 0; p < j; p++) {
      let d = 0;
      for (let i = 0; i < k; i++) d += q[i * k + j] * q[i * k + p];
      for (let i = 0; i < k; i++) q[i * k + j] -= d * q[i * k + p];
    }
    let norm = 0;
    for (let i = 0; i < k; i++) norm += q[i * k + j] ** 2;
    for (let i = 0; i < k; i++) q[i * k + j] /= Math.sqrt(norm);
  }
  return q;
}

/** Q diag(d) Q^T. */
function rotated(q: Float64Array, d: number[]): Float64Array {
  const k = d.length;
  const out = new Float64Array(k * k);
  for (let i = 0; i < k; i++)
    for (let j = 0; j < k; j++) for (let e = 0; e < k; e++) out[i * k + j] += q[i * k + e] * d[e] * q[j * k + e];
  return out;
}

describe('image metrics', () => {
  it('PSNR on the [-2, 2] range: known cases', () => {
    const x = images([3, 4, 5, 2], (i) => Math.sin(i));
    const shifted = images([3, 4, 5, 2], (i) => Math.sin(i) + (i < 40 ? 0.1 : i < 80 ? 0.4 : 0));
    const result = psnr(shifted, x);
    close(result.values[0], 10 * Math.log10(16 / 0.01), 1e-4, 'shift 0.1');
    close(result.values[1], 10 * Math.log10(16 / 0.16), 1e-4, 'shift 0.4');
    assert.equal(result.values[2], Infinity);
    assert.equal(result.mean, Infinity);
    // Full-range error: black against white is 0 dB.
    close(
      psnr(
        images([1, 2, 2, 1], () => 2),
        images([1, 2, 2, 1], () => -2),
      ).mean,
      0,
      1e-12,
    );
    assert.throws(
      () =>
        psnr(
          x,
          images([3, 4, 5, 1], () => 0),
        ),
      /one shape/,
    );
  });

  it('SSIM: 1 for identical images, below 1 with noise, closed form for constants', () => {
    const rng = Rng.derive(1, 'ssim');
    const x = images([2, 16, 14, 3], (i) => Math.sin(i / 7) * 1.5);
    assert.ok(ssim(x, x).values.every((v) => Math.abs(v - 1) < 1e-12));
    const noisy = images([2, 16, 14, 3], (i) => x.data[i] + 0.3 * rng.normal());
    const s = ssim(noisy, x);
    assert.ok(
      s.values.every((v) => v < 0.99 && v > 0),
      `ssim ${[...s.values]}`,
    );
    close(ssim(x, noisy).mean, s.mean, 1e-12, 'symmetric');
    const noisier = images([2, 16, 14, 3], (i) => x.data[i] + 1.0 * rng.normal());
    assert.ok(ssim(noisier, x).mean < s.mean);
    // Constant images a and b: the structure terms cancel, leaving (2ab + C1) / (a^2 + b^2 + C1).
    const c1 = (SSIM_K1 * 4) ** 2;
    const value = ssim(
      images([1, 11, 11, 1], () => 0.5),
      images([1, 11, 11, 1], () => -0.25),
    ).mean;
    close(value, (2 * 0.5 * -0.25 + c1) / (0.25 + 0.0625 + c1), 1e-9, 'constants');
    assert.throws(
      () =>
        ssim(
          images([1, 8, 8, 1], () => 0),
          images([1, 8, 8, 1], () => 0),
        ),
      /11x11/,
    );
  });

  it('Jacobi eigendecomposition reconstructs a symmetric matrix', () => {
    const rng = Rng.derive(2);
    const k = 12;
    const b = rng.fillNormal(new Float64Array(k * k));
    const a = new Float64Array(k * k);
    for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) a[i * k + j] = b[i * k + j] + b[j * k + i];
    const { values, vectors } = symmetricEigen(a, k);
    for (let e = 1; e < k; e++) assert.ok(values[e] >= values[e - 1]);
    for (let i = 0; i < k; i++) {
      for (let j = 0; j < k; j++) {
        let r = 0;
        for (let e = 0; e < k; e++) r += vectors[i * k + e] * values[e] * vectors[j * k + e];
        close(r, a[i * k + j], 1e-10);
      }
    }
  });

  it('Frechet distance: closed-form Gaussian cases', () => {
    const rng = Rng.derive(3, 'frechet');
    const k = 6;
    const q = orthogonal(rng, k);
    const da = [0.5, 1, 2, 3, 0.01, 4];
    const db = [1, 1, 0.2, 5, 0.3, 0];
    const mu = [0.1, -0.2, 0.3, 0, 1, 2];
    const c1 = rotated(q, da);
    const c2 = rotated(q, db);
    close(frechetDistance(mu, c1, mu, c1), 0, 1e-9, 'identical');
    const mu2 = mu.map((m, i) => m + i * 0.5);
    const shift = mu2.reduce((acc, m, i) => acc + (m - mu[i]) ** 2, 0);
    close(frechetDistance(mu, c1, mu2, c1), shift, 1e-9, 'mean shift');
    // Covariances that share eigenvectors (diagonal in the same basis): sum (sqrt a - sqrt b)^2.
    const diagonal = da.reduce((acc, a, i) => acc + (Math.sqrt(a) - Math.sqrt(db[i])) ** 2, 0);
    const identity = new Float64Array(k * k).map((_, i) => (Math.floor(i / k) === i % k ? 1 : 0));
    const diag = (d: number[]) => rotated(identity, d);
    close(frechetDistance(mu, diag(da), mu, diag(db)), diagonal, 1e-9, 'diagonal');
    // A zero eigenvalue's square root turns rounding of order 1e-16 into 1e-8.
    close(frechetDistance(mu, c1, mu2, c2), diagonal + shift, 1e-7, 'rotated');
    // Non-commuting covariances: symmetric in its arguments.
    const c3 = rotated(orthogonal(rng, k), [1, 2, 3, 4, 5, 6]);
    close(frechetDistance(mu, c1, mu2, c3), frechetDistance(mu2, c3, mu, c1), 1e-8, 'symmetry');
  });

  it('Gaussian stats of features feed the distance', () => {
    const rng = Rng.derive(4);
    const n = 4000;
    const a = ndarray([n, 3], rng.fillNormal(new Float32Array(n * 3)));
    const stats = gaussianStats(a);
    for (let j = 0; j < 3; j++) close(stats.mean[j], 0, 0.06);
    for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) close(stats.cov[i * 3 + j], i === j ? 1 : 0, 0.08);
    const b = ndarray([n, 3], rng.fillNormal(new Float32Array(n * 3), 2));
    // N(0, I) against N(0, 4 I): 3 (1 - 2)^2 = 3, up to sampling error.
    close(featureFrechetDistance(a, b), 3, 0.3);
    const exact = ndarray([3, 2], Float32Array.from([1, 2, 3, 4, 5, 9]));
    const s = gaussianStats(exact);
    assert.deepEqual([...s.mean], [3, 5]);
    assert.deepEqual([...s.cov], [4, 7, 7, 13]);
  });
});
