/** The unconditional tfjs MLP (the prior EM-MMPS guides on vectors) as a differentiable denoiser (`network.ts`). */
import type * as tf from '../tf.js';
import type { MlpNetwork } from '../denoisers/mlp.js';
import { DifferentiableNetwork } from './network.js';

export class DifferentiableMlp extends DifferentiableNetwork {
  constructor(network: MlpNetwork) {
    if (network.config.condDim !== 0) {
      throw new RangeError(`DifferentiableMlp needs an unconditional network, got condDim ${network.config.condDim}`);
    }
    super(
      'DifferentiableMlp',
      [network.config.dim],
      (x, sigma) => network.denoise(x as tf.Tensor2D, sigma, null),
      () => network.dispose(),
    );
  }
}
