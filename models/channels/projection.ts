/**
 * Random linear projection: A in R^{m x d} with i.i.d. N(0, 1) entries, each row then
 * normalised to unit length (the manifold experiment: m = 2, d = 5). The reference code
 * forgets the normalisation when it re-corrupts in the M-step; here one function draws
 * every operator, so observations and re-corruptions come from the same Q.
 * The network sees the flattened matrix.
 */
import { ndarray, type NDArray } from '../ndarray.js';
import type { Rng } from '../rng.js';
import type { VectorChannel } from './channel.js';

export function projectionChannel(dim: number, obsDim: number, noiseStd: number): VectorChannel {
  return {
    kind: 'projection',
    dim,
    obsDim,
    noiseStd,
    featureDim: obsDim * dim,
    drawOperators(rng: Rng, n: number): NDArray {
      const ops = ndarray([n, obsDim, dim]);
      rng.fillNormal(ops.data);
      for (let row = 0; row < n * obsDim; row++) {
        let norm = 0;
        for (let c = 0; c < dim; c++) norm += ops.data[row * dim + c] ** 2;
        const inv = 1 / Math.sqrt(norm);
        for (let c = 0; c < dim; c++) ops.data[row * dim + c] *= inv;
      }
      return ops;
    },
    features(operators: NDArray): NDArray {
      return ndarray([operators.shape[0], obsDim * dim], operators.data);
    },
  };
}
