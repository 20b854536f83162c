/**
 * Batches of image operators and observations handled as rows: slicing and concatenating
 * operator batches along the image axis, and viewing NHWC images as flat rows [n, H W C]
 * and back (the same bytes, another shape), which is how the lap-0 Gaussians see images.
 */
import { concatRows, ndarray, sliceRows, type NDArray } from '../ndarray.js';
import type { ImageOperators } from './image.js';

/** Observed images with their operators. */
export interface ImageObservations {
  /** y [n, H, W, C]. */
  y: NDArray;
  ops: ImageOperators;
}

export function sliceOperators(ops: ImageOperators, start: number, end: number): ImageOperators {
  if (ops.kind === 'mask') return { kind: 'mask', masks: sliceRows(ops.masks, start, end) };
  return { kind: 'blur', sigmas: ops.sigmas.slice(start, end), kernels: sliceRows(ops.kernels, start, end) };
}

export function concatOperators(parts: ImageOperators[]): ImageOperators {
  if (parts.length === 0) throw new RangeError('no operators to concatenate');
  if (parts.every((p) => p.kind === 'mask')) {
    return { kind: 'mask', masks: concatRows(parts.map((p) => (p.kind === 'mask' ? p.masks : ndarray([0])))) };
  }
  const blur = parts.map((p) => {
    if (p.kind !== 'blur') throw new RangeError('mixed operator kinds');
    return p;
  });
  const sigmas = new Float64Array(blur.reduce((a, p) => a + p.sigmas.length, 0));
  let offset = 0;
  for (const p of blur) {
    sigmas.set(p.sigmas, offset);
    offset += p.sigmas.length;
  }
  return { kind: 'blur', sigmas, kernels: concatRows(blur.map((p) => p.kernels)) };
}

/** Flat rows [n, H W C] <-> images [n, H, W, C]: the same bytes, another shape. */
export function asRows(images: NDArray): NDArray {
  const n = images.shape[0];
  return { shape: [n, images.data.length / Math.max(1, n)], data: images.data };
}

export function asImages(rows: NDArray, shape: { height: number; width: number; channels: number }): NDArray {
  return ndarray([rows.shape[0], shape.height, shape.width, shape.channels], rows.data);
}
