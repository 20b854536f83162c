/**
 * Corruption channels for images (NHWC, float32): each observation is
 *
 *     y = A x + e,   A ~ Q (the channel),   e ~ N(0, s_y^2 I)
 *
 * Operators are kept in factored form (a mask, or a blur kernel), never as dense matrices:
 * an HWC x HWC matrix per image is out of reach already at 28x28. What the conditional
 * network sees is `conditioning(ops, y)`: [y zero-filled, mask] for masks, as docs/method.md
 * prescribes, or [y] for blur. `drawOperators` is called with a fresh stream for the M-step
 * re-corruption, so every lap trains on operators the observations never had.
 *
 * - Pixel mask: each pixel is removed independently with probability `rate`, the same
 *   pixel in every colour channel (Rozet et al. 2024; Hosseintabar et al. 2025). A = diag(m)
 *   on the image, so y holds zeros where pixels were removed and the noise lives only on
 *   observed pixels; A^T = A.
 * - Gaussian blur: separable kernel k_j ∝ exp(-j^2 / (2 sigma^2)), j = -r..r, normalised to
 *   sum 1, 'same' output size. Padding 'reflect' mirrors the image without repeating the
 *   edge (d c b | a b c d | c b a), which keeps the border's brightness; 'zero' pads with
 *   zeros. A is linear either way; its adjoint scatters each output back through the same
 *   index map, so A^T is exact for both (with zero padding and a symmetric kernel A^T = A;
 *   with reflection it is not symmetric near the border).
 */
import { ndarray, type NDArray } from '../ndarray.js';
import type { Rng } from '../rng.js';

export type ImageOperators =
  /** masks [n, H, W, 1]: 1 where the pixel is observed. */
  | { kind: 'mask'; masks: NDArray }
  /** sigmas [n] and the normalised 1-D kernels [n, kernelSize] they give. */
  | { kind: 'blur'; sigmas: Float64Array; kernels: NDArray };

export interface ImageChannel {
  readonly kind: 'mask' | 'blur';
  readonly height: number;
  readonly width: number;
  readonly channels: number;
  /** s_y: standard deviation of the observation noise. */
  readonly noiseStd: number;
  /** Channels of `conditioning`: C + 1 for masks, C for blur. */
  readonly condChannels: number;
  drawOperators(rng: Rng, n: number): ImageOperators;
  /** A x, without noise. */
  forward(ops: ImageOperators, x: NDArray): NDArray;
  /** y = A x + e. */
  apply(ops: ImageOperators, x: NDArray, rng: Rng): NDArray;
  /** What the conditional denoiser sees, [n, H, W, condChannels]. */
  conditioning(ops: ImageOperators, y: NDArray): NDArray;
  /** A^T y. */
  adjoint(ops: ImageOperators, y: NDArray): NDArray;
}

interface ImageShape {
  height: number;
  width: number;
  channels: number;
  noiseStd: number;
}

export interface MaskChannelConfig extends ImageShape {
  kind: 'mask';
  /** Fraction of pixels removed, in [0, 1). */
  rate: number;
}

export interface BlurChannelConfig extends ImageShape {
  kind: 'blur';
  /** Odd kernel width. */
  kernelSize: number;
  /** One sigma for every image, or a range [lo, hi] each image draws its sigma from uniformly. */
  sigma: number | [number, number];
  /** Default 'reflect'. */
  padding?: 'reflect' | 'zero';
}

export type ImageChannelConfig = MaskChannelConfig | BlurChannelConfig;

export function imageChannel(config: ImageChannelConfig): ImageChannel {
  return config.kind === 'mask' ? maskImageChannel(config) : blurImageChannel(config);
}

function checkShape(config: ImageShape): void {
  const { height, width, channels, noiseStd } = config;
  for (const [name, v] of Object.entries({ height, width, channels })) {
    if (!(Number.isInteger(v) && v > 0))
      throw new RangeError(`image channel: ${name} must be a positive integer, got ${v}`);
  }
  if (!(noiseStd >= 0 && Number.isFinite(noiseStd)))
    throw new RangeError(`image channel: noiseStd must be >= 0, got ${noiseStd}`);
}

function imageCount(x: NDArray, pixels: number, channels: number, what: string): number {
  const n = x.shape[0];
  if (x.data.length !== n * pixels * channels) {
    throw new RangeError(`${what} [${x.shape}] is not ${n} images of ${pixels} pixels x ${channels} channels`);
  }
  return n;
}

