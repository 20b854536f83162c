/**
 * Random coordinate mask: each coordinate of x is observed independently with probability
 * `keep` (at least one is always kept), A = diag(mask), so y = mask * x + e, and the masked
 * coordinates of y hold pure noise. The network sees the mask, not the d x d matrix.
 */
import { ndarray, type NDArray } from '../ndarray.js';
import type { Rng } from '../rng.js';
import type { VectorChannel } from './channel.js';

export function maskChannel(dim: number, keep: number, noiseStd: number): VectorChannel {
  if (!(keep > 0 && keep <= 1)) throw new RangeError(`mask keep probability must be in (0, 1], got ${keep}`);
  return {
    kind: 'mask',
    dim,
    obsDim: dim,
    noiseStd,
    featureDim: dim,
    drawOperators(rng: Rng, n: number): NDArray {
      const ops = ndarray([n, dim, dim]);
      for (let i = 0; i < n; i++) {
        let kept = 0;
        for (let c = 0; c < dim; c++) {
          if (rng.uniform() < keep) {
            ops.data[(i * dim + c) * dim + c] = 1;
            kept++;
          }
        }
        if (kept === 0) {
          const c = rng.int(dim);
          ops.data[(i * dim + c) * dim + c] = 1;
        }
      }
      return ops;
    },
    features(operators: NDArray): NDArray {
      const n = operators.shape[0];
      const mask = ndarray([n, dim]);
      for (let i = 0; i < n; i++)
        for (let c = 0; c < dim; c++) mask.data[i * dim + c] = operators.data[(i * dim + c) * dim + c];
      return mask;
    },
  };
}
