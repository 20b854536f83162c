/**
 * One hidden layer's elementwise tail, fused: bias, LayerNorm (Ba, Kiros & Hinton 2016) and
 * SiLU (Elfwing et al. 2018), forward and backward, as two wasm-backend kernels looping over
 * the heap in place. Unfused, the tail is ~12 tfjs ops forward and ~30 backward, each a
 * full pass over [rows, width] plus dispatch and tape overhead: at the manifold MLP's size
 * that, not the matrix products, bounds a training step (`node --cpu-prof`).
 *
 *   z = x + b,  xhat = (z - mean(z)) * rstd,  rstd = 1 / sqrt(var(z) + eps)   (per row)
 *   u = gamma * xhat + beta,  y = u * sigmoid(u)
 *
 *   du = dy * s * (1 + u (1 - s)),  s = sigmoid(u)
 *   dgamma = sum_rows du * xhat,  dbeta = sum_rows du
 *   dz = rstd * (g - mean(g) - xhat * mean(g * xhat)),  g = du * gamma;  db = sum_rows dz
 *
 * Row statistics and column sums accumulate in float64 in a fixed order, so the result
 * does not depend on anything but the inputs.
 */
import { type KernelConfig, type KernelFunc, type NamedAttrMap, type TensorInfo } from '@tensorflow/tfjs-core';

import * as tf from '../tf.js';
import { registerOnce, tapedKernelOp } from './taped-op.js';
import { WASM, asWasmBackend, f32, runKernel, wasmKernel } from './wasm.js';

export const BIAS_LAYER_NORM_SILU = 'DiffemBiasLayerNormSilu';
export const BIAS_LAYER_NORM_SILU_GRAD = 'DiffemBiasLayerNormSiluGrad';

export interface LayerNormSiluAttrs extends NamedAttrMap {
  epsilon: number;
}

/**
 * Inputs x [N, C], bias, gamma, beta [C]; outputs y, xhat, sigmoid(u) [N, C] and rstd [N].
 * The sigmoid goes through the backend's own (vectorised) kernel: Math.exp per element would
 * cost more than the rest of the layer.
 */
const forward: KernelFunc = ({ inputs, backend: rawBackend, attrs }) => {
  const backend = asWasmBackend(rawBackend);
  const { x, bias, gamma, beta } = inputs as Record<'x' | 'bias' | 'gamma' | 'beta', TensorInfo>;
  const { epsilon } = attrs as unknown as LayerNormSiluAttrs;
  const C = x.shape[x.shape.length - 1];
  const N = x.shape.reduce((a, b) => a * b, 1) / C;
  const uInfo = backend.makeOutput(x.shape, 'float32');
  const xhatInfo = backend.makeOutput(x.shape, 'float32');
  const rstdInfo = backend.makeOutput([N], 'float32');
  // Views only after the last allocation: allocating may detach earlier ones.
  const X = f32(backend, x);
  const B = f32(backend, bias);
  const G = f32(backend, gamma);
  const Be = f32(backend, beta);
  let U = f32(backend, uInfo);
  const H = f32(backend, xhatInfo);
  const R = f32(backend, rstdInfo);
  for (let r = 0; r < N; r++) {
    const o = r * C;
    // One pass for both moments, two accumulators each to break the add chains; float64
    // keeps E[z^2] - mean^2 exact enough at any activation scale a network reaches.
    let s0 = 0;
    let s1 = 0;
    let q0 = 0;
    let q1 = 0;
    let c = 0;
    for (; c + 1 < C; c += 2) {
      const z0 = X[o + c] + B[c];
      const z1 = X[o + c + 1] + B[c + 1];
      s0 += z0;
      s1 += z1;
      q0 += z0 * z0;
      q1 += z1 * z1;
    }
    if (c < C) {
      const z = X[o + c] + B[c];
      s0 += z;
      q0 += z * z;
    }
    const mean = (s0 + s1) / C;
    const variance = Math.max(0, (q0 + q1) / C - mean * mean);
    const rstd = 1 / Math.sqrt(variance + epsilon);
    R[r] = rstd;
    for (c = 0; c < C; c++) {
      const xhat = (X[o + c] + B[c] - mean) * rstd;
      H[o + c] = xhat;
      U[o + c] = G[c] * xhat + Be[c];
    }
  }
  const sInfo = runKernel(wasmKernel('Sigmoid'), { x: uInfo }, backend);
  const S = f32(backend, sInfo);
  U = f32(backend, uInfo);
  // y = u * sigmoid(u), written over u.
  for (let i = 0; i < U.length; i++) U[i] *= S[i];
  return [uInfo, xhatInfo, sInfo, rstdInfo];
};

