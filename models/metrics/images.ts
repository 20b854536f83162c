/**
 * Image quality metrics on NHWC images in the data range [-2, 2].
 *
 * - PSNR = 10 log10(L^2 / MSE) with peak-to-peak L = 4, the width of [-2, 2]: the same number
 *   as PSNR on [0, 255] images with L = 255, or on [0, 1] with L = 1.
 * - SSIM (Wang, Bovik, Sheikh & Simoncelli, IEEE TIP 2004): local statistics under an 11x11
 *   Gaussian window of sigma 1.5 (valid positions only),
 *       SSIM = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2)),
 *   C1 = (0.01 L)^2, C2 = (0.03 L)^2; averaged over positions, then over channels.
 *
 * The Frechet distance of feature sets (FID) is in `frechet.ts`.
 */
import type { NDArray } from '../ndarray.js';

export const DATA_RANGE = 4;
export const SSIM_WINDOW = 11;
export const SSIM_SIGMA = 1.5;
export const SSIM_K1 = 0.01;
export const SSIM_K2 = 0.03;

export interface PerImage {
  /** One value per image. */
  values: Float64Array;
  mean: number;
}

function checkPair(a: NDArray, b: NDArray): [number, number, number, number] {
  if (a.shape.length !== 4 || a.shape.join(',') !== b.shape.join(',')) {
    throw new RangeError(`expected two image batches [n, H, W, C] of one shape, got [${a.shape}] and [${b.shape}]`);
  }
  return a.shape as [number, number, number, number];
}

function summarise(values: Float64Array): PerImage {
  let sum = 0;
  for (const v of values) sum += v;
  return { values, mean: values.length ? sum / values.length : NaN };
}

/** PSNR of each image (Infinity where identical) and their mean. */
export function psnr(x: NDArray, ref: NDArray, dataRange = DATA_RANGE): PerImage {
  const [n, h, w, c] = checkPair(x, ref);
  const size = h * w * c;
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let se = 0;
    for (let j = i * size; j < (i + 1) * size; j++) se += (x.data[j] - ref.data[j]) ** 2;
    values[i] = 10 * Math.log10((dataRange * dataRange) / (se / size));
  }
  return summarise(values);
}

function gaussianWindow(size: number, sigma: number): Float64Array {
  const r = (size - 1) / 2;
  const k = new Float64Array(size);
  let total = 0;
  for (let j = 0; j < size; j++) total += k[j] = Math.exp(-((j - r) ** 2) / (2 * sigma * sigma));
  for (let j = 0; j < size; j++) k[j] /= total;
  return k;
}

/** Separable 'valid' filtering of an h x w plane. */
function filterValid(
  plane: Float64Array,
  h: number,
  w: number,
  k: Float64Array,
  tmp: Float64Array,
  out: Float64Array,
): void {
  const m = k.length;
  const ow = w - m + 1;
  const oh = h - m + 1;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < ow; x++) {
      let acc = 0;
      for (let j = 0; j < m; j++) acc += k[j] * plane[y * w + x + j];
      tmp[y * ow + x] = acc;
    }
  }
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      let acc = 0;
      for (let j = 0; j < m; j++) acc += k[j] * tmp[(y + j) * ow + x];
      out[y * ow + x] = acc;
    }
  }
}

/** SSIM of each image (mean over positions and channels) and their mean. */
export function ssim(x: NDArray, ref: NDArray, dataRange = DATA_RANGE): PerImage {
  const [n, h, w, c] = checkPair(x, ref);
  if (h < SSIM_WINDOW || w < SSIM_WINDOW)
    throw new RangeError(`SSIM needs images of at least ${SSIM_WINDOW}x${SSIM_WINDOW}, got ${h}x${w}`);
  const k = gaussianWindow(SSIM_WINDOW, SSIM_SIGMA);
  const c1 = (SSIM_K1 * dataRange) ** 2;
  const c2 = (SSIM_K2 * dataRange) ** 2;
  const P = h * w;
  const oh = h - SSIM_WINDOW + 1;
  const ow = w - SSIM_WINDOW + 1;
  const planes = Array.from({ length: 5 }, () => new Float64Array(P));
  const filtered = Array.from({ length: 5 }, () => new Float64Array(oh * ow));
  const tmp = new Float64Array(h * ow);
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let total = 0;
    for (let ch = 0; ch < c; ch++) {
      const [px, py, pxx, pyy, pxy] = planes;
      for (let p = 0; p < P; p++) {
        const a = x.data[(i * P + p) * c + ch];
        const b = ref.data[(i * P + p) * c + ch];
        px[p] = a;
        py[p] = b;
        pxx[p] = a * a;
        pyy[p] = b * b;
        pxy[p] = a * b;
      }
      for (let q = 0; q < 5; q++) filterValid(planes[q], h, w, k, tmp, filtered[q]);
      const [mx, my, mxx, myy, mxy] = filtered;
      let sum = 0;
      for (let p = 0; p < oh * ow; p++) {
        const vx = mxx[p] - mx[p] * mx[p];
        const vy = myy[p] - my[p] * my[p];
        const cov = mxy[p] - mx[p] * my[p];
        sum += ((2 * mx[p] * my[p] + c1) * (2 * cov + c2)) / ((mx[p] * mx[p] + my[p] * my[p] + c1) * (vx + vy + c2));
      }
      total += sum / (oh * ow);
    }
    values[i] = total / c;
  }
  return summarise(values);
}
