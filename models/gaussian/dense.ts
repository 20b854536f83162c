/**
 * Lap 0: a Gaussian prior N(mu, Sigma) fitted to corrupted observations by EM, and exact
 * Gaussian posterior samples under it.
 *
 * Model: y_i = A_i x_i + e_i, x_i ~ N(mu, Sigma), e_i ~ N(0, s_y^2 I). The posterior of x_i is
 * Gaussian with
 *
 *     Sigma_i = (Sigma^-1 + A_i^T A_i / s_y^2)^-1,   m_i = Sigma_i (Sigma^-1 mu + A_i^T y_i / s_y^2),
 *
 * computed here in the equivalent observation-space (Woodbury / Kalman) form
 *
 *     S_i = A_i Sigma A_i^T + s_y^2 I,   W_i = L_i^-1 A_i Sigma  (L_i L_i^T = S_i),
 *     m_i = mu + W_i^T L_i^-1 (y_i - A_i mu),   Sigma_i = Sigma - W_i^T W_i,
 *
 * which factors only an m x m matrix, never inverts Sigma, and keeps Sigma_i symmetric.
 * The M-step maximises the expected complete-data log likelihood:
 *
 *     mu <- mean_i m_i,   Sigma <- mean_i [Sigma_i + (m_i - mu)(m_i - mu)^T].
 *
 * Each EM iteration cannot decrease the marginal likelihood prod_i N(y_i; A_i mu, S_i),
 * which is tracked as a convergence check.
 *
 * References: Dempster, Laird & Rubin, "Maximum Likelihood from Incomplete Data via the
 * EM Algorithm" (JRSS B, 1977); Rozet et al., "Learning Diffusion Priors from Observations
 * by Expectation Maximization" (NeurIPS 2024), appendix (Gaussian initialisation).
 */
import { cholesky, choleskyLogDet, sampleMvn, solveLower, symmetrize } from '../linalg.js';
import { ndarray, type NDArray } from '../ndarray.js';
import type { Rng } from '../rng.js';

export interface GaussianPrior {
  /** [d] */
  mean: Float64Array;
  /** [d, d], row-major. */
  cov: Float64Array;
}

export interface GaussianFit extends GaussianPrior {
  /**
   * Marginal log likelihood of the observations, averaged over observations:
   * entry t is that of the parameters after t EM iterations (entry 0: the initialisation),
   * so it has `iterations + 1` entries and never decreases.
   */
  logLikelihood: number[];
}

export interface GaussianEMOptions {
  iterations: number;
  /** Initial mean [d]; zero by default. */
  mu0?: ArrayLike<number>;
  /** Initial covariance [d, d]; identity by default. */
  sigma0?: ArrayLike<number>;
  /**
   * Added to the diagonal of every M-step covariance, relative to its mean variance, so a
   * prior that collapses onto a subspace stays factorisable. Zero disables it.
   */
  jitter?: number;
}

/** Shapes of a batch of observations: y [n, m], A [n, m, d]. */
interface ObservationShape {
  n: number;
  m: number;
  d: number;
}

export function fitGaussianEM(y: NDArray, A: NDArray, sy: number, options: GaussianEMOptions): GaussianFit {
  const { n, m, d } = observationShape(y, A);
  if (!(Number.isInteger(options.iterations) && options.iterations >= 0)) {
    throw new RangeError(`fitGaussianEM: iterations must be a non-negative integer, got ${options.iterations}`);
  }
  if (n === 0) throw new RangeError('fitGaussianEM: needs at least one observation');
  const jitter = options.jitter ?? 1e-9;

  let mean = options.mu0 ? Float64Array.from(options.mu0) : new Float64Array(d);
  let cov = options.sigma0 ? Float64Array.from(options.sigma0) : identity(d);
  if (mean.length !== d || cov.length !== d * d) {
    throw new RangeError(`fitGaussianEM: mu0 needs ${d} entries and sigma0 ${d * d}`);
  }
  symmetrize(cov, d);

  const posterior = new PosteriorWorkspace(m, d);
  const posteriorMeans = new Float64Array(n * d);
  const logLikelihood: number[] = [];

  for (let iteration = 0; ; iteration++) {
    // The E-step of iteration t also yields the likelihood of the parameters it starts from.
    const expectedCov = new Float64Array(d * d);
    let total = 0;
    for (let i = 0; i < n; i++) {
      total += posterior.compute(y.data, A.data, i, sy, mean, cov);
      posteriorMeans.set(posterior.mean, i * d);
      for (let p = 0; p < d * d; p++) expectedCov[p] += posterior.cov[p];
    }
    logLikelihood.push(total / n);
    if (iteration === options.iterations) break;

    const nextMean = new Float64Array(d);
    for (let i = 0; i < n; i++) for (let p = 0; p < d; p++) nextMean[p] += posteriorMeans[i * d + p];
    for (let p = 0; p < d; p++) nextMean[p] /= n;

    // Scatter around the new mean in a second pass: a one-pass E[m m^T] - mu mu^T would
    // cancel catastrophically once the posterior spread is small next to |mu|^2.
    const centered = new Float64Array(d);
    for (let i = 0; i < n; i++) {
      for (let p = 0; p < d; p++) centered[p] = posteriorMeans[i * d + p] - nextMean[p];
      for (let p = 0; p < d; p++) {
        const cp = centered[p];
        for (let q = 0; q <= p; q++) expectedCov[p * d + q] += cp * centered[q];
      }
    }
    const nextCov = new Float64Array(d * d);
    let meanVariance = 0;
    for (let p = 0; p < d; p++) {
      for (let q = 0; q <= p; q++) {
        nextCov[p * d + q] = nextCov[q * d + p] = expectedCov[p * d + q] / n;
      }
      meanVariance += nextCov[p * d + p] / d;
    }
    for (let p = 0; p < d; p++) nextCov[p * d + p] += jitter * meanVariance;
    mean = nextMean;
    cov = nextCov;
  }
  return { mean, cov, logLikelihood };
}

