/**
 * The data of a vector campaign (the manifold experiment): the corrupted dataset, drawn once,
 * and its shards, read back with their shapes checked.
 *
 * prepareData draws, from the campaign seed alone: the true curve (`curve`), the hidden
 * clean points (`clean`), their operators (`operators`) and noise (`noise`), and a held-out
 * clean set for the metrics (`heldout`). Only y and A are ever used for learning; the clean
 * sets and the curve are kept for evaluation.
 */
import { observe } from '../../models/channels/channel.js';
import { channelOf } from './channel.js';
import { drawCurve, sampleManifold } from '../../models/manifold.js';
import { concatRows, ndarray, sliceRows, type NDArray } from '../../models/ndarray.js';
import { Rng } from '../../models/rng.js';
import { putJson, type ArtifactStore } from '../../store/store.js';
import { storeFor } from '../../store/open.js';
import { getTensors, putTensors } from '../../store/tensors.js';
import type { VectorCampaignConfig } from '../../workflows/config.js';
import { campaignKeys } from '../../workflows/keys.js';
import type { ArtifactRef, PreparedData, Shard, ShardPlan, StepInput } from '../../workflows/types.js';
import type { Untimed } from '../activity.js';
import { BadInputError } from '../errors.js';
import { storeDataset, tensorOf } from '../io.js';
import { loadSource } from './source.js';

export async function prepareVectorData(
  config: VectorCampaignConfig,
  input: StepInput,
): Promise<Untimed<PreparedData>> {
  const { campaignId } = input;
  const store = storeFor(input.store);
  const seed = config.seed;
  const channel = channelOf(config);
  const curve = drawCurve(Rng.derive(seed, 'curve'), config.data.dim, config.data.terms);
  const heldout = sampleManifold(Rng.derive(seed, 'heldout'), curve, config.metrics.samples).x;
  const truth = await putJson(store, campaignKeys.truth(campaignId, 'curve.json'), curve);
  if (config.data.source) {
    // Files from a growing source: their hidden clean points are unknown (vector metrics do not use them).
    const { y, A, snapshot: files } = await loadSource(config, config.data.source);
    const meta = { source: config.data.source, snapshot: files.digest, channel: channel.kind };
    const hidden = ndarray([0, config.data.dim]);
    const { observations, clean } = await storeDataset(store, campaignId, { y, A }, heldout, hidden, meta);
    const snapshot = await putJson(store, campaignKeys.snapshot(campaignId), files);
    return { observations, clean, truth, datasetDigest: observations.sha256, count: y.shape[0], snapshot };
  }
  const { x } = sampleManifold(Rng.derive(seed, 'clean'), curve, config.data.count);
  const operators = channel.drawOperators(Rng.derive(seed, 'operators'), config.data.count);
  const y = observe(Rng.derive(seed, 'noise'), operators, x, channel.noiseStd);
  // No campaign id in the metadata: the observations' digest is the dataset's identity,
  // the same for every campaign that draws the same data.
  const meta = { seed: String(seed), channel: channel.kind };
  const { observations, clean } = await storeDataset(store, campaignId, { y, A: operators }, heldout, x, meta);
  return { observations, clean, truth, datasetDigest: observations.sha256, count: config.data.count };
}

/**
 * `count` observations of the config's curve from stream `simulate/{part}`: stand-in data for
 * a growing source (`diffem simulate`, the retraining tests), drawn like the campaign's own.
 */
export function simulateObservations(
  config: VectorCampaignConfig,
  part: string,
  count: number,
): { y: NDArray; A: NDArray } {
  const channel = channelOf(config);
  const curve = drawCurve(Rng.derive(config.seed, 'curve'), config.data.dim, config.data.terms);
  const { x } = sampleManifold(Rng.derive(config.seed, 'simulate', part, 'clean'), curve, count);
  const A = channel.drawOperators(Rng.derive(config.seed, 'simulate', part, 'operators'), count);
  const y = observe(Rng.derive(config.seed, 'simulate', part, 'noise'), A, x, channel.noiseStd);
  return { y, A };
}

export async function shardVectorDataset(
  config: VectorCampaignConfig,
  input: StepInput & { observations: ArtifactRef },
): Promise<Untimed<ShardPlan>> {
  const store = storeFor(input.store);
  const { tensors } = await getTensors(store, input.observations);
  const y = tensorOf(tensors, 'y', input.observations.key);
  const A = tensorOf(tensors, 'A', input.observations.key);
  const n = y.shape[0];
  const size = config.em.shardSize;
  const shards: ShardPlan['shards'] = [];
  for (let start = 0, index = 0; start < n; start += size, index++) {
    const end = Math.min(n, start + size);
    const ref = await putTensors(
      store,
      campaignKeys.dataShard(input.campaignId, index),
      { y: sliceRows(y, start, end), A: sliceRows(A, start, end) },
      { start: String(start), end: String(end) },
    );
    shards.push({ index, start, end, observations: ref });
  }
  return { shards };
}

export interface ObservationShard {
  y: NDArray;
  A: NDArray;
}

export async function loadShard(
  store: ArtifactStore,
  config: VectorCampaignConfig,
  shard: Shard,
): Promise<ObservationShard> {
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

/** All reconstructions of a lap, concatenated in shard order, [n, d]. */
export async function loadSamples(
  store: ArtifactStore,
  config: VectorCampaignConfig,
  refs: ArtifactRef[],
): Promise<NDArray> {
  const parts = await Promise.all(
    refs.map(async (ref) => tensorOf((await getTensors(store, ref)).tensors, 'x', ref.key, [config.data.dim])),
  );
  return concatRows(parts);
}

/** Observations from a user's file (y and A, as in a data shard), checked against the campaign's channel. */
export function observationsOfFile(
  config: VectorCampaignConfig,
  tensors: Record<string, NDArray>,
  source: string,
): ObservationShard {
  const channel = channelOf(config);
  const y = tensorOf(tensors, 'y', source, [channel.obsDim]);
  const A = tensorOf(tensors, 'A', source, [channel.obsDim, channel.dim]);
  if (A.shape[0] !== y.shape[0]) {
    throw new BadInputError(
      'ShapeMismatch',
      `${source}: ${A.shape[0]} operators 'A' for ${y.shape[0]} observations 'y'`,
    );
  }
  // A mask operator selects coordinates: its entries are 0 or 1.
  if (channel.kind === 'mask' && A.data.some((v) => v !== 0 && v !== 1)) {
    throw new BadInputError(
      'ShapeMismatch',
      `${source}: 'A' is not a coordinate mask, which this campaign's channel is`,
    );
  }
  return { y, A };
}
