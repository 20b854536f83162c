/**
 * FID for image campaigns: the Frechet distance between Gaussian fits of features of a
 * sample set and of a clean reference set (Heusel et al. 2017; `models/metrics/images.ts`),
 * measured as the papers measure it (Rozet et al. 2024; Hosseintabar et al. 2025):
 *   - the reference is the clean TRAIN set (`metrics.fid.reference: train`, the default; at
 *     most `metrics.fid.referenceCount` of its images, a permutation from stream
 *     `fid-reference`), or the held-out test images (`heldout`, the earlier protocol);
 *   - every image is quantised to uint8 (as a saved PNG would be) before its features;
 *   - with `metrics.fid.inceptionScore`, the Inception Score of the same samples beside it,
 *     from the feature model's logits output (`models/metrics/inception-score.ts`).
 *
 * Features, by `metrics.fid.features`:
 *   mnist-classifier  the project's small classifier (`models/metrics/feature-extractor.ts`),
 *                     trained ONCE per campaign, at prepare time, on the labelled clean TRAIN
 *                     images that are not among the observed subset (so nothing the campaign
 *                     reconstructs was seen by the feature extractor, and the held-out test
 *                     images stay unseen by everything), steps `metrics.fid.classifierSteps`,
 *                     stream `classifier/step`; stored as weights and as ONNX. On grey 28x28
 *                     data Inception features say little; this is the usual substitute. Its
 *                     numbers are comparable only between runs with the same classifier
 *                     (same seed, steps and subset), not with published Inception FIDs.
 *   inception         Inception-v3 from the user's ONNX file `metrics.fid.inceptionOnnx`
 *                     (its sha256 is recorded and checked at every use). Contract: one input
 *                     NCHW float32 RGB in [0, 1]; if its spatial size is fixed the images are
 *                     resized bilinearly (half-pixel centres) to it, otherwise fed at their own
 *                     size (e.g. pytorch-fid's FIDInceptionA model exported with
 *                     resize_input=True, which resizes to 299 inside); grey images are repeated
 *                     over RGB; the features are the first output, flattened per image (2048
 *                     pool3 values for Inception-v3).
 *   none              no FID.
 *
 * The reference statistics (mean, covariance of the reference features) are computed once at
 * prepare time and stored; each evaluation featurises at most `metrics.samples` images
 * (50,000 in the CIFAR-10 config, the papers' protocol).
 */
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import type { ImageDataset } from '../../models/datasets/dataset.js';
import { MNIST_CLASSIFIER, type ClassifierConfig } from '../../models/metrics/feature-extractor.js';
import { frechetDistance, gaussianStats } from '../../models/metrics/frechet.js';
import { inceptionScore } from '../../models/metrics/inception-score.js';
import { DATA_MAX, DATA_MIN } from '../../models/datasets/dataset.js';
import { ndarray, takeRows, type NDArray } from '../../models/ndarray.js';
import { exportClassifierToOnnx, CLASSIFIER_ONNX_IO } from '../../models/onnx/export-classifier.js';
import { Rng } from '../../models/rng.js';
import type { ImageCampaignConfig } from '../../workflows/config.js';
import type { ArtifactRef } from '../../workflows/types.js';
import { runTrainingJob } from '../compute/run-training.js';
import type { ActivityContext } from '../context.js';
import { BadInputError } from '../errors.js';
import { getTensors, putTensors } from '../../store/tensors.js';
import { campaignKeys } from '../../workflows/keys.js';
import { sha256Hex, type ArtifactStore } from '../../store/store.js';

export type FidFeatures =
  | { features: 'none' }
  | {
      features: 'mnist-classifier';
      weights: ArtifactRef;
      onnx: ArtifactRef;
      reference: ArtifactRef;
      trainImages: number;
      losses: number[];
    }
  | { features: 'inception'; path: string; sha256: string; reference: ArtifactRef };

/**
 * The clean images the FID reference statistics come from: the train split (at most
 * `referenceCount` of it, drawn by a permutation from stream `fid-reference`), or the
 * held-out test images.
 */
