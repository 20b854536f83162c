/**
 * Conv2D (NHWC, dilation 1) on the wasm backend as im2col + one OpenBLAS product per chunk
 * of images: y = colᵀᵀ · w, with colᵀ [KH·KW·CI, rows] from `im2colTransposed` and w viewed
 * as [KH·KW·CI, CO] (im2col.ts has the identity). Installed with the OpenBLAS GEMM only:
 * after it, XNNPACK's convolution is the U-Net's top frame in `node --cpu-prof`.
 * Reference: Chellapilla, Puri & Simard (2006); BLAS sgemm.
 */
import {
  Conv2D,
  backend_util,
  type Conv2DAttrs,
  type KernelConfig,
  type KernelFunc,
  type TensorInfo,
} from '@tensorflow/tfjs-core';

import type { BlasProbe } from './blas.js';
import { im2colTransposed, imagesPerChunk, patchGeometry, patchSize } from './im2col.js';
import { WASM, asWasmBackend, f32, release, runKernel } from './wasm.js';

const ROW_MAJOR = 101;
const NO_TRANS = 111;
const TRANS = 112;

export function blasConv2DConfig(blas: Extract<BlasProbe, { ok: true }>, fallback: KernelConfig): KernelConfig {
  const kernelFunc: KernelFunc = ({ inputs, backend: rawBackend, attrs = {} }) => {
    const backend = asWasmBackend(rawBackend);
    const { x, filter } = inputs as { x: TensorInfo; filter: TensorInfo };
    const { strides, pad, dataFormat, dilations, dimRoundingMode } = attrs as unknown as Conv2DAttrs;
    const dilated = typeof dilations === 'number' ? dilations !== 1 : dilations.some((d) => d !== 1);
    if (x.dtype !== 'float32' || filter.dtype !== 'float32' || dataFormat !== 'NHWC' || dilated) {
      return runKernel(fallback, inputs, backend, attrs);
    }
    const info = backend_util.computeConv2DInfo(
      x.shape as [number, number, number, number],
      filter.shape as [number, number, number, number],
      strides,
      1,
      pad,
      dimRoundingMode,
      false,
      'channelsLast',
    );
    const g = patchGeometry(info);
    const k = patchSize(g);
    const rowsPerImage = g.outH * g.outW;
    const out = backend.makeOutput([g.batch, g.outH, g.outW, g.outC], 'float32');
    if (out.shape.some((d) => d === 0)) return out;
    if (k === 0) {
      f32(backend, out).fill(0);
      return out;
    }
    const perChunk = imagesPerChunk(g);
    for (let b0 = 0; b0 < g.batch; b0 += perChunk) {
      const nb = Math.min(perChunk, g.batch - b0);
      const rows = nb * rowsPerImage;
      const colT = backend.makeOutput([k, rows], 'float32');
      // Views only after the allocation: it may have grown (and detached) the heap.
      const colView = f32(backend, colT);
      im2colTransposed(f32(backend, x), g, b0, nb, colView);
      const first = b0 * rowsPerImage * g.outC;
      blas.sgemm(
        ROW_MAJOR,
        TRANS,
        NO_TRANS,
        rows,
        g.outC,
        k,
        1,
        colView,
        rows,
        f32(backend, filter),
        g.outC,
        0,
        f32(backend, out).subarray(first, first + rows * g.outC),
        g.outC,
      );
      release(backend, colT);
    }
    return out;
  };
  return {
    kernelName: Conv2D,
    backendName: WASM,
    kernelFunc,
    setupFunc: fallback.setupFunc,
    disposeFunc: fallback.disposeFunc,
  };
}
