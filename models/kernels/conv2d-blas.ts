/**
 * 2-D convolution, forward and both gradients, as im2col + OpenBLAS `sgemm` on the wasm
 * heap, for NHWC inputs with dilation 1 (everything else goes to the kernel it replaces).
 *
 * With col = im2col(x), [B·OH·OW, K], K = KH·KW·CI (im2col.ts), W = w viewed as [K, CO] and
 * δ = ∂L/∂y viewed as [B·OH·OW, CO]:
 *
 *   y     = col · W            (NHWC output is exactly the row-major product)
 *   ∂L/∂w = colᵀ · δ           (sgemm reads col transposed in place; chunk products accumulate, β = 1)
 *   ∂L/∂x = col2im(δ · Wᵀ)     (sgemm reads W transposed in place)
 *
 * With stride 1 no column matrix is built at all. On the zero-padded grid (Hp = OH + KH − 1,
 * Wp = OW + KW − 1) flattened to rows r = (b·Hp + h)·Wp + w, tap (i, j) of output row r is
 * input row r + i·Wp + j, so with xp the padded input viewed as [rows, CI], δp the output
 * gradient on that grid (zero off the valid outputs) and w_ij = w[i, j] as [CI, CO]:
 *
 *   yp    = Σ_ij shift_ij(xp) · w_ij          (KH·KW products, β = 1 accumulates)
 *   ∂L/∂w_ij = shift_ij(xp)ᵀ · δp
 *   ∂L/∂xp  = Σ_ij unshift_ij(δp · w_ijᵀ)
 *
 * where a shift is only a pointer offset, so each product reads the padded image in place.
 * Rows in the padding are computed and dropped: +15 % work at 28x28, for no gather at all.
 *
 * Why: the U-Net's time goes to convolutions (`node --cpu-prof` on bench/unet.ts: XNNPACK's
 * Conv2D and the transposed im2col of the filter gradient were 40 % of a step). WebAssembly
 * SIMD has 128-bit lanes and no FMA; the machine's OpenBLAS runs AVX2+FMA. The column
 * matrix here is laid out row by row, so building it is a run of contiguous copies of KW·CI
 * floats, not the strided gather a transposed layout needs. A 1x1 stride-1 convolution
 * needs no columns at all: x viewed as [B·H·W, CI] is its column matrix.
 *
 * Results depend only on the inputs and OpenBLAS's kernel for this CPU (held to one
 * thread), so they are the same for any number of data-parallel threads.
 * Reference: Chellapilla, Puri & Simard (2006); Caffe's conv_layer (im2col + GEMM);
 * BLAS level 3 sgemm (Dongarra et al. 1990).
 */
import {
  Conv2D,
  Conv2DBackpropFilter,
  Conv2DBackpropInput,
  backend_util,
  type Conv2DAttrs,
  type Conv2DBackpropFilterAttrs,
  type Conv2DBackpropInputAttrs,
  type KernelConfig,
  type KernelFunc,
  type TensorInfo,
} from '@tensorflow/tfjs-core';

import type { Sgemm } from './blas.js';
import { col2imAdd, im2col, imagesPerChunk, patchSize, type PatchGeometry, patchGeometry } from './im2col.js';
import { WASM, asWasmBackend, f32, runKernel } from './wasm.js';

const ROW_MAJOR = 101;
const NO_TRANS = 111;
const TRANS = 112;

/**
 * Scratch for column matrices and padded grids, outside the wasm heap: reused across calls,
 * so they never grow (and detach) the heap. One set per thread, as modules are.
 */
const scratch = [new Float32Array(0), new Float32Array(0)];

function buffer(slot: 0 | 1, floats: number): Float32Array {
  if (scratch[slot].length < floats) scratch[slot] = new Float32Array(floats);
  return scratch[slot].subarray(0, floats);
}

const columns = (floats: number) => buffer(0, floats);

