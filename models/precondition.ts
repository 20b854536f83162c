/**
 * EDM preconditioning with sigma_data = 1 (Karras et al., "Elucidating the Design Space of
 * Diffusion-Based Generative Models", NeurIPS 2022, Table 1):
 *
 *     D(x_t, sigma) = c_skip x_t + c_out F(c_in x_t, embed(log sigma), ...)
 *     c_skip = 1 / (sigma^2 + 1),  c_out = sigma / sqrt(sigma^2 + 1),  c_in = 1 / sqrt(sigma^2 + 1)
 *
 * and the loss weight 1/sigma^2 + 1 = 1 / c_out^2, which makes F's regression target
 * unit-variance at every noise level. Written once per arithmetic: tfjs tensors for training
 * and in-process denoising, ONNX nodes for the exported graphs. Both compute c_in as the
 * reciprocal square root of sigma^2 + 1 and c_out as sigma c_in, so the exported denoiser
 * follows the tfjs one operation by operation.
 */
import type { GraphBuilder } from './onnx/graph.js';
import * as tf from './tf.js';

export interface EdmCoefficients<T> {
  cSkip: T;
  cIn: T;
  cOut: T;
}

/** The coefficients for noise levels `sigma` of any shape (broadcast against x_t by the caller's shape). */
export function edmCoefficients<T extends tf.Tensor>(sigma: T): EdmCoefficients<T> {
  const s2p1 = sigma.square().add(1);
  const cIn = s2p1.rsqrt() as T;
  return { cSkip: s2p1.reciprocal() as T, cIn, cOut: sigma.mul(cIn) as T };
}

/** The training loss weight 1/sigma^2 + 1 per noise level. */
export function edmLossWeight<T extends tf.Tensor>(sigma: T): T {
  return sigma.square().reciprocal().add(1) as T;
}

/**
 * ONNX nodes of the coefficients for the column of noise levels `sigma` (named
 * `sigma2_plus_1`, `c_skip`, `c_in`, `c_out`); `one` names a scalar 1 initializer.
 */
export function edmCoefficientNodes(g: GraphBuilder, sigma: string, one: string): EdmCoefficients<string> {
  const s2p1 = g.node('Add', [g.node('Mul', [sigma, sigma]), one], {}, 'sigma2_plus_1');
  const cSkip = g.node('Reciprocal', [s2p1], {}, 'c_skip');
  const cIn = g.node('Reciprocal', [g.node('Sqrt', [s2p1])], {}, 'c_in');
  const cOut = g.node('Mul', [sigma, cIn], {}, 'c_out');
  return { cSkip, cIn, cOut };
}
