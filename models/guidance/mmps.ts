/**
 * Moment-matching posterior sampling (MMPS): a prior denoiser D(x_t) ~ E[x | x_t] turned
 * into a posterior one, D_y(x_t) ~ E[x | x_t, y], for observations y = A x + e,
 * e ~ N(0, s_y^2 I). Tweedie's formulas give the first two moments of p(x | x_t),
 *
 *     E[x | x_t] = D(x_t),   Cov[x | x_t] = sigma^2 J,   J = dD/dx_t,
 *
 * and matching p(x | x_t) by the Gaussian with those moments makes y | x_t Gaussian too,
 * with mean A D(x_t) and covariance s_y^2 I + sigma^2 A J A^T, whence
 *
 *     D_y(x_t) = D(x_t) + sigma^2 J^T A^T u,
 *     (s_y^2 I + sigma^2 A J^T A^T) u = y - A D(x_t).
 *
 * J is used transposed (through vector-Jacobian products, as reverse-mode autodiff gives
 * them); for an exact denoiser J is symmetric and both forms agree. The m x m system is
 * solved by a few Krylov iterations, each one VJP: conjugate gradients as in the paper, or
 * GMRES (the default of the authors' later library), which does not assume the symmetry
 * that a learned J lacks. One guided evaluation costs 1 forward pass + `iterations` VJPs +
 * 1 VJP for the final product: 3 passes with one iteration. For a Gaussian prior every step is exact, so with m
 * iterations D_y is the exact E[x | x_t, y]. A learned Jacobian can have negative
 * directions (mostly at high noise, where J ~ Cov[x] / sigma^2 is small and the network's
 * error is not); as a true covariance makes the system matrix at least s_y^2 I, a CG
 * direction with less curvature is clamped to s_y^2 (zero covariance along it, counted in
 * `breakdowns`) instead of taking an unbounded step or leaving the row unguided: the solve
 * goes on in the other directions, and the clamped one adds nothing to u, as its share would
 * be multiplied by the covariance (zero there) in the final product, while the network's
 * J^T, which is not zero there, would turn a step of size |r| / s_y^2 into a blow-up. `MmpsDenoiser` exposes D_y through the plain
 * `Denoiser` contract, so the E-step's ancestral sampler runs it unchanged.
 * Reference: Rozet, Andry, Lanusse & Louppe, "Learning Diffusion Priors from Observations
 * by Expectation Maximization" (NeurIPS 2024), Sec. 3-4; the azula library's MMPSDenoiser.
 */
import type { Denoiser } from '../denoisers/denoiser.js';
import { ndarray, type NDArray } from '../ndarray.js';
import { conjugateGradient } from './cg.js';
import { gmres } from './gmres.js';
import type { KrylovResult } from './krylov.js';
import type { DifferentiableDenoiser } from './differentiable.js';
import type { LinearOperator } from './operator.js';

/** The observations of a batch, one per row. */
export interface Observation {
  /** y [n, m]. */
  y: Float64Array;
  operator: LinearOperator;
  /** s_y: standard deviation of the observation noise. */
  noiseStd: number;
}

/** The Krylov solver of the m x m system: conjugate gradients (the paper) or GMRES. */
export type MmpsSolver = 'cg' | 'gmres';

export interface MmpsOptions {
  /** Solver iterations per evaluation, one VJP each (the paper uses 1 to 3). */
  iterations: number;
  solver?: MmpsSolver;
  /** Relative residual at which a row's solve stops early (default 1e-12). */
  tolerance?: number;
}

export interface GuidedEstimate {
  /** D_y(x_t) [n, d]. */
  mean: Float64Array;
  /** Network passes spent: the forward pass and every VJP. */
  passes: number;
  solve: KrylovResult;
}

