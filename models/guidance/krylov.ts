/**
 * What the batched Krylov solvers (conjugate gradients, GMRES) share: a batch of n
 * independent m x m systems M_i u_i = b_i, stored row-major [n, m], with M reachable only
 * through one batched product per iteration (for guidance, one network pass).
 */
export type BatchedMatVec = (v: Float64Array) => Promise<Float64Array> | Float64Array;

export interface KrylovOptions {
  /** Most iterations, i.e. most products with M. */
  iterations: number;
  /** Residual below which a row counts as solved, relative to |b_i| (default 1e-12). */
  tolerance?: number;
}

export interface KrylovResult {
  /** u [n, m]. */
  x: Float64Array;
  /** Products with M done (iterations run). */
  iterations: number;
  /** Largest relative residual |r_i| / |b_i| over the rows, after each iteration (entry 0: before). */
  residuals: number[];
  /**
   * Times M did not behave as the solver requires: CG directions whose curvature was
   * clamped (or, without a floor, rows that stopped); GMRES, which needs no positive
   * curvature, reports none.
   */
  breakdowns: number;
}
