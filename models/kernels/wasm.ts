/**
 * The small slice of the tfjs `wasm` backend that our kernels lean on, typed structurally
 * because the package does not export its backend class type.
 *
 * Tensors on that backend live in one WebAssembly heap. Any allocation may grow the heap,
 * which detaches every typed-array view taken before it, so callers take views only after
 * their last allocation of a phase.
 */
import {
  getKernel,
  type DataId,
  type DataType,
  type KernelConfig,
  type NamedAttrMap,
  type NamedTensorInfoMap,
  type TensorInfo,
} from '@tensorflow/tfjs-core';

export const WASM = 'wasm';

export interface WasmBackend {
  makeOutput(shape: number[], dtype: DataType): TensorInfo;
  disposeData(dataId: DataId, force?: boolean): boolean;
  typedArrayFromHeap(info: TensorInfo): Float32Array | Int32Array | Uint8Array;
}

export function asWasmBackend(backend: unknown): WasmBackend {
  if (
    typeof backend === 'object' &&
    backend !== null &&
    'makeOutput' in backend &&
    'typedArrayFromHeap' in backend &&
    'disposeData' in backend
  ) {
    return backend as WasmBackend;
  }
  throw new TypeError('kernel registered for wasm was called with a different backend');
}

/** A float32 view of a tensor's heap storage; invalid after the next heap allocation. */
export function f32(backend: WasmBackend, info: TensorInfo): Float32Array {
  const view = backend.typedArrayFromHeap(info);
  if (!(view instanceof Float32Array)) throw new TypeError(`expected float32, got ${info.dtype}`);
  return view;
}

/** The same storage under another shape of equal size: no copy, nothing to dispose. */
export function reshaped(info: TensorInfo, shape: number[]): TensorInfo {
  return { dataId: info.dataId, shape, dtype: info.dtype };
}

export function release(backend: WasmBackend, ...infos: TensorInfo[]): void {
  for (const info of infos) backend.disposeData(info.dataId);
}

/** Calls a kernel's function directly, outside the engine (so nothing is recorded for autodiff). */
export function runKernel(
  config: KernelConfig | undefined,
  inputs: NamedTensorInfoMap,
  backend: WasmBackend,
  attrs: NamedAttrMap = {},
): TensorInfo {
  if (config === undefined) throw new Error('wasm kernel is not registered');
  const out = config.kernelFunc({ inputs, backend, attrs });
  if (Array.isArray(out)) throw new Error(`kernel ${config.kernelName} returned several outputs`);
  return out;
}

/** Whatever is registered for the wasm backend under `name` right now (ours or the original). */
export function wasmKernel(name: string): KernelConfig | undefined {
  return getKernel(name, WASM);
}

/** Reorders axes through the backend's own Transpose kernel. */
export function permute(backend: WasmBackend, x: TensorInfo, perm: number[]): TensorInfo {
  return runKernel(wasmKernel('Transpose'), { x }, backend, { perm });
}

/** Swaps the two innermost axes. */
export function transposeInner(backend: WasmBackend, x: TensorInfo): TensorInfo {
  const rank = x.shape.length;
  return permute(
    backend,
    x,
    x.shape.map((_, i) => (i < rank - 2 ? i : i === rank - 2 ? rank - 1 : rank - 2)),
  );
}

/** Plain `a · b` (no transposes), the case the backend hands to XNNPACK. */
export function matMul(backend: WasmBackend, a: TensorInfo, b: TensorInfo): TensorInfo {
  return runKernel(wasmKernel('BatchMatMul'), { a, b }, backend, { transposeA: false, transposeB: false });
}
