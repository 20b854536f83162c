/**
 * A `Denoiser` backed by an ONNX Runtime session over an exported denoiser graph (inputs `x_t`,
 * `sigma`, optional `cond`; output `denoised`, see `DENOISER_ONNX_IO`). The sampler's E-step
 * evaluates the network thousands of rows at a time for hundreds of steps; ORT's CPU kernels
 * (MLAS) run this MLP several times faster than tfjs-wasm, and its CUDA provider can take over
 * on a GPU machine.
 *
 * Rows are evaluated in chunks of `batchSize` so that activations stay bounded (about
 * batchSize x widest layer x 4 bytes per live tensor) whatever the caller's batch.
 *
 * Determinism: ORT makes no documented bitwise promise, but on the CPU provider every kernel of
 * this graph is deterministic: MLAS splits a GEMM over rows and columns, never over the
 * reduction, LayerNormalization reduces each row on one thread, the rest is elementwise, and
 * nothing uses atomics. So the same model, inputs and batchSize give the same bytes, whatever the
 * thread count. Two limits: a row's bytes may depend on how many rows share its run (MLAS takes
 * another path for a one-row GEMM, e.g. a final chunk of 1 row), so keep batchSize fixed across
 * re-runs; and MLAS picks kernels by instruction set (AVX2, AVX-512, NEON), so different CPUs may
 * differ in the last bits. The CUDA provider promises nothing bitwise (cuBLAS algorithm choice).
 * Reference: ONNX Runtime JavaScript API (onnxruntime-node), InferenceSession.SessionOptions.
 */
import { DeviceUnavailableError } from '../device.js';
import { cudaFailure } from './cuda-failure.js';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { InferenceSession, listSupportedBackends, Tensor } from 'onnxruntime-node';
import { ndarray, type NDArray } from '../ndarray.js';
import type { Denoiser } from '../denoisers/denoiser.js';
import { DENOISER_ONNX_IO } from './export-mlp.js';

export type OnnxDevice = 'auto' | 'cpu' | 'cuda';

export interface OnnxSessionOptions {
  /** 'auto' uses CUDA when ORT's CUDA provider loads, else the CPU (default 'cpu'). */
  device?: OnnxDevice;
  /** Intra-op threads of the CPU provider (default: os.availableParallelism()). */
  threads?: number;
  /**
   * Let idle intra-op threads busy-wait for the next kernel (default false). Spinning saves a
   * wake-up per parallel section on dedicated cores, but on shared ones it steals the CPU from
   * the threads doing work: measured on 2 shared cores, 2 threads ran ~1.5x faster without it.
   */
  spinning?: boolean;
}

export interface OnnxDenoiserOptions extends OnnxSessionOptions {
  dim: number;
  condDim: number;
  /** Rows per session run (default 4096). */
  batchSize?: number;
}

export const DEFAULT_ONNX_BATCH_SIZE = 4096;

/** What a machine needs before `device: 'cuda'` works; the variable is read by onnxruntime-node's install script. */
export const ORT_CUDA_INSTALL_HINT =
  'onnxruntime-node downloads its CUDA provider separately (Linux x64 only): on a machine with ' +
  'CUDA 12, cuDNN 9 and an NVIDIA driver, fetch it with ' +
  '`ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js` ' +
  "(package.json denies that install script, so npm itself never runs it), or use device 'cpu'";

export class OnnxDenoiser implements Denoiser {
  readonly dim: number;
  readonly condDim: number;
  readonly batchSize: number;
  private session: InferenceSession | null;

  private constructor(
    session: InferenceSession,
    options: OnnxDenoiserOptions,
    batchSize: number,
    /** The execution provider the session runs on. */
    readonly device: 'cpu' | 'cuda',
  ) {
    this.session = session;
    this.dim = options.dim;
    this.condDim = options.condDim;
    this.batchSize = batchSize;
  }

  static async create(modelBytes: Uint8Array, options: OnnxDenoiserOptions): Promise<OnnxDenoiser> {
    checkPositiveInt('dim', options.dim);
    if (!Number.isInteger(options.condDim) || options.condDim < 0) {
      throw new RangeError(`OnnxDenoiser: condDim must be an integer >= 0, got ${options.condDim}`);
    }
    const batchSize = options.batchSize ?? DEFAULT_ONNX_BATCH_SIZE;
    checkPositiveInt('batchSize', batchSize);
    const { session, device } = await createOnnxSession(modelBytes, options);
    try {
      checkInterface(session, options);
    } catch (e) {
      await session.release();
      throw e;
    }
    return new OnnxDenoiser(session, options, batchSize, device);
  }

