/**
 * Lap 0 for blurred images: a Gaussian prior N(mu, W W^T + delta I) (probabilistic PCA,
 * rank k) fitted by stochastic EM, and exact-in-the-limit posterior samples.
 *
 * Why not the per-pixel diagonal of the masked case: a blur mixes neighbouring pixels, so
 * given z the pixels' posteriors are no longer independent and the closed form of
 * `factor.ts` is lost whatever the residual covariance; only a k x k problem per
 * image would survive with no residual at all, and a rank-k prior with nothing outside its
 * span cannot explain what the k factors miss. An isotropic residual keeps every image's
 * posterior a well-posed linear problem that conjugate gradients solve fast.
 *
 * Posterior sample of y = A x + e by Matheron's rule (perturb the prior, correct by the data):
 *
 *     x~ ~ N(mu, Sigma), e~ ~ N(0, s_y^2 I),   x = x~ + Sigma A^T (A Sigma A^T + s_y^2 I)^-1 (y - A x~ - e~)
 *
 * is an exact sample of p(x | y) when the d x d solve is exact. It is solved by preconditioned
 * conjugate gradients, all images of a shard at once (each with its own step sizes), with
 * the preconditioner (delta A A^T + s_y^2 I)^-1 evaluated in the orthonormal DCT-I basis,
 * which diagonalises a symmetric blur under reflect padding ('d c b | a b c d', whole-sample
 * symmetric extension) up to the edge weights: what remains for CG is the rank-k part and
 * the border, at most `k + 30` iterations. With fewer iterations than it needs, a sample
 * keeps its prior draw in the directions the data pin down least: a documented approximation.
 *
 * Stochastic EM (Celeux & Diebolt 1985): each iteration draws one posterior sample per
 * observation under the current prior and refits mu, W, delta to them in closed form (PPCA,
 * Tipping & Bishop 1999: the top-k eigenpairs of the sample covariance by randomised
 * subspace iteration). The recorded "log-likelihood" is the mean PPCA log-density of the
 * samples under the refitted prior (a complete-data proxy; the observed-data likelihood of a
 * blur has no cheap closed form). Streams: `gaussian/blur-init`, `gaussian/blur-em/i`.
 */
import type { ImageChannel, ImageOperators } from '../channels/image.js';
import { symmetricEigen } from '../eigen.js';
import { concatRows, ndarray, sliceRows, type NDArray } from '../ndarray.js';
import { Rng } from '../rng.js';
import type { ImageObservations } from '../channels/image-operators.js';
import { concatOperators, sliceOperators } from '../channels/image-operators.js';
import type { FactorGaussian } from './factor.js';

export interface BlurFitOptions {
  rank: number;
  iterations: number;
  seed: number;
  onIteration?: (iteration: number, logLikelihood: number) => void | Promise<void>;
}

/** Orthonormal DCT-I matrix [n, n] (symmetric, its own inverse). */
function dct1(n: number): Float64Array {
  const m = new Float64Array(n * n);
  if (n === 1) {
    m[0] = 1;
    return m;
  }
  const w = (i: number) => (i === 0 || i === n - 1 ? Math.SQRT1_2 : 1);
  const scale = Math.sqrt(2 / (n - 1));
  for (let f = 0; f < n; f++)
    for (let j = 0; j < n; j++) m[f * n + j] = scale * w(f) * w(j) * Math.cos((Math.PI * f * j) / (n - 1));
  return m;
}

/** Eigenvalues of a symmetric 1-D kernel on the DCT-I basis of n points. */
function kernelSpectrum(kernel: Float32Array, n: number): Float64Array {
  const r = (kernel.length - 1) / 2;
  const out = new Float64Array(n);
  for (let f = 0; f < n; f++) {
    let s = 0;
    for (let j = -r; j <= r; j++) s += kernel[j + r] * (n > 1 ? Math.cos((Math.PI * f * j) / (n - 1)) : 1);
    out[f] = s;
  }
  return out;
}

class Preconditioner {
  private readonly bh: Float64Array;
  private readonly bw: Float64Array;
  private readonly tmp: Float64Array;
  private readonly tmp2: Float64Array;

