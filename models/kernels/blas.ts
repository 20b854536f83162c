/**
 * BatchMatMul on the wasm backend through the machine's OpenBLAS (`cblas_sgemm`), called in
 * place on the wasm heap through the `koffi` FFI: no copies, and every transpose flag is
 * handed to BLAS as is.
 *
 * Why: WebAssembly SIMD is 128 bits wide and has no fused multiply-add, so XNNPACK's wasm
 * GEMM peaks at a quarter of an AVX2+FMA core's flops; training the dense networks is
 * GEMM-bound (`node --cpu-prof`: the XNNPACK micro-kernel is the top frame). OpenBLAS picks
 * its kernel for the CPU it runs on, so results are reproducible on one machine but may
 * differ in the last bits between CPU models: that is why it is opt-in (`runtime.gemm`).
 * OpenBLAS is held to one thread: the data-parallel shards are the threads.
 *
 * Reference: BLAS level 3 `sgemm` (Dongarra et al., ACM TOMS 16(1), 1990); OpenBLAS
 * (Xianyi, Qian & Wang), row-major CBLAS interface.
 */
import {
  BatchMatMul,
  util,
  type BatchMatMulAttrs,
  type KernelConfig,
  type KernelFunc,
  type TensorInfo,
} from '@tensorflow/tfjs-core';

import { WASM, asWasmBackend, f32, runKernel } from './wasm.js';

export type Sgemm = (
  order: number,
  transA: number,
  transB: number,
  m: number,
  n: number,
  k: number,
  alpha: number,
  a: Float32Array,
  lda: number,
  b: Float32Array,
  ldb: number,
  beta: number,
  c: Float32Array,
  ldc: number,
) => void;

const ROW_MAJOR = 101;
const NO_TRANS = 111;
const TRANS = 112;

interface KoffiLibrary {
  func(signature: string): (...args: unknown[]) => unknown;
}

export type BlasProbe = { ok: true; sgemm: Sgemm } | { ok: false; reason: string };

let probe: Promise<BlasProbe> | null = null;

/** Loads `cblas_sgemm` once per thread; `reason` says what to install when it cannot. */
export function loadOpenBlas(): Promise<BlasProbe> {
  probe ??= (async (): Promise<BlasProbe> => {
    // A string-typed specifier keeps the compiler from resolving an optional package.
    const specifier: string = 'koffi';
    let load: (path: string) => KoffiLibrary;
    try {
      const module = (await import(specifier)) as { default: { load: (path: string) => KoffiLibrary } };
      load = module.default.load;
    } catch {
      return { ok: false, reason: 'the FFI package koffi is not installed (npm install koffi)' };
    }
    const path = process.env.DIFFEM_OPENBLAS ?? 'libopenblas.so.0';
    try {
      const lib = load(path);
      const sgemm = lib.func(
        'void cblas_sgemm(int, int, int, int, int, int, float, float *, int, float *, int, float, _Inout_ float *, int)',
      ) as Sgemm;
      lib.func('void openblas_set_num_threads(int)')(1);
      return { ok: true, sgemm };
    } catch (error) {
      const why = error instanceof Error ? error.message : String(error);
      return { ok: false, reason: `OpenBLAS (${path}) failed to load: ${why} (apt-get install libopenblas0-pthread)` };
    }
  })();
  return probe;
}

/** Outer (batch) shapes a · b can multiply here: equal, or one side a single matrix. */
function outerShape(a: TensorInfo, b: TensorInfo): number[] | null {
  const outerA = a.shape.slice(0, -2);
  const outerB = b.shape.slice(0, -2);
  if (outerA.join(',') === outerB.join(',')) return outerA;
  if (util.sizeFromShape(outerB) === 1 && outerB.length <= outerA.length) return outerA;
  if (util.sizeFromShape(outerA) === 1 && outerA.length <= outerB.length) return outerB;
  return null;
}

/** A BatchMatMul on `sgemm`; anything it does not cover goes to `fallback`. */
export function blasBatchMatMulConfig(sgemm: Sgemm, fallback: KernelConfig): KernelConfig {
  const kernelFunc: KernelFunc = ({ inputs, backend: rawBackend, attrs = {} }) => {
    const backend = asWasmBackend(rawBackend);
    const { a, b } = inputs as { a: TensorInfo; b: TensorInfo };
    const { transposeA, transposeB } = attrs as unknown as BatchMatMulAttrs;
    const outer = outerShape(a, b);
    const ra = a.shape.length;
    const rb = b.shape.length;
    const m = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
    const k = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
    const n = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
    if (a.dtype !== 'float32' || b.dtype !== 'float32' || outer === null || m * n * k === 0) {
      return runKernel(fallback, inputs, backend, attrs);
    }
    const out = backend.makeOutput([...outer, m, n], 'float32');
    // Views only now: the allocation above may have grown (and detached) the heap.
    const A = f32(backend, a);
    const B = f32(backend, b);
    const C = f32(backend, out);
    const batches = util.sizeFromShape(outer);
    const strideA = A.length === m * k ? 0 : m * k;
    const strideB = B.length === k * n ? 0 : k * n;
    for (let i = 0; i < batches; i++) {
      sgemm(
        ROW_MAJOR,
        transposeA ? TRANS : NO_TRANS,
        transposeB ? TRANS : NO_TRANS,
        m,
        n,
        k,
        1,
        A.subarray(i * strideA, i * strideA + m * k),
        transposeA ? m : k,
        B.subarray(i * strideB, i * strideB + k * n),
        transposeB ? k : n,
        0,
        C.subarray(i * m * n, (i + 1) * m * n),
        n,
      );
    }
    return out;
  };
  return {
    kernelName: BatchMatMul,
    backendName: WASM,
    kernelFunc,
    setupFunc: fallback.setupFunc,
    disposeFunc: fallback.disposeFunc,
  };
}