/** Inputs dy, xhat, sig [N, C], rstd [N], gamma, beta [C]; outputs dx [N, C], db, dgamma, dbeta [C]. */
const backward: KernelFunc = ({ inputs, backend: rawBackend }) => {
  const backend = asWasmBackend(rawBackend);
  const { dy, xhat, sig, rstd, gamma, beta } = inputs as Record<
    'dy' | 'xhat' | 'sig' | 'rstd' | 'gamma' | 'beta',
    TensorInfo
  >;
  const C = xhat.shape[xhat.shape.length - 1];
  const N = xhat.shape.reduce((a, b) => a * b, 1) / C;
  const dxInfo = backend.makeOutput(xhat.shape, 'float32');
  const dbInfo = backend.makeOutput([C], 'float32');
  const dgInfo = backend.makeOutput([C], 'float32');
  const dbetaInfo = backend.makeOutput([C], 'float32');
  const DY = f32(backend, dy);
  const H = f32(backend, xhat);
  const S = f32(backend, sig);
  const R = f32(backend, rstd);
  const G = f32(backend, gamma);
  const Be = f32(backend, beta);
  const DX = f32(backend, dxInfo);
  const db = new Float64Array(C);
  const dg = new Float64Array(C);
  const dbeta = new Float64Array(C);
  for (let r = 0; r < N; r++) {
    const o = r * C;
    let gSum = 0;
    let gxSum = 0;
    for (let c = 0; c < C; c++) {
      const h = H[o + c];
      const u = G[c] * h + Be[c];
      const s = S[o + c];
      const du = DY[o + c] * s * (1 + u * (1 - s));
      dg[c] += du * h;
      dbeta[c] += du;
      const gc = du * G[c];
      // dx holds g = du * gamma until the row's means are known.
      DX[o + c] = gc;
      gSum += gc;
      gxSum += gc * h;
    }
    const gMean = gSum / C;
    const gxMean = gxSum / C;
    const rs = R[r];
    for (let c = 0; c < C; c++) {
      const dz = rs * (DX[o + c] - gMean - H[o + c] * gxMean);
      DX[o + c] = dz;
      db[c] += dz;
    }
  }
  f32(backend, dbInfo).set(db);
  f32(backend, dgInfo).set(dg);
  f32(backend, dbetaInfo).set(dbeta);
  return [dxInfo, dbInfo, dgInfo, dbetaInfo];
};

const configs: KernelConfig[] = [
  { kernelName: BIAS_LAYER_NORM_SILU, backendName: WASM, kernelFunc: forward },
  { kernelName: BIAS_LAYER_NORM_SILU_GRAD, backendName: WASM, kernelFunc: backward },
];

let enabled = false;

/** Whether `biasLayerNormSilu` runs fused (set by `initBackend` with kernels 'fast' on wasm). */
export function setFusedLayers(on: boolean): void {
  if (on) registerOnce(configs);
  enabled = on;
}

export function fusedLayersEnabled(): boolean {
  return enabled && tf.getBackend() === WASM;
}

/**
 * SiLU(LayerNorm(x + bias) * gamma + beta) over the last axis as one taped op whose
 * gradient is the fused backward kernel.
 */
export function biasLayerNormSilu(
  x: tf.Tensor2D,
  bias: tf.Tensor,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  epsilon: number,
): tf.Tensor2D {
  return tapedKernelOp(
    {
      forward: BIAS_LAYER_NORM_SILU,
      backward: BIAS_LAYER_NORM_SILU_GRAD,
      saved: ['xhat', 'sig', 'rstd'],
      reused: ['gamma', 'beta'],
    },
    [
      ['x', x],
      ['bias', bias],
      ['gamma', gamma],
      ['beta', beta],
    ],
    { epsilon },
  ) as tf.Tensor2D;
}
