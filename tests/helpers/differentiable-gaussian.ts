/**
 * The exact denoiser of a Gaussian law N(m, S) with its Jacobian, in float64: with
 * x_t = x + sigma z,
 *
 *     D(x_t) = m + S (S + sigma^2 I)^{-1} (x_t - m),   J = S (S + sigma^2 I)^{-1},
 *     J^T v = (S + sigma^2 I)^{-1} S v,
 *
 * and sigma^2 J = Cov[x | x_t] exactly, so moment-matching guidance over it is exact.
 * Counts its passes (forward evaluations and VJPs) like a network would.
 */
import { cholesky, choleskySolve } from '../../models/linalg.js';
import type { DifferentiableDenoiser, Linearization } from '../../models/guidance/differentiable.js';

export class DifferentiableGaussianDenoiser implements DifferentiableDenoiser {
  passes = 0;
  private readonly factors = new Map<number, Float64Array>();

  constructor(
    readonly mean: Float64Array,
    readonly cov: Float64Array,
  ) {}

  get dim(): number {
    return this.mean.length;
  }

  /** Cholesky factor of S + sigma^2 I, cached per noise level. */
  private factor(sigma: number): Float64Array {
    let L = this.factors.get(sigma);
    if (!L) {
      const d = this.dim;
      const a = Float64Array.from(this.cov);
      for (let j = 0; j < d; j++) a[j * d + j] += sigma * sigma;
      L = cholesky(a, d);
      this.factors.set(sigma, L);
    }
    return L;
  }

  private covTimes(v: Float64Array, offset: number): Float64Array {
    const d = this.dim;
    const out = new Float64Array(d);
    for (let j = 0; j < d; j++) {
      let acc = 0;
      for (let k = 0; k < d; k++) acc += this.cov[j * d + k] * v[offset + k];
      out[j] = acc;
    }
    return out;
  }

  async linearize(xt: Float64Array, sigma: ArrayLike<number>): Promise<Linearization> {
    const d = this.dim;
    const n = sigma.length;
    if (xt.length !== n * d) throw new RangeError(`x_t has ${xt.length} values, expected ${n}x${d}`);
    this.passes++;
    const value = new Float64Array(n * d);
    const centred = new Float64Array(d);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < d; j++) centred[j] = xt[i * d + j] - this.mean[j];
      const s = this.covTimes(choleskySolve(this.factor(sigma[i]), d, centred), 0);
      for (let j = 0; j < d; j++) value[i * d + j] = this.mean[j] + s[j];
    }
    return {
      value,
      vjp: async (v) => {
        this.passes++;
        const out = new Float64Array(n * d);
        for (let i = 0; i < n; i++) out.set(choleskySolve(this.factor(sigma[i]), d, this.covTimes(v, i * d)), i * d);
        return out;
      },
      dispose: () => undefined,
    };
  }
}
