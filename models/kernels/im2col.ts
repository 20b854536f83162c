/**
 * im2col / col2im for NHWC 2-D convolution with dilation 1.
 *
 * A convolution y[b,oh,ow,co] = Σ_{kh,kw,ci} x[b, oh·sh − pt + kh, ow·sw − pl + kw, ci]·w[kh,kw,ci,co]
 * is a matrix product once every receptive field is laid out as a row:
 * col[(b,oh,ow), (kh,kw,ci)] = x[b, oh·sh − pt + kh, ow·sw − pl + kw, ci] (zero outside the
 * image), so y = col · w viewed as [KH·KW·CI, CO]. col2im is the adjoint: it scatter-adds a
 * column matrix back onto the image grid, which is how gradients reach x.
 * Reference: Chellapilla, Puri & Simard, "High Performance Convolutional Neural Networks
 * for Document Processing" (2006); Caffe's im2col.cpp.
 *
 * In NHWC the KW·CI values of one kernel row are contiguous in x whenever the whole row
 * lies inside the image, whatever the stride, so col2im's common case is one straight add.
 */
import type { backend_util } from '@tensorflow/tfjs-core';

export interface PatchGeometry {
  batch: number;
  inH: number;
  inW: number;
  inC: number;
  outH: number;
  outW: number;
  outC: number;
  kH: number;
  kW: number;
  strideH: number;
  strideW: number;
  padTop: number;
  padLeft: number;
}

export function patchGeometry(info: backend_util.Conv2DInfo): PatchGeometry {
  if (info.dilationHeight !== 1 || info.dilationWidth !== 1) {
    throw new RangeError('im2col supports dilation 1 only');
  }
  return {
    batch: info.batchSize,
    inH: info.inHeight,
    inW: info.inWidth,
    inC: info.inChannels,
    outH: info.outHeight,
    outW: info.outWidth,
    outC: info.outChannels,
    kH: info.filterHeight,
    kW: info.filterWidth,
    strideH: info.strideHeight,
    strideW: info.strideWidth,
    padTop: info.padInfo.top,
    padLeft: info.padInfo.left,
  };
}

/** Length of one column-matrix row: KH·KW·CI. */
export function patchSize(g: PatchGeometry): number {
  return g.kH * g.kW * g.inC;
}

/**
 * Upper bound on a column matrix, in floats (default 32 MiB): big enough that XNNPACK's
 * products run at full speed, small enough that the wasm heap (≤ 4 GiB) never holds a
 * whole large batch unfolded. The gradient kernels split the batch to stay under it.
 */
let columnBudget = 1 << 23;

/** Sets the column-matrix bound and returns the previous one. */
export function setColumnBudget(floats: number): number {
  if (!(floats >= 1)) throw new RangeError(`column budget must be ≥ 1 float, got ${floats}`);
  const previous = columnBudget;
  columnBudget = Math.floor(floats);
  return previous;
}

/** Images per chunk so that a chunk's column matrix stays under the budget (at least one). */
export function imagesPerChunk(g: PatchGeometry): number {
  return Math.max(1, Math.min(g.batch, Math.floor(columnBudget / (g.outH * g.outW * patchSize(g)))));
}

/**
 * Writes the transposed column matrix colᵀ, [KH·KW·CI, rows], of images [b0, b0+nb) of x
 * (NHWC). Laid out this way colᵀ is the left operand of ∂L/∂w = colᵀ·δ, so the backend
 * packs only the narrow δ as its right-hand "weights". The loops walk one input row at a
 * time (it stays in L1) and write runs of OW consecutive outputs.
 */
