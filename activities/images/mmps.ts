/**
 * The EM-MMPS E-step for one shard of an image campaign: the UNCONDITIONAL U-Net of the
 * previous M-step, exported from its weights twice, as the denoiser graph and as its
 * vector-Jacobian-product graph, both run by ONNX Runtime (`models/guidance/onnx-network.ts`,
 * the runtime and device of DiffEM's E-step; tfjs's autodiff took about 30 times longer per
 * VJP on the CPU), guided towards each observation by moment matching through
 * the channel's own operators (pixel mask or blur, `models/guidance/image-operator.ts`), and
 * run through the same ancestral sampler as DiffEM's conditional U-Net. The guidance solve
 * follows `estep` (`guidanceSettings`: 3 Krylov iterations for images unless configured).
 * Reference: Rozet et al. (NeurIPS 2024), Sec. 4 (EM with MMPS).
 */
import type { ImageOperators } from '../../models/channels/image.js';
import { imageOperator } from '../../models/guidance/image-operator.js';
import { MmpsDenoiser } from '../../models/guidance/mmps.js';
import { OnnxDifferentiableDenoiser } from '../../models/guidance/onnx-network.js';
import { exportUnetToOnnx, exportUnetVjpToOnnx } from '../../models/onnx/export-unet.js';
import type { NDArray } from '../../models/ndarray.js';
import type { Rng } from '../../models/rng.js';
import { ancestralSample } from '../../models/samplers/ancestral.js';
import type { SamplerProgress } from '../../models/samplers/sampler.js';
import { logLinearSchedule } from '../../models/schedule.js';
import type { ArtifactStore } from '../../store/store.js';
import { getTensors } from '../../store/tensors.js';
import type { ImageCampaignConfig } from '../../workflows/config.js';
import type { ArtifactRef, GuidanceStats } from '../../workflows/types.js';
import { BadInputError } from '../errors.js';
import { guidanceSettings } from '../vector/mmps.js';
import { imageChannelOf, onnxThreads, unetConfigOf } from './common.js';

export interface ImageMmpsRequest {
  store: ArtifactStore;
  config: ImageCampaignConfig;
  /** Weights (safetensors) of the unconditional U-Net to guide. */
  weights: ArtifactRef;
  /** Observations y [n, H, W, C] and their operators. */
  y: NDArray;
  ops: ImageOperators;
  rng: Rng;
  onStep?: SamplerProgress;
}

export interface ImageMmpsResult {
  /** One posterior sample per observation, flat rows [n, H*W*C]. */
  rows: NDArray;
  /** Network passes over the shard (forward + VJPs), the final denoise included. */
  passes: number;
  guidance: GuidanceStats;
}

export async function mmpsImagePosteriorSample(request: ImageMmpsRequest): Promise<ImageMmpsResult> {
  const { store, config, y, ops } = request;
  const network = unetConfigOf(config, false);
  const { tensors } = await getTensors(store, request.weights);
  let graphs: { denoiser: Uint8Array; vjp: Uint8Array };
  try {
    graphs = { denoiser: exportUnetToOnnx(network, tensors), vjp: exportUnetVjpToOnnx(network, tensors) };
  } catch (error) {
    throw new BadInputError('ShapeMismatch', error instanceof Error ? error.message : String(error));
  }
  const channel = imageChannelOf(config);
  const n = y.shape[0];
  const operator = imageOperator(channel, ops, n);
  const settings = guidanceSettings(config.estep, operator.outDim);
  // Opened last, so that nothing between here and the try below can leave its sessions open.
  const prior = await OnnxDifferentiableDenoiser.create(graphs.denoiser, graphs.vjp, {
    dim: network.height * network.width * network.channels,
    device: config.runtime.device,
    threads: onnxThreads(config),
  });
  const guided = new MmpsDenoiser(
    prior,
    { y: Float64Array.from(y.data), operator, noiseStd: channel.noiseStd },
    settings,
  );
  try {
    const rows = await ancestralSample(guided, {
      steps: config.estep.steps,
      schedule: logLinearSchedule(config.schedule.sigmaMin, config.schedule.sigmaMax),
      rng: request.rng,
      cond: null,
      count: n,
      onStep: request.onStep,
    });
    return {
      rows,
      passes: guided.passes,
      guidance: { ...settings, ...guided.solveStats() },
    };
  } finally {
    await guided.dispose();
  }
}
