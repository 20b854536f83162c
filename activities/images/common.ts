/**
 * What the image activities share: the channel and the U-Net a config describes, how image
 * operators are stored (safetensors tensors, never dense matrices), and how a shard's
 * observations and a lap's reconstructions are read back with their shapes checked.
 *
 * Stored layout (all NHWC float32 in the data range [-2, 2]):
 *   observations / shards   y [n, H, W, C] and the operators: masks [n, H, W, 1] (1 = observed),
 *                           or sigmas [n] and kernels [n, kernelSize] for blur
 *   clean                   x [m, H, W, C] held-out clean test images (FID reference),
 *                           latent [n, H, W, C] the hidden clean images of the observations (PSNR)
 *   reconstructions         x [n, H, W, C], one artifact per shard
 */
import { imageChannel, type ImageChannel, type ImageOperators } from '../../models/channels/image.js';
import type { UnetConfig } from '../../models/denoisers/unet.js';
import type { ImageObservations } from '../../models/channels/image-operators.js';
import { concatRows, ndarray, type NDArray } from '../../models/ndarray.js';
import type { ImageCampaignConfig } from '../../workflows/config.js';
import type { ArtifactRef, Shard } from '../../workflows/types.js';
import { BadInputError } from '../errors.js';
import { tensorOf } from '../io.js';
import { getTensors } from '../../store/tensors.js';
import type { ArtifactStore } from '../../store/store.js';

/** Rows per ONNX Runtime run for images unless `runtime.batchSize` says otherwise. */
export const IMAGE_ONNX_BATCH = 128;

export interface ImageShape {
  height: number;
  width: number;
  channels: number;
}

export function imageShape(config: ImageCampaignConfig): ImageShape {
  return { height: config.data.height, width: config.data.width, channels: config.data.channels };
}

export function imageChannelOf(config: ImageCampaignConfig): ImageChannel {
  const shape = imageShape(config);
  const c = config.channel;
  return c.kind === 'pixel-mask'
    ? imageChannel({ kind: 'mask', ...shape, noiseStd: c.noiseStd, rate: c.rate })
    : imageChannel({
        kind: 'blur',
        ...shape,
        noiseStd: c.noiseStd,
        kernelSize: c.kernelSize,
        sigma: c.sigma,
        padding: c.padding,
      });
}

/**
 * The U-Net of a campaign: conditional ([y, mask] or [y]) for DiffEM's M-step, else
 * unconditional; `m` is the campaign's network unless given (the final prior's, `priorModel`).
 */
export function unetConfigOf(
  config: ImageCampaignConfig,
  conditional: boolean,
  m: ImageCampaignConfig['model'] = config.model,
): UnetConfig {
  return {
    ...imageShape(config),
    condChannels: conditional ? imageChannelOf(config).condChannels : 0,
    levels: m.levels,
    blocksPerLevel: m.blocksPerLevel,
    attentionLevels: m.attentionLevels,
    embedDim: m.embedDim,
    dropout: m.dropout,
    groups: m.groups,
    downsample: m.downsample,
  };
}

/** The tensors that store a batch of operators. */
export function operatorTensors(ops: ImageOperators): Record<string, NDArray> {
  if (ops.kind === 'mask') return { masks: ops.masks };
  return { sigmas: ndarray([ops.sigmas.length], Float32Array.from(ops.sigmas)), kernels: ops.kernels };
}

/** Reads observations (the whole set or one shard) and checks them against the config. */
export function observationsOf(
  config: ImageCampaignConfig,
  tensors: Record<string, NDArray>,
  source: string,
  rows?: number,
): ImageObservations {
  const { height, width, channels } = imageShape(config);
  const y = tensorOf(tensors, 'y', source, [height, width, channels]);
  const n = y.shape[0];
  if (rows !== undefined && n !== rows) {
    throw new BadInputError('ShapeMismatch', `${source}: holds ${n} observations, the shard plan says ${rows}`);
  }
  let ops: ImageOperators;
  if (config.channel.kind === 'pixel-mask') {
    const masks = tensorOf(tensors, 'masks', source, [height, width, 1]);
    ops = { kind: 'mask', masks };
  } else {
    const sigmas = tensorOf(tensors, 'sigmas', source, []);
    const kernels = tensorOf(tensors, 'kernels', source, [config.channel.kernelSize]);
    ops = { kind: 'blur', sigmas: Float64Array.from(sigmas.data), kernels };
  }
  const count = ops.kind === 'mask' ? ops.masks.shape[0] : ops.kernels.shape[0];
  if (count !== n) throw new BadInputError('ShapeMismatch', `${source}: ${count} operators for ${n} observations`);
  return { y, ops };
}

export async function loadImageShard(
  store: ArtifactStore,
  config: ImageCampaignConfig,
  shard: Shard,
): Promise<ImageObservations> {
  const { tensors } = await getTensors(store, shard.observations);
  return observationsOf(config, tensors, shard.observations.key, shard.end - shard.start);
}

/** All reconstructions of a lap [n, H, W, C], concatenated in shard order. */
export async function loadImageSamples(
  store: ArtifactStore,
  config: ImageCampaignConfig,
  refs: ArtifactRef[],
): Promise<NDArray> {
  const { height, width, channels } = imageShape(config);
  const parts = await Promise.all(
    refs.map(async (ref) => tensorOf((await getTensors(store, ref)).tensors, 'x', ref.key, [height, width, channels])),
  );
  return concatRows(parts);
}

export function onnxBatch(config: ImageCampaignConfig): number {
  return config.runtime.batchSize ?? IMAGE_ONNX_BATCH;
}

export function onnxThreads(config: ImageCampaignConfig): number | undefined {
  return config.runtime.threads > 0 ? config.runtime.threads : undefined;
}
