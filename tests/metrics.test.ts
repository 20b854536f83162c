import assert from 'node:assert/strict';
import { test } from 'node:test';

import { dataConsistency } from '../models/metrics/consistency.js';
import { curveCoverage, curveDistances, projectOntoCurve, summarizeDistances } from '../models/metrics/curve.js';
import { sinkhorn, sinkhornDivergence } from '../models/metrics/sinkhorn.js';
import { curvePoint, curveVelocity, drawCurve, sampleManifold } from '../models/manifold.js';
import { ndarray, takeRows, type NDArray } from '../models/ndarray.js';
import { Rng } from '../models/rng.js';

function gaussianCloud(rng: Rng, n: number, d: number, shift: number[] = []): NDArray {
  const cloud = ndarray([n, d]);
  rng.fillNormal(cloud.data);
  for (let i = 0; i < n; i++) for (let p = 0; p < shift.length; p++) cloud.data[i * d + p] += shift[p];
  return cloud;
}

function translated(cloud: NDArray, shift: number[]): NDArray {
  const [n, d] = cloud.shape;
  const out = ndarray([n, d], Float32Array.from(cloud.data));
  for (let i = 0; i < n; i++) for (let p = 0; p < d; p++) out.data[i * d + p] += shift[p];
  return out;
}

function columnMeans(cloud: NDArray): number[] {
  const [n, d] = cloud.shape;
  const means = new Array<number>(d).fill(0);
  for (let i = 0; i < n; i++) for (let p = 0; p < d; p++) means[p] += cloud.data[i * d + p] / n;
  return means;
}

const halfSquaredNorm = (v: number[]): number => v.reduce((sum, value) => sum + value * value, 0) / 2;

test('Sinkhorn: zero for a cloud against itself', () => {
  const x = gaussianCloud(Rng.derive(3, 'same'), 400, 5);
  assert.ok(Math.abs(sinkhornDivergence(x, x)) < 1e-12);
});

test('Sinkhorn: two Dirac masses give |x - y|^2 / 2 exactly', () => {
  const x = ndarray([1, 3], Float32Array.of(0.5, -1, 2));
  const y = ndarray([1, 3], Float32Array.of(-0.25, 0.5, 1));
  const expected = (0.75 ** 2 + 1.5 ** 2 + 1) / 2;
  for (const blur of [0.01, 0.05, 1]) {
    assert.ok(Math.abs(sinkhornDivergence(x, y, { blur }) - expected) < 1e-12 * expected);
  }
  assert.equal(sinkhornDivergence(x, x), 0);
});

test('Sinkhorn: a translated copy gives |delta|^2 / 2, growing with the shift', () => {
  // The cost of a translation splits into |delta|^2 / 2 plus terms that every coupling of the
  // two marginals integrates to zero, so S_eps(a, a + delta) = |delta|^2 / 2 for every eps.
  const x = gaussianCloud(Rng.derive(3, 'translate'), 500, 2);
  let previous = 0;
  for (const shift of [
    [0.05, 0],
    [0.3, -0.2],
    [1, 0.5],
  ]) {
    const divergence = sinkhornDivergence(x, translated(x, shift));
    assert.ok(divergence > previous);
    assert.ok(Math.abs(divergence - halfSquaredNorm(shift)) < 1e-5 * halfSquaredNorm(shift), `${divergence}`);
    previous = divergence;
  }
});

test('Sinkhorn: independent Gaussian clouds shifted by delta', () => {
  const shift = [1, 0.5];
  const x = gaussianCloud(Rng.derive(3, 'x'), 500, 2);
  const unshifted = gaussianCloud(Rng.derive(3, 'y'), 500, 2);
  const y = translated(unshifted, shift);
  const divergence = sinkhornDivergence(x, y);
  // Loosely, the population value |delta|^2 / 2 (sampling moves it by ~0.1 at n = 500).
  assert.ok(Math.abs(divergence - halfSquaredNorm(shift)) < 0.15, `${divergence}`);
  // More tightly, the exact identity for clouds b and b + delta:
  // S(a, b + delta) = S(a, b) + <mean(b) - mean(a), delta> + |delta|^2 / 2.
  const [meanX, meanUnshifted] = [columnMeans(x), columnMeans(unshifted)];
  const predicted =
    sinkhornDivergence(x, unshifted) +
    shift.reduce((sum, value, p) => sum + (meanUnshifted[p] - meanX[p]) * value, 0) +
    halfSquaredNorm(shift);
  assert.ok(Math.abs(divergence - predicted) < 0.02, `${divergence} vs ${predicted}`);
});

