/**
 * Corruption channels for vector data: each observation is
 *
 *     y = A x + e,   A ~ Q (the channel),   e ~ N(0, s_y^2 I)
 *
 * Operators are dense matrices [n, m, d], one per observation, so the linear-Gaussian
 * posterior of lap 0 and EM-MMPS work for every channel unchanged. What the conditional
 * network sees of A is the channel's `features` (the flattened matrix, or just the mask).
 * `drawOperators` is called with a fresh stream for the M-step re-corruption, so every lap
 * trains on operators the observations never had (docs/method.md, M-step).
 */
import { ndarray, type NDArray } from '../ndarray.js';
import type { Rng } from '../rng.js';

export interface VectorChannel {
  readonly kind: string;
  /** d: dimension of x. */
  readonly dim: number;
  /** m: dimension of y. */
  readonly obsDim: number;
  /** s_y: standard deviation of the observation noise. */
  readonly noiseStd: number;
  /** Width of `features(A)` per observation. */
  readonly featureDim: number;
  drawOperators(rng: Rng, n: number): NDArray;
  features(operators: NDArray): NDArray;
}

/** y_i = A_i x_i + s_y e_i. */
export function observe(rng: Rng, operators: NDArray, x: NDArray, noiseStd: number): NDArray {
  const [n, m, d] = operators.shape;
  if (x.shape[0] !== n || x.shape[1] !== d) {
    throw new RangeError(`operators [${operators.shape}] do not apply to x [${x.shape}]`);
  }
  const y = ndarray([n, m]);
  for (let i = 0; i < n; i++) {
    for (let r = 0; r < m; r++) {
      let acc = 0;
      const row = (i * m + r) * d;
      for (let c = 0; c < d; c++) acc += operators.data[row + c] * x.data[i * d + c];
      y.data[i * m + r] = acc + noiseStd * rng.normal();
    }
  }
  return y;
}

/** The conditioning row of each observation: [y_i, features(A_i)]. */
export function conditioning(channel: VectorChannel, y: NDArray, operators: NDArray): NDArray {
  const n = y.shape[0];
  const m = channel.obsDim;
  const f = channel.featureDim;
  const feats = channel.features(operators);
  const out = ndarray([n, m + f]);
  for (let i = 0; i < n; i++) {
    out.data.set(y.data.subarray(i * m, (i + 1) * m), i * (m + f));
    out.data.set(feats.data.subarray(i * f, (i + 1) * f), i * (m + f) + m);
  }
  return out;
}

export function conditioningWidth(channel: VectorChannel): number {
  return channel.obsDim + channel.featureDim;
}
