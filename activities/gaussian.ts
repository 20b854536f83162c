/**
 * Lap 0: fit N(mu, Sigma) to the observations by EM on the linear-Gaussian model, then
 * draw one exact posterior sample per observation, shard by shard (stream
 * `gaussian/shard-i`), as the first reconstructions (method.md, initialisation).
 */
import { fitGaussianEM, samplePosterior } from '../models/gaussian/dense.js';
import { concatRows, ndarray } from '../models/ndarray.js';
import { Rng } from '../models/rng.js';
import { isImageConfig, vectorConfig } from '../workflows/config.js';
import type { InitializeInput, InitializeOutput } from '../workflows/types.js';
import { activityContext, throwIfCancelled } from './context.js';
import { asActivity } from './errors.js';
import { initializeImageGaussian } from './images/gaussian.js';
import { campaignKey, putTensors, storeFor } from './io.js';
import { loadShard } from './shards.js';

export async function initializeGaussian(input: InitializeInput): Promise<InitializeOutput> {
  if (isImageConfig(input.config)) return asActivity(() => initializeImageGaussian(input));
  return asActivity(async () => {
    const started = performance.now();
    const context = activityContext();
    const { campaignId } = input;
    const config = vectorConfig(input.config);
    const store = storeFor(input.store);
    const shards = await Promise.all(input.shards.map((shard) => loadShard(store, config, shard)));
    const y = concatRows(shards.map((s) => s.y));
    const A = concatRows(shards.map((s) => s.A));
    const fit = fitGaussianEM(y, A, config.channel.noiseStd, { iterations: config.em.gaussianIterations });
    const d = config.data.dim;
    const gaussian = await putTensors(
      store,
      campaignKey(campaignId, 'lap-000', 'gaussian', 'prior.safetensors'),
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
      const key = campaignKey(
        campaignId,
        'lap-000',
        'estep',
        `shard-${String(shard.index).padStart(3, '0')}.safetensors`,
      );
      samples.push(await putTensors(store, key, { x }, { lap: '0', shard: String(shard.index) }));
      context.heartbeat({ shard: shard.index });
    }
    return {
      gaussian,
      samples,
      logLikelihood: fit.logLikelihood,
      seconds: (performance.now() - started) / 1000,
      attempt: context.attempt,
    };
  });
}