function expectKind<K extends ImageOperators['kind']>(
  ops: ImageOperators,
  kind: K,
): Extract<ImageOperators, { kind: K }> {
  if (ops.kind !== kind) throw new TypeError(`a ${kind} channel was given ${ops.kind} operators`);
  return ops as Extract<ImageOperators, { kind: K }>;
}

export function maskImageChannel(config: Omit<MaskChannelConfig, 'kind'>): ImageChannel {
  checkShape(config);
  const { height, width, channels, noiseStd, rate } = config;
  if (!(rate >= 0 && rate < 1)) throw new RangeError(`mask rate (fraction removed) must be in [0, 1), got ${rate}`);
  const P = height * width;
  const C = channels;
  const masked = (ops: ImageOperators, x: NDArray, what: string): { n: number; m: Float32Array } => {
    const { masks } = expectKind(ops, 'mask');
    const n = imageCount(x, P, C, what);
    if (masks.shape[0] !== n) throw new RangeError(`${masks.shape[0]} masks for ${n} images`);
    return { n, m: masks.data };
  };
  const forward = (ops: ImageOperators, x: NDArray): NDArray => {
    const { n, m } = masked(ops, x, 'x');
    const out = ndarray([n, height, width, C]);
    for (let p = 0; p < n * P; p++) if (m[p] !== 0) for (let c = 0; c < C; c++) out.data[p * C + c] = x.data[p * C + c];
    return out;
  };
  return {
    kind: 'mask',
    height,
    width,
    channels,
    noiseStd,
    condChannels: C + 1,
    drawOperators(rng: Rng, n: number): ImageOperators {
      const masks = ndarray([n, height, width, 1]);
      for (let i = 0; i < masks.data.length; i++) masks.data[i] = rng.uniform() < rate ? 0 : 1;
      return { kind: 'mask', masks };
    },
    forward,
    apply(ops, x, rng) {
      const { n, m } = masked(ops, x, 'x');
      const y = ndarray([n, height, width, C]);
      // Noise is drawn for every entry, observed or not, so the stream's position does not
      // depend on the mask.
      for (let p = 0; p < n * P; p++) {
        for (let c = 0; c < C; c++) {
          const e = noiseStd * rng.normal();
          if (m[p] !== 0) y.data[p * C + c] = x.data[p * C + c] + e;
        }
      }
      return y;
    },
    conditioning(ops, y) {
      const { n, m } = masked(ops, y, 'y');
      const out = ndarray([n, height, width, C + 1]);
      for (let p = 0; p < n * P; p++) {
        for (let c = 0; c < C; c++) out.data[p * (C + 1) + c] = m[p] !== 0 ? y.data[p * C + c] : 0;
        out.data[p * (C + 1) + C] = m[p];
      }
      return out;
    },
    adjoint: forward,
  };
}

/** The normalised Gaussian kernel of odd width `size`. */
export function gaussianKernel1d(size: number, sigma: number): Float64Array {
  if (!(Number.isInteger(size) && size >= 1 && size % 2 === 1))
    throw new RangeError(`blur kernel size must be odd, got ${size}`);
  if (!(sigma > 0 && Number.isFinite(sigma))) throw new RangeError(`blur sigma must be > 0, got ${sigma}`);
  const r = (size - 1) / 2;
  const k = new Float64Array(size);
  let total = 0;
  for (let j = -r; j <= r; j++) total += k[j + r] = Math.exp((-j * j) / (2 * sigma * sigma));
  for (let j = 0; j < size; j++) k[j] /= total;
  return k;
}

/** Source index of position i in [-r, len - 1 + r] of the padded line, or -1 for a zero. */
function padIndex(i: number, len: number, reflect: boolean): number {
  if (i >= 0 && i < len) return i;
  if (!reflect) return -1;
  return i < 0 ? -i : 2 * (len - 1) - i;
}

/**
 * One 1-D pass along a line of `len` samples spaced `stride` apart, from `src` at `base` into
 * `dst` at the same positions: dst[i] = sum_j k_j src[pad(i + j - r)] (forward), or its
 * adjoint, dst[pad(i + j - r)] += k_j src[i].
 */
