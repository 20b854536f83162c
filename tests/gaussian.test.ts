import assert from 'node:assert/strict';
import { test } from 'node:test';

import { fitGaussianEM, gaussianPosterior, samplePosterior, type GaussianPrior } from '../models/gaussian/dense.js';
import { cholesky, matmul, solveLower, spdInverse, transpose } from '../models/linalg.js';
import { ndarray, type NDArray } from '../models/ndarray.js';
import { Rng } from '../models/rng.js';

const D = 5;
const M = 2;
const SY = 1e-2;

/** A random full-rank Gaussian: mean ~ N(0, 1), cov = L L^T with a well-conditioned L. */
function randomGaussian(rng: Rng): GaussianPrior {
  const mean = rng.fillNormal(new Float64Array(D));
  const L = new Float64Array(D * D);
  for (let i = 0; i < D; i++) {
    for (let j = 0; j < i; j++) L[i * D + j] = 0.5 * rng.normal();
    L[i * D + i] = 0.5 + rng.uniform();
  }
  return { mean, cov: matmul(L, transpose(L, D, D), D, D, D) };
}

/** m x d matrices with N(0, 1) entries and unit-norm rows, as in the manifold experiment. */
function randomOperators(rng: Rng, n: number): NDArray {
  const A = ndarray([n, M, D]);
  for (let row = 0; row < n * M; row++) {
    const entries = rng.fillNormal(new Float64Array(D));
    const norm = Math.hypot(...entries);
    for (let p = 0; p < D; p++) A.data[row * D + p] = entries[p] / norm;
  }
  return A;
}

function observe(rng: Rng, x: NDArray, A: NDArray, sy: number): NDArray {
  const [n, d] = x.shape;
  const m = A.shape[1];
  const y = ndarray([n, m]);
  for (let i = 0; i < n; i++) {
    for (let r = 0; r < m; r++) {
      let sum = 0;
      for (let p = 0; p < d; p++) sum += A.data[(i * m + r) * d + p] * x.data[i * d + p];
      y.data[i * m + r] = sum + sy * rng.normal();
    }
  }
  return y;
}

function drawFrom(rng: Rng, prior: GaussianPrior, n: number): NDArray {
  const L = cholesky(prior.cov, D);
  const x = ndarray([n, D]);
  const z = new Float64Array(D);
  for (let i = 0; i < n; i++) {
    rng.fillNormal(z);
    for (let p = 0; p < D; p++) {
      let sum = prior.mean[p];
      for (let q = 0; q <= p; q++) sum += L[p * D + q] * z[q];
      x.data[i * D + p] = sum;
    }
  }
  return x;
}

function maxAbsDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

const truth = randomGaussian(Rng.derive(5, 'truth'));
const n = 4000;
const A = randomOperators(Rng.derive(5, 'operators'), n);
const y = observe(Rng.derive(5, 'noise'), drawFrom(Rng.derive(5, 'x'), truth, n), A, SY);
// EM is slow here (each observation misses 3 of 5 directions): 200 iterations to settle.
const ITERATIONS = 200;
const fit = fitGaussianEM(y, A, SY, { iterations: ITERATIONS });

test('EM recovers the mean and covariance of a Gaussian seen through random 2x5 projections', () => {
  // Each observation sees 2 of 5 directions, so the estimates carry roughly the sampling error
  // of n * 2/5 = 1600 full samples: ~0.03 on entries of size ~1. Tolerances are ~4 of those.
  let scale = 0;
  for (let p = 0; p < D; p++) scale = Math.max(scale, truth.cov[p * D + p]);
  assert.ok(maxAbsDifference(fit.mean, truth.mean) < 0.12 * Math.sqrt(scale), `mean ${fit.mean} vs ${truth.mean}`);
  assert.ok(maxAbsDifference(fit.cov, truth.cov) < 0.15 * scale, `cov ${fit.cov} vs ${truth.cov}`);
  // The fitted covariance is symmetric and positive definite.
  for (let p = 0; p < D; p++) for (let q = 0; q < p; q++) assert.equal(fit.cov[p * D + q], fit.cov[q * D + p]);
  assert.doesNotThrow(() => cholesky(fit.cov, D, { maxJitter: 0 }));
});

