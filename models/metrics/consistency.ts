/**
 * Data consistency of reconstructions: mean_i ||A_i x_i - y_i||^2 / (2 s_y^2).
 *
 * This is the negative Gaussian log likelihood of the observations given the reconstructions,
 * up to a constant. An exact posterior sample scores about m/2 on average (the noise e_i
 * contributes chi^2_m / 2), so values far above m/2 mean the samples ignore their observation.
 *
 * Reference: Hosseintabar et al., "DiffEM" (2025), manifold experiment metrics.
 */
import type { NDArray } from '../ndarray.js';

export function dataConsistency(x: NDArray, y: NDArray, A: NDArray, sy: number): number {
  if (x.shape.length !== 2 || y.shape.length !== 2 || A.shape.length !== 3) {
    throw new RangeError(`dataConsistency: needs x [n, d], y [n, m], A [n, m, d]`);
  }
  const [n, d] = x.shape;
  const m = y.shape[1];
  if (y.shape[0] !== n || A.shape[0] !== n || A.shape[1] !== m || A.shape[2] !== d) {
    throw new RangeError(`dataConsistency: x [${x.shape}], y [${y.shape}] and A [${A.shape}] do not agree`);
  }
  if (n === 0) return 0;
  let total = 0;
  for (let i = 0; i < n; i++) {
    for (let r = 0; r < m; r++) {
      let predicted = 0;
      const row = (i * m + r) * d;
      for (let p = 0; p < d; p++) predicted += A.data[row + p] * x.data[i * d + p];
      const residual = predicted - y.data[i * m + r];
      total += residual * residual;
    }
  }
  return total / (2 * sy * sy * n);
}