/** The padded grid of a stride-1 convolution; null for strided ones (they use columns). */
interface PaddedGrid {
  hp: number;
  wp: number;
  /** Grid rows computed: B·Hp·Wp. */
  rows: number;
  /** Zero rows after the grid, so the last tap's shifted view stays inside the buffer. */
  slack: number;
}

function paddedGrid(g: PatchGeometry): PaddedGrid | null {
  if (g.strideH !== 1 || g.strideW !== 1) return null;
  const hp = g.outH + g.kH - 1;
  const wp = g.outW + g.kW - 1;
  if (g.padTop < 0 || g.padLeft < 0 || g.padTop + g.inH > hp || g.padLeft + g.inW > wp) return null;
  return { hp, wp, rows: g.batch * hp * wp, slack: (g.kH - 1) * wp + g.kW - 1 };
}

/** Copies NHWC x into the zeroed padded grid, each image row one contiguous run. */
function padInput(x: Float32Array, g: PatchGeometry, p: PaddedGrid, xp: Float32Array): void {
  xp.fill(0);
  const run = g.inW * g.inC;
  for (let b = 0; b < g.batch; b++) {
    for (let ih = 0; ih < g.inH; ih++) {
      const src = (b * g.inH + ih) * run;
      xp.set(x.subarray(src, src + run), ((b * p.hp + ih + g.padTop) * p.wp + g.padLeft) * g.inC);
    }
  }
}

/** Lays the output gradient on the grid, zero at the rows that are not outputs. */
function padOutput(dy: Float32Array, g: PatchGeometry, p: PaddedGrid, dyp: Float32Array): void {
  dyp.fill(0);
  const run = g.outW * g.outC;
  for (let b = 0; b < g.batch; b++) {
    for (let oh = 0; oh < g.outH; oh++) {
      const src = (b * g.outH + oh) * run;
      dyp.set(dy.subarray(src, src + run), (b * p.hp + oh) * p.wp * g.outC);
    }
  }
}

/** Whether x viewed as [B·H·W, CI] is already the column matrix (1x1, stride 1, no padding). */
function pointwise(g: PatchGeometry): boolean {
  return g.kH === 1 && g.kW === 1 && g.strideH === 1 && g.strideW === 1 && g.padTop === 0 && g.padLeft === 0;
}

type Shape4 = [number, number, number, number];

/** The shared attributes of the three kernels. */
interface ConvAttrs {
  strides: Conv2DAttrs['strides'];
  pad: Conv2DAttrs['pad'];
  dataFormat: Conv2DAttrs['dataFormat'];
  dimRoundingMode?: Conv2DAttrs['dimRoundingMode'];
  dilations?: Conv2DAttrs['dilations'];
}

/** The geometry of an NHWC convolution with dilation 1; null for what the fallback handles. */
function nhwcGeometry(xShape: Shape4, filterShape: Shape4, attrs: ConvAttrs): PatchGeometry | null {
  const info = backend_util.computeConv2DInfo(
    xShape,
    filterShape,
    attrs.strides,
    attrs.dilations ?? 1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    backend_util.convertConv2DDataFormat(attrs.dataFormat),
  );
  if (info.dataFormat !== 'channelsLast' || info.dilationHeight !== 1 || info.dilationWidth !== 1) return null;
  return patchGeometry(info);
}