test('EM never decreases the marginal log likelihood', () => {
  const ll = fit.logLikelihood;
  assert.equal(ll.length, ITERATIONS + 1);
  for (let t = 1; t < ll.length; t++) {
    assert.ok(ll[t] >= ll[t - 1] - 1e-12, `iteration ${t}: ${ll[t - 1]} -> ${ll[t]}`);
  }
  assert.ok(ll[ITERATIONS] > ll[0] + 0.5);
  assert.ok(ll[ITERATIONS] - ll[ITERATIONS - 1] < 1e-5);
});

test('EM ends at a maximum of the likelihood it reports', () => {
  const at = (mean: ArrayLike<number>, cov: ArrayLike<number>): number =>
    fitGaussianEM(y, A, SY, { iterations: 0, mu0: mean, sigma0: cov }).logLikelihood[0];
  const best = fit.logLikelihood[ITERATIONS];
  assert.ok(Math.abs(at(fit.mean, fit.cov) - best) < 1e-12);
  const rng = Rng.derive(5, 'perturbation');
  const step = 1e-2;
  for (let trial = 0; trial < 10; trial++) {
    const direction = rng.fillNormal(new Float64Array(D + D * D));
    const mean = fit.mean.map((value, p) => value + step * direction[p]);
    const cov = fit.cov.map((value, k) => {
      const [p, q] = [Math.floor(k / D), k % D];
      return value + (step * (direction[D + p * D + q] + direction[D + q * D + p])) / 2;
    });
    assert.ok(at(mean, cov) < best, `trial ${trial}: a nearby prior explains the data better`);
  }
});

test('gaussianPosterior matches the precision form (Sigma^-1 + A^T A / sy^2)^-1', () => {
  const Ai = A.data.subarray(0, M * D);
  const yi = y.data.subarray(0, M);
  const posterior = gaussianPosterior(yi, Ai, SY, truth);

  const priorPrecision = spdInverse(truth.cov, D);
  const AtA = matmul(transpose(Ai, M, D), Ai, D, M, D);
  const precision = priorPrecision.map((value, k) => value + AtA[k] / SY ** 2);
  const cov = spdInverse(precision, D);
  const information = matmul(priorPrecision, truth.mean, D, D, 1);
  const Aty = matmul(transpose(Ai, M, D), yi, D, M, 1);
  const mean = matmul(
    cov,
    information.map((value, p) => value + Aty[p] / SY ** 2),
    D,
    D,
    1,
  );

  assert.ok(maxAbsDifference(posterior.mean, mean) < 1e-9);
  assert.ok(maxAbsDifference(posterior.cov, cov) < 1e-9);
});

test('samplePosterior draws from the exact posterior', () => {
  const draws = 20000;
  const Ai = A.data.subarray(0, M * D);
  const yi = y.data.subarray(0, M);
  const ys = ndarray([draws, M]);
  const As = ndarray([draws, M, D]);
  for (let i = 0; i < draws; i++) {
    ys.data.set(yi, i * M);
    As.data.set(Ai, i * M * D);
  }
  const samples = samplePosterior(Rng.derive(5, 'posterior'), ys, As, SY, truth);
  assert.deepEqual(samples.shape, [draws, D]);
  assert.deepEqual(samplePosterior(Rng.derive(5, 'posterior'), ys, As, SY, truth).data, samples.data);

  // Whitened by the exact posterior, the draws must look standard normal.
  const posterior = gaussianPosterior(yi, Ai, SY, truth);
  const L = cholesky(posterior.cov, D);
  const mean = new Float64Array(D);
  const second = new Float64Array(D * D);
  const white = new Float64Array(D);
  for (let i = 0; i < draws; i++) {
    for (let p = 0; p < D; p++) white[p] = samples.data[i * D + p] - posterior.mean[p];
    solveLower(L, D, white);
    for (let p = 0; p < D; p++) {
      mean[p] += white[p] / draws;
      for (let q = 0; q < D; q++) second[p * D + q] += (white[p] * white[q]) / draws;
    }
  }
  // Standard errors: 1/sqrt(N) = 0.007 for the mean, ~0.01 for second moments.
  // Float32 output rounds the observed directions (posterior std ~ sy) at ~1e-7 / 1e-2: harmless.
  for (let p = 0; p < D; p++) assert.ok(Math.abs(mean[p]) < 0.03, `whitened mean ${mean}`);
  for (let p = 0; p < D; p++) {
    for (let q = 0; q < D; q++) {
      assert.ok(Math.abs(second[p * D + q] - (p === q ? 1 : 0)) < 0.05, `whitened covariance ${second}`);
    }
  }
});

