/**
 * Which CUDA session failures a retry can fix: a missing CUDA build fails every attempt
 * (non-retryable DeviceUnavailable), while running out of device memory and transient driver
 * errors are retried (DeviceFault). The messages are ONNX Runtime's and the CUDA driver's own.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { asActivity, isNonRetryable } from '../activities/errors.js';
import { DeviceUnavailableError } from '../models/device.js';
import { classifyCudaFailure, cudaFailure, DeviceFaultError } from '../models/onnx/cuda-failure.js';
import { ORT_CUDA_INSTALL_HINT } from '../models/onnx/runtime.js';
import { NON_RETRYABLE_ERROR_TYPES } from '../workflows/errors.js';

const MISSING_PROVIDER =
  '/onnxruntime_src/onnxruntime/core/session/provider_bridge_ort.cc:1778 onnxruntime::Provider& ' +
  'onnxruntime::ProviderLibrary::Get() [ONNXRuntimeError] : 1 : FAIL : Failed to load library ' +
  'libonnxruntime_providers_cuda.so with error: libcublasLt.so.12: cannot open shared object file: No such file or directory';
const MISSING_CUDNN = 'Could not load library libcudnn_ops.so.9: cannot open shared object file';
const OLD_DRIVER = 'CUDA failure 35: CUDA driver version is insufficient for CUDA runtime version ; GPU=0';
const ARENA_OOM =
  "Non-zero status code returned while running Gemm node. Name:'/Gemm' Status Message: " +
  '/onnxruntime_src/onnxruntime/core/framework/bfc_arena.cc:376 void* onnxruntime::BFCArena::AllocateRawInternal' +
  '(size_t, bool, onnxruntime::Stream*, bool, onnxruntime::WaitNotificationFn) Failed to allocate memory for requested buffer of size 4294967296';
const DRIVER_OOM = 'CUDA failure 2: out of memory ; GPU=0 ; hostname=gpu-7 ; expr=cudaMalloc(&p, size);';
const BUSY =
  'CUDA failure 46: all CUDA-capable devices are busy or unavailable ; GPU=0 ; expr=cudaSetDevice(info_.device_id);';
const LAUNCH = 'CUDA failure 719: unspecified launch failure ; GPU=0 ; expr=cudaStreamSynchronize(stream);';
const CUDNN_INTERNAL = 'CUDNN failure 4000: CUDNN_STATUS_INTERNAL_ERROR ; GPU=0';

test('a missing CUDA build is told apart from out-of-memory and transient device errors', () => {
  for (const m of [MISSING_PROVIDER, MISSING_CUDNN, OLD_DRIVER])
    assert.equal(classifyCudaFailure(m), 'missing-build', m);
  for (const m of [ARENA_OOM, DRIVER_OOM]) assert.equal(classifyCudaFailure(m), 'out-of-memory', m);
  for (const m of [BUSY, LAUNCH, CUDNN_INTERNAL]) assert.equal(classifyCudaFailure(m), 'transient', m);
});

test('only the missing build becomes the non-retryable DeviceUnavailable', async () => {
  assert.ok(NON_RETRYABLE_ERROR_TYPES.includes('DeviceUnavailable'));
  assert.ok(!NON_RETRYABLE_ERROR_TYPES.includes('DeviceFault'), 'DeviceFault must stay retryable');

  const missing = cudaFailure('OnnxDenoiser', new Error(MISSING_PROVIDER), ORT_CUDA_INSTALL_HINT);
  assert.ok(missing instanceof DeviceUnavailableError);
  assert.ok(isNonRetryable(missing));
  assert.match(missing.message, /ONNXRUNTIME_NODE_INSTALL=cuda12/, 'the install hint is part of the message');

  for (const [message, kind] of [
    [ARENA_OOM, 'out-of-memory'],
    [BUSY, 'transient'],
  ] as const) {
    const fault = cudaFailure('OnnxDenoiser', new Error(message), ORT_CUDA_INSTALL_HINT);
    assert.ok(fault instanceof DeviceFaultError, message);
    assert.equal(fault.kind, kind);
    assert.equal(isNonRetryable(fault), false, `${kind} must be retryable`);
    assert.equal((fault.cause as Error).message, message, 'the driver message is kept as the cause');
  }

  // Through the activity wrapper, as a Temporal worker reports them.
  await assert.rejects(
    asActivity(async () => {
      throw cudaFailure('OnnxDenoiser', new Error(MISSING_CUDNN), ORT_CUDA_INSTALL_HINT);
    }),
    (error: unknown) => error instanceof ApplicationFailure && error.nonRetryable && error.type === 'DeviceUnavailable',
  );
  await assert.rejects(
    asActivity(async () => {
      throw cudaFailure('OnnxDenoiser', new Error(DRIVER_OOM), ORT_CUDA_INSTALL_HINT);
    }),
    (error: unknown) => error instanceof DeviceFaultError && !(error instanceof ApplicationFailure),
  );
});
