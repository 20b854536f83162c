import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { featurise, fidOf, fidReferenceImages, quantizeUint8, type FidFeatures } from '../activities/images/fid.js';
import { initClassifierParams, MNIST_CLASSIFIER } from '../models/metrics/feature-extractor.js';
import { frechetDistance, gaussianStats } from '../models/metrics/frechet.js';
import { inceptionScore } from '../models/metrics/inception-score.js';
import { ndarray, type NDArray } from '../models/ndarray.js';
import { exportClassifierToOnnx } from '../models/onnx/export-classifier.js';
import { Rng } from '../models/rng.js';
import { storeFor } from '../store/open.js';
import { putTensors } from '../store/tensors.js';
import { parseCampaignConfig, type ImageCampaignConfig } from '../workflows/config.js';

const STEP = 4 / 255;
let dir = '';

after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

function imageConfig(fid: Record<string, unknown>): ImageCampaignConfig {
  const config = parseCampaignConfig({
    seed: 3,
    data: { kind: 'mnist', count: 16, heldout: 16 },
    channel: { kind: 'pixel-mask', rate: 0.5, noiseStd: 0.001 },
    model: { kind: 'unet', levels: [8, 8], blocksPerLevel: 1, attentionLevels: [], embedDim: 8, groups: 4 },
    metrics: { samples: 400, fid },
    runtime: { device: 'cpu', threads: 1 },
  });
  if (config.data.kind === 'manifold') throw new Error('expected an image config');
  return config as ImageCampaignConfig;
}

/** n random 28x28 images already on the 256 byte levels of [-2, 2], with a per-set brightness shift. */
function byteImages(rng: Rng, n: number, shift: number): NDArray {
  const x = ndarray([n, 28, 28, 1]);
  for (let i = 0; i < x.data.length; i++) x.data[i] = Math.max(-2, Math.min(2, 1.2 * rng.normal() + shift));
  x.data.set(quantizeUint8(x.data));
  return x;
}

test('Inception Score: 1 for identical predictions, K for confident predictions spread over K classes', () => {
  const K = 5;
  const n = 50;
  const same = new Float32Array(n * K).map((_, j) => (j % K === 2 ? 3 : 0));
  assert.ok(Math.abs(inceptionScore(same, n, K, 5).mean - 1) < 1e-9);
  const spread = new Float32Array(n * K).map((_, j) => (j % K === Math.floor(j / K) % K ? 60 : 0));
  const score = inceptionScore(spread, n, K, 5);
  assert.ok(Math.abs(score.mean - K) < 1e-6, `IS ${score.mean}`);
  assert.ok(score.std < 1e-6);
});

test('uint8 quantisation: values within half a level of a byte land on it, and levels are fixed points', () => {
  // Byte b sits at -2 + b * 4 / 255 (0 is between two levels).
  const levels = Float32Array.from([-2, -2 + STEP, -2 + 128 * STEP, 2 - STEP, 2]);
  assert.deepEqual(
    quantizeUint8(levels),
    levels.map((v) => Math.fround(v)),
  );
  const nudged = levels.map((v, i) => v + (i % 2 ? 0.4 : -0.4) * STEP);
  assert.deepEqual(quantizeUint8(nudged), quantizeUint8(levels));
  assert.deepEqual([...quantizeUint8(Float32Array.from([-3, 2.5]))], [-2, 2]);
});

test('FID on the train-set protocol: 0 for the train set itself (also nudged within a byte), the exact distance for other images', async () => {
  dir = await mkdtemp(join(tmpdir(), 'diffem-fid-'));
  const store = storeFor(dir);
  const rng = Rng.derive(11, 'fid-protocol');
  const train = byteImages(rng, 300, 0);
  const heldout = byteImages(rng, 300, 0.4);
  const config = imageConfig({ features: 'mnist-classifier' });
  // The protocol's reference is the clean train split, whole by default.
  assert.equal(fidReferenceImages(config, train, heldout), train);
  assert.equal(fidReferenceImages(imageConfig({ reference: 'heldout' }), train, heldout), heldout);
  const capped = fidReferenceImages(imageConfig({ referenceCount: 40 }), train, heldout);
  assert.deepEqual(capped.shape, [40, 28, 28, 1]);

  const bytes = exportClassifierToOnnx(MNIST_CLASSIFIER, initClassifierParams(MNIST_CLASSIFIER, Rng.derive(5, 'clf')));
  const model = { kind: 'classifier' as const, bytes };
  const onnx = await store.put('fid/classifier.onnx', bytes);
  const referenceFeatures = (await featurise(model, fidReferenceImages(config, train, heldout), config)).features;
  const stats = gaussianStats(referenceFeatures);
  const k = stats.mean.length;
  const reference = await putTensors(store, 'fid/reference.safetensors', {
    mean: ndarray([k], Float32Array.from(stats.mean)),
    cov: ndarray([k, k], Float32Array.from(stats.cov)),
  });
  const fid: FidFeatures = { features: 'mnist-classifier', weights: onnx, onnx, reference, trainImages: 0, losses: [] };

  const itself = await fidOf(store, config, fid, train, Rng.derive(1, 'subset'));
  assert.ok(Math.abs(itself.fid) < 1e-3, `FID of the train set against itself: ${itself.fid}`);
  // A sample that differs from the train images by less than half a byte level is the same image once saved.
  const nudged = ndarray(
    train.shape,
    train.data.map((v, i) => v + (i % 3 === 0 ? 0.45 : -0.3) * STEP),
  );
  const saved = await fidOf(store, config, fid, nudged, Rng.derive(1, 'subset'));
  assert.equal(saved.fid, itself.fid);

  const other = await fidOf(store, config, fid, heldout, Rng.derive(1, 'subset'));
  const theirs = gaussianStats((await featurise(model, heldout, config)).features);
  // The reference as stored is float32; so is the known answer's.
  const known = frechetDistance(theirs.mean, theirs.cov, Float32Array.from(stats.mean), Float32Array.from(stats.cov));
  assert.ok(other.fid > 1, `FID of shifted images ${other.fid}`);
  assert.ok(Math.abs(other.fid - known) < 1e-6 * Math.max(1, known), `${other.fid} vs ${known}`);
  assert.ok(Number.isNaN(other.inceptionScore), 'no Inception Score unless asked for');
  const scored = await fidOf(store, imageConfig({ inceptionScore: true }), fid, heldout, Rng.derive(1, 'subset'));
  assert.ok(scored.inceptionScore >= 1 && scored.inceptionScore <= 10, `IS ${scored.inceptionScore}`);
});
