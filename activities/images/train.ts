/**
 * M-step and final-prior training of image campaigns (docs/method.md), the U-Net twin of
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
import { priorModel, type ImageCampaignConfig } from '../../workflows/config.js';
import type { TrainInput, TrainOutput } from '../../workflows/types.js';
import { BadInputError } from '../errors.js';
import { storeFor } from '../../store/open.js';
import { getTensors } from '../../store/tensors.js';
import type { Untimed } from '../activity.js';
import type { TrainingRole } from '../domain.js';
import { runCampaignTraining } from '../training.js';
import { imageChannelOf, loadImageSamples, unetConfigOf } from './common.js';

export async function trainImageDenoiser(
  config: ImageCampaignConfig,
  input: TrainInput,
  { role, conditional }: TrainingRole,
): Promise<Untimed<TrainOutput>> {
  const { lap } = input;
  const store = storeFor(input.store);
  const network = unetConfigOf(config, conditional, role === 'prior' ? priorModel(config) : config.model);
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

  return runCampaignTraining(input, role, {
    job: { kind: 'unet', network, data: { x, cond } },
    params,
    exportOnnx: (weights) => exportUnetToOnnx(network, weights),
  });
}