export function fidReferenceImages(config: ImageCampaignConfig, train: NDArray, heldout: NDArray): NDArray {
  const fid = config.metrics.fid;
  if (fid.reference === 'heldout') return heldout;
  const n = train.shape[0];
  const count = Math.min(n, fid.referenceCount ?? n);
  if (count === n) return train;
  return takeRows(train, Rng.derive(config.seed, 'fid-reference').permutation(n).subarray(0, count));
}

/**
 * Images in [-2, 2] rounded to the 256 levels of a byte and mapped back, as a sample is
 * when it is saved as an image: the FID's inputs are uint8 images in the papers' protocol.
 */
export function quantizeUint8(images: Float32Array): Float32Array {
  const out = new Float32Array(images.length);
  const toByte = 255 / (DATA_MAX - DATA_MIN);
  for (let i = 0; i < images.length; i++) {
    const byte = Math.min(255, Math.max(0, Math.round((images[i] - DATA_MIN) * toByte)));
    out[i] = DATA_MIN + byte / toByte;
  }
  return out;
}

/** What `truth` holds for an image campaign. */
export interface ImageTruth {
  kind: 'images';
  fid: FidFeatures;
  /** The first observations (y, operators) and their hidden clean images (`latent`), for the figures. */
  preview: ArtifactRef;
}

export function classifierConfigFor(config: ImageCampaignConfig): ClassifierConfig {
  const { height, width, channels } = config.data;
  if (height === 28 && width === 28 && channels === 1) return MNIST_CLASSIFIER;
  return { height, width, channels, classes: 10, widths: [32, 64, 128], featureDim: 128 };
}

/** Trains the classifier on `train` (labelled) and stores it; then the reference statistics of `reference`. */
export async function prepareFid(
  store: ArtifactStore,
  config: ImageCampaignConfig,
  campaignId: string,
  train: ImageDataset,
  reference: NDArray,
  context: ActivityContext,
): Promise<FidFeatures> {
  const fid = config.metrics.fid;
  if (fid.features === 'none') return { features: 'none' };
  if (fid.features === 'inception') {
    const path = fid.inceptionOnnx!;
    const bytes = await readInception(path);
    const model: FeatureModel = { kind: 'inception', bytes };
    const stats = await storeReference(store, campaignId, config, (await featurise(model, reference, config)).features);
    return { features: 'inception', path, sha256: sha256Hex(bytes), reference: stats };
  }
  if (!train.labels || train.images.shape[0] < 10) {
    throw new BadInputError(
      'InvalidConfig',
      `metrics.fid: the classifier trains on labelled train images outside the observed subset, and data.count leaves ${train.images.shape[0]}`,
    );
  }
  const classifier = classifierConfigFor(config);
  const state = await runTrainingJob(
    {
      kind: 'classifier',
      config: classifier,
      images: train.images,
      labels: train.labels,
      steps: fid.classifierSteps,
      batchSize: 32,
      lr: 2e-3,
      seed: config.seed,
      device: config.runtime.device,
    },
    {
      signal: context.signal,
      onProgress: (step, steps, loss) => context.heartbeat({ classifier: step, of: steps, loss }),
      onCheckpoint: async () => undefined,
    },
  );
  const meta = {
    classifier: JSON.stringify(classifier),
    steps: String(fid.classifierSteps),
    trainImages: String(train.images.shape[0]),
  };
  const weights = await putTensors(store, campaignKeys.fidClassifier(campaignId, 'safetensors'), state.params, meta);
  const onnxBytes = exportClassifierToOnnx(classifier, state.params);
  const onnx = await store.put(campaignKeys.fidClassifier(campaignId, 'onnx'), onnxBytes);
  const stats = await storeReference(
    store,
    campaignId,
    config,
    (await featurise({ kind: 'classifier', bytes: onnxBytes }, reference, config)).features,
  );
  return {
    features: 'mnist-classifier',
    weights,
    onnx,
    reference: stats,
    trainImages: train.images.shape[0],
    losses: state.losses.map((l) => Math.round(l * 1e6) / 1e6),
  };
}