/** Conv2D, Conv2DBackpropFilter and Conv2DBackpropInput on `sgemm`; `fallback` holds what they replace. */
export function blasConvConfigs(sgemm: Sgemm, fallback: Record<string, KernelConfig | undefined>): KernelConfig[] {
  const conv2d: KernelFunc = ({ inputs, backend: rawBackend, attrs = {} }) => {
    const backend = asWasmBackend(rawBackend);
    const { x, filter } = inputs as { x: TensorInfo; filter: TensorInfo };
    const g = nhwcGeometry(x.shape as Shape4, filter.shape as Shape4, attrs as unknown as Conv2DAttrs);
    if (g === null || x.dtype !== 'float32' || filter.dtype !== 'float32') {
      return runKernel(fallback[Conv2D], inputs, backend, attrs);
    }
    const out = backend.makeOutput([g.batch, g.outH, g.outW, g.outC], 'float32');
    const k = patchSize(g);
    const rowsPerImage = g.outH * g.outW;
    // Views only after the allocation above, which may have grown (and detached) the heap.
    const X = f32(backend, x);
    const W = f32(backend, filter);
    const Y = f32(backend, out);
    if (pointwise(g)) {
      const rows = g.batch * rowsPerImage;
      sgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, rows, g.outC, k, 1, X, k, W, g.outC, 0, Y, g.outC);
      return out;
    }
    const grid = paddedGrid(g);
    if (grid !== null) {
      const { inC: ci, outC: co } = g;
      const xp = buffer(0, (grid.rows + grid.slack) * ci);
      const yp = buffer(1, grid.rows * co);
      padInput(X, g, grid, xp);
      for (let i = 0, t = 0; i < g.kH; i++) {
        for (let j = 0; j < g.kW; j++, t++) {
          const tap = xp.subarray((i * grid.wp + j) * ci);
          const w = W.subarray(t * ci * co);
          sgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, grid.rows, co, ci, 1, tap, ci, w, co, t === 0 ? 0 : 1, yp, co);
        }
      }
      const run = g.outW * co;
      for (let b = 0; b < g.batch; b++) {
        for (let oh = 0; oh < g.outH; oh++) {
          const src = (b * grid.hp + oh) * grid.wp * co;
          Y.set(yp.subarray(src, src + run), (b * g.outH + oh) * run);
        }
      }
      return out;
    }
    const perChunk = imagesPerChunk(g);
    for (let b0 = 0; b0 < g.batch; b0 += perChunk) {
      const nb = Math.min(perChunk, g.batch - b0);
      const rows = nb * rowsPerImage;
      const col = columns(rows * k);
      im2col(X, g, b0, nb, col);
      const first = b0 * rowsPerImage * g.outC;
      sgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, rows, g.outC, k, 1, col, k, W, g.outC, 0, Y.subarray(first), g.outC);
    }
    return out;
  };

  const backpropFilter: KernelFunc = ({ inputs, backend: rawBackend, attrs = {} }) => {
    const backend = asWasmBackend(rawBackend);
    const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
    const { filterShape } = attrs as unknown as Conv2DBackpropFilterAttrs;
    const g = nhwcGeometry(x.shape as Shape4, filterShape, attrs as unknown as Conv2DBackpropFilterAttrs);
    if (g === null || x.dtype !== 'float32' || dy.dtype !== 'float32') {
      return runKernel(fallback[Conv2DBackpropFilter], inputs, backend, attrs);
    }
    const dw = backend.makeOutput([...filterShape], 'float32');
    const k = patchSize(g);
    const co = g.outC;
    const rowsPerImage = g.outH * g.outW;
    const X = f32(backend, x);
    const D = f32(backend, dy);
    const DW = f32(backend, dw);
    if (g.batch === 0) {
      DW.fill(0);
      return dw;
    }
    if (pointwise(g)) {
      const rows = g.batch * rowsPerImage;
      sgemm(ROW_MAJOR, TRANS, NO_TRANS, k, co, rows, 1, X, k, D, co, 0, DW, co);
      return dw;
    }
    const grid = paddedGrid(g);
    if (grid !== null) {
      const ci = g.inC;
      const xp = buffer(0, (grid.rows + grid.slack) * ci);
      const dyp = buffer(1, grid.rows * co);
      padInput(X, g, grid, xp);
      padOutput(D, g, grid, dyp);
      for (let i = 0, t = 0; i < g.kH; i++) {
        for (let j = 0; j < g.kW; j++, t++) {
          const tap = xp.subarray((i * grid.wp + j) * ci);
          sgemm(ROW_MAJOR, TRANS, NO_TRANS, ci, co, grid.rows, 1, tap, ci, dyp, co, 0, DW.subarray(t * ci * co), co);
        }
      }
      return dw;
    }
    const perChunk = imagesPerChunk(g);
    for (let b0 = 0; b0 < g.batch; b0 += perChunk) {
      const nb = Math.min(perChunk, g.batch - b0);
      const rows = nb * rowsPerImage;
      const col = columns(rows * k);
      im2col(X, g, b0, nb, col);
      const delta = D.subarray(b0 * rowsPerImage * co);
      sgemm(ROW_MAJOR, TRANS, NO_TRANS, k, co, rows, 1, col, k, delta, co, b0 === 0 ? 0 : 1, DW, co);
    }
    return dw;
  };

  const backpropInput: KernelFunc = ({ inputs, backend: rawBackend, attrs = {} }) => {
    const backend = asWasmBackend(rawBackend);
    const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
    const { inputShape } = attrs as unknown as Conv2DBackpropInputAttrs;
    const g = nhwcGeometry(inputShape, filter.shape as Shape4, attrs as unknown as Conv2DBackpropInputAttrs);
    if (g === null || dy.dtype !== 'float32' || filter.dtype !== 'float32') {
      return runKernel(fallback[Conv2DBackpropInput], inputs, backend, attrs);
    }
    const dx = backend.makeOutput([g.batch, g.inH, g.inW, g.inC], 'float32');
    const k = patchSize(g);
    const co = g.outC;
    const rowsPerImage = g.outH * g.outW;
    const D = f32(backend, dy);
    const W = f32(backend, filter);
    const DX = f32(backend, dx);
    if (pointwise(g)) {
      const rows = g.batch * rowsPerImage;
      sgemm(ROW_MAJOR, NO_TRANS, TRANS, rows, k, co, 1, D, co, W, co, 0, DX, k);
      return dx;
    }
    const grid = paddedGrid(g);
    if (grid !== null) {
      const ci = g.inC;
      const dyp = buffer(0, grid.rows * co);
      const dxp = buffer(1, (grid.rows + grid.slack) * ci);
      padOutput(D, g, grid, dyp);
      dxp.fill(0);
      for (let i = 0, t = 0; i < g.kH; i++) {
        for (let j = 0; j < g.kW; j++, t++) {
          const tap = dxp.subarray((i * grid.wp + j) * ci);
          sgemm(ROW_MAJOR, NO_TRANS, TRANS, grid.rows, ci, co, 1, dyp, co, W.subarray(t * ci * co), co, 1, tap, ci);
        }
      }
      const run = g.inW * ci;
      for (let b = 0; b < g.batch; b++) {
        for (let ih = 0; ih < g.inH; ih++) {
          const src = ((b * grid.hp + ih + g.padTop) * grid.wp + g.padLeft) * ci;
          DX.set(dxp.subarray(src, src + run), (b * g.inH + ih) * run);
        }
      }
      return dx;
    }
    DX.fill(0);
    const perChunk = imagesPerChunk(g);
    for (let b0 = 0; b0 < g.batch; b0 += perChunk) {
      const nb = Math.min(perChunk, g.batch - b0);
      const rows = nb * rowsPerImage;
      const dcol = columns(rows * k);
      const delta = D.subarray(b0 * rowsPerImage * co);
      sgemm(ROW_MAJOR, NO_TRANS, TRANS, rows, k, co, 1, delta, co, W, co, 0, dcol, k);
      col2imAdd(dcol, g, b0, nb, DX);
    }
    return dx;
  };

  const config = (kernelName: string, kernelFunc: KernelFunc): KernelConfig => ({
    kernelName,
    backendName: WASM,
    kernelFunc,
    setupFunc: fallback[kernelName]?.setupFunc,
    disposeFunc: fallback[kernelName]?.disposeFunc,
  });
  return [
    config(Conv2D, conv2d),
    config(Conv2DBackpropFilter, backpropFilter),
    config(Conv2DBackpropInput, backpropInput),
  ];
}
