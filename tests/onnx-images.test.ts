/**
 * The ONNX exports of the U-Net denoiser and of the feature classifier compute the same
 * functions as their tfjs networks.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { InferenceSession, Tensor } from 'onnxruntime-node';

import * as tf from '../models/tf.js';
import { initBackend } from '../models/backend.js';
import { initUnetParams, TfjsUnetDenoiser, UnetNetwork, type UnetConfig } from '../models/denoisers/unet.js';
import type { ParamMap } from '../models/denoisers/mlp.js';
import { ClassifierNetwork, initClassifierParams, MNIST_CLASSIFIER } from '../models/metrics/feature-extractor.js';
import { ndarray } from '../models/ndarray.js';
import { exportClassifierToOnnx } from '../models/onnx/export-classifier.js';
import { exportUnetToOnnx, hwioToOihw, samePadding } from '../models/onnx/export-unet.js';
import { OnnxDenoiser } from '../models/onnx/runtime.js';
import { Rng } from '../models/rng.js';

const base: UnetConfig = {
  height: 7,
  width: 9,
  channels: 2,
  condChannels: 3,
  levels: [4, 8, 8],
  blocksPerLevel: 1,
  attentionLevels: [1],
  embedDim: 8,
  dropout: 0.1,
  groups: 2,
};

const CONFIGS: Record<string, UnetConfig> = {
  'odd sizes, conditional': base,
  'odd sizes, unconditional, average pooling': { ...base, condChannels: 0, downsample: 'avgpool', blocksPerLevel: 2 },
  'MNIST size': {
    ...base,
    height: 28,
    width: 28,
    channels: 1,
    condChannels: 2,
    levels: [8, 16],
    attentionLevels: [0, 1],
    groups: 4,
  },
};

/** Default init with GroupNorm gains and shifts moved off 1 and 0, so that they are exercised. */
function randomParams(config: UnetConfig, rng: Rng): ParamMap {
  const params = initUnetParams(config, rng);
  for (const [name, p] of Object.entries(params)) {
    if (/norm\d?\.weight$/.test(name)) for (let i = 0; i < p.data.length; i++) p.data[i] = 1 + 0.3 * rng.normal();
    if (/norm\d?\.bias$/.test(name)) rng.fillNormal(p.data, 0.2);
  }
  return params;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): { diff: number; scale: number } {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return { diff, scale };
}

describe('ONNX exports of the image networks', () => {
  before(async () => {
    await initBackend();
  });

  it('converts kernels and padding as tfjs lays them out', () => {
    const { data, dims } = hwioToOihw(
      Float32Array.from({ length: 24 }, (_, i) => i),
      [2, 3, 2, 2],
    );
    assert.deepEqual(dims, [2, 2, 2, 3]);
    // [y=1, x=2, in=0, out=1] = ((1*3+2)*2+0)*2+1 = 21 lands at [out=1, in=0, y=1, x=2].
    assert.equal(data[((1 * 2 + 0) * 2 + 1) * 3 + 2], 21);
    assert.deepEqual(samePadding(28, 3, 2), [0, 1]);
    assert.deepEqual(samePadding(7, 3, 2), [1, 1]);
    assert.deepEqual(samePadding(7, 3, 1), [1, 1]);
  });

  for (const [name, config] of Object.entries(CONFIGS)) {
    it(`U-Net (${name}): ONNX Runtime matches tfjs`, async () => {
      const rng = Rng.derive(1, 'onnx-unet', name);
      const params = randomParams(config, rng.fork('params'));
      const n = 5;
      const dim = config.height * config.width * config.channels;
      const condDim = config.height * config.width * config.condChannels;
      const sigma = new Float32Array(n).map(() => Math.exp(Math.log(1e-3) + rng.uniform() * Math.log(1e5)));
      const xt = ndarray([n, dim]);
      for (let i = 0; i < xt.data.length; i++) xt.data[i] = rng.normal() + sigma[Math.floor(i / dim)] * rng.normal();
      const cond = condDim > 0 ? ndarray([n, condDim], rng.fillNormal(new Float32Array(n * condDim))) : null;

      const reference = new TfjsUnetDenoiser(UnetNetwork.fromParams(config, params, false));
      const expected = await reference.denoise(xt, sigma, cond);
      reference.dispose();
      const onnx = await OnnxDenoiser.create(exportUnetToOnnx(config, params), {
        dim,
        condDim,
        threads: 1,
        batchSize: 3,
      });
      const got = await onnx.denoise(xt, sigma, cond);
      await onnx.dispose();
      const { diff, scale } = maxAbsDiff(got.data, expected.data);
      assert.ok(diff <= 1e-4 * (1 + scale), `max |onnx - tfjs| = ${diff} at scale ${scale}`);
    });
  }

  it('feature classifier: ONNX Runtime matches tfjs', async () => {
    const config = MNIST_CLASSIFIER;
    const rng = Rng.derive(2, 'onnx-classifier');
    const params = initClassifierParams(config, rng);
    for (const [name, p] of Object.entries(params)) if (name.endsWith('.bias')) rng.fillNormal(p.data, 0.1);
    const n = 4;
    const images = rng.fillUniform(new Float32Array(n * 784), -2, 2);
    const net = ClassifierNetwork.fromParams(config, params, false);
    const [features, logits] = tf.tidy(() => {
      const x = tf.tensor4d(images, [n, 28, 28, 1]);
      return [net.features(x).dataSync() as Float32Array, net.logits(x).dataSync() as Float32Array];
    });
    net.dispose();
    const session = await InferenceSession.create(exportClassifierToOnnx(config, params), { intraOpNumThreads: 1 });
    const result = await session.run({ images: new Tensor('float32', images, [n, 28, 28, 1]) });
    for (const [output, expected] of [
      ['features', features],
      ['logits', logits],
    ] as const) {
      const got = result[output].data;
      assert.ok(got instanceof Float32Array);
      assert.equal(got.length, expected.length);
      const { diff, scale } = maxAbsDiff(got, expected);
      assert.ok(diff <= 1e-4 * (1 + scale), `${output}: max |onnx - tfjs| = ${diff} at scale ${scale}`);
    }
    await session.release();
  });
});
