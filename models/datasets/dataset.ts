/**
 * What every image loader returns: images NHWC in [-2, 2] (docs/method.md scales data to
 * [-2, 2]: a byte v maps to 4 v / 255 - 2) and their class labels where the source has any.
 */
import { ndarray, type NDArray } from '../ndarray.js';

export interface ImageDataset {
  /** [n, H, W, C], float32 in [-2, 2]. */
  images: NDArray;
  /** [n] class indices, or null for unlabelled sources. */
  labels: Int32Array | null;
}

export const DATA_MIN = -2;
export const DATA_MAX = 2;

/** Bytes in [0, 255] to [-2, 2]. */
export function bytesToImages(bytes: Uint8Array, shape: number[]): NDArray {
  const out = ndarray(shape);
  if (bytes.length !== out.data.length) {
    throw new RangeError(`${bytes.length} bytes do not fill images [${shape.join(', ')}]`);
  }
  const scale = (DATA_MAX - DATA_MIN) / 255;
  for (let i = 0; i < bytes.length; i++) out.data[i] = DATA_MIN + scale * bytes[i];
  return out;
}