test('Sinkhorn: symmetric and non-negative', () => {
  const rng = Rng.derive(3, 'pairs');
  for (let trial = 0; trial < 4; trial++) {
    const x = gaussianCloud(rng.fork('x', trial), 100 + 50 * trial, 3);
    const y = gaussianCloud(rng.fork('y', trial), 250 - 40 * trial, 3, [0.2 * trial]);
    const forward = sinkhornDivergence(x, y);
    const backward = sinkhornDivergence(y, x);
    assert.ok(Math.abs(forward - backward) < 1e-10 * Math.max(1, Math.abs(forward)));
    assert.ok(forward >= -1e-12, `trial ${trial}: ${forward}`);
  }
  // Nearly identical clouds: a tiny but non-negative divergence.
  const x = gaussianCloud(Rng.derive(3, 'near'), 300, 3);
  const jitter = gaussianCloud(Rng.derive(3, 'jitter'), 300, 3);
  const y = ndarray(
    [300, 3],
    x.data.map((value, k) => value + 1e-3 * jitter.data[k]),
  );
  const divergence = sinkhornDivergence(x, y);
  assert.ok(divergence >= 0 && divergence < 1e-5, `${divergence}`);
});

test('Sinkhorn: a few far outliers raise the divergence (never negative)', () => {
  const curve = drawCurve(Rng.derive(1, 'curve'));
  const a = sampleManifold(Rng.derive(1, 'a'), curve, 512).x;
  const b = sampleManifold(Rng.derive(1, 'b'), curve, 512).x;
  const clean = sinkhornDivergence(a, b);
  const outliers = ndarray(a.shape, Float32Array.from(a.data));
  outliers.data.set([17, -5, 3, 10, 0], 0);
  outliers.data.set([-12, 8, 0, 2, 9], 5);
  outliers.data.set([4, 15, -9, 0, 1], 10);
  const withOutliers = sinkhornDivergence(outliers, b);
  assert.ok(clean >= 0, `${clean}`);
  // Moving 3 of 512 points ~15 away costs at least 3/512 * 15^2 / 2 ~ 0.66 minus what they left.
  assert.ok(withOutliers > clean + 0.2, `${withOutliers} vs ${clean}`);
});

test('Sinkhorn: reports its convergence and validates its input', () => {
  const x = gaussianCloud(Rng.derive(3, 'report'), 200, 2);
  const result = sinkhorn(x, translated(x, [0.1, 0]), { tolerance: 1e-3 });
  assert.ok(result.converged && result.marginalGap <= 1e-3 && result.sweeps > 0);
  assert.throws(() => sinkhornDivergence(x, ndarray([10, 3])), RangeError);
  assert.throws(() => sinkhornDivergence(x, x, { blur: 0 }), RangeError);
});

const params = drawCurve(Rng.derive(11, 'curve'));