/** The exact posterior N(m_i, Sigma_i) of x given one observation y_i = A_i x + e. */
export function gaussianPosterior(
  yi: ArrayLike<number>,
  Ai: ArrayLike<number>,
  sy: number,
  prior: GaussianPrior,
): GaussianPrior {
  const d = prior.mean.length;
  const m = yi.length;
  if (Ai.length !== m * d || prior.cov.length !== d * d) {
    throw new RangeError(`gaussianPosterior: A_i needs ${m}x${d} entries and the prior covariance ${d}x${d}`);
  }
  const workspace = new PosteriorWorkspace(m, d);
  workspace.compute(yi, Ai, 0, sy, prior.mean, prior.cov);
  return { mean: Float64Array.from(workspace.mean), cov: Float64Array.from(workspace.cov) };
}

/** One exact posterior draw per observation, as float32 [n, d]. */
export function samplePosterior(rng: Rng, y: NDArray, A: NDArray, sy: number, prior: GaussianPrior): NDArray {
  const { n, m, d } = observationShape(y, A);
  if (prior.mean.length !== d || prior.cov.length !== d * d) {
    throw new RangeError(`samplePosterior: the prior must be ${d}-dimensional`);
  }
  const workspace = new PosteriorWorkspace(m, d);
  const out = ndarray([n, d]);
  const draw = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    workspace.compute(y.data, A.data, i, sy, prior.mean, prior.cov);
    sampleMvn(rng, workspace.mean, cholesky(workspace.cov, d), draw);
    out.data.set(draw, i * d);
  }
  return out;
}

/**
 * Reusable buffers for one posterior at a time: EM visits every observation each iteration,
 * and allocating per observation would dominate the arithmetic at d = 5.
 */
class PosteriorWorkspace {
  readonly mean: Float64Array;
  readonly cov: Float64Array;
  private readonly w: Float64Array;
  private readonly s: Float64Array;
  private readonly residual: Float64Array;

  constructor(
    private readonly m: number,
    private readonly d: number,
  ) {
    this.mean = new Float64Array(d);
    this.cov = new Float64Array(d * d);
    this.w = new Float64Array(m * d);
    this.s = new Float64Array(m * m);
    this.residual = new Float64Array(m);
  }

  /**
   * Fills `mean` and `cov` with the posterior of observation `index` (y and A hold a batch,
   * row-major), and returns log N(y_index; A mu, A Sigma A^T + s_y^2 I).
   */
  compute(
    y: ArrayLike<number>,
    A: ArrayLike<number>,
    index: number,
    sy: number,
    mu: Float64Array,
    sigma: Float64Array,
  ): number {
    const { m, d, w, s, residual } = this;
    const aOffset = index * m * d;
    const yOffset = index * m;

    // w = A Sigma [m, d] and residual = y - A mu.
    for (let r = 0; r < m; r++) {
      let predicted = 0;
      for (let q = 0; q < d; q++) {
        let sum = 0;
        for (let p = 0; p < d; p++) sum += A[aOffset + r * d + p] * sigma[p * d + q];
        w[r * d + q] = sum;
        predicted += A[aOffset + r * d + q] * mu[q];
      }
      residual[r] = y[yOffset + r] - predicted;
    }
    // s = A Sigma A^T + s_y^2 I [m, m], symmetric by construction.
    for (let r = 0; r < m; r++) {
      for (let c = 0; c <= r; c++) {
        let sum = 0;
        for (let q = 0; q < d; q++) sum += w[r * d + q] * A[aOffset + c * d + q];
        s[r * m + c] = s[c * m + r] = sum;
      }
      s[r * m + r] += sy * sy;
    }
    const L = cholesky(s, m);
    solveLower(L, m, w, d);
    solveLower(L, m, residual, 1);

    let quadratic = 0;
    for (let r = 0; r < m; r++) quadratic += residual[r] * residual[r];
    for (let p = 0; p < d; p++) {
      let sum = mu[p];
      for (let r = 0; r < m; r++) sum += w[r * d + p] * residual[r];
      this.mean[p] = sum;
    }
    for (let p = 0; p < d; p++) {
      for (let q = 0; q <= p; q++) {
        let sum = sigma[p * d + q];
        for (let r = 0; r < m; r++) sum -= w[r * d + p] * w[r * d + q];
        this.cov[p * d + q] = this.cov[q * d + p] = sum;
      }
    }
    return -0.5 * (m * Math.log(2 * Math.PI) + choleskyLogDet(L, m) + quadratic);
  }
}

function observationShape(y: NDArray, A: NDArray): ObservationShape {
  if (y.shape.length !== 2 || A.shape.length !== 3 || A.shape[0] !== y.shape[0] || A.shape[1] !== y.shape[1]) {
    throw new RangeError(`observations: y [n, m] needs A [n, m, d], got y [${y.shape}] and A [${A.shape}]`);
  }
  return { n: y.shape[0], m: y.shape[1], d: A.shape[2] };
}

function identity(d: number): Float64Array {
  const out = new Float64Array(d * d);
  for (let i = 0; i < d; i++) out[i * d + i] = 1;
  return out;
}