  constructor(
    private readonly H: number,
    private readonly W: number,
    private readonly C: number,
  ) {
    this.bh = dct1(H);
    this.bw = dct1(W);
    this.tmp = new Float64Array(H * W);
    this.tmp2 = new Float64Array(H * W);
  }

  /** out = (delta A A^T + s2)^-1 v for one image (approximately), in place over `v` at `offset`. */
  apply(v: Float32Array, offset: number, ly: Float64Array, lx: Float64Array, delta: number, s2: number): void {
    const { H, W, C, bh, bw, tmp, tmp2 } = this;
    for (let c = 0; c < C; c++) {
      // tmp = Bh V Bw, V[h, w] = v[offset + (h W + w) C + c]
      for (let f = 0; f < H; f++) {
        for (let w = 0; w < W; w++) {
          let s = 0;
          for (let h = 0; h < H; h++) s += bh[f * H + h] * v[offset + (h * W + w) * C + c];
          tmp2[f * W + w] = s;
        }
      }
      for (let f = 0; f < H; f++) {
        for (let g = 0; g < W; g++) {
          let s = 0;
          for (let w = 0; w < W; w++) s += tmp2[f * W + w] * bw[w * W + g];
          const gain = ly[f] * lx[g];
          tmp[f * W + g] = s / (delta * gain * gain + s2);
        }
      }
      for (let h = 0; h < H; h++) {
        for (let g = 0; g < W; g++) {
          let s = 0;
          for (let f = 0; f < H; f++) s += bh[h * H + f] * tmp[f * W + g];
          tmp2[h * W + g] = s;
        }
      }
      for (let h = 0; h < H; h++) {
        for (let w = 0; w < W; w++) {
          let s = 0;
          for (let g = 0; g < W; g++) s += tmp2[h * W + g] * bw[g * W + w];
          v[offset + (h * W + w) * C + c] = s;
        }
      }
    }
  }
}

/** Sigma v = W (W^T v) + delta v, row by row of a batch [n, d]. */
function applyCovariance(fit: FactorGaussian, v: NDArray): NDArray {
  const { d, k, factors, diag } = fit;
  const n = v.shape[0];
  const out = ndarray(v.shape);
  const t = new Float64Array(k);
  for (let i = 0; i < n; i++) {
    t.fill(0);
    for (let j = 0; j < d; j++) {
      const x = v.data[i * d + j];
      if (x === 0) continue;
      for (let u = 0; u < k; u++) t[u] += factors[j * k + u] * x;
    }
    for (let j = 0; j < d; j++) {
      let s = diag[j] * v.data[i * d + j];
      for (let u = 0; u < k; u++) s += factors[j * k + u] * t[u];
      out.data[i * d + j] = s;
    }
  }
  return out;
}

/** Images solved together: bounds the CG's working set (a few [chunk, d] arrays) whatever the shard size. */
const BLUR_CHUNK = 512;

/**
 * Posterior samples [n, d] of a batch under the PPCA prior `fit`: Matheron's rule with batched
 * PCG, `BLUR_CHUNK` images at a time (so the draws depend on that constant, never on sharding
 * within a chunk).
 */
export async function sampleBlurPosterior(
  channel: ImageChannel,
  fit: FactorGaussian,
  obs: ImageObservations,
  rng: Rng,
): Promise<NDArray> {
  const n = obs.y.shape[0];
  const parts: NDArray[] = [];
  for (let start = 0; start < n; start += BLUR_CHUNK) {
    const end = Math.min(n, start + BLUR_CHUNK);
    parts.push(
      await sampleBlurChunk(
        channel,
        fit,
        { y: sliceRows(obs.y, start, end), ops: sliceOperators(obs.ops, start, end) },
        rng,
      ),
    );
  }
  return concatRows(parts);
}

