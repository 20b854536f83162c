/**
 * How a lap is named in figures. The final stage follows the last lap done, which is
 * `lap - 1` (fewer than `em.laps` when the campaign was stopped early).
 */
import type { LapStep } from '../workflows/types.js';

const STYLES = {
  /** Rows of the vector scatter figure. */
  long: {
    first: 'lap 0 (Gaussian initialisation)',
    final: (done: number) => `after lap ${done} (final E-step)`,
    lap: (k: number) => `lap ${k}`,
  },
  /** Panels of the image reconstruction grid. */
  short: { first: 'lap 0 (Gaussian)', final: (done: number) => `after lap ${done}`, lap: (k: number) => `lap ${k}` },
  /** Titles of each lap's image grid. */
  estep: {
    first: 'lap 0 (Gaussian posterior samples)',
    final: () => 'final E-step',
    lap: (k: number) => `lap ${k} E-step`,
  },
} as const;

export function lapLabel(step: LapStep, style: keyof typeof STYLES): string {
  const names = STYLES[style];
  if (step.final) return names.final(step.lap - 1);
  return step.lap === 0 ? names.first : names.lap(step.lap);
}
