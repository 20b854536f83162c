/**
 * The exact denoiser of a Gaussian law N(m, S): with x_t = x + sigma z,
 *
 *     E[x | x_t] = m + S (S + sigma^2 I)^{-1} (x_t - m),
 *
 * the reference that the samplers must reproduce (their output law is then N(m, S) up to
 * the sigma_min blur). For a posterior N(m, S) it is the exact conditional denoiser.
 */
import { choleskySolve, cholesky } from '../../models/linalg.js';
import type { Denoiser } from '../../models/denoisers/denoiser.js';
import { ndarray, type NDArray } from '../../models/ndarray.js';

export class GaussianDenoiser implements Denoiser {
  readonly condDim = 0;
  calls = 0;

  constructor(
    readonly mean: Float64Array,
    readonly cov: Float64Array,
  ) {}

  get dim(): number {
    return this.mean.length;
  }

  async denoise(xt: NDArray, sigma: Float32Array): Promise<NDArray> {
    this.calls += 1;
    const d = this.dim;
    const n = xt.shape[0];
    const out = ndarray([n, d]);
    const cache = new Map<number, Float64Array>();
    for (let i = 0; i < n; i++) {
      const s = sigma[i];
      let L = cache.get(s);
      if (!L) {
        const a = Float64Array.from(this.cov);
        for (let j = 0; j < d; j++) a[j * d + j] += s * s;
        L = cholesky(a, d);
        cache.set(s, L);
      }
      const r = new Float64Array(d);
      for (let j = 0; j < d; j++) r[j] = xt.data[i * d + j] - this.mean[j];
      const u = choleskySolve(L, d, r);
      for (let j = 0; j < d; j++) {
        let acc = this.mean[j];
        for (let k = 0; k < d; k++) acc += this.cov[j * d + k] * u[k];
        out.data[i * d + j] = acc;
      }
    }
    return out;
  }
}

export function empiricalMoments(x: NDArray): { mean: Float64Array; cov: Float64Array } {
  const [n, d] = x.shape;
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] += x.data[i * d + j] / n;
  const cov = new Float64Array(d * d);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < d; j++)
      for (let k = 0; k < d; k++)
        cov[j * d + k] += ((x.data[i * d + j] - mean[j]) * (x.data[i * d + k] - mean[k])) / (n - 1);
  return { mean, cov };
}
