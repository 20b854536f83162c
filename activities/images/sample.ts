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
import { logLinearSchedule } from '../../models/schedule.js';
import type { ImageCampaignConfig } from '../../workflows/config.js';
import type {
  ArtifactRef,
  PosteriorSampleInput,
  PosteriorSampleOutput,
  SamplePriorInput,
  SamplePriorOutput,
} from '../../workflows/types.js';
import { activityContext, stepReporter } from '../context.js';
import { BadInputError } from '../errors.js';
import { storeFor } from '../../store/open.js';
import { putTensors } from '../../store/tensors.js';
import { campaignKeys } from '../../workflows/keys.js';
import type { Untimed } from '../activity.js';
import type { ArtifactStore } from '../../store/store.js';
import {
  asImages,
  asRows,
  imageChannelOf,
  imageShape,
  loadImageShard,
  onnxBatch,
  onnxThreads,
  unetConfigOf,
} from './common.js';
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

export async function posteriorSampleImage(
  config: ImageCampaignConfig,
  input: PosteriorSampleInput,
): Promise<Untimed<PosteriorSampleOutput>> {
  const context = activityContext();
  const { campaignId, lap, shard } = input;
  const store = storeFor(input.store);
  const { y, ops } = await loadImageShard(store, config, shard);
  const rng = Rng.derive(config.seed, 'estep', `lap-${lap}`, `shard-${shard.index}`);
  let rows;
  // Network passes per observation: one per sampler step plus the final denoise under DiffEM.
  let passes = config.estep.steps + 1;
  let guidance: PosteriorSampleOutput['guidance'];
  if (mStepIsConditional(config)) {
    const channel = imageChannelOf(config);
    const cond = asRows(channel.conditioning(ops, y));
    const denoiser: Denoiser = await openUnet(store, config, input.model, true);
    try {
      rows = await ancestralSample(denoiser, {
        steps: config.estep.steps,
        schedule: logLinearSchedule(config.schedule.sigmaMin, config.schedule.sigmaMax),
        rng,
        cond,
        onStep: stepReporter(context),
      });
    } finally {
      await denoiser.dispose?.();
    }
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
    rows = result.rows;
    passes = result.passes;
    guidance = result.guidance;
  }
  checkFinite(rows, `E-step samples of lap ${lap} shard ${shard.index} (model ${input.model.key})`);
  const key = campaignKeys.posteriorShard(campaignId, input.final ? 'final' : lap, shard.index);
  const samples = await putTensors(
    store,
    key,
    { x: asImages(rows, imageShape(config)) },
    { lap: String(lap), shard: String(shard.index), method: config.method },
  );
  return {
    samples,
    evaluations: (shard.end - shard.start) * passes,
    ...(guidance ? { guidance } : {}),
  };
}

export async function samplePriorImage(
  config: ImageCampaignConfig,
  input: SamplePriorInput,
): Promise<Untimed<SamplePriorOutput>> {
  const context = activityContext();
  const store = storeFor(input.store);
  const denoiser = await openUnet(store, config, input.model, false);
  let rows;
  try {
    rows = await heunSample(denoiser, {
      steps: config.prior.samplerSteps,
      schedule: logLinearSchedule(config.schedule.sigmaMin, config.schedule.sigmaMax),
      rng: Rng.derive(config.seed, 'prior-sample'),
      cond: null,
      count: config.prior.samples,
      onStep: stepReporter(context),
    });
  } finally {
    await denoiser.dispose();
  }
  checkFinite(rows, `prior samples (model ${input.model.key})`);
  const x = asImages(rows, imageShape(config));
  const samples = await putTensors(store, campaignKeys.priorSamples(input.campaignId), { x }, { sampler: 'heun' });
  const truth = await readTruth(store, input.truth);
  const quality = await fidOf(store, config, truth.fid, x, Rng.derive(config.seed, 'metrics', 'prior'));
  const metrics: Record<string, number> = {};
  if (Number.isFinite(quality.fid)) metrics.fid = round(quality.fid);
  if (Number.isFinite(quality.inceptionScore)) metrics.inception_score = round(quality.inceptionScore);
  return { samples, metrics };
}

function round(x: number): number {
  return Number(x.toPrecision(6));
}
