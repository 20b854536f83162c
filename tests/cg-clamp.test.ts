import assert from 'node:assert/strict';
import { test } from 'node:test';
import { conjugateGradient } from '../models/guidance/cg.js';

/**
 * A batch of 2 x 2 guidance systems M = s_y^2 I + C whose "covariance" C = diag(-0.5, 1) is
 * not positive semi-definite, as a learned Jacobian can make it.
 */
const S2Y = 1e-2;
const COV = [-0.5, 1];
const diagonalSystem = (v: Float64Array): Float64Array => v.map((x, j) => (S2Y + COV[j % 2]) * x);

test('CG clamps a non-positive curvature to s_y^2 instead of leaving the row unguided', async () => {
  // Row 0 lies along the bad direction, row 1 along the good one.
  const b = Float64Array.from([1, 0, 0, 1]);
  const solve = await conjugateGradient(diagonalSystem, b, 2, 2, { iterations: 2, curvatureFloor: S2Y });
  // Zero covariance along e1: s_y^2 u = b, the solution of the clamped system (not 0, not b / (s_y^2 - 0.5)).
  assert.ok(Math.abs(solve.x[0] - 1 / S2Y) < 1e-9, `row 0 got ${solve.x[0]}`);
  assert.equal(solve.x[1], 0);
  assert.equal(solve.x[2], 0);
  assert.ok(Math.abs(solve.x[3] - 1 / (S2Y + 1)) < 1e-12, `row 1 got ${solve.x[3]}`);
  assert.equal(solve.breakdowns, 1);
  // Both rows are solved in their (clamped) systems, so the recorded residual reaches zero.
  assert.ok(solve.residuals[solve.residuals.length - 1] < 1e-12, `residuals ${solve.residuals.join(', ')}`);
});

test('after a clamped direction the row keeps iterating, with bounded steps', async () => {
  // p_0 = b has positive curvature (2 s_y^2 + 0.5); the next direction leans on the bad axis.
  const b = Float64Array.from([1, 1]);
  const one = await conjugateGradient(diagonalSystem, b, 1, 2, { iterations: 1, curvatureFloor: S2Y });
  const two = await conjugateGradient(diagonalSystem, b, 1, 2, { iterations: 2, curvatureFloor: S2Y });
  assert.equal(one.breakdowns, 0);
  assert.equal(two.breakdowns, 1);
  assert.equal(two.iterations, 2);
  assert.ok(
    Math.abs(two.x[0] - one.x[0]) > 1 && Math.abs(two.x[1] - one.x[1]) > 1e-6,
    `the clamped step moved nothing: ${one.x} -> ${two.x}`,
  );
  // M >= s_y^2 I after clamping, so no step exceeds |r| / s_y^2 <= |b| / s_y^2 per direction.
  const norm = Math.hypot(two.x[0], two.x[1]);
  assert.ok(Number.isFinite(norm) && norm <= (2 * Math.hypot(1, 1)) / S2Y, `|u| = ${norm}`);
});

test('without a floor a non-positive curvature still stops the row (no bounded step exists)', async () => {
  const negative = (v: Float64Array): Float64Array => v.map((x) => -x);
  const solve = await conjugateGradient(negative, Float64Array.from([1]), 1, 1, { iterations: 3 });
  assert.equal(solve.x[0], 0);
  assert.equal(solve.breakdowns, 1);
  assert.equal(solve.iterations, 1);
});

test("with clampedStep 'drop' a clamped direction adds nothing to u, and the row still solves the rest", async () => {
  // Row 0 lies along the bad direction only; row 1 starts with a healthy direction, then meets the bad axis.
  const b = Float64Array.from([1, 0, 1, 1]);
  const solve = await conjugateGradient(diagonalSystem, b, 2, 2, {
    iterations: 2,
    curvatureFloor: S2Y,
    clampedStep: 'drop',
  });
  assert.deepEqual([solve.x[0], solve.x[1]], [0, 0]);
  assert.equal(solve.breakdowns, 2);
  const kept = await conjugateGradient(diagonalSystem, b.subarray(2), 1, 2, { iterations: 1, curvatureFloor: S2Y });
  // Row 1 keeps its healthy first step exactly and drops only the clamped second one.
  assert.ok(Math.abs(solve.x[2] - kept.x[0]) < 1e-12 && Math.abs(solve.x[3] - kept.x[1]) < 1e-12);
  assert.ok(solve.x.every(Number.isFinite));
});
