/**
 * E-step activity: one posterior sample per observation of a shard, drawn by the ancestral
 * sampler with the conditional denoiser running on ONNX Runtime (stream
 * `estep/lap-k/shard-i`, so a retried shard draws the same numbers). Under EM-MMPS the
 * unconditional denoiser is guided by moment matching instead.
 * Also the final prior's samples (deterministic Heun sampler, stream `prior-sample`).
 */
import { conditioning } from '../models/channels/channel.js';
import type { Denoiser } from '../models/denoisers/denoiser.js';
import { OnnxDenoiser } from '../models/onnx/runtime.js';
import { Rng } from '../models/rng.js';
import { ancestralSample } from '../models/samplers/ancestral.js';
import { heunSample } from '../models/samplers/heun.js';
import { logLinearSchedule } from '../models/schedule.js';
import type { CampaignConfig } from '../workflows/config.js';
import { lapName } from '../workflows/campaign.js';
import type {
  ArtifactRef,
  PosteriorSampleInput,
  PosteriorSampleOutput,
  SamplePriorInput,
  SamplePriorOutput,
} from '../workflows/types.js';
import { activityContext, throwIfCancelled, type ActivityContext } from './context.js';
import { channelOf } from './data.js';
import { asActivity, BadInputError } from './errors.js';
import { manifoldMetrics } from './evaluate.js';
import { campaignKey, putTensors, storeFor } from './io.js';
import { loadShard } from './shards.js';
import type { ArtifactStore } from './store/store.js';
import { mStepIsConditional, networkConfig } from './train.js';
import { mmpsPosteriorSample } from './mmps.js';
import { isImageConfig } from '../workflows/config.js';
import { posteriorSampleImage, samplePriorImage } from './images/sample.js';

export async function openDenoiser(
  store: ArtifactStore,
  config: CampaignConfig,
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

function stepReporter(context: ActivityContext, label: string) {
  return (done: number, total: number) => {
    throwIfCancelled(context);
    context.heartbeat({ [label]: done, of: total });
  };
}

export function posteriorSample(input: PosteriorSampleInput): Promise<PosteriorSampleOutput> {
  if (isImageConfig(input.config)) return asActivity(() => posteriorSampleImage(input));
  return asActivity(async () => {
    const started = performance.now();
    const context = activityContext();
    const { config, campaignId, lap, shard } = input;
    const store = storeFor(input.store);
    const { y, A } = await loadShard(store, config, shard);
    const schedule = logLinearSchedule(config.schedule.sigmaMin, config.schedule.sigmaMax);
    const rng = Rng.derive(config.seed, 'estep', `lap-${lap}`, `shard-${shard.index}`);
    const rows = shard.end - shard.start;
    let x;
    // Network passes over the shard: one per sampler step plus the final denoise under DiffEM.
    let passes = config.estep.steps + 1;
    if (mStepIsConditional(config)) {
      const denoiser = await openDenoiser(store, config, input.model, true);
      try {
        const cond = conditioning(channelOf(config), y, A);
        x = await ancestralSample(denoiser, {
          steps: config.estep.steps,
          schedule,
          rng,
          cond,
          onStep: stepReporter(context, 'step'),
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
      const result = await mmpsPosteriorSample({
        store,
        config,
        weights: input.weights,
        y,
        A,
        rng,
        onStep: stepReporter(context, 'step'),
      });
      x = result.x;
      passes = result.passes;
    }
    const key = campaignKey(
      campaignId,
      lap > config.em.laps ? 'final' : lapName(lap),
      'estep',
      `shard-${String(shard.index).padStart(3, '0')}.safetensors`,
    );
    const samples = await putTensors(
      store,
      key,
      { x },
      { lap: String(lap), shard: String(shard.index), method: config.method },
    );
    return {
      samples,
      evaluations: rows * passes,
      seconds: (performance.now() - started) / 1000,
      attempt: context.attempt,
    };
  });
}

export function samplePrior(input: SamplePriorInput): Promise<SamplePriorOutput> {
  if (isImageConfig(input.config)) return asActivity(() => samplePriorImage(input));
  return asActivity(async () => {
    const started = performance.now();
    const context = activityContext();
    const { config, campaignId } = input;
    const store = storeFor(input.store);
    const denoiser = await openDenoiser(store, config, input.model, false);
    const schedule = logLinearSchedule(config.schedule.sigmaMin, config.schedule.sigmaMax);
    let x;
    try {
      x = await heunSample(denoiser, {
        steps: config.prior.samplerSteps,
        schedule,
        rng: Rng.derive(config.seed, 'prior-sample'),
        cond: null,
        count: config.prior.samples,
        onStep: stepReporter(context, 'step'),
      });
    } finally {
      await denoiser.dispose?.();
    }
    const samples = await putTensors(
      store,
      campaignKey(campaignId, 'final', 'prior', 'samples.safetensors'),
      { x },
      { sampler: 'heun' },
    );
    const metrics = await manifoldMetrics(
      store,
      config,
      x,
      input.clean,
      input.truth,
      Rng.derive(config.seed, 'metrics', 'prior'),
    );
    return { samples, metrics, seconds: (performance.now() - started) / 1000, attempt: context.attempt };
  });
}
