import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';

import { initBackend } from '../models/backend.js';
import type { ImageDataset } from '../models/datasets/dataset.js';
import { loadMnist } from '../models/datasets/mnist.js';
import { classifierAccuracy, classifierFeatures, trainMnistClassifier } from '../models/metrics/feature-extractor.js';
import { featureFrechetDistance } from '../models/metrics/frechet.js';
import { sliceRows, type NDArray } from '../models/ndarray.js';
import { Rng } from '../models/rng.js';

function subset(data: ImageDataset, start: number, end: number): ImageDataset {
  return { images: sliceRows(data.images, start, end), labels: data.labels ? data.labels.subarray(start, end) : null };
}

describe('MNIST feature extractor', () => {
  before(async () => {
    await initBackend();
  });

  it('learns to classify digits and gives features whose Frechet distance separates data from noise', async () => {
    const train = subset(await loadMnist({ split: 'train' }), 0, 4000);
    const test = await loadMnist({ split: 'test' });
    const heldOut = subset(test, 8000, 10000);
    const classifier = await trainMnistClassifier(train, { steps: 150, batchSize: 32, lr: 2e-3, seed: 1 });
    assert.ok(classifier.losses[classifier.losses.length - 1] < classifier.losses[0]);
    const accuracy = await classifierAccuracy(classifier, heldOut);
    assert.ok(accuracy > 0.85, `held-out accuracy ${accuracy}`);

    const a = await classifierFeatures(classifier, sliceRows(test.images, 0, 1000));
    const b = await classifierFeatures(classifier, sliceRows(test.images, 1000, 2000));
    assert.deepEqual(a.shape, [1000, 128]);
    const noise: NDArray = {
      shape: [1000, 28, 28, 1],
      data: Rng.derive(2).fillUniform(new Float32Array(1000 * 784), -2, 2),
    };
    const fromNoise = await classifierFeatures(classifier, noise);
    const same = featureFrechetDistance(a, b);
    const different = featureFrechetDistance(a, fromNoise);
    assert.ok(same < 0.2 * different, `data/data ${same}, data/noise ${different}`);
  });
});
