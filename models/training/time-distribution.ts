/**
 * Where on the schedule the training noise levels fall: t ~ p(t), sigma = sigma(t).
 *
 * - `beta33`: Beta(3, 3), the images' choice (docs/method.md), centred on mid noise;
 * - `beta-mixture`: 1/2 Beta(2, 5) + 1/2 Beta(5, 2), the manifold's choice, which puts
 *   mass near both ends: low noise for precise reconstructions, high noise for the
 *   sampler's first steps;
 * - `uniform`: U(0, 1);
 * - `lognormal`: log sigma ~ N(-0.5, 1.2^2) truncated to [sigma_min, sigma_max], EDM's
 *   training distribution (Karras et al. 2022, "Elucidating the Design Space of
 *   Diffusion-Based Generative Models", P_mean = -1.2, P_std = 1.2 for sigma_data = 0.5)
 *   with P_mean moved by ln 2 for this project's sigma_data = 1 (models/precondition.ts).
 *   Against `beta33` on the image schedule [1e-3, 1e2] (log sigma's mean -1.15, standard
 *   deviation 2.2) it spends fewer draws on noise levels too small or too large to shape a
 *   sample.
 *
 * The schedule is log-linear (models/schedule.ts), so t = log(sigma / sigma_min) /
 * log(sigma_max / sigma_min) maps a distribution over sigma to one over t.
 */
import type { Rng } from '../rng.js';
import type { NoiseSchedule } from '../schedule.js';

export type TimeDistributionName = 'beta33' | 'beta-mixture' | 'uniform' | 'lognormal';

const LOGNORMAL_MEAN = -0.5;
const LOGNORMAL_STD = 1.2;
/** Rejection tries before a draw is clamped into the schedule (only a very narrow schedule needs them). */
const LOGNORMAL_TRIES = 64;

export function sampleTime(
  rng: Rng,
  name: TimeDistributionName,
  schedule: Pick<NoiseSchedule, 'sigmaMin' | 'sigmaMax'>,
): number {
  switch (name) {
    case 'lognormal': {
      const logMin = Math.log(schedule.sigmaMin);
      const logSpan = Math.log(schedule.sigmaMax) - logMin;
      let logSigma = LOGNORMAL_MEAN + LOGNORMAL_STD * rng.normal();
      for (let tries = 1; tries < LOGNORMAL_TRIES && (logSigma < logMin || logSigma > logMin + logSpan); tries++) {
        logSigma = LOGNORMAL_MEAN + LOGNORMAL_STD * rng.normal();
      }
      return Math.min(1, Math.max(0, (logSigma - logMin) / logSpan));
    }
    case 'beta33':
      return rng.beta(3, 3);
    case 'beta-mixture':
      return rng.uniform() < 0.5 ? rng.beta(2, 5) : rng.beta(5, 2);
    case 'uniform':
      return rng.uniform();
  }
}
