/**
 * The unconditional tfjs U-Net (the prior EM-MMPS guides on images) as a differentiable
 * denoiser (`network.ts`): rows are flat images [n, H*W*C] in NHWC order, reshaped to
 * [n, H, W, C] at the network's boundary.
 */
import type * as tf from '../tf.js';
import type { UnetNetwork } from '../denoisers/unet.js';
import { DifferentiableNetwork } from './network.js';

export class DifferentiableUnet extends DifferentiableNetwork {
  constructor(network: UnetNetwork) {
    const { height, width, channels, condChannels } = network.config;
    if (condChannels !== 0) {
      throw new RangeError(
        `DifferentiableUnet needs an unconditional network, got ${condChannels} conditioning channels`,
      );
    }
    super(
      'DifferentiableUnet',
      [height, width, channels],
      (x, sigma) => network.denoise(x as tf.Tensor4D, sigma, null),
      () => network.dispose(),
    );
  }
}
