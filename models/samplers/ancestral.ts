/**
 * Ancestral (DDPM-style) sampler for a VE schedule, the E-step sampler of docs/method.md.
 * On the uniform grid t_k = 1 - k/K with sigma_t = sigma(t_k), sigma_s = sigma(t_{k+1}):
 *
 *     tau = 1 - (sigma_s / sigma_t)^2
 *     x_s = x_t - tau (x_t - D(x_t, sigma_t)) + sigma_s sqrt(tau) eps
 *
 * starting from x_1 = sigma_max z, then one final denoise at sigma(0). With an exact
 * denoiser each step samples p(x_s | x_t) exactly for a Gaussian data law, so the chain
 * draws from the (conditional) data distribution up to the sigma_min blur.
 * Reference: Ho et al. 2020; Rozet et al. (NeurIPS 2024), `azula.sample.DDPMSampler`.
 */
import type { Denoiser } from '../denoisers/denoiser.js';
import { ndarray, type NDArray } from '../ndarray.js';
import type { Rng } from '../rng.js';
import { sigmaGrid, type NoiseSchedule } from '../schedule.js';
import type { SamplerProgress } from './sampler.js';

export interface AncestralOptions {
  steps: number;
  schedule: NoiseSchedule;
  rng: Rng;
  /** Conditioning rows [n, condDim] for a conditional denoiser; n is taken from here or `count`. */
  cond: NDArray | null;
  count?: number;
  onStep?: SamplerProgress;
}

export async function ancestralSample(denoiser: Denoiser, options: AncestralOptions): Promise<NDArray> {
  const n = options.cond ? options.cond.shape[0] : options.count;
  if (n === undefined) throw new RangeError('ancestralSample needs cond or count');
  const d = denoiser.dim;
  const sigmas = sigmaGrid(options.schedule, options.steps);
  const x = ndarray([n, d]);
  options.rng.fillNormal(x.data, sigmas[0]);
  const sigmaBatch = new Float32Array(n);
  const eps = new Float32Array(n * d);
  for (let k = 0; k < options.steps; k++) {
    const sigmaT = sigmas[k];
    const sigmaS = sigmas[k + 1];
    sigmaBatch.fill(sigmaT);
    const denoised = await denoiser.denoise(x, sigmaBatch, options.cond);
    const tau = 1 - (sigmaS / sigmaT) ** 2;
    const noiseScale = sigmaS * Math.sqrt(tau);
    options.rng.fillNormal(eps);
    for (let j = 0; j < x.data.length; j++) {
      x.data[j] = x.data[j] - tau * (x.data[j] - denoised.data[j]) + noiseScale * eps[j];
    }
    options.onStep?.(k + 1, options.steps);
  }
  sigmaBatch.fill(sigmas[options.steps]);
  return denoiser.denoise(x, sigmaBatch, options.cond);
}
