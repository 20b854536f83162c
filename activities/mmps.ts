/** EM-MMPS posterior sampling (placeholder until the baseline lands). */
import type { Denoiser } from '../models/denoisers/denoiser.js';
import type { NDArray } from '../models/ndarray.js';
import type { Rng } from '../models/rng.js';
import type { SamplerProgress } from '../models/samplers/sampler.js';
import type { NoiseSchedule } from '../models/schedule.js';
import { BadInputError } from './errors.js';

export interface MmpsRequest {
  y: NDArray;
  A: NDArray;
  noiseStd: number;
  steps: number;
  cgIterations: number;
  schedule: NoiseSchedule;
  rng: Rng;
  onStep?: SamplerProgress;
}

export async function mmpsPosteriorSample(_denoiser: Denoiser, _request: MmpsRequest): Promise<{ x: NDArray; passesPerStep: number }> {
  throw new BadInputError('InvalidConfig', "method 'emmps' is not available in this build");
}
