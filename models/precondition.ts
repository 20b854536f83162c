/**
 * EDM preconditioning with sigma_data = 1 (Karras et al., "Elucidating the Design Space of
 * Diffusion-Based Generative Models", NeurIPS 2022, Table 1):
 *
 *     D(x_t, sigma) = c_skip x_t + c_out F(c_in x_t, embed(log sigma), ...)
 *     c_skip = 1 / (sigma^2 + 1),  c_out = sigma / sqrt(sigma^2 + 1),  c_in = 1 / sqrt(sigma^2 + 1)
 *
 * The loss weight 1/sigma^2 + 1 = 1 / c_out^2 makes F's regression target unit-variance
 * at every noise level.
 */
export interface Preconditioning {
  cSkip: number;
  cOut: number;
  cIn: number;
}

export function edmPreconditioning(sigma: number): Preconditioning {
  const s2 = sigma * sigma;
  return { cSkip: 1 / (s2 + 1), cOut: sigma / Math.sqrt(s2 + 1), cIn: 1 / Math.sqrt(s2 + 1) };
}

export function lossWeight(sigma: number): number {
  return 1 / (sigma * sigma) + 1;
}
