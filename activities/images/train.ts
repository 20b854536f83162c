/**
 * M-step and final-prior training of image campaigns (method.md), the U-Net twin of
 * `activities/train.ts`:
 *
 *   trainConditional  re-corrupt every reconstruction x_i with a FRESH operator of the channel
 *                     (streams `recorrupt/lap-k` for the operators, `recorrupt-noise/lap-k` for
 *                     e'), y'_i = A'_i x_i + e'_i (the observed y_i is never reused), and train
 *                     the conditional U-Net D(x_t, sigma, [y', mask']) on the pairs, warm-started
 *                     from the previous lap's EMA weights with a fresh optimiser;
 *   trainPrior        a fresh unconditional U-Net on the final reconstructions.
 *
 * Training runs in a worker thread (`compute/run-training.ts`), checkpoints every
 * `training.checkpointEvery` steps and resumes from the checkpoint of an interrupted attempt
 * with the same result (every step's draws derive from seed, lap and step). The weights are
 * exported to ONNX for the samplers.
 */
import type { ParamMap } from '../../models/denoisers/mlp.js';
import { checkUnetParams, initUnetParams } from '../../models/denoisers/unet.js';
import { exportUnetToOnnx } from '../../models/onnx/export-unet.js';
import { Rng } from '../../models/rng.js';
import { exportedWeights } from '../../models/training/trainer.js';
import { lapName } from '../../workflows/campaign.js';
import type { ImageCampaignConfig } from '../../workflows/config.js';
import type { TrainInput, TrainOutput } from '../../workflows/types.js';
import { runTrainingJob } from '../compute/run-training.js';
import { activityContext } from '../context.js';
import { BadInputError } from '../errors.js';
import { campaignKey, getTensors, putTensors, storeFor } from '../io.js';
import { sha256Hex } from '../store/store.js';
import { loadCheckpoint, saveCheckpoint, type CheckpointDetails } from '../train.js';
import { imageChannelOf, loadImageSamples, unetConfigOf } from './common.js';

export async function trainImageDenoiser(
  input: TrainInput,
  role: 'train' | 'prior',
  conditional: boolean,
): Promise<TrainOutput> {
  const started = performance.now();
  const context = activityContext();
  const config = input.config as ImageCampaignConfig;
  const { campaignId, lap } = input;
  const store = storeFor(input.store);
  const network = unetConfigOf(config, conditional);
  const dir = role === 'prior' ? ['final', 'prior'] : [lapName(lap), 'train'];
  const x = await loadImageSamples(store, config, input.samples);
  let cond = null;
  if (conditional) {
    const channel = imageChannelOf(config);
    const ops = channel.drawOperators(Rng.derive(config.seed, 'recorrupt', `lap-${lap}`), x.shape[0]);
    const y = channel.apply(ops, x, Rng.derive(config.seed, 'recorrupt-noise', `lap-${lap}`));
    cond = channel.conditioning(ops, y);
  }

  let params: ParamMap;
  if (input.init) {
    params = (await getTensors(store, input.init)).tensors;
    try {
      checkUnetParams(network, params, input.init.key);
    } catch (error) {
      throw new BadInputError('ShapeMismatch', error instanceof Error ? error.message : String(error));
    }
  } else {
    params = initUnetParams(network, Rng.derive(config.seed, role === 'prior' ? 'prior-init' : 'init', `lap-${lap}`));
  }

  const training = config.training;
  const steps =
    role === 'prior' ? config.prior.steps : lap === 0 ? (training.firstSteps ?? training.steps) : training.steps;
  // A checkpoint is only resumed by the very job that wrote it.
  const jobDigest = sha256Hex(
    new TextEncoder().encode(
      JSON.stringify({
        role,
        lap,
        steps,
        training,
        network,
        init: input.init?.sha256 ?? null,
        samples: input.samples.map((s) => s.sha256),
      }),
    ),
  );
  const checkpointKey = campaignKey(campaignId, ...dir, 'checkpoint.safetensors');
  const details = context.heartbeatDetails as Partial<CheckpointDetails> | undefined;
  const resume = await loadCheckpoint(store, details?.checkpoint ?? checkpointKey, jobDigest);

  const state = await runTrainingJob(
    {
      kind: 'unet',
      network,
      data: { x, cond },
      params,
      resume,
      options: {
        steps,
        batchSize: training.batchSize,
        optimizer: {
          lr: training.lr,
          beta1: 0.9,
          beta2: 0.999,
          epsilon: 1e-8,
          clip: training.clip,
          emaDecay: training.emaDecay,
        },
        lrSchedule: training.lrSchedule,
        timeDistribution: training.timeDistribution,
        seed: config.seed,
        streamPath: [role === 'prior' ? 'prior-train' : 'train', `lap-${lap}`],
      },
      sigmaMin: config.schedule.sigmaMin,
      sigmaMax: config.schedule.sigmaMax,
      checkpointEvery: training.checkpointEvery,
      device: config.runtime.device,
    },
    {
      signal: context.signal,
      onProgress: (step, total, loss) => context.heartbeat({ step, steps: total, loss, checkpoint: checkpointKey }),
      onCheckpoint: async (checkpoint) => {
        await saveCheckpoint(store, checkpointKey, checkpoint, jobDigest);
        context.heartbeat({ step: checkpoint.optimizer.step, steps, checkpoint: checkpointKey });
      },
    },
  );

  const weights = exportedWeights(state);
  const meta = { campaign: campaignId, lap: String(lap), role, network: JSON.stringify(network) };
  const weightsRef = await putTensors(store, campaignKey(campaignId, ...dir, 'weights.safetensors'), weights, meta);
  const onnx = await store.put(campaignKey(campaignId, ...dir, 'denoiser.onnx'), exportUnetToOnnx(network, weights));
  return {
    weights: weightsRef,
    onnx,
    losses: state.losses.map((l) => Math.round(l * 1e6) / 1e6),
    steps,
    resumedFromStep: resume?.optimizer.step ?? 0,
    seconds: (performance.now() - started) / 1000,
    attempt: context.attempt,
  };
}