async function readInception(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (error) {
    throw new BadInputError(
      'InvalidConfig',
      `metrics.fid.inceptionOnnx '${path}': ${(error as NodeJS.ErrnoException).code ?? String(error)} (see README, "Image campaigns": an Inception-v3 ONNX file)`,
    );
  }
}

async function storeReference(
  store: ArtifactStore,
  campaignId: string,
  config: ImageCampaignConfig,
  features: NDArray,
): Promise<ArtifactRef> {
  const stats = gaussianStats(features);
  const k = features.shape[1];
  return putTensors(
    store,
    campaignKeys.fidReference(campaignId),
    { mean: ndarray([k], Float32Array.from(stats.mean)), cov: ndarray([k, k], Float32Array.from(stats.cov)) },
    {
      count: String(stats.count),
      features: config.metrics.fid.features,
      reference: config.metrics.fid.reference,
      quantized: 'uint8',
    },
  );
}

export type FeatureModel = { kind: 'classifier' | 'inception'; bytes: Uint8Array };

async function modelOf(store: ArtifactStore, fid: FidFeatures): Promise<FeatureModel | null> {
  if (fid.features === 'none') return null;
  if (fid.features === 'mnist-classifier') return { kind: 'classifier', bytes: await store.getVerified(fid.onnx) };
  const bytes = await readInception(fid.path);
  const digest = sha256Hex(bytes);
  if (digest !== fid.sha256) {
    throw new BadInputError(
      'ArtifactCorrupt',
      `metrics.fid.inceptionOnnx '${fid.path}' changed since the campaign started (sha256 ${digest}, recorded ${fid.sha256})`,
    );
  }
  return { kind: 'inception', bytes };
}

/**
 * Features [n, k] of images [n, H, W, C] in [-2, 2], quantised to uint8 first; with
 * `logitsOutput`, that output too ([n, classes]), for the Inception Score.
 */
export async function featurise(
  model: FeatureModel,
  images: NDArray,
  config: ImageCampaignConfig,
  logitsOutput?: string,
): Promise<{ features: NDArray; logits: NDArray | null }> {
  const session = await InferenceSession.create(model.bytes, {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: config.runtime.threads > 0 ? config.runtime.threads : os.availableParallelism(),
    interOpNumThreads: 1,
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  });
  try {
    const [n, h, w, c] = images.shape;
    const batch = 64;
    const rows: Float32Array[] = [];
    const logitRows: Float32Array[] = [];
    let k = 0;
    let classes = 0;
    const inputName = session.inputNames[0];
    const outputName = model.kind === 'classifier' ? CLASSIFIER_ONNX_IO.features : session.outputNames[0];
    if (logitsOutput && !session.outputNames.includes(logitsOutput)) {
      throw new BadInputError(
        'MalformedModel',
        `metrics.fid.inceptionLogits: the feature model has no output '${logitsOutput}' (it has ${session.outputNames.join(', ')})`,
      );
    }
    const meta = session.inputMetadata.find((m) => m.name === inputName);
    const shape = meta && meta.isTensor ? meta.shape : [];
    const fixedH = typeof shape[2] === 'number' ? shape[2] : h;
    const fixedW = typeof shape[3] === 'number' ? shape[3] : w;
    for (let start = 0; start < n; start += batch) {
      const m = Math.min(batch, n - start);
      const chunk = quantizeUint8(images.data.subarray(start * h * w * c, (start + m) * h * w * c));
      const feed =
        model.kind === 'classifier'
          ? new Tensor('float32', chunk, [m, h, w, c])
          : new Tensor('float32', toInceptionInput(chunk, m, h, w, c, fixedH, fixedW), [m, 3, fixedH, fixedW]);
      const result = await session.run({ [inputName]: feed });
      const out = result[outputName];
      if (!(out.data instanceof Float32Array))
        throw new BadInputError('MalformedModel', `feature model output '${outputName}' is not float32`);
      k = out.data.length / m;
      rows.push(Float32Array.from(out.data));
      if (logitsOutput) {
        const logits = result[logitsOutput];
        if (!(logits.data instanceof Float32Array))
          throw new BadInputError('MalformedModel', `feature model output '${logitsOutput}' is not float32`);
        classes = logits.data.length / m;
        logitRows.push(Float32Array.from(logits.data));
      }
      for (const v of Object.values(result)) v.dispose();
    }
    const stack = (parts: Float32Array[], width: number): NDArray => {
      const out = ndarray([n, width]);
      let offset = 0;
      for (const r of parts) {
        out.data.set(r, offset);
        offset += r.length;
      }
      return out;
    };
    return { features: stack(rows, k), logits: logitsOutput ? stack(logitRows, classes) : null };
  } finally {
    await session.release();
  }
}

