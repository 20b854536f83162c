import assert from 'node:assert/strict';

/** max |expected - actual| over max |expected|: one scale for a whole tensor, as float32 sums reassociate. */
export function maxRelativeError(expected: ArrayLike<number>, actual: ArrayLike<number>): number {
  assert.equal(actual.length, expected.length);
  let scale = 0;
  let diff = 0;
  for (let i = 0; i < expected.length; i++) {
    scale = Math.max(scale, Math.abs(expected[i]));
    diff = Math.max(diff, Math.abs(expected[i] - actual[i]));
  }
  return diff / Math.max(scale, 1e-30);
}
