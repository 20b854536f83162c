/**
 * A `DifferentiableDenoiser` on ONNX Runtime: D(x_t) from the exported denoiser graph (the
 * sampler's `OnnxDenoiser`), and
 * J^T v from its vector-Jacobian-product graph (the same network with its reverse pass appended,
 * `models/onnx/vjp.ts`). ORT runs no tape: each VJP re-runs the forward pass inside the VJP
 * graph, so a VJP costs about a forward and a backward pass in time, and counts as one network
 * pass, the paper's unit, as with the tfjs networks (`network.ts`). On the CPU this is the
 * runtime DiffEM's sampler already uses; on a GPU machine its CUDA provider takes both graphs.
 *
 * Rows are run in chunks of `batchSize` so that the reverse pass's live activations stay bounded.
 * Float32 inside, float64 at the boundary (`differentiable.ts`).
 */
import type { InferenceSession } from 'onnxruntime-node';
import { Tensor } from 'onnxruntime-node';
import { DENOISER_ONNX_IO } from '../onnx/export-mlp.js';
import { VJP_ONNX_IO } from '../onnx/export-unet.js';
import { ndarray } from '../ndarray.js';
import { createOnnxSession, OnnxDenoiser, type OnnxSessionOptions } from '../onnx/runtime.js';
import type { DifferentiableDenoiser, Linearization } from './differentiable.js';

export interface OnnxDifferentiableOptions extends OnnxSessionOptions {
  /** d: the row width of x_t. */
  dim: number;
  /** Rows per session run (default 256: the reverse pass keeps every activation alive). */
  batchSize?: number;
}

export const DEFAULT_VJP_BATCH_SIZE = 256;

export class OnnxDifferentiableDenoiser implements DifferentiableDenoiser {
  readonly dim: number;
  /** Network passes so far: forward passes plus VJPs. */
  passes = 0;
  private readonly batchSize: number;
  private sessions: { forward: OnnxDenoiser; vjp: InferenceSession } | null;

  private constructor(forward: OnnxDenoiser, vjp: InferenceSession, dim: number, batchSize: number) {
    this.sessions = { forward, vjp };
    this.dim = dim;
    this.batchSize = batchSize;
  }

  /** Loads the denoiser graph and its VJP graph (`exportUnetToOnnx`, `exportUnetVjpToOnnx`). */
  static async create(
    denoiserBytes: Uint8Array,
    vjpBytes: Uint8Array,
    options: OnnxDifferentiableOptions,
  ): Promise<OnnxDifferentiableDenoiser> {
    const batchSize = options.batchSize ?? DEFAULT_VJP_BATCH_SIZE;
    if (!Number.isInteger(options.dim) || options.dim < 1) {
      throw new RangeError(`OnnxDifferentiableDenoiser: dim must be an integer >= 1, got ${options.dim}`);
    }
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new RangeError(`OnnxDifferentiableDenoiser: batchSize must be an integer >= 1, got ${batchSize}`);
    }
    const forward = await OnnxDenoiser.create(denoiserBytes, { ...options, condDim: 0, batchSize });
    let vjp: InferenceSession;
    try {
      vjp = (await createOnnxSession(vjpBytes, options)).session;
    } catch (error) {
      await forward.dispose();
      throw error;
    }
    const inputs = [DENOISER_ONNX_IO.xt, DENOISER_ONNX_IO.sigma, VJP_ONNX_IO.cotangent];
    if (inputs.sort().join() !== [...vjp.inputNames].sort().join() || !vjp.outputNames.includes(VJP_ONNX_IO.vjp)) {
      await Promise.all([forward.dispose(), vjp.release()]);
      throw new RangeError(
        `OnnxDifferentiableDenoiser: the VJP graph has inputs [${vjp.inputNames.join(', ')}] and outputs ` +
          `[${vjp.outputNames.join(', ')}], expected inputs [${inputs.join(', ')}] and output '${VJP_ONNX_IO.vjp}'`,
      );
    }
    return new OnnxDifferentiableDenoiser(forward, vjp, options.dim, batchSize);
  }

  async linearize(xt: Float64Array, sigma: ArrayLike<number>): Promise<Linearization> {
    const n = sigma.length;
    const d = this.dim;
    if (xt.length !== n * d) {
      throw new RangeError(`OnnxDifferentiableDenoiser: x_t has ${xt.length} values, expected ${n}x${d}`);
    }
    if (!this.sessions) throw new Error('OnnxDifferentiableDenoiser: used after dispose');
    const x = Float32Array.from(xt);
    const s = Float32Array.from(sigma);
    const value = Float64Array.from((await this.sessions.forward.denoise(ndarray([n, d], x), s, null)).data);
    this.passes++;
    let disposed = false;
    return {
      value,
      vjp: async (cotangent) => {
        if (disposed) throw new Error('OnnxDifferentiableDenoiser: VJP of a disposed linearization');
        if (cotangent.length !== n * d) {
          throw new RangeError(
            `OnnxDifferentiableDenoiser: cotangent has ${cotangent.length} values, expected ${n}x${d}`,
          );
        }
        const result = await this.vjp(x, s, Float32Array.from(cotangent));
        this.passes++;
        return result;
      },
      dispose: () => {
        disposed = true;
      },
    };
  }

  /** J^T v over all rows, chunk by chunk. */
  private async vjp(x: Float32Array, sigma: Float32Array, cotangent: Float32Array): Promise<Float64Array> {
    if (!this.sessions) throw new Error('OnnxDifferentiableDenoiser: used after dispose');
    const session = this.sessions.vjp;
    const d = this.dim;
    const n = sigma.length;
    const out = new Float64Array(n * d);
    for (let start = 0; start < n; start += this.batchSize) {
      const end = Math.min(n, start + this.batchSize);
      const rows = end - start;
      const result = await session.run({
        [DENOISER_ONNX_IO.xt]: new Tensor('float32', x.subarray(start * d, end * d), [rows, d]),
        [DENOISER_ONNX_IO.sigma]: new Tensor('float32', sigma.subarray(start, end), [rows]),
        [VJP_ONNX_IO.cotangent]: new Tensor('float32', cotangent.subarray(start * d, end * d), [rows, d]),
      });
      const values = result[VJP_ONNX_IO.vjp];
      if (!(values.data instanceof Float32Array) || values.data.length !== rows * d) {
        throw new Error(
          `OnnxDifferentiableDenoiser: output '${VJP_ONNX_IO.vjp}' is not a float32 [${rows}, ${d}] tensor`,
        );
      }
      out.set(values.data, start * d);
      for (const value of Object.values(result)) value.dispose();
    }
    return out;
  }

  async dispose(): Promise<void> {
    const sessions = this.sessions;
    this.sessions = null;
    if (sessions) await Promise.all([sessions.forward.dispose(), sessions.vjp.release()]);
  }
}