function pass1d(
  src: Float64Array,
  dst: Float64Array,
  base: number,
  stride: number,
  len: number,
  kernel: Float64Array,
  reflect: boolean,
  adjoint: boolean,
): void {
  const r = (kernel.length - 1) / 2;
  for (let i = 0; i < len; i++) {
    let acc = 0;
    for (let j = 0; j < kernel.length; j++) {
      const s = padIndex(i + j - r, len, reflect);
      if (s < 0) continue;
      if (adjoint) dst[base + s * stride] += kernel[j] * src[base + i * stride];
      else acc += kernel[j] * src[base + s * stride];
    }
    if (!adjoint) dst[base + i * stride] = acc;
  }
}

export function blurImageChannel(config: Omit<BlurChannelConfig, 'kind'>): ImageChannel {
  checkShape(config);
  const { height, width, channels, noiseStd, kernelSize } = config;
  const reflect = (config.padding ?? 'reflect') === 'reflect';
  const [lo, hi] = typeof config.sigma === 'number' ? [config.sigma, config.sigma] : config.sigma;
  gaussianKernel1d(kernelSize, lo);
  if (!(hi >= lo)) throw new RangeError(`blur sigma range [${lo}, ${hi}] is empty`);
  if (reflect && (kernelSize - 1) / 2 > Math.min(height, width) - 1) {
    throw new RangeError(
      `reflect padding needs kernel radius ${(kernelSize - 1) / 2} < image side ${Math.min(height, width)}`,
    );
  }
  const C = channels;
  const P = height * width;

  const blur = (ops: ImageOperators, x: NDArray, adjoint: boolean, what: string): NDArray => {
    const { kernels } = expectKind(ops, 'blur');
    const n = imageCount(x, P, C, what);
    if (kernels.shape[0] !== n) throw new RangeError(`${kernels.shape[0]} blur kernels for ${n} images`);
    const out = ndarray([n, height, width, C]);
    const a = new Float64Array(P * C);
    const b = new Float64Array(P * C);
    for (let i = 0; i < n; i++) {
      const kernel = Float64Array.from(kernels.data.subarray(i * kernelSize, (i + 1) * kernelSize));
      for (let q = 0; q < P * C; q++) a[q] = x.data[i * P * C + q];
      // A = V H (rows then columns); A^T = H^T V^T. Both passes write every entry of their
      // output in the forward direction; the adjoint accumulates, so it starts from zero.
      if (!adjoint) {
        for (let row = 0; row < height; row++)
          for (let c = 0; c < C; c++) pass1d(a, b, row * width * C + c, C, width, kernel, reflect, false);
        for (let col = 0; col < width; col++)
          for (let c = 0; c < C; c++) pass1d(b, a, col * C + c, width * C, height, kernel, reflect, false);
      } else {
        b.fill(0);
        for (let col = 0; col < width; col++)
          for (let c = 0; c < C; c++) pass1d(a, b, col * C + c, width * C, height, kernel, reflect, true);
        a.fill(0);
        for (let row = 0; row < height; row++)
          for (let c = 0; c < C; c++) pass1d(b, a, row * width * C + c, C, width, kernel, reflect, true);
      }
      for (let q = 0; q < P * C; q++) out.data[i * P * C + q] = a[q];
    }
    return out;
  };

  return {
    kind: 'blur',
    height,
    width,
    channels,
    noiseStd,
    condChannels: C,
    drawOperators(rng: Rng, n: number): ImageOperators {
      const sigmas = new Float64Array(n);
      const kernels = ndarray([n, kernelSize]);
      for (let i = 0; i < n; i++) {
        sigmas[i] = hi > lo ? lo + (hi - lo) * rng.uniform() : lo;
        kernels.data.set(gaussianKernel1d(kernelSize, sigmas[i]), i * kernelSize);
      }
      return { kind: 'blur', sigmas, kernels };
    },
    forward: (ops, x) => blur(ops, x, false, 'x'),
    apply(ops, x, rng) {
      const y = blur(ops, x, false, 'x');
      for (let q = 0; q < y.data.length; q++) y.data[q] += noiseStd * rng.normal();
      return y;
    },
    conditioning(ops, y) {
      expectKind(ops, 'blur');
      const n = imageCount(y, P, C, 'y');
      return ndarray([n, height, width, C], Float32Array.from(y.data));
    },
    adjoint: (ops, y) => blur(ops, y, true, 'y'),
  };
}
