/**
 * M-step and final-prior training of a vector campaign (docs/method.md#m-step).
 *
 * M-step (DiffEM): re-corrupt every reconstruction x_i with a FRESH operator,
 * y'_i = A'_i x_i + e'_i (streams `recorrupt/lap-k`, `recorrupt-noise/lap-k`; the observed y_i
 * is never reused), then train the conditional MLP on (x_i, y'_i, A'_i), warm-started from
 * the previous lap's (EMA) weights with a fresh optimiser. Under EM-MMPS the same step trains
 * the unconditional MLP on the reconstructions. The final prior: a fresh unconditional MLP on
 * the final reconstructions. `../training.ts` runs the training durably.
 */
import { conditioning, conditioningWidth, observe } from '../../models/channels/channel.js';
import { checkParams, initMlpParams, type MlpConfig, type ParamMap } from '../../models/denoisers/mlp.js';
import type { NDArray } from '../../models/ndarray.js';
import { exportMlpToOnnx } from '../../models/onnx/export-mlp.js';
import { Rng } from '../../models/rng.js';
import { storeFor } from '../../store/open.js';
import { getTensors } from '../../store/tensors.js';
import { priorModel, type VectorCampaignConfig } from '../../workflows/config.js';
import type { TrainInput, TrainOutput } from '../../workflows/types.js';
import type { Untimed } from '../activity.js';
import type { TrainingRole } from '../domain.js';
import { runCampaignTraining } from '../training.js';
import { channelOf } from './channel.js';
import { loadSamples } from './data.js';

/** The MLP of a campaign; `model` is the campaign's network unless given (the final prior's, `priorModel`). */
export function networkConfig(
  config: VectorCampaignConfig,
  conditional: boolean,
  model: VectorCampaignConfig['model'] = config.model,
): MlpConfig {
  return {
    dim: config.data.dim,
    condDim: conditional ? conditioningWidth(channelOf(config)) : 0,
    hidden: model.hidden,
    embedDim: model.embedDim,
  };
}

export async function trainVectorDenoiser(
  config: VectorCampaignConfig,
  input: TrainInput,
  { role, conditional }: TrainingRole,
): Promise<Untimed<TrainOutput>> {
  const { lap } = input;
  const store = storeFor(input.store);
  const network = networkConfig(config, conditional, role === 'prior' ? priorModel(config) : config.model);
  const x = await loadSamples(store, config, input.samples);
  const cond = conditional ? recorrupt(config, lap, x) : null;
  let params: ParamMap;
  if (input.init) {
    params = (await getTensors(store, input.init)).tensors;
    checkParams(network, params, input.init.key);
  } else {
    params = initMlpParams(network, Rng.derive(config.seed, role === 'prior' ? 'prior-init' : 'init', `lap-${lap}`));
  }
  return runCampaignTraining(input, role, {
    job: { kind: 'mlp', network, data: { x, cond } },
    params,
    exportOnnx: (weights) => exportMlpToOnnx(network, weights),
  });
}

/** (x_i, [y'_i, features(A'_i)]) with fresh operators and noise for this lap. */
function recorrupt(config: VectorCampaignConfig, lap: number, x: NDArray): NDArray {
  const channel = channelOf(config);
  const operators = channel.drawOperators(Rng.derive(config.seed, 'recorrupt', `lap-${lap}`), x.shape[0]);
  const y = observe(Rng.derive(config.seed, 'recorrupt-noise', `lap-${lap}`), operators, x, channel.noiseStd);
  return conditioning(channel, y, operators);
}
