/**
 * Sampling activities of image campaigns, with the exported U-Net on ONNX Runtime:
 *
 *   E-step        one posterior sample per observation of a shard by the ancestral sampler
 *                 (docs/method.md; `estep.steps` steps on the uniform t grid from 1 to 0, then a
 *                 final denoise), conditioned on [y zero-filled, mask] (or [y] for blur);
 *                 stream `estep/lap-k/shard-i`, so a retried shard draws the same numbers;
 *   final prior   `prior.samples` images from the unconditional U-Net by the deterministic
 *                 Heun sampler (`prior.samplerSteps` steps, stream `prior-sample`), with their
 *                 FID against the held-out clean images.
 */
import type { Denoiser } from '../../models/denoisers/denoiser.js';
import { OnnxDenoiser } from '../../models/onnx/runtime.js';
import { Rng } from '../../models/rng.js';
import { ancestralSample } from '../../models/samplers/ancestral.js';
import { heunSample } from '../../models/samplers/heun.js';
import type { SamplerProgress } from '../../models/samplers/sampler.js';
import type { NDArray } from '../../models/ndarray.js';
import { logLinearSchedule } from '../../models/schedule.js';
import type { ImageCampaignConfig } from '../../workflows/config.js';
import type {
  ArtifactRef,
  PosteriorSampleInput,
  PosteriorSampleOutput,
  SamplePriorInput,
  Metrics,
} from '../../workflows/types.js';
import { activityContext, stepReporter } from '../context.js';
import { BadInputError } from '../errors.js';
import { storeFor } from '../../store/open.js';
import { putTensors } from '../../store/tensors.js';
import { campaignKeys } from '../../workflows/keys.js';
import type { Untimed } from '../activity.js';
import type { ArtifactStore } from '../../store/store.js';
import { imageChannelOf, imageShape, loadImageShard, onnxBatch, onnxThreads, unetConfigOf } from './common.js';
import { asImages, asRows, type ImageObservations } from '../../models/channels/image-operators.js';
import { readTruth } from './evaluate.js';
import { fidOf } from './fid.js';
import { mmpsImagePosteriorSample } from './mmps.js';
import { mStepIsConditional } from '../domain.js';

async function openUnet(
  store: ArtifactStore,
  config: ImageCampaignConfig,
  model: ArtifactRef,
  conditional: boolean,
): Promise<OnnxDenoiser> {
  const network = unetConfigOf(config, conditional);
  const pixels = network.height * network.width;
  return OnnxDenoiser.create(await store.getVerified(model), {
    dim: pixels * network.channels,
    condDim: pixels * network.condChannels,
    device: config.runtime.device,
    threads: onnxThreads(config),
    batchSize: onnxBatch(config),
  });
}

function checkFinite(x: { data: Float32Array }, what: string): void {
  for (let i = 0; i < x.data.length; i++) {
    if (!Number.isFinite(x.data[i])) throw new BadInputError('NonFiniteData', `${what} hold NaN or Inf`);
  }
}

/**
 * One posterior sample [n, H, W, C] per observation from the conditional U-Net: the E-step's
 * draw, also used by `diffem reconstruct` on new observations.
 */
export async function drawPosteriorImages(
  store: ArtifactStore,
  config: ImageCampaignConfig,
  model: ArtifactRef,
  observations: ImageObservations,
  rng: Rng,
  onStep?: SamplerProgress,
  what = 'posterior samples',
): Promise<NDArray> {
  const cond = asRows(imageChannelOf(config).conditioning(observations.ops, observations.y));
  const denoiser: Denoiser = await openUnet(store, config, model, true);
  let rows;
  try {
    rows = await ancestralSample(denoiser, {
      steps: config.estep.steps,
      schedule: logLinearSchedule(config.schedule.sigmaMin, config.schedule.sigmaMax),
      rng,
      cond,
      onStep,
    });
  } finally {
    await denoiser.dispose?.();
  }
  checkFinite(rows, `${what} (model ${model.key})`);
  return asImages(rows, imageShape(config));
}

export async function posteriorSampleImage(
  config: ImageCampaignConfig,
  input: PosteriorSampleInput,
): Promise<Untimed<PosteriorSampleOutput>> {
  const context = activityContext();
  const { campaignId, lap, shard } = input;
  const store = storeFor(input.store);
  const { y, ops } = await loadImageShard(store, config, shard);
  const rng = Rng.derive(config.seed, 'estep', `lap-${lap}`, `shard-${shard.index}`);
  let x: NDArray;
  // Network passes per observation: one per sampler step plus the final denoise under DiffEM.
  let passes = config.estep.steps + 1;
  let guidance: PosteriorSampleOutput['guidance'];
  if (mStepIsConditional(config)) {
    x = await drawPosteriorImages(
      store,
      config,
      input.model,
      { y, ops },
      rng,
      stepReporter(context),
      `E-step samples of lap ${lap} shard ${shard.index}`,
    );
  } else {
    if (!input.weights) {
      throw new BadInputError(
        'InvalidConfig',
        `${input.model.key}: EM-MMPS needs the model's weights in the E-step input`,
      );
    }
    const result = await mmpsImagePosteriorSample({
      store,
      config,
      weights: input.weights,
      y,
      ops,
      rng,
      onStep: stepReporter(context),
    });
    checkFinite(result.rows, `E-step samples of lap ${lap} shard ${shard.index} (model ${input.model.key})`);
    x = asImages(result.rows, imageShape(config));
    passes = result.passes;
    guidance = result.guidance;
  }
  const key = campaignKeys.posteriorShard(campaignId, input.final ? 'final' : lap, shard.index);
  const samples = await putTensors(
    store,
    key,
    { x },
    { lap: String(lap), shard: String(shard.index), method: config.method },
  );
  return {
    samples,
    evaluations: (shard.end - shard.start) * passes,
    ...(guidance ? { guidance } : {}),
  };
}

/** `count` images [n, H, W, C] from the unconditional U-Net by the deterministic Heun sampler (the campaign's own and `diffem sample`'s). */
export async function drawPriorImages(
  store: ArtifactStore,
  config: ImageCampaignConfig,
  model: ArtifactRef,
  count: number,
  rng: Rng,
  onStep?: SamplerProgress,
): Promise<NDArray> {
  const denoiser = await openUnet(store, config, model, false);
  let rows;
  try {
    rows = await heunSample(denoiser, {
      steps: config.prior.samplerSteps,
      schedule: logLinearSchedule(config.schedule.sigmaMin, config.schedule.sigmaMax),
      rng,
      cond: null,
      count,
      onStep,
    });
  } finally {
    await denoiser.dispose();
  }
  checkFinite(rows, `prior samples (model ${model.key})`);
  return asImages(rows, imageShape(config));
}

/** FID of the final prior's samples against the campaign's reference statistics. */
export async function priorMetricsImages(
  store: ArtifactStore,
  config: ImageCampaignConfig,
  x: NDArray,
  input: SamplePriorInput,
  rng: Rng,
): Promise<Metrics> {
  const truth = await readTruth(store, input.truth);
  const quality = await fidOf(store, config, truth.fid, x, rng);
  const metrics: Metrics = {};
  if (Number.isFinite(quality.fid)) metrics.fid = round(quality.fid);
  if (Number.isFinite(quality.inceptionScore)) metrics.inception_score = round(quality.inceptionScore);
  return metrics;
}

function round(x: number): number {
  return Number(x.toPrecision(6));
}
