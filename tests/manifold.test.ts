import assert from 'node:assert/strict';
import { test } from 'node:test';

import { curveDistances } from '../models/metrics/curve.js';
import { curveFunction, curvePoint, drawCurve, sampleManifold } from '../models/manifold.js';
import { ndarray } from '../models/ndarray.js';
import { Rng } from '../models/rng.js';

const params = drawCurve(Rng.derive(11, 'curve'));

test('drawCurve is a function of the seed, with 5x10 coefficients in (0, 1)', () => {
  assert.deepEqual(drawCurve(Rng.derive(11, 'curve')), params);
  assert.notDeepEqual(drawCurve(Rng.derive(12, 'curve')), params);
  for (const coefficients of [params.a, params.b, params.c]) {
    assert.equal(coefficients.length, 5);
    for (const row of coefficients) {
      assert.equal(row.length, 10);
      for (const value of row) assert.ok(value > 0 && value < 1);
    }
  }
  assert.equal(params.lo.length, 5);
  for (let i = 0; i < 5; i++) assert.ok(params.hi[i] > params.lo[i]);
});

test('drawCurve honours dim and terms', () => {
  const small = drawCurve(Rng.derive(11, 'small'), 3, 4, 4096);
  assert.equal(small.a.length, 3);
  assert.equal(small.c[2].length, 4);
  assert.equal(curvePoint(small, 0.3).length, 3);
});

test('the normalised curve spans exactly [-2, 2] in every dimension', () => {
  const curve = curveFunction(params);
  const lo = new Float64Array(5).fill(Infinity);
  const hi = new Float64Array(5).fill(-Infinity);
  const point = new Float64Array(5);
  // A grid other than the one drawCurve used, so the refinement of the extremes is what is tested.
  const steps = 300_007;
  for (let j = 0; j <= steps; j++) {
    curve(j / steps, point);
    for (let i = 0; i < 5; i++) {
      lo[i] = Math.min(lo[i], point[i]);
      hi[i] = Math.max(hi[i], point[i]);
    }
  }
  for (let i = 0; i < 5; i++) {
    assert.ok(lo[i] >= -2 && lo[i] < -2 + 1e-6, `dimension ${i}: min ${lo[i]}`);
    assert.ok(hi[i] <= 2 && hi[i] > 2 - 1e-6, `dimension ${i}: max ${hi[i]}`);
  }
});

test('sampleManifold is deterministic per stream, shaped [n, 5], inside [-2, 2]', () => {
  const first = sampleManifold(Rng.derive(11, 'data'), params, 3000);
  const again = sampleManifold(Rng.derive(11, 'data'), params, 3000);
  const other = sampleManifold(Rng.derive(11, 'other'), params, 3000);
  assert.deepEqual(first.x.shape, [3000, 5]);
  assert.equal(first.z.length, 3000);
  assert.deepEqual(again.x.data, first.x.data);
  assert.deepEqual(again.z, first.z);
  assert.notDeepEqual(other.x.data, first.x.data);
  for (const value of first.x.data) assert.ok(value >= -2 && value <= 2);
  for (const z of first.z) assert.ok(z > 0 && z < 1);
});

test('each sample is the curve point of its z, up to float32 rounding', () => {
  const { x, z } = sampleManifold(Rng.derive(11, 'data'), params, 200);
  for (let row = 0; row < 200; row++) {
    const point = curvePoint(params, z[row]);
    for (let i = 0; i < 5; i++) assert.ok(Math.abs(x.data[row * 5 + i] - point[i]) < 1e-6);
  }
});

test('curve points lie at distance ~0 from the curve', () => {
  const rng = Rng.derive(11, 'points');
  const n = 300;
  const points = ndarray([n, 5]);
  for (let row = 0; row < n; row++) points.data.set(curvePoint(params, rng.uniform()), row * 5);
  const distances = curveDistances(params, points);
  for (const distance of distances) assert.ok(distance < 1e-6, `distance ${distance}`);
});
