/**
 * A tfjs denoiser as a `DifferentiableDenoiser`: D(x_t) by one forward pass, J^T v by
 * reverse-mode autodiff of <D(x_t), v> with respect to x_t (tfjs's `grad` with `v` as the
 * upstream gradient). Rows are flat; `rowShape` is what the network sees per row (a vector
 * for the MLP, H x W x C for the U-Net). The networks never mix rows (LayerNorm, GroupNorm and
 * attention act within a row), so the batched product is the n per-row products.
 *
 * tfjs keeps no tape between calls, so each VJP re-runs the forward pass under the tape: a VJP
 * costs about a forward and a backward pass in time, and counts as one network pass, the
 * paper's unit. Call `initBackend()` before use (it registers the gradients).
 */
import * as tf from '../tf.js';
import type { DifferentiableDenoiser, Linearization } from './differentiable.js';

export class DifferentiableNetwork implements DifferentiableDenoiser {
  readonly dim: number;
  /** Network passes so far: forward passes plus VJPs. */
  passes = 0;

  constructor(
    private readonly name: string,
    private readonly rowShape: readonly number[],
    private readonly denoise: (x: tf.Tensor, sigma: tf.Tensor1D) => tf.Tensor,
    private readonly release: () => void,
  ) {
    this.dim = rowShape.reduce((a, b) => a * b, 1);
  }

  async linearize(xt: Float64Array, sigma: ArrayLike<number>): Promise<Linearization> {
    const n = sigma.length;
    const d = this.dim;
    if (xt.length !== n * d) throw new RangeError(`${this.name}: x_t has ${xt.length} values, expected ${n}x${d}`);
    const shape = [n, ...this.rowShape];
    const x = tf.tensor(Float32Array.from(xt), shape);
    const s = tf.tensor1d(Float32Array.from(sigma));
    const forward = (input: tf.Tensor): tf.Tensor => this.denoise(input, s);
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
        if (disposed) throw new Error(`${this.name}: VJP of a disposed linearization`);
        if (cotangent.length !== n * d)
          throw new RangeError(`${this.name}: cotangent has ${cotangent.length} values, expected ${n}x${d}`);
        const g = tf.tidy(() => backward(x, tf.tensor(Float32Array.from(cotangent), shape)));
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
    this.release();
  }
}