test('one-dimensional posterior, by hand', () => {
  // Prior N(1, 4), y = 2 x + e, sy = 1, y = 3: precision 1/4 + 4 = 17/4,
  // mean = (4/17) (1/4 + 2 * 3) = 25/17.
  const posterior = gaussianPosterior([3], [2], 1, { mean: Float64Array.of(1), cov: Float64Array.of(4) });
  assert.ok(Math.abs(posterior.mean[0] - 25 / 17) < 1e-14);
  assert.ok(Math.abs(posterior.cov[0] - 4 / 17) < 1e-14);
});

test('one EM iteration in one dimension, by hand', () => {
  // y = x + e with sy = 1, observations 1 and 3, start at N(0, 1): posteriors N(y/2, 1/2),
  // so mu = 1 and Sigma = 1/2 + mean((1/2 - 1)^2, (3/2 - 1)^2) = 3/4.
  const result = fitGaussianEM(ndarray([2, 1], Float32Array.of(1, 3)), ndarray([2, 1, 1], Float32Array.of(1, 1)), 1, {
    iterations: 1,
    jitter: 0,
  });
  assert.ok(Math.abs(result.mean[0] - 1) < 1e-14);
  assert.ok(Math.abs(result.cov[0] - 0.75) < 1e-14);
  // Mean log likelihood: y ~ N(0, 2) before, y ~ N(1, 7/4) after.
  const before = -0.5 * Math.log(4 * Math.PI) - (1 + 9) / 8;
  const after = -0.5 * Math.log(3.5 * Math.PI) - (0 + 4) / 3.5 / 2;
  assert.ok(Math.abs(result.logLikelihood[0] - before) < 1e-12);
  assert.ok(Math.abs(result.logLikelihood[1] - after) < 1e-12);
  assert.ok(after > before);
});

test('initial parameters are honoured and shapes are checked', () => {
  const start = fitGaussianEM(y, A, SY, { iterations: 0, mu0: truth.mean, sigma0: truth.cov });
  assert.deepEqual(start.mean, truth.mean);
  assert.equal(start.logLikelihood.length, 1);
  // The truth explains the data better than the default N(0, I) start.
  assert.ok(start.logLikelihood[0] > fit.logLikelihood[0]);
  assert.throws(() => fitGaussianEM(y, ndarray([n, 3, D]), SY, { iterations: 1 }), RangeError);
  assert.throws(() => fitGaussianEM(y, A, SY, { iterations: 1, mu0: [0, 0] }), RangeError);
});

test('cholesky: exact on SPD, jitters a singular PSD matrix, reports an indefinite one', () => {
  const spd = truth.cov;
  const L = cholesky(spd, D);
  assert.ok(maxAbsDifference(matmul(L, transpose(L, D, D), D, D, D), spd) < 1e-12);
  assert.ok(
    maxAbsDifference(
      matmul(spdInverse(spd, D), spd, D, D, D),
      Float64Array.from({ length: D * D }, (_, k) => (k % (D + 1) === 0 ? 1 : 0)),
    ) < 1e-10,
  );
  // Rank one: u u^T is PSD but singular; a tiny jitter makes it factorisable.
  const u = [1, 2, 3];
  const rankOne = Float64Array.from({ length: 9 }, (_, k) => u[Math.floor(k / 3)] * u[k % 3]);
  const jittered = cholesky(rankOne, 3);
  assert.ok(maxAbsDifference(matmul(jittered, transpose(jittered, 3, 3), 3, 3, 3), rankOne) < 1e-6);
  assert.throws(() => cholesky(Float64Array.of(1, 2, 2, 1), 2), /not positive definite/);
});