  async denoise(xt: NDArray, sigma: Float32Array, cond: NDArray | null): Promise<NDArray> {
    const session = this.session;
    if (!session) throw new Error('OnnxDenoiser: denoise called after dispose');
    const n = xt.shape[0];
    if (xt.shape.length !== 2 || xt.shape[1] !== this.dim) {
      throw new RangeError(`OnnxDenoiser: x_t has shape [${xt.shape}], expected [n, ${this.dim}]`);
    }
    if (sigma.length !== n) throw new RangeError(`OnnxDenoiser: sigma has ${sigma.length} entries for ${n} rows`);
    if (this.condDim > 0) {
      if (!cond) throw new Error('OnnxDenoiser: conditional denoiser called without conditioning');
      if (cond.shape.length !== 2 || cond.shape[0] !== n || cond.shape[1] !== this.condDim) {
        throw new RangeError(`OnnxDenoiser: cond has shape [${cond.shape}], expected [${n}, ${this.condDim}]`);
      }
    }

    const out = ndarray([n, this.dim]);
    const { xt: xtName, sigma: sigmaName, cond: condName, output } = DENOISER_ONNX_IO;
    for (let start = 0; start < n; start += this.batchSize) {
      const end = Math.min(n, start + this.batchSize);
      const rows = end - start;
      // Subarray views: the tensors wrap the caller's memory without copying.
      const feeds: Record<string, Tensor> = {
        [xtName]: new Tensor('float32', xt.data.subarray(start * this.dim, end * this.dim), [rows, this.dim]),
        [sigmaName]: new Tensor('float32', sigma.subarray(start, end), [rows]),
      };
      if (this.condDim > 0 && cond) {
        feeds[condName] = new Tensor('float32', cond.data.subarray(start * this.condDim, end * this.condDim), [
          rows,
          this.condDim,
        ]);
      }
      const result = await session.run(feeds);
      const denoised = result[output];
      if (!(denoised.data instanceof Float32Array) || denoised.data.length !== rows * this.dim) {
        throw new Error(`OnnxDenoiser: output '${output}' is not a float32 [${rows}, ${this.dim}] tensor`);
      }
      out.data.set(denoised.data, start * this.dim);
      for (const value of Object.values(result)) value.dispose();
    }
    return out;
  }

  async dispose(): Promise<void> {
    const session = this.session;
    this.session = null;
    if (session) await session.release();
  }
}

/**
 * An ORT session over model bytes on the requested device, with the settings every diffem graph
 * runs under (sequential chain, intra-op threads only), and the device it landed on.
 */
export async function createOnnxSession(
  modelBytes: Uint8Array,
  options: OnnxSessionOptions,
): Promise<{ session: InferenceSession; device: 'cpu' | 'cuda' }> {
  const threads = options.threads ?? os.availableParallelism();
  checkPositiveInt('threads', threads);
  const device = options.device ?? 'cpu';

  const sessionOptions = (provider: 'cpu' | 'cuda'): InferenceSession.SessionOptions => ({
    executionProviders: [provider],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: threads,
    // The graph is a chain: parallelism lives inside the kernels, not across nodes.
    interOpNumThreads: 1,
    executionMode: 'sequential',
    extra: { session: { intra_op: { allow_spinning: options.spinning ? '1' : '0' } } },
  });

  let session: InferenceSession;
  let chosen: 'cpu' | 'cuda';
  if (device === 'cpu') {
    session = await load(modelBytes, sessionOptions('cpu'));
    chosen = 'cpu';
  } else if (device === 'cuda') {
    session = await loadCuda(modelBytes, sessionOptions('cuda'));
    chosen = 'cuda';
  } else if (device === 'auto') {
    try {
      session = await loadCuda(modelBytes, sessionOptions('cuda'));
      chosen = 'cuda';
    } catch (e) {
      // A malformed model would fail on the CPU just the same: report it instead of retrying.
      if (e instanceof MalformedModelError) throw e;
      session = await load(modelBytes, sessionOptions('cpu'));
      chosen = 'cpu';
    }
  } else {
    throw new RangeError(`OnnxDenoiser: unknown device '${String(device)}'`);
  }

  return { session, device: chosen };
}

/** Model bytes ONNX Runtime cannot parse or accept, as opposed to a provider that cannot start. */
export class MalformedModelError extends Error {
  override readonly name = 'MalformedModelError';
}

