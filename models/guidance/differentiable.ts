/**
 * A denoiser that can be differentiated with respect to its input, what posterior guidance
 * by moment matching needs. For x_t = x + sigma z, Tweedie's formulas give
 *
 *     E[x | x_t] = D(x_t, sigma),   Cov[x | x_t] = sigma^2 dD/dx_t,
 *
 * so the posterior covariance is reachable through products with the Jacobian J. Like
 * `jax.vjp`, `linearize` evaluates D once and returns its value with a function computing
 * J^T v at that point, which may be called any number of times (each call is one network
 * pass, the unit in which guidance cost is counted).
 *
 * Rows are independent: row i of the output depends on row i of x_t only, so one batched
 * product J^T v is n independent products. Float64 vectors, because the guidance solves mix
 * noise levels from 1e-3 to 1e1 with observation noise 1e-2; a float32 network converts at
 * its boundary.
 * Reference: Rozet et al., "Learning Diffusion Priors from Observations by Expectation
 * Maximization" (NeurIPS 2024), Sec. 3.
 */
export interface Linearization {
  /** D(x_t) [n, d]. */
  readonly value: Float64Array;
  /** J^T v per row, v [n, d] -> [n, d], with J_i = dD(x_t)_i / d(x_t)_i. */
  vjp(cotangent: Float64Array): Promise<Float64Array>;
  /** Releases what the linearization holds (tensors); it cannot be used afterwards. */
  dispose(): void;
}

export interface DifferentiableDenoiser {
  /** d: dimension of x. */
  readonly dim: number;
  /** Evaluates D at x_t [n, d] with noise level sigma[i] for row i, and keeps the point for VJPs. */
  linearize(xt: Float64Array, sigma: ArrayLike<number>): Promise<Linearization>;
  dispose?(): void | Promise<void>;
}
