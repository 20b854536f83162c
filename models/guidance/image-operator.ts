/**
 * An image channel's operators (pixel mask, blur) as the `LinearOperator` that guidance
 * solves with: x [n, H*W*C] -> A x through the channel's noiseless `forward`, v -> A^T v
 * through its `adjoint`, so MMPS never forms the HWC x HWC matrix. m = d (a mask leaves the
 * removed pixels at zero, where y is zero too, so those rows of the system are s_y^2 u = 0).
 * The channels compute in float64 but take and return float32 images; rounding at that
 * boundary is far below the noise of a float32 network, the denoiser guidance runs on.
 */
import type { ImageChannel, ImageOperators } from '../channels/image.js';
import { ndarray } from '../ndarray.js';
import type { LinearOperator } from './operator.js';

export function imageOperator(channel: ImageChannel, ops: ImageOperators, rows: number): LinearOperator {
  const shape = [rows, channel.height, channel.width, channel.channels];
  const d = channel.height * channel.width * channel.channels;
  const through = (f: typeof channel.forward, v: Float64Array, what: string): Float64Array => {
    if (v.length !== rows * d)
      throw new RangeError(`image operator ${what}: got ${v.length} values, expected ${rows}x${d}`);
    return Float64Array.from(f(ops, ndarray(shape, Float32Array.from(v))).data);
  };
  return {
    rows,
    inDim: d,
    outDim: d,
    apply: (x) => through(channel.forward, x, 'apply'),
    adjoint: (v) => through(channel.adjoint, v, 'adjoint'),
  };
}