/** One evaluation of D_y at x_t [n, d], with noise level sigma[i] for row i. */
export async function mmpsDenoise(
  denoiser: DifferentiableDenoiser,
  xt: Float64Array,
  sigma: ArrayLike<number>,
  observation: Observation,
  options: MmpsOptions,
): Promise<GuidedEstimate> {
  const { operator, noiseStd } = observation;
  const d = denoiser.dim;
  const n = sigma.length;
  const m = operator.outDim;
  if (operator.rows !== n || operator.inDim !== d || xt.length !== n * d || observation.y.length !== n * m) {
    throw new RangeError(
      `mmpsDenoise: x_t has ${xt.length} values for ${n} rows of dim ${d}, the operator is ` +
        `[${operator.rows}, ${operator.outDim}, ${operator.inDim}] and y has ${observation.y.length} values`,
    );
  }
  const linear = await denoiser.linearize(xt, sigma);
  try {
    let passes = 1;
    // Cov[x | x_t] v = sigma^2 J^T v, row by row.
    const covariance = async (v: Float64Array): Promise<Float64Array> => {
      const out = await linear.vjp(v);
      passes++;
      for (let i = 0; i < n; i++) {
        const s2 = sigma[i] * sigma[i];
        for (let j = i * d; j < (i + 1) * d; j++) out[j] *= s2;
      }
      return out;
    };
    const s2y = noiseStd * noiseStd;
    const residual = operator.apply(linear.value);
    for (let k = 0; k < residual.length; k++) residual[k] = observation.y[k] - residual[k];
    const system = async (u: Float64Array): Promise<Float64Array> => {
      const out = operator.apply(await covariance(operator.adjoint(u)));
      for (let k = 0; k < out.length; k++) out[k] += s2y * u[k];
      return out;
    };
    const settings = { iterations: options.iterations, tolerance: options.tolerance };
    const solve =
      (options.solver ?? 'cg') === 'cg'
        ? // M = s_y^2 I + A Cov A^T >= s_y^2 I for a true covariance: less curvature flags a bad Jacobian.
          await conjugateGradient(system, residual, n, m, { ...settings, curvatureFloor: s2y, clampedStep: 'drop' })
        : await gmres(system, residual, n, m, settings);
    const correction = await covariance(operator.adjoint(solve.x));
    const mean = Float64Array.from(linear.value);
    for (let k = 0; k < mean.length; k++) mean[k] += correction[k];
    return { mean, passes, solve };
  } finally {
    linear.dispose();
  }
}

/**
 * D_y as a `Denoiser` for the samplers: unconditional in form (its conditioning is the
 * observation it was built with, for the same n rows the sampler carries), and it counts
 * the network passes spent, which is the E-step's cost.
 */
export class MmpsDenoiser implements Denoiser {
  readonly condDim = 0;
  /** Network passes so far (forward + VJPs, each over the whole batch). */
  passes = 0;
  /** Guided evaluations so far. */
  evaluations = 0;
  /** Largest relative residual of the last evaluation's solve. */
  lastResidual = Number.NaN;
  /** Largest final relative residual over all evaluations and rows. */
  residualMax = 0;
  /** Sum over evaluations of the final relative residual (worst row), for the mean. */
  residualSum = 0;
  /** Clamped CG directions (a non-covariance Jacobian), over all evaluations. */
  breakdowns = 0;

  /** How the solves went so far: what a lap record keeps of them. */
  solveStats(): { evaluations: number; breakdowns: number; residualMax: number; residualMean: number } {
    return {
      evaluations: this.evaluations,
      breakdowns: this.breakdowns,
      residualMax: this.residualMax,
      residualMean: this.evaluations > 0 ? this.residualSum / this.evaluations : 0,
    };
  }

  constructor(
    private readonly prior: DifferentiableDenoiser,
    private readonly observation: Observation,
    private readonly options: MmpsOptions,
  ) {
    if (observation.operator.inDim !== prior.dim) {
      throw new RangeError(
        `MmpsDenoiser: the operator acts on dim ${observation.operator.inDim}, the denoiser on ${prior.dim}`,
      );
    }
  }

  get dim(): number {
    return this.prior.dim;
  }

  async denoise(xt: NDArray, sigma: Float32Array, cond: NDArray | null): Promise<NDArray> {
    if (cond !== null) throw new RangeError('MmpsDenoiser is conditioned by its observation, not by conditioning rows');
    const estimate = await mmpsDenoise(this.prior, Float64Array.from(xt.data), sigma, this.observation, this.options);
    this.passes += estimate.passes;
    this.evaluations += 1;
    this.lastResidual = estimate.solve.residuals[estimate.solve.residuals.length - 1];
    this.residualMax = Math.max(this.residualMax, this.lastResidual);
    this.residualSum += this.lastResidual;
    this.breakdowns += estimate.solve.breakdowns;
    return ndarray([sigma.length, this.dim], Float32Array.from(estimate.mean));
  }

  async dispose(): Promise<void> {
    await this.prior.dispose?.();
  }
}
