/**
 * Deterministic Heun sampler of the probability-flow ODE for a VE schedule (Karras et al.,
 * NeurIPS 2022, Algorithm 1 with S_churn = 0), used to sample the final prior:
 *
 *     dx/dsigma = (x - D(x, sigma)) / sigma
 *     x' = x_t + (sigma_s - sigma_t) d_t,   d_t = (x_t - D(x_t, sigma_t)) / sigma_t
 *     x_s = x_t + (sigma_s - sigma_t) (d_t + d') / 2,   d' = (x' - D(x', sigma_s)) / sigma_s
 *
 * on the same uniform t grid as training, from x_1 = sigma_max z, then a final denoise at
 * sigma(0). Two network passes per step.
 */
import type { Denoiser } from '../denoisers/denoiser.js';
import { ndarray, type NDArray } from '../ndarray.js';
import type { Rng } from '../rng.js';
import { sigmaGrid, type NoiseSchedule } from '../schedule.js';
import type { SamplerProgress } from './sampler.js';

export interface HeunOptions {
  steps: number;
  schedule: NoiseSchedule;
  rng: Rng;
  cond: NDArray | null;
  count?: number;
  onStep?: SamplerProgress;
}

export async function heunSample(denoiser: Denoiser, options: HeunOptions): Promise<NDArray> {
  const n = options.cond ? options.cond.shape[0] : options.count;
  if (n === undefined) throw new RangeError('heunSample needs cond or count');
  const sigmas = sigmaGrid(options.schedule, options.steps);
  const x = ndarray([n, denoiser.dim]);
  options.rng.fillNormal(x.data, sigmas[0]);
  const sigmaBatch = new Float32Array(n);
  const trial = ndarray(x.shape);
  const slope = new Float32Array(x.data.length);
  for (let k = 0; k < options.steps; k++) {
    const sigmaT = sigmas[k];
    const sigmaS = sigmas[k + 1];
    const h = sigmaS - sigmaT;
    sigmaBatch.fill(sigmaT);
    const d1 = await denoiser.denoise(x, sigmaBatch, options.cond);
    for (let j = 0; j < x.data.length; j++) {
      slope[j] = (x.data[j] - d1.data[j]) / sigmaT;
      trial.data[j] = x.data[j] + h * slope[j];
    }
    sigmaBatch.fill(sigmaS);
    const d2 = await denoiser.denoise(trial, sigmaBatch, options.cond);
    for (let j = 0; j < x.data.length; j++) {
      const slope2 = (trial.data[j] - d2.data[j]) / sigmaS;
      x.data[j] += (h * (slope[j] + slope2)) / 2;
    }
    options.onStep?.(k + 1, options.steps);
  }
  sigmaBatch.fill(sigmas[options.steps]);
  return denoiser.denoise(x, sigmaBatch, options.cond);
}
