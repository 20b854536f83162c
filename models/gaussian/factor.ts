/**
 * Lap 0 of image campaigns: a Gaussian prior N(mu, W W^T + diag(D)) over images (d = H W C
 * coordinates, W of rank k = `em.gaussianRank`) fitted to masked observations by EM with
 * exact, closed-form posteriors, then one exact posterior sample per observation.
 *
 * Why this model (factor analysis: low rank plus a per-pixel diagonal). A full d x d
 * covariance is out of reach (784^2 parameters from a few thousand half-observed images,
 * 3072^2 for CIFAR) and would be badly determined; a diagonal alone treats pixels as
 * independent, so its posterior at a masked pixel is just that pixel's mean and a
 * reconstruction carries no information from the observed neighbours. The low-rank part
 * carries the correlations between pixels (a stroke continues, a colour fills a region) with
 * d k parameters, and the per-pixel variances D absorb what the k factors miss, pixel by
 * pixel: MNIST's border pixels are nearly constant, its centre ones vary a lot, which one
 * isotropic residual (PPCA) could not express. And the masked-data posterior stays exact
 * and cheap: in the latent form x = mu + W z + eps, z ~ N(0, I_k), eps ~ N(0, D), an
 * observation y_O = x_O + e of the pixels O sees z through W_O with independent noise
 * D_O + s_y^2, so
 *
 *     Lambda = I + W_O^T (D_O + s_y^2)^-1 W_O,   E[z|y] = Lambda^-1 W_O^T (D_O + s_y^2)^-1 (y_O - mu_O)
 *
 * is a k x k problem per image, and given z every pixel's posterior is independent:
 * observed j: N(m_j + g_j (y_j - m_j), g_j s_y^2), g_j = D_j / (D_j + s_y^2), m_j = mu_j + w_j z;
 * masked j: N(m_j, D_j). Drawing z from N(E[z|y], Lambda^-1) and then each pixel is an exact
 * sample of p(x | y) under the fitted prior.
 *
 * EM (Dempster, Laird & Rubin 1977; Ghahramani & Hinton 1996 for factor analysis; the
 * missing-data bookkeeping as in Ilin & Raiko, JMLR 2010): with z~ = [z; 1] and
 * S_i = E[z~ z~^T | y_i], the M-step of row j of [W, mu] is the regression
 *
 *     [w_j, mu_j] <- (g_j R_j + [w_j, mu_j]_old ((1 - g_j) S^obs_j + S^miss_j)) (sum_i S_i)^-1
 *
 * with R_j = sum_{i: j observed} y_ij E[z~_i], S^obs_j / S^miss_j the sums of S_i over the
 * images that observe / mask pixel j; D_j is the mean expected squared residual. Each
 * iteration raises the marginal likelihood of the observations, recorded per iteration.
 * Initialisation: per-pixel mean and variance of the observed values, W from a randomised
 * PCA (Halko, Martinsson & Tropp 2011) of the mean-filled data.
 *
 * The mask is shared across colour channels: a location is observed in every channel or in
 * none, so S^obs is kept per location (P = H W of them), not per coordinate.
 */
import { symmetricEigen } from '../eigen.js';
import { cholesky, choleskyLogDet, solveLower, solveLowerTransposed, spdInverse } from '../linalg.js';
import { ndarray, type NDArray } from '../ndarray.js';
import type { Rng } from '../rng.js';

export interface FactorGaussian {
  /** [d] */
  mean: Float64Array;
  /** [d, k] row-major: row j is w_j. */
  factors: Float64Array;
  /** [d] per-coordinate residual variances D. */
  diag: Float64Array;
  d: number;
  k: number;
}

export interface MaskedData {
  /** y [n, P, C] flattened (zeros where masked). */
  y: Float32Array;
  /** masks [n, P]: 1 observed, 0 masked. */
  masks: Float32Array;
  n: number;
  /** Pixel locations H W. */
  P: number;
  /** Channels. */
  C: number;
}

