/**
 * Where on the schedule the training noise levels fall: t ~ p(t), sigma = sigma(t).
 *
 * - `beta33`: Beta(3, 3), the images' choice (docs/method.md), centred on mid noise;
 * - `beta-mixture`: 1/2 Beta(2, 5) + 1/2 Beta(5, 2), the manifold's choice, which puts
 *   mass near both ends: low noise for precise reconstructions, high noise for the
 *   sampler's first steps;
 * - `uniform`: U(0, 1).
 */
import type { Rng } from '../rng.js';

export type TimeDistributionName = 'beta33' | 'beta-mixture' | 'uniform';

export function sampleTime(rng: Rng, name: TimeDistributionName): number {
  switch (name) {
    case 'beta33':
      return rng.beta(3, 3);
    case 'beta-mixture':
      return rng.uniform() < 0.5 ? rng.beta(2, 5) : rng.beta(5, 2);
    case 'uniform':
      return rng.uniform();
  }
}
