/**
 * Variance-exploding noise schedule, log-linear in t:
 *
 *     sigma(t) = exp(log a + (log b - log a) t),   t in [0, 1].
 *
 * Images use (a, b) = (1e-3, 1e2), the manifold (1e-3, 1e1). Training and sampling must
 * share (a, b): the reference code samples the manifold from 1e2 although it trained up
 * to 1e1, which starts the sampler far outside what the network has seen.
 *
 * Reference: Song et al., "Score-Based Generative Modeling through SDEs" (ICLR 2021), VE SDE;
 * Rozet et al. (NeurIPS 2024), the schedule DiffEM inherits.
 */
export interface NoiseSchedule {
  readonly sigmaMin: number;
  readonly sigmaMax: number;
  sigma(t: number): number;
}

export function logLinearSchedule(sigmaMin: number, sigmaMax: number): NoiseSchedule {
  if (!(sigmaMin > 0 && sigmaMax > sigmaMin)) {
    throw new RangeError(`schedule needs 0 < sigma_min < sigma_max, got ${sigmaMin}, ${sigmaMax}`);
  }
  const logA = Math.log(sigmaMin);
  const logB = Math.log(sigmaMax);
  return { sigmaMin, sigmaMax, sigma: (t) => Math.exp(logA + (logB - logA) * t) };
}

/** The uniform grid t_k = 1 - k / steps, k = 0..steps, mapped to noise levels. */
export function sigmaGrid(schedule: NoiseSchedule, steps: number): Float64Array {
  if (!Number.isInteger(steps) || steps < 1) throw new RangeError(`steps must be a positive integer, got ${steps}`);
  const out = new Float64Array(steps + 1);
  for (let k = 0; k <= steps; k++) out[k] = schedule.sigma(1 - k / steps);
  return out;
}