export interface FitOptions {
  rank: number;
  iterations: number;
  noiseStd: number;
  rng: Rng;
  /** Smallest residual variance (keeps always-constant pixels from a singular fit). */
  floor?: number;
  onIteration?: (iteration: number, logLikelihood: number) => void | Promise<void>;
}

const LOG_2PI = Math.log(2 * Math.PI);

/** Per-image posterior of z: Cholesky factor of Lambda, E[z], and the log-likelihood of y_O. */
class LatentPosterior {
  /** Lower Cholesky factor of Lambda. */
  chol: Float64Array;
  readonly mean: Float64Array;
  logLikelihood = 0;
  private readonly lambda: Float64Array;

  constructor(readonly k: number) {
    this.chol = new Float64Array(k * k);
    this.lambda = new Float64Array(k * k);
    this.mean = new Float64Array(k);
  }

  compute(fit: FactorGaussian, invPsi: Float64Array, data: MaskedData, i: number): void {
    const { k, lambda: lam, mean: b } = this;
    const { P, C } = data;
    const W = fit.factors;
    lam.fill(0);
    b.fill(0);
    let quad = 0;
    let logPsi = 0;
    let observed = 0;
    for (let p = 0; p < P; p++) {
      if (data.masks[i * P + p] === 0) continue;
      for (let c = 0; c < C; c++) {
        const j = p * C + c;
        const a = invPsi[j];
        const r = data.y[i * P * C + j] - fit.mean[j];
        const row = j * k;
        quad += r * r * a;
        logPsi -= Math.log(a);
        observed++;
        const ra = r * a;
        for (let u = 0; u < k; u++) {
          const wu = W[row + u];
          b[u] += wu * ra;
          const t = a * wu;
          const base = u * k;
          for (let v = 0; v <= u; v++) lam[base + v] += t * W[row + v];
        }
      }
    }
    for (let u = 0; u < k; u++) lam[u * k + u] += 1;
    // Lambda = I + W_O^T Psi^-1 W_O has every eigenvalue >= 1: its factorisation never
    // needs the jitter of `cholesky`.
    const L = cholesky(lam, k);
    this.chol = L;
    const logDet = choleskyLogDet(L, k);
    // b^T Lambda^-1 b = |L^-1 b|^2.
    solveLower(L, k, b, 1, 'divide');
    let explained = 0;
    for (let u = 0; u < k; u++) explained += b[u] * b[u];
    solveLowerTransposed(L, k, b, 1, 'divide');
    this.logLikelihood = -0.5 * (observed * LOG_2PI + logPsi + logDet + quad - explained);
  }
}

function checkData(data: MaskedData): void {
  if (data.y.length !== data.n * data.P * data.C || data.masks.length !== data.n * data.P) {
    throw new RangeError(
      `masked data: y has ${data.y.length} values, masks ${data.masks.length}, for ${data.n} x ${data.P} x ${data.C}`,
    );
  }
}

/** Per-coordinate mean and variance of the observed values; a never-observed coordinate gets 0 and 1. */
function observedMoments(data: MaskedData): { mean: Float64Array; variance: Float64Array; counts: Float64Array } {
  const { n, P, C } = data;
  const d = P * C;
  const sum = new Float64Array(d);
  const sq = new Float64Array(d);
  const counts = new Float64Array(P);
  for (let i = 0; i < n; i++) {
    for (let p = 0; p < P; p++) {
      if (data.masks[i * P + p] === 0) continue;
      counts[p]++;
      for (let c = 0; c < C; c++) {
        const v = data.y[(i * P + p) * C + c];
        sum[p * C + c] += v;
        sq[p * C + c] += v * v;
      }
    }
  }
  const mean = new Float64Array(d);
  const variance = new Float64Array(d).fill(1);
  for (let j = 0; j < d; j++) {
    const m = counts[Math.floor(j / C)];
    if (m === 0) continue;
    mean[j] = sum[j] / m;
    if (m > 1) variance[j] = Math.max(0, sq[j] / m - mean[j] * mean[j]);
  }
  return { mean, variance, counts };
}

