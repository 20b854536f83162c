/**
 * Lap 0 of a vector campaign: fit N(mu, Sigma) to the observations by EM on the
 * linear-Gaussian model, then draw one exact posterior sample per observation, shard by
 * shard (stream `gaussian/shard-i`), as the first reconstructions (docs/method.md#initialisation).
 */
import { fitGaussianEM, samplePosterior } from '../../models/gaussian/dense.js';
import { concatRows, ndarray } from '../../models/ndarray.js';
import { Rng } from '../../models/rng.js';
import { storeFor } from '../../store/open.js';
import { putTensors } from '../../store/tensors.js';
import type { VectorCampaignConfig } from '../../workflows/config.js';
import { campaignKeys } from '../../workflows/keys.js';
import type { InitializeInput, InitializeOutput } from '../../workflows/types.js';
import type { Untimed } from '../activity.js';
import { activityContext, throwIfCancelled } from '../context.js';
import { loadShard } from './data.js';

export async function initializeVectorGaussian(
  config: VectorCampaignConfig,
  input: InitializeInput,
): Promise<Untimed<InitializeOutput>> {
  const context = activityContext();
  const { campaignId } = input;
  const store = storeFor(input.store);
  const shards = await Promise.all(input.shards.map((shard) => loadShard(store, config, shard)));
  const y = concatRows(shards.map((s) => s.y));
  const A = concatRows(shards.map((s) => s.A));
  const fit = fitGaussianEM(y, A, config.channel.noiseStd, { iterations: config.em.gaussianIterations });
  const d = config.data.dim;
  const gaussian = await putTensors(
    store,
    campaignKeys.gaussian(campaignId),
    { mean: ndarray([d], Float32Array.from(fit.mean)), cov: ndarray([d, d], Float32Array.from(fit.cov)) },
    { logLikelihood: JSON.stringify(fit.logLikelihood) },
  );
  const samples = [];
  for (const [i, shard] of input.shards.entries()) {
    throwIfCancelled(context);
    const x = samplePosterior(
      Rng.derive(config.seed, 'gaussian', `shard-${shard.index}`),
      shards[i].y,
      shards[i].A,
      config.channel.noiseStd,
      fit,
    );
    const key = campaignKeys.posteriorShard(campaignId, 0, shard.index);
    samples.push(await putTensors(store, key, { x }, { lap: '0', shard: String(shard.index) }));
    context.heartbeat({ shard: shard.index });
  }
  return { gaussian, samples, logLikelihood: fit.logLikelihood };
}
