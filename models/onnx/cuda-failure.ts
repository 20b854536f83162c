/**
 * What a failure to create or run a CUDA inference session means for a retry.
 *
 * Only a machine without a usable CUDA build (onnxruntime-node without its CUDA provider, or
 * the CUDA / cuDNN libraries the provider links against missing) fails the same way on every
 * attempt: that is DeviceUnavailable, non-retryable, with the install hint. Running out of
 * device memory (another process holds it, a batch too large for what is free right now) and
 * the driver's transient errors (device busy in exclusive mode, an ECC or launch failure that a
 * fresh process recovers from) can succeed on a later attempt, maybe on another worker: those
 * are DeviceFault, which the retry policy retries.
 */
import { DeviceUnavailableError } from '../device.js';

export type CudaFailureKind = 'missing-build' | 'out-of-memory' | 'transient';

// The provider library or a library it links against cannot be loaded: dlopen's and ORT's words.
const MISSING_BUILD =
  /cannot open shared object file|failed to load (?:library|shared library)|loadlibrary failed|onnxruntime_providers_cuda|no cuda provider|cuda (?:execution )?provider is not (?:available|enabled|registered)|libcu(?:dart|blas|blaslt|dnn|fft|rand)[\w.]*\.so|cuda driver version is insufficient|cudaErrorInsufficientDriver|unknown provider type/i;
const OUT_OF_MEMORY =
  /out of memory|cudaErrorMemoryAllocation|CUDA_ERROR_OUT_OF_MEMORY|CUBLAS_STATUS_ALLOC_FAILED|failed to allocate memory|bfc_arena/i;

/** Sorts an ONNX Runtime / CUDA error message into what a retry can and cannot fix. */
export function classifyCudaFailure(message: string): CudaFailureKind {
  // Memory first: an allocation failure message may also name the provider library.
  if (OUT_OF_MEMORY.test(message)) return 'out-of-memory';
  if (MISSING_BUILD.test(message)) return 'missing-build';
  return 'transient';
}

/** A device failure that another attempt may not meet (OOM, a busy or reset device). */
export class DeviceFaultError extends Error {
  readonly type = 'DeviceFault';
  override readonly name = 'DeviceFaultError';
  constructor(
    readonly kind: Exclude<CudaFailureKind, 'missing-build'>,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** The error to raise for a CUDA session failure: non-retryable only for a missing CUDA build. */
export function cudaFailure(context: string, cause: unknown, installHint: string): Error {
  const reason = cause instanceof Error ? cause.message : String(cause);
  const kind = classifyCudaFailure(reason);
  if (kind === 'missing-build') {
    return new DeviceUnavailableError(`${context}: the CUDA build is unavailable (${reason}). ${installHint}.`, {
      cause,
    });
  }
  const what = kind === 'out-of-memory' ? 'ran out of device memory' : 'failed on the device';
  return new DeviceFaultError(kind, `${context}: ${what} (${reason}); the attempt may be retried`, { cause });
}