/** NHWC [-2, 2] to NCHW RGB [0, 1] at (th, tw), bilinear with half-pixel centres. */
function toInceptionInput(
  src: Float32Array,
  n: number,
  h: number,
  w: number,
  c: number,
  th: number,
  tw: number,
): Float32Array {
  const out = new Float32Array(n * 3 * th * tw);
  const sy = h / th;
  const sx = w / tw;
  for (let i = 0; i < n; i++) {
    for (let oy = 0; oy < th; oy++) {
      const fy = Math.min(Math.max((oy + 0.5) * sy - 0.5, 0), h - 1);
      const y0 = Math.floor(fy);
      const y1 = Math.min(y0 + 1, h - 1);
      const wy = fy - y0;
      for (let ox = 0; ox < tw; ox++) {
        const fx = Math.min(Math.max((ox + 0.5) * sx - 0.5, 0), w - 1);
        const x0 = Math.floor(fx);
        const x1 = Math.min(x0 + 1, w - 1);
        const wx = fx - x0;
        for (let ch = 0; ch < 3; ch++) {
          const sc = c === 1 ? 0 : ch;
          const at = (y: number, x: number) => src[((i * h + y) * w + x) * c + sc];
          const v =
            (1 - wy) * ((1 - wx) * at(y0, x0) + wx * at(y0, x1)) + wy * ((1 - wx) * at(y1, x0) + wx * at(y1, x1));
          out[((i * 3 + ch) * th + oy) * tw + ox] = Math.min(1, Math.max(0, (v + 2) / 4));
        }
      }
    }
  }
  return out;
}

/** The logits output the Inception Score reads, or none when the campaign asks for no score. */
function logitsOutputOf(config: ImageCampaignConfig): string | undefined {
  const fid = config.metrics.fid;
  if (!fid.inceptionScore) return undefined;
  return fid.features === 'mnist-classifier' ? CLASSIFIER_ONNX_IO.logits : fid.inceptionLogits;
}

/**
 * FID of `images` (at most `metrics.samples` of them, a subset drawn from `rng`) against the
 * reference statistics, and the Inception Score of the same subset where the config asks for
 * it; NaN when the campaign has no FID (or no score).
 */
export async function fidOf(
  store: ArtifactStore,
  config: ImageCampaignConfig,
  fid: FidFeatures,
  images: NDArray,
  rng: Rng,
): Promise<{ fid: number; inceptionScore: number }> {
  const model = await modelOf(store, fid);
  if (!model || fid.features === 'none') return { fid: Number.NaN, inceptionScore: Number.NaN };
  const n = images.shape[0];
  const k = Math.min(n, config.metrics.samples);
  const chosen = k < n ? takeRows(images, rng.permutation(n).subarray(0, k)) : images;
  const { features, logits } = await featurise(model, chosen, config, logitsOutputOf(config));
  const stats = gaussianStats(features);
  const { tensors } = await getTensors(store, fid.reference);
  const mean = tensors.mean;
  const cov = tensors.cov;
  if (!mean || !cov || mean.shape[0] !== stats.mean.length) {
    throw new BadInputError(
      'ShapeMismatch',
      `${fid.reference.key}: reference statistics do not match the features (${stats.mean.length} wide)`,
    );
  }
  const score = logits ? inceptionScore(logits.data, k, logits.shape[1], Math.min(10, k)).mean : Number.NaN;
  return { fid: frechetDistance(stats.mean, stats.cov, mean.data, cov.data), inceptionScore: score };
}
