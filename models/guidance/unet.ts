/**
 * The tfjs U-Net denoiser (unconditional, the prior EM-MMPS guides) as a
 * `DifferentiableDenoiser`, the same idea as `mlp.ts`: D(x_t) by one forward pass, J^T v by
 * reverse-mode autodiff of <D(x_t), v> with respect to x_t. Rows are flat images [n, H*W*C]
 * (NHWC order), reshaped to [n, H, W, C] at the network's boundary. Images never mix in the
 * U-Net (GroupNorm and attention act within an image), so the batched VJP is n per-image
 * VJPs. Each VJP re-runs the forward pass under tfjs's tape and counts as one network pass.
 * Call `initBackend()` before use (it registers the gradients).
 */
import * as tf from '../tf.js';
import type { UnetNetwork } from '../denoisers/unet.js';
import type { DifferentiableDenoiser, Linearization } from './differentiable.js';

export class DifferentiableUnet implements DifferentiableDenoiser {
  readonly dim: number;
  /** Network passes so far: forward passes plus VJPs. */
  passes = 0;

  constructor(private readonly network: UnetNetwork) {
    const { height, width, channels, condChannels } = network.config;
    if (condChannels !== 0) {
      throw new RangeError(
        `DifferentiableUnet needs an unconditional network, got ${condChannels} conditioning channels`,
      );
    }
    this.dim = height * width * channels;
  }

  async linearize(xt: Float64Array, sigma: ArrayLike<number>): Promise<Linearization> {
    const n = sigma.length;
    const d = this.dim;
    if (xt.length !== n * d)
      throw new RangeError(`DifferentiableUnet: x_t has ${xt.length} values, expected ${n}x${d}`);
    const { height, width, channels } = this.network.config;
    const shape: [number, number, number, number] = [n, height, width, channels];
    const x = tf.tensor4d(Float32Array.from(xt), shape);
    const s = tf.tensor1d(Float32Array.from(sigma));
    const network = this.network;
    const forward = (input: tf.Tensor): tf.Tensor4D => network.denoise(input as tf.Tensor4D, s, null);
    const backward = tf.grad(forward);
    let value: Float64Array;
    try {
      const out = forward(x);
      value = Float64Array.from(await out.data());
      out.dispose();
    } catch (error) {
      x.dispose();
      s.dispose();
      throw error;
    }
    this.passes++;
    let disposed = false;
    return {
      value,
      vjp: async (cotangent) => {
        if (disposed) throw new Error('DifferentiableUnet: VJP of a disposed linearization');
        if (cotangent.length !== n * d)
          throw new RangeError(`DifferentiableUnet: cotangent has ${cotangent.length} values, expected ${n}x${d}`);
        const g = tf.tidy(() => backward(x, tf.tensor4d(Float32Array.from(cotangent), shape)));
        const result = Float64Array.from(await g.data());
        g.dispose();
        this.passes++;
        return result;
      },
      dispose: () => {
        if (disposed) return;
        disposed = true;
        x.dispose();
        s.dispose();
      },
    };
  }

  dispose(): void {
    this.network.dispose();
  }
}