/** Orthonormalises the k columns of a [d, k] matrix in place (modified Gram-Schmidt). */
function orthonormalize(a: Float64Array, d: number, k: number, rng: Rng): void {
  for (let c = 0; c < k; c++) {
    for (let prev = 0; prev < c; prev++) {
      let dot = 0;
      for (let r = 0; r < d; r++) dot += a[r * k + c] * a[r * k + prev];
      for (let r = 0; r < d; r++) a[r * k + c] -= dot * a[r * k + prev];
    }
    let norm = 0;
    for (let r = 0; r < d; r++) norm += a[r * k + c] ** 2;
    norm = Math.sqrt(norm);
    if (norm < 1e-10) {
      // A degenerate direction (e.g. constant data): restart it at random.
      for (let r = 0; r < d; r++) a[r * k + c] = rng.normal();
      c--;
      continue;
    }
    for (let r = 0; r < d; r++) a[r * k + c] /= norm;
  }
}

/** Initial factors: top-k principal directions of the mean-filled, centred data. */
function initialFactors(
  data: MaskedData,
  mean: Float64Array,
  variance: Float64Array,
  k: number,
  rng: Rng,
): Float64Array {
  const { n, P, C } = data;
  const d = P * C;
  const centred = (i: number, j: number) =>
    data.masks[i * P + Math.floor(j / C)] === 0 ? 0 : data.y[i * d + j] - mean[j];
  const omega = new Float64Array(d * k);
  for (let q = 0; q < omega.length; q++) omega[q] = rng.normal();
  orthonormalize(omega, d, k, rng);
  const z = new Float64Array(n * k);
  for (let iteration = 0; iteration < 3; iteration++) {
    z.fill(0);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < d; j++) {
        const v = centred(i, j);
        if (v === 0) continue;
        for (let u = 0; u < k; u++) z[i * k + u] += v * omega[j * k + u];
      }
    }
    omega.fill(0);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < d; j++) {
        const v = centred(i, j);
        if (v === 0) continue;
        for (let u = 0; u < k; u++) omega[j * k + u] += v * z[i * k + u];
      }
    }
    orthonormalize(omega, d, k, rng);
  }
  // Covariance of the projections, then rotate to its eigenvectors.
  z.fill(0);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) {
      const v = centred(i, j);
      if (v === 0) continue;
      for (let u = 0; u < k; u++) z[i * k + u] += v * omega[j * k + u];
    }
  }
  const cov = new Float64Array(k * k);
  for (let i = 0; i < n; i++)
    for (let u = 0; u < k; u++) for (let v = 0; v < k; v++) cov[u * k + v] += (z[i * k + u] * z[i * k + v]) / n;
  const { values, vectors } = symmetricEigen(cov, k);
  // Mean filling shrinks variances by the observed fraction.
  let observedFraction = 0;
  for (let q = 0; q < data.masks.length; q++) observedFraction += data.masks[q];
  observedFraction = Math.max(observedFraction / data.masks.length, 1e-3);
  const W = new Float64Array(d * k);
  let total = 0;
  for (let j = 0; j < d; j++) total += variance[j];
  for (let u = 0; u < k; u++) {
    const e = k - 1 - u; // descending
    const scale = Math.sqrt(Math.max(values[e] / observedFraction, (1e-6 * total) / d));
    for (let j = 0; j < d; j++) {
      let v = 0;
      for (let q = 0; q < k; q++) v += omega[j * k + q] * vectors[q * k + e];
      W[j * k + u] = v * scale;
    }
  }
  return W;
}

