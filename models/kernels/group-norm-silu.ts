/**
 * GroupNorm (Wu & He, ECCV 2018) followed by SiLU (Elfwing et al. 2018), forward and
 * backward, as two wasm-backend kernels over NHWC tensors: the U-Net's pre-activation
 * `SiLU(GroupNorm(h))`. Composed from tfjs ops it is ~10 ops forward and ~25 backward,
 * and the backend computes each group moment by transposing the reduced axes last, so on
 * bench/unet.ts the transposes alone were 9 % of a training step (`node --cpu-prof`).
 *
 * For image n and group k (its C/G channels over all H·W positions, M values):
 *
 *   xhat = (x - mean) * rstd,  rstd = 1 / sqrt(var + eps),   u = gamma_c xhat + beta_c,  y = u sigmoid(u)
 *
 *   du = dy s (1 + u (1 - s)),  s = sigmoid(u)
 *   dgamma_c = sum du xhat,  dbeta_c = sum du            (over images and positions)
 *   dx = rstd (g - mean_k(g) - xhat mean_k(g xhat)),  g = du gamma_c
 *
 * Moments and sums accumulate in float64 in a fixed order, so the result depends only on
 * the inputs (the same on any number of data-parallel threads).
 */
import { type KernelConfig, type KernelFunc, type NamedAttrMap, type TensorInfo } from '@tensorflow/tfjs-core';

import type * as tf from '../tf.js';
import { registerOnce, tapedKernelOp } from './taped-op.js';
import { WASM, asWasmBackend, f32, runKernel, wasmKernel } from './wasm.js';

export const GROUP_NORM_SILU = 'DiffemGroupNormSilu';
export const GROUP_NORM_SILU_GRAD = 'DiffemGroupNormSiluGrad';

export interface GroupNormSiluAttrs extends NamedAttrMap {
  groups: number;
  epsilon: number;
}

/** [images, positions, channels] of an NHWC tensor. */
function extent(x: TensorInfo): [number, number, number] {
  const [n, h, w, c] = x.shape;
  return [n, h * w, c];
}

/** Inputs x [N, H, W, C], gamma, beta [C]; outputs y, xhat, sigmoid(u) [N, H, W, C] and rstd [N, G]. */
const forward: KernelFunc = ({ inputs, backend: rawBackend, attrs }) => {
  const backend = asWasmBackend(rawBackend);
  const { x, gamma, beta } = inputs as Record<'x' | 'gamma' | 'beta', TensorInfo>;
  const { groups: G, epsilon } = attrs as unknown as GroupNormSiluAttrs;
  const [N, P, C] = extent(x);
  const width = C / G;
  const count = P * width;
  const uInfo = backend.makeOutput(x.shape, 'float32');
  const xhatInfo = backend.makeOutput(x.shape, 'float32');
  const rstdInfo = backend.makeOutput([N, G], 'float32');
  // Views only after the last allocation: allocating may detach earlier ones.
  const X = f32(backend, x);
  const Ga = f32(backend, gamma);
  const Be = f32(backend, beta);
  let U = f32(backend, uInfo);
  const H = f32(backend, xhatInfo);
  const R = f32(backend, rstdInfo);
  const sum = new Float64Array(G);
  const squares = new Float64Array(G);
  const mean = new Float64Array(G);
  const rstd = new Float64Array(G);
  for (let n = 0; n < N; n++) {
    const base = n * P * C;
    sum.fill(0);
    squares.fill(0);
    for (let p = 0, o = base; p < P; p++) {
      for (let k = 0; k < G; k++) {
        let s = 0;
        let q = 0;
        for (let j = 0; j < width; j++, o++) {
          const v = X[o];
          s += v;
          q += v * v;
        }
        sum[k] += s;
        squares[k] += q;
      }
    }
    for (let k = 0; k < G; k++) {
      mean[k] = sum[k] / count;
      const variance = Math.max(0, squares[k] / count - mean[k] * mean[k]);
      rstd[k] = 1 / Math.sqrt(variance + epsilon);
      R[n * G + k] = rstd[k];
    }
    for (let p = 0, o = base; p < P; p++) {
      for (let k = 0, c = 0; k < G; k++) {
        const m = mean[k];
        const r = rstd[k];
        for (let j = 0; j < width; j++, c++, o++) {
          const xhat = (X[o] - m) * r;
          H[o] = xhat;
          U[o] = Ga[c] * xhat + Be[c];
        }
      }
    }
  }
  // The sigmoid goes through the backend's vectorised kernel: Math.exp per element costs more.
  const sInfo = runKernel(wasmKernel('Sigmoid'), { x: uInfo }, backend);
  const S = f32(backend, sInfo);
  U = f32(backend, uInfo);
  for (let i = 0; i < U.length; i++) U[i] *= S[i];
  return [uInfo, xhatInfo, sInfo, rstdInfo];
};