test('curve distance: ~0 on the curve, the displacement along a normal off it', () => {
  const rng = Rng.derive(4, 'normal');
  const rows = 40;
  const displacements = [0, 1e-3, 1e-2, 5e-2];
  const x = ndarray([rows * displacements.length, 5]);
  const z = new Float64Array(rows);
  for (let row = 0; row < rows; row++) {
    z[row] = rng.uniform();
    const point = curvePoint(params, z[row]);
    const tangent = curveVelocity(params, z[row]);
    // A unit normal: a random direction with its tangential part removed.
    const normal = rng.fillNormal(new Float64Array(5));
    const along = normal.reduce((s, v, i) => s + v * tangent[i], 0) / tangent.reduce((s, v) => s + v * v, 0);
    for (let i = 0; i < 5; i++) normal[i] -= along * tangent[i];
    const length = Math.hypot(...normal);
    displacements.forEach((delta, k) => {
      for (let i = 0; i < 5; i++) x.data[(k * rows + row) * 5 + i] = point[i] + (delta * normal[i]) / length;
    });
  }
  const { distance, z: projected } = projectOntoCurve(params, x);
  displacements.forEach((delta, k) => {
    for (let row = 0; row < rows; row++) {
      // float32 coordinates carry ~1e-7 of rounding.
      assert.ok(Math.abs(distance[k * rows + row] - delta) < 1e-6, `delta ${delta}: ${distance[k * rows + row]}`);
      assert.ok(Math.abs(projected[k * rows + row] - z[row]) < 1e-4);
    }
  });
  // The refinement, not the grid, sets the accuracy: a coarse grid gives the same distances.
  const coarse = curveDistances(params, x, { grid: 1024 });
  for (let k = 0; k < coarse.length; k++) assert.ok(Math.abs(coarse[k] - distance[k]) < 1e-6);
});

test('summarizeDistances: mean, median, 90th percentile', () => {
  assert.deepEqual(summarizeDistances([10, 1, 9, 2, 8, 3, 7, 4, 6, 5]), { mean: 5.5, median: 5.5, p90: 9.1 });
  assert.deepEqual(summarizeDistances([2]), { mean: 2, median: 2, p90: 2 });
});

test('curve coverage: all of the curve, half of it, none of it', () => {
  const { x, z } = sampleManifold(Rng.derive(4, 'coverage'), params, 2000);
  assert.equal(curveCoverage(params, x, { radius: 0.05 }), 1);
  const firstHalf = [...z.keys()].filter((i) => z[i] < 0.5);
  const half = curveCoverage(params, takeRows(x, firstHalf), { radius: 0.05 });
  // Bins 0..49, plus bin 50 whose start lies within the radius of samples just below z = 0.5.
  assert.ok(half >= 0.5 && half <= 0.53, `${half}`);
  const far = ndarray(
    [2000, 5],
    x.data.map((value) => value + 3),
  );
  assert.equal(curveCoverage(params, far, { radius: 0.05 }), 0);
});

test('data consistency: 0 without noise, known value with a known residual', () => {
  const rng = Rng.derive(4, 'consistency');
  const [n, m, d, sy] = [20000, 2, 5, 1e-2];
  const x = ndarray([n, d]);
  rng.fillNormal(x.data);
  const A = ndarray([n, m, d]);
  rng.fillNormal(A.data);
  const exact = ndarray([n, m]);
  for (let i = 0; i < n; i++) {
    for (let r = 0; r < m; r++) {
      let sum = 0;
      for (let p = 0; p < d; p++) sum += A.data[(i * m + r) * d + p] * x.data[i * d + p];
      exact.data[i * m + r] = sum;
    }
  }
  assert.ok(dataConsistency(x, exact, A, sy) < 1e-8);
  // A residual of (0.01, -0.02) everywhere: (1e-4 + 4e-4) / (2 sy^2) = 2.5.
  const offset = ndarray(
    [n, m],
    exact.data.map((value, k) => value - (k % 2 === 0 ? 0.01 : -0.02)),
  );
  assert.ok(Math.abs(dataConsistency(x, offset, A, sy) - 2.5) < 1e-3);
  // Observation noise of std sy: chi^2_m / 2 on average, i.e. m / 2 = 1.
  const noisy = ndarray(
    [n, m],
    exact.data.map((value) => value + sy * rng.normal()),
  );
  assert.ok(Math.abs(dataConsistency(x, noisy, A, sy) - 1) < 0.05);
  assert.throws(() => dataConsistency(x, exact, ndarray([n, m, 4]), sy), RangeError);
});
