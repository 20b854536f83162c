/**
 * BatchMatMul and _FusedMatMul for the wasm backend with transposed operands made fast.
 *
 * The backend sends only `a · b` with both flags false to XNNPACK; with a transpose flag
 * it takes a generic path that measures 10-13x slower. Backprop through a dense
 * layer is exactly that case (∂L/∂W = xᵀ·δ, ∂L/∂x = δ·Wᵀ), so we rewrite each product
 * into a plain one with explicit transposes, using the identity
 *
 *   op(A)·op(B) = (op(B)ᵀ · op(A)ᵀ)ᵀ
 *
 * and choose between "transpose the flagged operands" and "swap, multiply, transpose the
 * product" by how many elements each would move (a thin product such as xᵀ·δ with a
 * 5-wide δ is far cheaper to form swapped). When even the cheaper rewrite moves more data
 * than the naive loop would spend on arithmetic, the original kernel runs unchanged.
 * Batched products (batch > 1) are not XNNPACK-backed either way, so they pass through.
 *
 * Reference: Golub & Van Loan, Matrix Computations (4th ed.), §1.1 on transposition in
 * matrix products; XNNPACK fully-connected operator (github.com/google/XNNPACK).
 */
import {
  BatchMatMul,
  _FusedMatMul,
  util,
  type BatchMatMulAttrs,
  type KernelConfig,
  type KernelFunc,
  type NamedAttrMap,
  type TensorInfo,
  type _FusedMatMulAttrs,
} from '@tensorflow/tfjs-core';

import { WASM, asWasmBackend, release, runKernel, transposeInner } from './wasm.js';

/**
 * Measured throughputs on the wasm backend (single thread, SIMD): the Transpose kernel
 * moves ~1.3e8 elements/s, XNNPACK multiplies at ~9e9 MAC/s and the naive transposed loop at
 * ~0.8e9 MAC/s. Only their ratios matter, in "seconds ×1e9" units.
 */
const MOVE_COST = 1 / 0.13;
const FAST_MAC_COST = 1 / 9;
const NAIVE_MAC_COST = 1 / 0.8;

interface Dims {
  batch: number;
  m: number;
  k: number;
  n: number;
}

function dims(a: TensorInfo, b: TensorInfo, transposeA: boolean, transposeB: boolean): Dims {
  const ra = a.shape.length;
  const rb = b.shape.length;
  const batch = Math.max(util.sizeFromShape(a.shape.slice(0, -2)), util.sizeFromShape(b.shape.slice(0, -2)));
  return {
    batch,
    m: transposeA ? a.shape[ra - 1] : a.shape[ra - 2],
    k: transposeA ? a.shape[ra - 2] : a.shape[ra - 1],
    n: transposeB ? b.shape[rb - 2] : b.shape[rb - 1],
  };
}

type Plan = 'naive' | 'direct' | 'swapped';

function planMatMul(d: Dims, transposeA: boolean, transposeB: boolean, allowSwap: boolean): Plan {
  if (!transposeA && !transposeB) return 'naive';
  if (d.batch !== 1) return 'naive';
  const sizeA = d.m * d.k;
  const sizeB = d.k * d.n;
  const macs = d.m * d.n * d.k;
  const naive = macs * NAIVE_MAC_COST;
  const direct = ((transposeA ? sizeA : 0) + (transposeB ? sizeB : 0)) * MOVE_COST + macs * FAST_MAC_COST;
  const swapped = ((transposeA ? 0 : sizeA) + (transposeB ? 0 : sizeB) + d.m * d.n) * MOVE_COST + macs * FAST_MAC_COST;
  if (allowSwap && swapped < direct && swapped < naive) return 'swapped';
  return direct < naive ? 'direct' : 'naive';
}

/** Wraps the backend's BatchMatMul; `original` is the config it registered. */
export function batchMatMulConfig(original: KernelConfig): KernelConfig {
  const kernelFunc: KernelFunc = ({ inputs, backend: rawBackend, attrs = {} }) => {
    const backend = asWasmBackend(rawBackend);
    const { a, b } = inputs as { a: TensorInfo; b: TensorInfo };
    const { transposeA, transposeB } = attrs as unknown as BatchMatMulAttrs;
    const plan = planMatMul(dims(a, b, transposeA, transposeB), transposeA, transposeB, true);
    if (plan === 'naive') return runKernel(original, inputs, backend, attrs);
    const plain: NamedAttrMap = { transposeA: false, transposeB: false };
    if (plan === 'direct') {
      const a2 = transposeA ? transposeInner(backend, a) : a;
      const b2 = transposeB ? transposeInner(backend, b) : b;
      const out = runKernel(original, { a: a2, b: b2 }, backend, plain);
      if (a2 !== a) release(backend, a2);
      if (b2 !== b) release(backend, b2);
      return out;
    }
    // swapped: Cᵀ = op(B)ᵀ·op(A)ᵀ, where op(X)ᵀ is X itself when X was flagged.
    const lhs = transposeB ? b : transposeInner(backend, b);
    const rhs = transposeA ? a : transposeInner(backend, a);
    const productT = runKernel(original, { a: lhs, b: rhs }, backend, plain);
    if (lhs !== b) release(backend, lhs);
    if (rhs !== a) release(backend, rhs);
    const out = transposeInner(backend, productT);
    release(backend, productT);
    return out;
  };
  return {
    kernelName: BatchMatMul,
    backendName: WASM,
    kernelFunc,
    setupFunc: original.setupFunc,
    disposeFunc: original.disposeFunc,
  };
}

/**
 * Wraps the backend's _FusedMatMul. Bias and activation act on the product's columns, so
 * only the "transpose the flagged operands" rewrite keeps them valid.
 */
export function fusedMatMulConfig(original: KernelConfig): KernelConfig {
  const kernelFunc: KernelFunc = ({ inputs, backend: rawBackend, attrs = {} }) => {
    const backend = asWasmBackend(rawBackend);
    const { a, b } = inputs as { a: TensorInfo; b: TensorInfo };
    const fused = attrs as unknown as _FusedMatMulAttrs;
    const plan = planMatMul(dims(a, b, fused.transposeA, fused.transposeB), fused.transposeA, fused.transposeB, false);
    if (plan === 'naive') return runKernel(original, inputs, backend, attrs);
    const a2 = fused.transposeA ? transposeInner(backend, a) : a;
    const b2 = fused.transposeB ? transposeInner(backend, b) : b;
    const out = runKernel(original, { ...inputs, a: a2, b: b2 }, backend, {
      ...attrs,
      transposeA: false,
      transposeB: false,
    });
    if (a2 !== a) release(backend, a2);
    if (b2 !== b) release(backend, b2);
    return out;
  };
  return {
    kernelName: _FusedMatMul,
    backendName: WASM,
    kernelFunc,
    setupFunc: original.setupFunc,
    disposeFunc: original.disposeFunc,
  };
}