export function im2colTransposed(x: Float32Array, g: PatchGeometry, b0: number, nb: number, colT: Float32Array): void {
  const { inH, inW, inC: c, outH, outW, kH, kW, strideH, strideW, padTop, padLeft } = g;
  const rows = nb * outH * outW;
  const step = strideW * c;
  for (let b = b0; b < b0 + nb; b++) {
    const imageBase = b * inH * inW * c;
    for (let oh = 0; oh < outH; oh++) {
      const r0 = ((b - b0) * outH + oh) * outW;
      const ih0 = oh * strideH - padTop;
      for (let kh = 0; kh < kH; kh++) {
        const ih = ih0 + kh;
        const rowInside = ih >= 0 && ih < inH;
        const xRow = imageBase + ih * inW * c;
        for (let kw = 0; kw < kW; kw++) {
          // Output columns whose tap lands inside the row: 0 ≤ ow·sw − pl + kw < inW.
          const lo = rowInside ? Math.min(outW, Math.max(0, Math.ceil((padLeft - kw) / strideW))) : outW;
          const hi = rowInside
            ? Math.max(lo, Math.min(outW, Math.floor((inW - 1 + padLeft - kw) / strideW) + 1))
            : outW;
          for (let ci = 0; ci < c; ci++) {
            const dst = ((kh * kW + kw) * c + ci) * rows + r0;
            if (lo > 0) colT.fill(0, dst, dst + lo);
            let src = xRow + (lo * strideW - padLeft + kw) * c + ci;
            for (let ow = lo; ow < hi; ow++, src += step) colT[dst + ow] = x[src];
            if (hi < outW) colT.fill(0, dst + hi, dst + outW);
          }
        }
      }
    }
  }
}

/**
 * Writes col, [nb·OH·OW, KH·KW·CI], for images [b0, b0 + nb) of x (NHWC). Each receptive
 * field's kernel row is KW·CI contiguous floats of x when it lies inside the image, so the
 * common case is one straight copy; taps in the padding are zeros.
 */
export function im2col(x: Float32Array, g: PatchGeometry, b0: number, nb: number, col: Float32Array): void {
  const { inH, inW, inC: c, outH, outW, kH, kW, strideH, strideW, padTop, padLeft } = g;
  const rowLen = kW * c;
  let dst = 0;
  for (let b = b0; b < b0 + nb; b++) {
    const imageBase = b * inH * inW * c;
    for (let oh = 0; oh < outH; oh++) {
      const ih0 = oh * strideH - padTop;
      for (let ow = 0; ow < outW; ow++) {
        const iw0 = ow * strideW - padLeft;
        const inside = iw0 >= 0 && iw0 + kW <= inW;
        for (let kh = 0; kh < kH; kh++, dst += rowLen) {
          const ih = ih0 + kh;
          if (ih < 0 || ih >= inH) {
            col.fill(0, dst, dst + rowLen);
            continue;
          }
          const src = imageBase + (ih * inW + iw0) * c;
          if (inside) {
            for (let i = 0; i < rowLen; i++) col[dst + i] = x[src + i];
            continue;
          }
          for (let kw = 0; kw < kW; kw++) {
            const iw = iw0 + kw;
            const d = dst + kw * c;
            if (iw < 0 || iw >= inW) col.fill(0, d, d + c);
            else for (let i = 0, s = src + kw * c; i < c; i++) col[d + i] = x[s + i];
          }
        }
      }
    }
  }
}

/** Adds the column matrix of images [b0, b0+nb) onto dx (NHWC): the adjoint of im2col. */
export function col2imAdd(col: Float32Array, g: PatchGeometry, b0: number, nb: number, dx: Float32Array): void {
  const { inH, inW, inC: c, outH, outW, kH, kW, strideH, strideW, padTop, padLeft } = g;
  const rowLen = kW * c;
  let src = 0;
  for (let b = b0; b < b0 + nb; b++) {
    const imageBase = b * inH * inW * c;
    for (let oh = 0; oh < outH; oh++) {
      const ih0 = oh * strideH - padTop;
      for (let ow = 0; ow < outW; ow++) {
        const iw0 = ow * strideW - padLeft;
        const inside = iw0 >= 0 && iw0 + kW <= inW;
        for (let kh = 0; kh < kH; kh++, src += rowLen) {
          const ih = ih0 + kh;
          if (ih < 0 || ih >= inH) continue;
          const dst = imageBase + (ih * inW + iw0) * c;
          if (inside) {
            for (let i = 0; i < rowLen; i++) dx[dst + i] += col[src + i];
            continue;
          }
          for (let kw = 0; kw < kW; kw++) {
            const iw = iw0 + kw;
            if (iw < 0 || iw >= inW) continue;
            const d = dst + kw * c;
            const s = src + kw * c;
            for (let i = 0; i < c; i++) dx[d + i] += col[s + i];
          }
        }
      }
    }
  }
}
