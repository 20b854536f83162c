/**
 * The unconditional tfjs U-Net as a differentiable denoiser (`network.ts`), by tfjs's autodiff:
 * rows are flat images [n, H*W*C] in NHWC order, reshaped to [n, H, W, C] at the network's
 * boundary. The EM-MMPS image E-step runs the ONNX VJP graph instead (`onnx-network.ts`, about
 * 4x faster); this one is the independent reference that graph is tested against.
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
