/**
 * Lap 0 of an image campaign (docs/method.md, initialisation): fit a Gaussian prior to the
 * observations by EM with closed-form posteriors, then draw one exact posterior sample per
 * observation, shard by shard (stream `gaussian/shard-i`), as the first reconstructions.
 *
 * Pixel masks: factor analysis N(mu, W W^T + diag(D)), rank `em.gaussianRank`, exact EM
 * (`models/gaussian/factor.ts`, which argues the choice). Blur: the same low-rank family with an
 * isotropic residual, fitted by stochastic EM (`models/gaussian/blur.ts`, which says why the
 * diagonal does not survive a blur). The EM's own draws (initial directions) come from
 * stream `gaussian/init`.
 */
import { ndarray } from '../../models/ndarray.js';
import { Rng } from '../../models/rng.js';
import type { ImageCampaignConfig } from '../../workflows/config.js';
import type { InitializeInput, InitializeOutput } from '../../workflows/types.js';
import { activityContext, throwIfCancelled } from '../context.js';
import { storeFor } from '../../store/open.js';
import { putTensors } from '../../store/tensors.js';
import { campaignKeys } from '../../workflows/keys.js';
import type { Untimed } from '../activity.js';
import { fitBlurGaussian, sampleBlurPosterior } from '../../models/gaussian/blur.js';
import { imageChannelOf, imageShape, loadImageShard } from './common.js';
import { asImages, type ImageObservations } from '../../models/channels/image-operators.js';
import {
  fitMaskedFactorGaussian,
  sampleMaskedPosterior,
  type FactorGaussian,
  type MaskedData,
} from '../../models/gaussian/factor.js';

function maskedData(obs: ImageObservations, P: number, C: number): MaskedData {
  if (obs.ops.kind !== 'mask') throw new TypeError('maskedData needs mask operators');
  return { y: obs.y.data, masks: obs.ops.masks.data, n: obs.y.shape[0], P, C };
}

const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

export async function initializeImageGaussian(
  config: ImageCampaignConfig,
  input: InitializeInput,
): Promise<Untimed<InitializeOutput>> {
  const context = activityContext();
  const { campaignId } = input;
  const store = storeFor(input.store);
  const shape = imageShape(config);
  const P = shape.height * shape.width;
  const C = shape.channels;
  const shards = await Promise.all(input.shards.map((shard) => loadImageShard(store, config, shard)));
  const channel = imageChannelOf(config);
  const onIteration = async (iteration: number, logLikelihood: number) => {
    context.heartbeat({ iteration, logLikelihood });
    throwIfCancelled(context);
    await yieldToLoop();
  };

  let fit: FactorGaussian;
  let logLikelihood: number[];
  if (config.channel.kind === 'pixel-mask') {
    const n = shards.reduce((a, s) => a + s.y.shape[0], 0);
    const y = new Float32Array(n * P * C);
    const masks = new Float32Array(n * P);
    let row = 0;
    for (const s of shards) {
      const m = maskedData(s, P, C);
      y.set(m.y, row * P * C);
      masks.set(m.masks, row * P);
      row += m.n;
    }
    ({ fit, logLikelihood } = await fitMaskedFactorGaussian(
      { y, masks, n, P, C },
      {
        rank: config.em.gaussianRank,
        iterations: config.em.gaussianIterations,
        noiseStd: channel.noiseStd,
        rng: Rng.derive(config.seed, 'gaussian', 'init'),
        onIteration,
      },
    ));
  } else {
    ({ fit, logLikelihood } = await fitBlurGaussian(channel, shards, {
      rank: config.em.gaussianRank,
      iterations: config.em.gaussianIterations,
      seed: config.seed,
      onIteration,
    }));
  }

  const d = fit.d;
  const gaussian = await putTensors(
    store,
    campaignKeys.gaussian(campaignId),
    {
      mean: ndarray([d], Float32Array.from(fit.mean)),
      factors: ndarray([d, fit.k], Float32Array.from(fit.factors)),
      diag: ndarray([d], Float32Array.from(fit.diag)),
    },
    {
      logLikelihood: JSON.stringify(logLikelihood),
      model: config.channel.kind === 'pixel-mask' ? 'factor-analysis' : 'ppca',
    },
  );
  const samples = [];
  for (const [i, shard] of input.shards.entries()) {
    throwIfCancelled(context);
    const rng = Rng.derive(config.seed, 'gaussian', `shard-${shard.index}`);
    const rows =
      config.channel.kind === 'pixel-mask'
        ? sampleMaskedPosterior(fit, maskedData(shards[i], P, C), channel.noiseStd, rng)
        : await sampleBlurPosterior(channel, fit, shards[i], rng);
    const key = campaignKeys.posteriorShard(campaignId, 0, shard.index);
    samples.push(await putTensors(store, key, { x: asImages(rows, shape) }, { lap: '0', shard: String(shard.index) }));
    context.heartbeat({ shard: shard.index });
    await yieldToLoop();
  }
  return {
    gaussian,
    samples,
    logLikelihood: logLikelihood.map((l) => Math.round(l * 1e4) / 1e4),
  };
}
