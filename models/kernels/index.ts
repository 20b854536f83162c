/**
 * The project's kernels for the tfjs `wasm` backend: fast transposed matmuls (dense-layer
 * backprop) and im2col-based convolution gradients (conv-net training).
 *
 * Registering swaps configs in tfjs-core's global kernel registry. A replaced kernel keeps
 * the original's setup/dispose hooks, because our wrappers call into the original and the
 * engine runs those hooks only for what is registered when a backend is set.
 */
import '@tensorflow/tfjs-backend-wasm';
import {
  BatchMatMul,
  Conv2D,
  Conv2DBackpropFilter,
  Conv2DBackpropInput,
  _FusedMatMul,
  getKernel,
  registerKernel,
  unregisterKernel,
  type KernelConfig,
} from '@tensorflow/tfjs-core';

import { blasBatchMatMulConfig, type BlasProbe } from './blas.js';
import { blasConvConfigs } from './conv2d-blas.js';
import { batchMatMulConfig, fusedMatMulConfig } from './batchMatMul.js';
import { conv2dBackpropFilterConfig } from './conv2dBackpropFilter.js';
import { conv2dBackpropInputConfig } from './conv2dBackpropInput.js';
import { WASM } from './wasm.js';

export { setColumnBudget } from './im2col.js';

/** Kernel name → the config that was registered before ours (undefined: there was none). */
let replaced: Map<string, KernelConfig | undefined> | null = null;

function swap(config: KernelConfig): void {
  if (getKernel(config.kernelName, WASM) !== undefined) unregisterKernel(config.kernelName, WASM);
  registerKernel(config);
}

function required(name: string): KernelConfig {
  const config = getKernel(name, WASM);
  if (config === undefined) throw new Error(`the wasm backend registers no ${name} kernel`);
  return config;
}

/** Installs our wasm kernels. Idempotent; call before (or after) `tf.setBackend('wasm')`. */
export function registerWasmKernels(): void {
  if (replaced !== null) return;
  const matMul = required(BatchMatMul);
  const fused = required(_FusedMatMul);
  const input = required(Conv2DBackpropInput);
  const filter = getKernel(Conv2DBackpropFilter, WASM);
  const ours: KernelConfig[] = [
    batchMatMulConfig(matMul),
    fusedMatMulConfig(fused),
    { ...conv2dBackpropInputConfig, setupFunc: input.setupFunc, disposeFunc: input.disposeFunc },
    conv2dBackpropFilterConfig,
  ];
  replaced = new Map([
    [BatchMatMul, matMul],
    [_FusedMatMul, fused],
    [Conv2DBackpropInput, input],
    [Conv2DBackpropFilter, filter],
  ]);
  for (const config of ours) swap(config);
}

/** The kernels that OpenBLAS replaced (null: OpenBLAS is not in). */
let beforeBlas: KernelConfig[] | null = null;

/**
 * Routes BatchMatMul (dense layers) and the three convolution kernels (conv2d-blas.ts:
 * im2col + sgemm) through OpenBLAS.
 */
export function installBlasGemm(blas: Extract<BlasProbe, { ok: true }>): void {
  registerWasmKernels();
  if (beforeBlas !== null) return;
  const names = [BatchMatMul, Conv2D, Conv2DBackpropFilter, Conv2DBackpropInput];
  const current = Object.fromEntries(names.map((name) => [name, required(name)]));
  beforeBlas = names.map((name) => current[name]);
  swap(blasBatchMatMulConfig(blas.sgemm, current[BatchMatMul]));
  for (const config of blasConvConfigs(blas.sgemm, current)) swap(config);
}

/** Back to the wasm GEMM; a no-op when OpenBLAS is not in. */
export function removeBlasGemm(): void {
  if (beforeBlas === null) return;
  for (const config of beforeBlas) swap(config);
  beforeBlas = null;
}

export function blasGemmInstalled(): boolean {
  return beforeBlas !== null;
}

/** Restores the wasm backend's own kernels (for comparisons); a no-op when ours are not in. */
export function unregisterWasmKernels(): void {
  removeBlasGemm();
  if (replaced === null) return;
  for (const [name, original] of replaced) {
    if (original === undefined) {
      if (getKernel(name, WASM) !== undefined) unregisterKernel(name, WASM);
    } else {
      swap(original);
    }
  }
  replaced = null;
}

export function wasmKernelsRegistered(): boolean {
  return replaced !== null;
}
