/**
 * Data activities of image campaigns: draw the observed subset and corrupt it once; cut it
 * into shards.
 *
 * prepareImageData, from the campaign seed alone:
 *   subset      `data.count` train images, the first of a permutation (stream `subset`):
 *               their clean versions are hidden (kept for PSNR / SSIM only);
 *   operators   one operator per observation (stream `operators`): a pixel mask shared
 *               across colour channels, or a blur kernel;
 *   noise       y = A x + e, e ~ N(0, s_y^2) (stream `noise`);
 *   heldout     `data.heldout` clean test images (stream `heldout`), kept with the clean data;
 *   FID         the feature classifier, trained on the train images OUTSIDE the subset
 *               (`fid.ts`), and the reference statistics: of the clean train split by
 *               default (the papers' protocol), or of the held-out images.
 * Only y and the operators are ever used for learning. The dataset's identity in every
 * record is the sha256 of the observations artifact.
 */
import { sliceRows, takeRows } from '../../models/ndarray.js';
import { Rng } from '../../models/rng.js';
import type { ImageCampaignConfig } from '../../workflows/config.js';
import type { ArtifactRef, PreparedData, ShardPlan, StepInput } from '../../workflows/types.js';
import { activityContext } from '../context.js';
import { BadInputError } from '../errors.js';
import { storeDataset } from '../io.js';
import { storeFor } from '../../store/open.js';
import { getTensors, putTensors } from '../../store/tensors.js';
import { campaignKeys } from '../../workflows/keys.js';
import type { Untimed } from '../activity.js';
import { putJson } from '../../store/store.js';
import { imageChannelOf, observationsOf, operatorTensors } from './common.js';
import { sliceOperators } from '../../models/channels/image-operators.js';
import { fidReferenceImages, prepareFid, type ImageTruth } from './fid.js';
import { loadImageSource } from './sources.js';

/** Observations kept apart for the figures: the first of the dataset, the same every lap. */
export const PREVIEW_IMAGES = 16;

export async function prepareImageData(config: ImageCampaignConfig, input: StepInput): Promise<Untimed<PreparedData>> {
  const context = activityContext();
  const { campaignId } = input;
  const store = storeFor(input.store);
  const seed = config.seed;
  const source = await loadImageSource(config);
  const nTrain = source.train.images.shape[0];
  const nTest = source.test.images.shape[0];
  if (config.data.count > nTrain) {
    throw new BadInputError(
      'InvalidConfig',
      `data.count: ${config.data.count} observations asked, the ${config.data.kind} train split has ${nTrain} images`,
    );
  }
  if (config.data.heldout > nTest) {
    throw new BadInputError(
      'InvalidConfig',
      `data.heldout: ${config.data.heldout} held-out images asked, the ${config.data.kind} test split has ${nTest}`,
    );
  }
  const order = Rng.derive(seed, 'subset').permutation(nTrain);
  const observed = order.subarray(0, config.data.count);
  const x = takeRows(source.train.images, observed);
  const channel = imageChannelOf(config);
  const ops = channel.drawOperators(Rng.derive(seed, 'operators'), config.data.count);
  const y = channel.apply(ops, x, Rng.derive(seed, 'noise'));
  const heldout = takeRows(
    source.test.images,
    Rng.derive(seed, 'heldout').permutation(nTest).subarray(0, config.data.heldout),
  );

  // No campaign id in the metadata: the observations' digest is the dataset's identity.
  const meta = { seed: String(seed), dataset: config.data.kind, channel: config.channel.kind };
  const { observations, clean } = await storeDataset(
    store,
    campaignId,
    { y, ...operatorTensors(ops) },
    heldout,
    x,
    meta,
  );
  context.heartbeat({ stage: 'fid' });

  // The classifier never sees an observed image's clean version.
  const rest = order.subarray(config.data.count);
  const classifierTrain = {
    images: takeRows(source.train.images, rest),
    labels: source.train.labels ? Int32Array.from(rest, (i) => source.train.labels![i]) : null,
  };
  const reference = fidReferenceImages(config, source.train.images, heldout);
  const fid = await prepareFid(store, config, campaignId, classifierTrain, reference, context);
  const shown = Math.min(PREVIEW_IMAGES, config.data.count);
  const preview = await putTensors(
    store,
    campaignKeys.preview(campaignId),
    { y: sliceRows(y, 0, shown), latent: sliceRows(x, 0, shown), ...operatorTensors(sliceOperators(ops, 0, shown)) },
    meta,
  );
  const truthDoc: ImageTruth = { kind: 'images', fid, preview };
  const truth = await putJson(store, campaignKeys.truth(campaignId, 'truth.json'), truthDoc);
  return {
    observations,
    clean,
    truth,
    datasetDigest: observations.sha256,
    count: config.data.count,
  };
}

export async function shardImageDataset(
  config: ImageCampaignConfig,
  input: StepInput & { observations: ArtifactRef },
): Promise<Untimed<ShardPlan>> {
  const store = storeFor(input.store);
  const { tensors } = await getTensors(store, input.observations);
  const { y, ops } = observationsOf(config, tensors, input.observations.key);
  const n = y.shape[0];
  const size = config.em.shardSize;
  const shards: ShardPlan['shards'] = [];
  for (let start = 0, index = 0; start < n; start += size, index++) {
    const end = Math.min(n, start + size);
    const key = campaignKeys.dataShard(input.campaignId, index);
    const ref = await putTensors(
      store,
      key,
      { y: sliceRows(y, start, end), ...operatorTensors(sliceOperators(ops, start, end)) },
      { start: String(start), end: String(end) },
    );
    shards.push({ index, start, end, observations: ref });
  }
  return { shards };
}
