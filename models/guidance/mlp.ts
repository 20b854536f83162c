/**
 * The tfjs MLP denoiser as a `DifferentiableDenoiser`: D(x_t) by one forward pass, J^T v by
 * reverse-mode autodiff of <D(x_t), v> with respect to x_t (tfjs's `grad` with `v` as the
 * upstream gradient). The network's rows never mix (LayerNorm normalises within a row), so
 * the batched product is the n per-row products.
 *
 * tfjs keeps no tape between calls, so each VJP re-runs the forward pass under the tape:
 * a VJP costs about a forward and a backward pass in time, and counts as one network pass,
 * the paper's unit.
 * Call `initBackend()` before use (it registers the gradients).
 */
import * as tf from '../tf.js';
import type { MlpNetwork } from '../denoisers/mlp.js';
import type { DifferentiableDenoiser, Linearization } from './differentiable.js';

export class DifferentiableMlp implements DifferentiableDenoiser {
  readonly dim: number;
  /** Network passes so far: forward passes plus VJPs. */
  passes = 0;

  constructor(private readonly network: MlpNetwork) {
    if (network.config.condDim !== 0) {
      throw new RangeError(`DifferentiableMlp needs an unconditional network, got condDim ${network.config.condDim}`);
    }
    this.dim = network.config.dim;
  }

  async linearize(xt: Float64Array, sigma: ArrayLike<number>): Promise<Linearization> {
    const n = sigma.length;
    const d = this.dim;
    if (xt.length !== n * d) throw new RangeError(`DifferentiableMlp: x_t has ${xt.length} values, expected ${n}x${d}`);
    const x = tf.tensor2d(Float32Array.from(xt), [n, d]);
    const s = tf.tensor1d(Float32Array.from(sigma));
    const network = this.network;
    const forward = (input: tf.Tensor): tf.Tensor2D => network.denoise(input as tf.Tensor2D, s, null);
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
        if (disposed) throw new Error('DifferentiableMlp: VJP of a disposed linearization');
        if (cotangent.length !== n * d)
          throw new RangeError(`DifferentiableMlp: cotangent has ${cotangent.length} values, expected ${n}x${d}`);
        const g = tf.tidy(() => backward(x, tf.tensor2d(Float32Array.from(cotangent), [n, d])));
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
