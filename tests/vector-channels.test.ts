import assert from 'node:assert/strict';
import { test } from 'node:test';
import { conditioning, observe } from '../models/channels/channel.js';
import { maskChannel } from '../models/channels/mask.js';
import { projectionChannel } from '../models/channels/projection.js';
import { ndarray } from '../models/ndarray.js';
import { Rng } from '../models/rng.js';

test('projection operators have unit-norm rows and i.i.d. Gaussian directions', () => {
  const channel = projectionChannel(5, 2, 0.01);
  const ops = channel.drawOperators(Rng.derive(1, 'ops'), 4000);
  assert.deepEqual(ops.shape, [4000, 2, 5]);
  let mean = 0;
  let second = 0;
  for (let row = 0; row < 8000; row++) {
    let norm = 0;
    for (let c = 0; c < 5; c++) norm += ops.data[row * 5 + c] ** 2;
    assert.ok(Math.abs(norm - 1) < 1e-5);
    mean += ops.data[row * 5] / 8000;
    second += ops.data[row * 5] ** 2 / 8000;
  }
  // A unit vector uniform on the sphere in R^5: E[a_1] = 0, E[a_1^2] = 1/5.
  assert.ok(Math.abs(mean) < 0.02, `mean ${mean}`);
  assert.ok(Math.abs(second - 0.2) < 0.02, `second moment ${second}`);
});

test('fresh streams give fresh operators; the same stream gives the same ones', () => {
  const channel = projectionChannel(5, 2, 0.01);
  const a = channel.drawOperators(Rng.derive(1, 'recorrupt', 'lap-1'), 10);
  const b = channel.drawOperators(Rng.derive(1, 'recorrupt', 'lap-1'), 10);
  const c = channel.drawOperators(Rng.derive(1, 'recorrupt', 'lap-2'), 10);
  assert.deepEqual(a.data, b.data);
  assert.notDeepEqual(a.data, c.data);
});

test('observe computes A x plus noise of the stated std', () => {
  const channel = projectionChannel(3, 2, 0.5);
  const n = 20000;
  const ops = channel.drawOperators(Rng.derive(2, 'ops'), n);
  const x = ndarray([n, 3], Rng.derive(2, 'x').fillNormal(new Float32Array(n * 3)));
  const y = observe(Rng.derive(2, 'noise'), ops, x, 0.5);
  let sq = 0;
  for (let i = 0; i < n; i++) {
    for (let r = 0; r < 2; r++) {
      let ax = 0;
      for (let c = 0; c < 3; c++) ax += ops.data[(i * 2 + r) * 3 + c] * x.data[i * 3 + c];
      sq += (y.data[i * 2 + r] - ax) ** 2;
    }
  }
  const std = Math.sqrt(sq / (2 * n));
  assert.ok(Math.abs(std - 0.5) < 0.01, `noise std ${std}`);
});

test('mask operators are diagonal 0/1, keep about the stated fraction, never drop everything', () => {
  const channel = maskChannel(4, 0.3, 0.01);
  const n = 5000;
  const ops = channel.drawOperators(Rng.derive(3, 'ops'), n);
  const features = channel.features(ops);
  assert.deepEqual(features.shape, [n, 4]);
  let kept = 0;
  for (let i = 0; i < n; i++) {
    let row = 0;
    for (let r = 0; r < 4; r++) {
      for (let c = 0; c < 4; c++) {
        const v = ops.data[(i * 4 + r) * 4 + c];
        if (r !== c) assert.equal(v, 0);
        else {
          assert.ok(v === 0 || v === 1);
          assert.equal(features.data[i * 4 + r], v);
          row += v;
        }
      }
    }
    assert.ok(row >= 1, 'at least one coordinate is observed');
    kept += row;
  }
  const rate = kept / (4 * n);
  // P(keep) = 0.3, plus the forced coordinate when all four are dropped (0.7^4 / 4 per coordinate).
  const expected = 0.3 + 0.7 ** 4 / 4;
  assert.ok(Math.abs(rate - expected) < 0.015, `kept ${rate} vs ${expected}`);
});

test('conditioning rows are [y, features(A)]', () => {
  const channel = projectionChannel(5, 2, 0.01);
  const ops = channel.drawOperators(Rng.derive(4, 'ops'), 3);
  const y = ndarray([3, 2], Float32Array.from([1, 2, 3, 4, 5, 6]));
  const cond = conditioning(channel, y, ops);
  assert.deepEqual(cond.shape, [3, 12]);
  assert.deepEqual([...cond.data.subarray(12, 14)], [3, 4]);
  assert.deepEqual([...cond.data.subarray(14, 24)], [...ops.data.subarray(10, 20)]);
});
