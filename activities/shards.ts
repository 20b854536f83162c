/** Reading the stored observations and reconstructions back, with their shapes checked. */
import type { NDArray } from '../models/ndarray.js';
import { concatRows } from '../models/ndarray.js';
import type { ArtifactStore } from './store/store.js';
import { isImageConfig, vectorConfig, type CampaignConfig } from '../workflows/config.js';
import type { ArtifactRef, Shard } from '../workflows/types.js';
import { BadInputError } from './errors.js';
import { getTensors, tensorOf } from './io.js';
import { channelOf } from './data.js';
import { loadImageSamples } from './images/common.js';

export interface ObservationShard {
  y: NDArray;
  A: NDArray;
}

export async function loadShard(store: ArtifactStore, config: CampaignConfig, shard: Shard): Promise<ObservationShard> {
  const channel = channelOf(config);
  const source = shard.observations.key;
  const { tensors } = await getTensors(store, shard.observations);
  const y = tensorOf(tensors, 'y', source, [channel.obsDim]);
  const A = tensorOf(tensors, 'A', source, [channel.obsDim, channel.dim]);
  const rows = shard.end - shard.start;
  if (y.shape[0] !== rows || A.shape[0] !== rows) {
    throw new BadInputError(
      'ShapeMismatch',
      `${source}: holds ${y.shape[0]} observations, the shard plan says ${rows}`,
    );
  }
  return { y, A };
}

/** All reconstructions of a lap, concatenated in shard order ([n, d]; images: [n, H, W, C]). */
export async function loadSamples(
  store: ArtifactStore,
  campaign: CampaignConfig,
  refs: ArtifactRef[],
): Promise<NDArray> {
  if (isImageConfig(campaign)) return loadImageSamples(store, campaign, refs);
  const config = vectorConfig(campaign);
  const parts = await Promise.all(
    refs.map(async (ref) => tensorOf((await getTensors(store, ref)).tensors, 'x', ref.key, [config.data.dim])),
  );
  return concatRows(parts);
}
