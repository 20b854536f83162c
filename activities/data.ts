/**
 * Data activities: generate the campaign's corrupted dataset once, and cut it into shards.
 *
 * prepareData draws, from the campaign seed alone: the true curve (`curve`), the hidden
 * clean points (`clean`), their operators (`operators`) and noise (`noise`), and a held-out
 * clean set for the metrics (`heldout`). Only y and A are ever used for learning; the clean
 * sets and the curve are kept for evaluation.
 */
import { observe } from '../models/channels/channel.js';
import { vectorChannel } from '../models/channels/index.js';
import { drawCurve, sampleManifold } from '../models/manifold.js';
import { sliceRows } from '../models/ndarray.js';
import { Rng } from '../models/rng.js';
import { isImageConfig, vectorConfig, type CampaignConfig } from '../workflows/config.js';
import type { ArtifactRef, PreparedData, ShardPlan, StepInput } from '../workflows/types.js';
import { activityContext } from './context.js';
import { asActivity } from './errors.js';
import { campaignKey, getTensors, putTensors, storeDataset, storeFor, tensorOf } from './io.js';
import { prepareImageData, shardImageDataset } from './images/data.js';
import { putJson } from './store/store.js';

export function channelOf(campaign: CampaignConfig) {
  const config = vectorConfig(campaign);
  return vectorChannel(config.channel, config.data.dim);
}

export async function prepareData(input: StepInput): Promise<PreparedData> {
  if (isImageConfig(input.config)) return asActivity(() => prepareImageData(input));
  return asActivity(async () => {
    const started = performance.now();
    const { campaignId } = input;
    const config = vectorConfig(input.config);
    const store = storeFor(input.store);
    const seed = config.seed;
    const channel = channelOf(config);
    const curve = drawCurve(Rng.derive(seed, 'curve'), config.data.dim, config.data.terms);
    const { x } = sampleManifold(Rng.derive(seed, 'clean'), curve, config.data.count);
    const operators = channel.drawOperators(Rng.derive(seed, 'operators'), config.data.count);
    const y = observe(Rng.derive(seed, 'noise'), operators, x, channel.noiseStd);
    const heldout = sampleManifold(Rng.derive(seed, 'heldout'), curve, config.metrics.samples).x;
    // No campaign id in the metadata: the observations' digest is the dataset's identity,
    // the same for every campaign that draws the same data.
    const meta = { seed: String(seed), channel: channel.kind };
    const { observations, clean } = await storeDataset(store, campaignId, { y, A: operators }, heldout, x, meta);
    const truth = await putJson(store, campaignKey(campaignId, 'data', 'curve.json'), curve);
    return {
      observations,
      clean,
      truth,
      datasetDigest: observations.sha256,
      count: config.data.count,
      seconds: (performance.now() - started) / 1000,
      attempt: activityContext().attempt,
    };
  });
}

export async function shardDataset(input: StepInput & { observations: ArtifactRef }): Promise<ShardPlan> {
  if (isImageConfig(input.config)) return asActivity(() => shardImageDataset(input));
  return asActivity(async () => {
    const started = performance.now();
    const store = storeFor(input.store);
    const { tensors } = await getTensors(store, input.observations);
    const y = tensorOf(tensors, 'y', input.observations.key);
    const A = tensorOf(tensors, 'A', input.observations.key);
    const n = y.shape[0];
    const size = input.config.em.shardSize;
    const shards: ShardPlan['shards'] = [];
    for (let start = 0, index = 0; start < n; start += size, index++) {
      const end = Math.min(n, start + size);
      const key = campaignKey(
        input.campaignId,
        'data',
        'shards',
        `shard-${String(index).padStart(3, '0')}.safetensors`,
      );
      const ref = await putTensors(
        store,
        key,
        { y: sliceRows(y, start, end), A: sliceRows(A, start, end) },
        { start: String(start), end: String(end) },
      );
      shards.push({ index, start, end, observations: ref });
    }
    return { shards, seconds: (performance.now() - started) / 1000, attempt: activityContext().attempt };
  });
}