async function load(bytes: Uint8Array, options: InferenceSession.SessionOptions): Promise<InferenceSession> {
  try {
    return await InferenceSession.create(bytes, options);
  } catch (e) {
    throw new MalformedModelError(
      `OnnxDenoiser: ONNX Runtime could not load the model (${bytes.byteLength} bytes): ${message(e)}`,
      { cause: e },
    );
  }
}

async function loadCuda(bytes: Uint8Array, options: InferenceSession.SessionOptions): Promise<InferenceSession> {
  const unavailable = ortCudaUnavailableReason();
  if (unavailable) throw cudaError(unavailable);
  try {
    return await InferenceSession.create(bytes, options);
  } catch (e) {
    const why = message(e);
    // With the provider present, ORT registers it before parsing: a parse error is the model's fault.
    if (/protobuf parsing failed|model data pointer is null/i.test(why)) {
      throw new MalformedModelError(
        `OnnxDenoiser: ONNX Runtime could not load the model (${bytes.byteLength} bytes): ${why}`,
        { cause: e },
      );
    }
    // Only a missing CUDA build is final; OOM and transient device errors are retried.
    throw cudaFailure("OnnxDenoiser: ONNX Runtime's CUDA execution provider", e, ORT_CUDA_INSTALL_HINT);
  }
}

function cudaError(reason: string, cause?: unknown): Error {
  return new DeviceUnavailableError(
    `OnnxDenoiser: ONNX Runtime's CUDA execution provider is unavailable (${reason}). ${ORT_CUDA_INSTALL_HINT}.`,
    {
      cause,
    },
  );
}

/**
 * Why CUDA cannot work with this onnxruntime-node, or null when its provider is installed.
 * Checked before creating a session because ORT reports a missing provider library through its
 * process-wide logger (stderr) as well as the thrown error, which would break 'auto''s silent fallback.
 */
export function ortCudaUnavailableReason(): string | null {
  const backend = listSupportedBackends().find((b) => b.name === 'cuda');
  if (!backend) return 'this onnxruntime-node build has no CUDA provider';
  if (backend.bundled) return null;
  // ORT loads provider libraries from the directory of its own shared library, next to the binding.
  const binDir = path.join(
    path.dirname(createRequire(import.meta.url).resolve('onnxruntime-node')),
    '..',
    'bin',
    'napi-v6',
    process.platform,
    process.arch,
  );
  let files: string[];
  try {
    files = fs.readdirSync(binDir);
  } catch {
    return `cannot list ${binDir}`;
  }
  return files.some((f) => /providers_cuda/.test(f)) ? null : `no CUDA provider library in ${binDir}`;
}

/** Fails early, at creation, when the model does not expose the denoiser interface of the given widths. */
function checkInterface(session: InferenceSession, options: OnnxDenoiserOptions): void {
  const io = DENOISER_ONNX_IO;
  const expected: Array<[string, number]> = [
    [io.xt, options.dim],
    [io.sigma, 0],
  ];
  if (options.condDim > 0) expected.push([io.cond, options.condDim]);
  for (const [name, width] of expected) {
    const meta = session.inputMetadata.find((m) => m.name === name);
    if (!meta) {
      throw new MalformedModelError(
        `OnnxDenoiser: model has no input '${name}' (inputs: ${session.inputNames.join(', ')})`,
      );
    }
    if (!meta.isTensor || meta.type !== 'float32')
      throw new MalformedModelError(`OnnxDenoiser: input '${name}' is not float32`);
    const last = meta.shape[meta.shape.length - 1];
    if (width > 0 && (meta.shape.length !== 2 || (typeof last === 'number' && last !== width))) {
      throw new MalformedModelError(`OnnxDenoiser: input '${name}' has shape [${meta.shape}], expected [N, ${width}]`);
    }
  }
  const extra = session.inputNames.filter((name) => !expected.some(([e]) => e === name));
  if (extra.length > 0) {
    throw new MalformedModelError(
      `OnnxDenoiser: model has inputs [${extra.join(', ')}] that a condDim=${options.condDim} denoiser does not feed`,
    );
  }
  if (!session.outputNames.includes(io.output)) {
    throw new MalformedModelError(
      `OnnxDenoiser: model has no output '${io.output}' (outputs: ${session.outputNames.join(', ')})`,
    );
  }
}

function checkPositiveInt(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 1)
    throw new RangeError(`OnnxDenoiser: ${name} must be an integer >= 1, got ${value}`);
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