/** Fits N(mu, W W^T + diag(D)) to masked images by EM; returns the fit and the log-likelihood per iteration. */
export async function fitMaskedFactorGaussian(
  data: MaskedData,
  options: FitOptions,
): Promise<{ fit: FactorGaussian; logLikelihood: number[] }> {
  checkData(data);
  const { n, P, C } = data;
  const d = P * C;
  const k = Math.max(1, Math.min(options.rank, d));
  const K = k + 1;
  const s2 = options.noiseStd ** 2;
  const floor = options.floor ?? 1e-4;
  const moments = observedMoments(data);
  const fit: FactorGaussian = {
    mean: moments.mean,
    factors: initialFactors(data, moments.mean, moments.variance, k, options.rng),
    diag: new Float64Array(d),
    d,
    k,
  };
  for (let j = 0; j < d; j++) {
    let explained = 0;
    for (let u = 0; u < k; u++) explained += fit.factors[j * k + u] ** 2;
    fit.diag[j] = Math.max(floor, moments.variance[j] - explained, 0.1 * moments.variance[j]);
  }

  const post = new LatentPosterior(k);
  const invPsi = new Float64Array(d);
  const tri = (K * (K + 1)) / 2;
  const sObs = new Float64Array(P * tri);
  const sAll = new Float64Array(K * K);
  const R = new Float64Array(d * K);
  const Q = new Float64Array(d);
  const Si = new Float64Array(tri);
  const cov = new Float64Array(k * k);
  const col = new Float64Array(k);
  const logLikelihood: number[] = [];

  for (let iteration = 0; iteration < options.iterations; iteration++) {
    for (let j = 0; j < d; j++) invPsi[j] = 1 / (fit.diag[j] + s2);
    sObs.fill(0);
    sAll.fill(0);
    R.fill(0);
    Q.fill(0);
    let ll = 0;
    for (let i = 0; i < n; i++) {
      post.compute(fit, invPsi, data, i);
      ll += post.logLikelihood;
      // Cov z = Lambda^-1, column by column from the Cholesky factor.
      for (let c = 0; c < k; c++) {
        col.fill(0);
        col[c] = 1;
        solveLower(post.chol, k, col, 1, 'divide');
        solveLowerTransposed(post.chol, k, col, 1, 'divide');
        for (let r = 0; r < k; r++) cov[r * k + c] = col[r];
      }
      const ez = post.mean;
      // S_i = E[z~ z~^T], packed upper-triangular over K = k + 1 with the constant last.
      let q = 0;
      for (let u = 0; u < K; u++) {
        for (let v = u; v < K; v++) {
          const zu = u < k ? ez[u] : 1;
          const zv = v < k ? ez[v] : 1;
          Si[q++] = zu * zv + (u < k && v < k ? cov[u * k + v] : 0);
        }
      }
      q = 0;
      for (let u = 0; u < K; u++) {
        for (let v = u; v < K; v++) {
          sAll[u * K + v] += Si[q];
          if (u !== v) sAll[v * K + u] += Si[q];
          q++;
        }
      }
      for (let p = 0; p < P; p++) {
        if (data.masks[i * P + p] === 0) continue;
        const base = p * tri;
        for (let t = 0; t < tri; t++) sObs[base + t] += Si[t];
        for (let c = 0; c < C; c++) {
          const j = p * C + c;
          const yv = data.y[i * d + j];
          Q[j] += yv * yv;
          const rb = j * K;
          for (let u = 0; u < k; u++) R[rb + u] += yv * ez[u];
          R[rb + k] += yv;
        }
      }
    }
    logLikelihood.push(ll / n);

    // M-step, row by row.
    const sAllInv = spdInverse(sAll, K);
    const old = new Float64Array(K);
    const target = new Float64Array(K);
    const next = new Float64Array(K);
    const sObsFull = new Float64Array(K * K);
    const sMissFull = new Float64Array(K * K);
    const beta = new Float64Array(K);
    const delta = new Float64Array(K);
    const quadForm = (m: Float64Array, a: Float64Array) => {
      let s = 0;
      for (let u = 0; u < K; u++) {
        let t = 0;
        for (let v = 0; v < K; v++) t += m[u * K + v] * a[v];
        s += a[u] * t;
      }
      return s;
    };
    for (let p = 0; p < P; p++) {
      let t = 0;
      for (let u = 0; u < K; u++) {
        for (let v = u; v < K; v++) {
          sObsFull[u * K + v] = sObsFull[v * K + u] = sObs[p * tri + t];
          t++;
        }
      }
      for (let q = 0; q < K * K; q++) sMissFull[q] = sAll[q] - sObsFull[q];
      const nObs = sObsFull[K * K - 1];
      const nMiss = n - nObs;
      for (let c = 0; c < C; c++) {
        const j = p * C + c;
        const Dj = fit.diag[j];
        const g = Dj / (Dj + s2);
        for (let u = 0; u < k; u++) old[u] = fit.factors[j * k + u];
        old[k] = fit.mean[j];
        for (let v = 0; v < K; v++) {
          let acc = g * R[j * K + v];
          for (let u = 0; u < K; u++) acc += old[u] * ((1 - g) * sObsFull[u * K + v] + sMissFull[u * K + v]);
          target[v] = acc;
        }
        for (let v = 0; v < K; v++) {
          let acc = 0;
          for (let u = 0; u < K; u++) acc += target[u] * sAllInv[u * K + v];
          next[v] = acc;
        }
        // Expected squared residuals under the old posterior, the new regression.
        for (let u = 0; u < K; u++) {
          beta[u] = (1 - g) * old[u] - next[u];
          delta[u] = old[u] - next[u];
        }
        let rb = 0;
        for (let u = 0; u < K; u++) rb += beta[u] * R[j * K + u];
        const v = (Dj * s2) / (Dj + s2);
        const sse =
          nObs * v + g * g * Q[j] + 2 * g * rb + quadForm(sObsFull, beta) + nMiss * Dj + quadForm(sMissFull, delta);
        for (let u = 0; u < k; u++) fit.factors[j * k + u] = next[u];
        fit.mean[j] = next[k];
        fit.diag[j] = Math.max(floor, sse / n);
      }
    }
    await options.onIteration?.(iteration, ll / n);
  }
  return { fit, logLikelihood };
}