async function sampleBlurChunk(
  channel: ImageChannel,
  fit: FactorGaussian,
  obs: ImageObservations,
  rng: Rng,
): Promise<NDArray> {
  const { height: H, width: W, channels: C } = channel;
  const { d, k } = fit;
  const n = obs.y.shape[0];
  const shape = [n, H, W, C];
  const s2 = channel.noiseStd ** 2;
  const delta = fit.diag[0];
  // Prior draw x~ and noise e~.
  const prior = ndarray(shape);
  const z = new Float64Array(k);
  for (let i = 0; i < n; i++) {
    rng.fillNormal(z);
    for (let j = 0; j < d; j++) {
      let s = fit.mean[j] + Math.sqrt(fit.diag[j]) * rng.normal();
      for (let u = 0; u < k; u++) s += fit.factors[j * k + u] * z[u];
      prior.data[i * d + j] = s;
    }
  }
  const residual = channel.forward(obs.ops, prior);
  for (let q = 0; q < residual.data.length; q++)
    residual.data[q] = obs.y.data[q] - residual.data[q] - channel.noiseStd * rng.normal();

  const ops = obs.ops;
  if (ops.kind !== 'blur') throw new TypeError('sampleBlurPosterior needs blur operators');
  const spectra = Array.from({ length: n }, (_, i) => {
    const kernel = ops.kernels.data.subarray(i * ops.kernels.shape[1], (i + 1) * ops.kernels.shape[1]);
    return { ly: kernelSpectrum(kernel, H), lx: kernelSpectrum(kernel, W) };
  });
  const pre = new Preconditioner(H, W, C);
  const precondition = (r: NDArray): NDArray => {
    const out = ndarray(shape, Float32Array.from(r.data));
    for (let i = 0; i < n; i++) pre.apply(out.data, i * d, spectra[i].ly, spectra[i].lx, delta, s2);
    return out;
  };
  const applyK = (p: NDArray): NDArray => {
    const out = channel.forward(
      ops,
      ndarray(shape, applyCovariance(fit, ndarray([n, d], channel.adjoint(ops, p).data)).data),
    );
    for (let q = 0; q < out.data.length; q++) out.data[q] += s2 * p.data[q];
    return out;
  };
  const dots = (a: NDArray, b: NDArray): Float64Array => {
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = i * d; j < (i + 1) * d; j++) s += a.data[j] * b.data[j];
      out[i] = s;
    }
    return out;
  };
  // Solve K sol = residual, per image.
  const sol = ndarray(shape);
  const r = ndarray(shape, Float32Array.from(residual.data));
  let zr = precondition(r);
  const p = ndarray(shape, Float32Array.from(zr.data));
  let rz = dots(r, zr);
  const start = dots(r, r);
  const iterations = k + 30;
  for (let it = 0; it < iterations; it++) {
    const q = applyK(p);
    const pq = dots(p, q);
    let active = false;
    for (let i = 0; i < n; i++) {
      if (!(pq[i] > 0) || !(rz[i] > 0)) continue;
      const alpha = rz[i] / pq[i];
      for (let j = i * d; j < (i + 1) * d; j++) {
        sol.data[j] += alpha * p.data[j];
        r.data[j] -= alpha * q.data[j];
      }
    }
    zr = precondition(r);
    const next = dots(r, zr);
    const rr = dots(r, r);
    for (let i = 0; i < n; i++) {
      const beta = rz[i] > 0 ? next[i] / rz[i] : 0;
      for (let j = i * d; j < (i + 1) * d; j++) p.data[j] = zr.data[j] + beta * p.data[j];
      if (rr[i] > 1e-12 * start[i]) active = true;
    }
    rz = next;
    if (!active) break;
    if (it % 8 === 7) await new Promise<void>((resolve) => setImmediate(resolve));
  }
  const correction = applyCovariance(fit, ndarray([n, d], channel.adjoint(ops, sol).data));
  const out = ndarray([n, d]);
  for (let q = 0; q < out.data.length; q++) out.data[q] = prior.data[q] + correction.data[q];
  return out;
}

