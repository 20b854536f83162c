/**
 * E-step of a vector campaign: one posterior sample per observation of a shard, drawn by the
 * ancestral sampler with the conditional MLP on ONNX Runtime (stream `estep/lap-k/shard-i`,
 * so a retried shard draws the same numbers). Under EM-MMPS the unconditional MLP is guided
 * by moment matching instead (`mmps.ts`). Also the final prior's samples (deterministic Heun
 * sampler, stream `prior-sample`).
 */
import { conditioning } from '../../models/channels/channel.js';
import type { Denoiser } from '../../models/denoisers/denoiser.js';
import type { NDArray } from '../../models/ndarray.js';
import { OnnxDenoiser } from '../../models/onnx/runtime.js';
import { Rng } from '../../models/rng.js';
import { ancestralSample } from '../../models/samplers/ancestral.js';
import { heunSample } from '../../models/samplers/heun.js';
import type { SamplerProgress } from '../../models/samplers/sampler.js';
import { logLinearSchedule } from '../../models/schedule.js';
import type { ArtifactStore } from '../../store/store.js';
import { storeFor } from '../../store/open.js';
import { putTensors } from '../../store/tensors.js';
import type { VectorCampaignConfig } from '../../workflows/config.js';
import { campaignKeys } from '../../workflows/keys.js';
import type { ArtifactRef, PosteriorSampleInput, PosteriorSampleOutput } from '../../workflows/types.js';
import type { Untimed } from '../activity.js';
import { activityContext, stepReporter } from '../context.js';
import { mStepIsConditional } from '../domain.js';
import { BadInputError } from '../errors.js';
import { channelOf } from './channel.js';
import { loadShard } from './data.js';
import { mmpsPosteriorSample } from './mmps.js';
import { networkConfig } from './train.js';

export async function openDenoiser(
  store: ArtifactStore,
  config: VectorCampaignConfig,
  model: ArtifactRef,
  conditional: boolean,
): Promise<Denoiser> {
  const network = networkConfig(config, conditional);
  return OnnxDenoiser.create(await store.getVerified(model), {
    dim: network.dim,
    condDim: network.condDim,
    device: config.runtime.device,
    threads: config.runtime.threads > 0 ? config.runtime.threads : undefined,
  });
}

/**
 * Posterior samples x ~ p(x | y, A) from a conditional model: the E-step's draw, also used by
 * `diffem reconstruct` on new observations, so both stay one sampler with one schedule.
 */
export async function drawPosteriorVector(
  store: ArtifactStore,
  config: VectorCampaignConfig,
  model: ArtifactRef,
  y: NDArray,
  A: NDArray,
  rng: Rng,
  onStep?: SamplerProgress,
): Promise<NDArray> {
  const denoiser = await openDenoiser(store, config, model, true);
  try {
    return await ancestralSample(denoiser, {
      steps: config.estep.steps,
      schedule: logLinearSchedule(config.schedule.sigmaMin, config.schedule.sigmaMax),
      rng,
      cond: conditioning(channelOf(config), y, A),
      onStep,
    });
  } finally {
    await denoiser.dispose?.();
  }
}

/** `count` draws of the unconditional prior by the deterministic Heun sampler (the campaign's own and `diffem sample`'s). */
export async function drawPriorVector(
  store: ArtifactStore,
  config: VectorCampaignConfig,
  model: ArtifactRef,
  count: number,
  rng: Rng,
  onStep?: SamplerProgress,
): Promise<NDArray> {
  const denoiser = await openDenoiser(store, config, model, false);
  try {
    return await heunSample(denoiser, {
      steps: config.prior.samplerSteps,
      schedule: logLinearSchedule(config.schedule.sigmaMin, config.schedule.sigmaMax),
      rng,
      cond: null,
      count,
      onStep,
    });
  } finally {
    await denoiser.dispose?.();
  }
}

export async function posteriorSampleVector(
  config: VectorCampaignConfig,
  input: PosteriorSampleInput,
): Promise<Untimed<PosteriorSampleOutput>> {
  const context = activityContext();
  const { campaignId, lap, shard } = input;
  const store = storeFor(input.store);
  const { y, A } = await loadShard(store, config, shard);
  const rng = Rng.derive(config.seed, 'estep', `lap-${lap}`, `shard-${shard.index}`);
  const rows = shard.end - shard.start;
  let x;
  // Network passes over the shard: one per sampler step plus the final denoise under DiffEM.
  let passes = config.estep.steps + 1;
  let guidance: PosteriorSampleOutput['guidance'];
  if (mStepIsConditional(config)) {
    x = await drawPosteriorVector(store, config, input.model, y, A, rng, stepReporter(context));
  } else {
    if (!input.weights) {
      throw new BadInputError(
        'InvalidConfig',
        `${input.model.key}: EM-MMPS needs the model's weights in the E-step input`,
      );
    }
    const result = await mmpsPosteriorSample({
      store,
      config,
      weights: input.weights,
      y,
      A,
      rng,
      onStep: stepReporter(context),
    });
    x = result.x;
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
  return { samples, evaluations: rows * passes, ...(guidance ? { guidance } : {}) };
}