/** One exact posterior sample per image of `data` under `fit`, as [n, P C]; `rng` draws k + d normals per image. */
export function sampleMaskedPosterior(fit: FactorGaussian, data: MaskedData, noiseStd: number, rng: Rng): NDArray {
  checkData(data);
  const { n, P, C } = data;
  const { d, k } = fit;
  const s2 = noiseStd ** 2;
  const invPsi = new Float64Array(d);
  for (let j = 0; j < d; j++) invPsi[j] = 1 / (fit.diag[j] + s2);
  const post = new LatentPosterior(k);
  const out = ndarray([n, d]);
  const xi = new Float64Array(k);
  const eps = new Float64Array(d);
  const z = new Float64Array(k);
  for (let i = 0; i < n; i++) {
    post.compute(fit, invPsi, data, i);
    rng.fillNormal(xi);
    rng.fillNormal(eps);
    solveLowerTransposed(post.chol, k, xi, 1, 'divide');
    for (let u = 0; u < k; u++) z[u] = post.mean[u] + xi[u];
    for (let p = 0; p < P; p++) {
      const observed = data.masks[i * P + p] !== 0;
      for (let c = 0; c < C; c++) {
        const j = p * C + c;
        let m = fit.mean[j];
        for (let u = 0; u < k; u++) m += fit.factors[j * k + u] * z[u];
        const Dj = fit.diag[j];
        let value: number;
        if (observed) {
          const g = Dj / (Dj + s2);
          value = m + g * (data.y[i * d + j] - m) + Math.sqrt(g * s2) * eps[j];
        } else {
          value = m + Math.sqrt(Dj) * eps[j];
        }
        out.data[i * d + j] = value;
      }
    }
  }
  return out;
}