/** PPCA fit (closed form) to rows [n, d]: mean, top-k directions by subspace iteration, isotropic rest. */
function fitPpca(x: NDArray, k: number, rng: Rng): { fit: FactorGaussian; logLikelihood: number } {
  const [n, d] = [x.shape[0], x.data.length / x.shape[0]];
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] += x.data[i * d + j] / n;
  let trace = 0;
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) trace += (x.data[i * d + j] - mean[j]) ** 2 / n;
  const q = new Float64Array(d * k);
  for (let t = 0; t < q.length; t++) q[t] = rng.normal();
  const proj = new Float64Array(n * k);
  const project = () => {
    proj.fill(0);
    for (let i = 0; i < n; i++)
      for (let j = 0; j < d; j++) {
        const v = x.data[i * d + j] - mean[j];
        for (let u = 0; u < k; u++) proj[i * k + u] += v * q[j * k + u];
      }
  };
  const gramSchmidt = () => {
    for (let c = 0; c < k; c++) {
      for (let prev = 0; prev < c; prev++) {
        let dot = 0;
        for (let r = 0; r < d; r++) dot += q[r * k + c] * q[r * k + prev];
        for (let r = 0; r < d; r++) q[r * k + c] -= dot * q[r * k + prev];
      }
      let norm = 0;
      for (let r = 0; r < d; r++) norm += q[r * k + c] ** 2;
      norm = Math.sqrt(norm) || 1;
      for (let r = 0; r < d; r++) q[r * k + c] /= norm;
    }
  };
  gramSchmidt();
  for (let it = 0; it < 4; it++) {
    project();
    q.fill(0);
    for (let i = 0; i < n; i++)
      for (let j = 0; j < d; j++) {
        const v = x.data[i * d + j] - mean[j];
        for (let u = 0; u < k; u++) q[j * k + u] += v * proj[i * k + u];
      }
    gramSchmidt();
  }
  project();
  const cov = new Float64Array(k * k);
  for (let i = 0; i < n; i++)
    for (let u = 0; u < k; u++) for (let v = 0; v < k; v++) cov[u * k + v] += (proj[i * k + u] * proj[i * k + v]) / n;
  const { values, vectors } = symmetricEigen(cov, k);
  let top = 0;
  for (const v of values) top += Math.max(v, 0);
  const delta = Math.max((trace - top) / Math.max(1, d - k), 1e-6);
  const factors = new Float64Array(d * k);
  let logDet = (d - k) * Math.log(delta);
  for (let u = 0; u < k; u++) {
    const e = k - 1 - u;
    const lambda = Math.max(values[e], delta);
    logDet += Math.log(lambda);
    const scale = Math.sqrt(lambda - delta);
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let t = 0; t < k; t++) s += q[j * k + t] * vectors[t * k + e];
      factors[j * k + u] = s * scale;
    }
  }
  // Mean log-density of the rows: -(d log 2pi + log det + tr(Sigma^-1 S)) / 2, with tr = d for the ML fit.
  const logLikelihood = -0.5 * (d * Math.log(2 * Math.PI) + logDet + d);
  return { fit: { mean, factors, diag: new Float64Array(d).fill(delta), d, k }, logLikelihood };
}

export async function fitBlurGaussian(
  channel: ImageChannel,
  shards: ImageObservations[],
  options: BlurFitOptions,
): Promise<{ fit: FactorGaussian; logLikelihood: number[] }> {
  const y = concatRows(shards.map((s) => s.y));
  const ops: ImageOperators = concatOperators(shards.map((s) => s.ops));
  const n = y.shape[0];
  const d = y.data.length / n;
  const k = Math.max(1, Math.min(options.rank, d - 1, n - 1));
  // The blurred images themselves start the fit (a blur keeps the mean and the coarse structure).
  let { fit } = fitPpca(ndarray([n, d], y.data), k, Rng.derive(options.seed, 'gaussian', 'blur-init'));
  const logLikelihood: number[] = [];
  for (let iteration = 0; iteration < options.iterations; iteration++) {
    const rng = Rng.derive(options.seed, 'gaussian', 'blur-em', iteration);
    const x = await sampleBlurPosterior(channel, fit, { y, ops }, rng);
    const refit = fitPpca(x, k, rng.fork('ppca'));
    fit = refit.fit;
    logLikelihood.push(refit.logLikelihood);
    await options.onIteration?.(iteration, refit.logLikelihood);
  }
  return { fit, logLikelihood };
}