/** Inputs dy, xhat, sig [N, H, W, C], rstd [N, G], gamma, beta [C]; outputs dx, dgamma, dbeta. */
const backward: KernelFunc = ({ inputs, backend: rawBackend, attrs }) => {
  const backend = asWasmBackend(rawBackend);
  const { dy, xhat, sig, rstd, gamma, beta } = inputs as Record<
    'dy' | 'xhat' | 'sig' | 'rstd' | 'gamma' | 'beta',
    TensorInfo
  >;
  const { groups: G } = attrs as unknown as GroupNormSiluAttrs;
  const [N, P, C] = extent(xhat);
  const width = C / G;
  const count = P * width;
  const dxInfo = backend.makeOutput(xhat.shape, 'float32');
  const dgInfo = backend.makeOutput([C], 'float32');
  const dbetaInfo = backend.makeOutput([C], 'float32');
  const DY = f32(backend, dy);
  const H = f32(backend, xhat);
  const S = f32(backend, sig);
  const R = f32(backend, rstd);
  const Ga = f32(backend, gamma);
  const Be = f32(backend, beta);
  const DX = f32(backend, dxInfo);
  const dg = new Float64Array(C);
  const dbeta = new Float64Array(C);
  const gSum = new Float64Array(G);
  const gxSum = new Float64Array(G);
  for (let n = 0; n < N; n++) {
    const base = n * P * C;
    gSum.fill(0);
    gxSum.fill(0);
    for (let p = 0, o = base; p < P; p++) {
      for (let k = 0, c = 0; k < G; k++) {
        let gs = 0;
        let gxs = 0;
        for (let j = 0; j < width; j++, c++, o++) {
          const h = H[o];
          const u = Ga[c] * h + Be[c];
          const s = S[o];
          const du = DY[o] * s * (1 + u * (1 - s));
          dg[c] += du * h;
          dbeta[c] += du;
          const g = du * Ga[c];
          // dx holds g until the group means are known.
          DX[o] = g;
          gs += g;
          gxs += g * h;
        }
        gSum[k] += gs;
        gxSum[k] += gxs;
      }
    }
    for (let k = 0; k < G; k++) {
      gSum[k] /= count;
      gxSum[k] /= count;
    }
    for (let p = 0, o = base; p < P; p++) {
      for (let k = 0; k < G; k++) {
        const r = R[n * G + k];
        const gm = gSum[k];
        const gxm = gxSum[k];
        for (let j = 0; j < width; j++, o++) DX[o] = r * (DX[o] - gm - H[o] * gxm);
      }
    }
  }
  f32(backend, dgInfo).set(dg);
  f32(backend, dbetaInfo).set(dbeta);
  return [dxInfo, dgInfo, dbetaInfo];
};

const configs: KernelConfig[] = [
  { kernelName: GROUP_NORM_SILU, backendName: WASM, kernelFunc: forward },
  { kernelName: GROUP_NORM_SILU_GRAD, backendName: WASM, kernelFunc: backward },
];

/**
 * SiLU(GroupNorm(x) * gamma + beta) for NHWC x as one taped op whose gradient is the fused
 * backward kernel. Callers check `fusedLayersEnabled()` (layer-norm-silu.ts) first.
 */
export function groupNormSilu(
  x: tf.Tensor4D,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  groups: number,
  epsilon: number,
): tf.Tensor4D {
  registerOnce(configs);
  return tapedKernelOp(
    {
      forward: GROUP_NORM_SILU,
      backward: GROUP_NORM_SILU_GRAD,
      saved: ['xhat', 'sig', 'rstd'],
      reused: ['gamma', 'beta'],
    },
    [
      ['x', x],
      ['gamma', gamma],
      ['beta', beta],
    ],
    { groups, epsilon },
  ) as tf.Tensor4D;
}
