/**
 * The denoiser contract shared by every sampler, every runtime (tfjs, ONNX Runtime) and the
 * analytic denoisers of the tests:
 *
 *     D(x_t, sigma, c) ~ E[x | x_t, c],   x_t = x + sigma z
 *
 * where c is the conditioning row of each sample (the observation y followed by the
 * channel's description of the operator A), or absent for the unconditional prior.
 * Batches are row-major: x_t [n, dim], sigma [n], cond [n, condDim].
 */
import type { NDArray } from '../ndarray.js';

export interface Denoiser {
  readonly dim: number;
  readonly condDim: number;
  denoise(xt: NDArray, sigma: Float32Array, cond: NDArray | null): Promise<NDArray>;
  dispose?(): Promise<void> | void;
}
