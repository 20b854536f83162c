import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';

import * as tf from '../models/tf.js';
import { initBackend } from '../models/backend.js';
import {
  initUnetParams,
  paperCifarUnetConfig,
  TfjsUnetDenoiser,
  unetParamCount,
  unetParamShapes,
  UnetNetwork,
  type UnetConfig,
} from '../models/denoisers/unet.js';
import { ndarray, type NDArray } from '../models/ndarray.js';
import { Rng } from '../models/rng.js';

const tiny: UnetConfig = {
  height: 12,
  width: 10,
  channels: 2,
  condChannels: 3,
  levels: [8, 16],
  blocksPerLevel: 1,
  attentionLevels: [1],
  embedDim: 8,
  dropout: 0.2,
  groups: 4,
};

function randomImages(rng: Rng, n: number, h: number, w: number, c: number): NDArray {
  return ndarray([n, h, w, c], rng.fillNormal(new Float32Array(n * h * w * c)));
}

async function denoiseOnce(config: UnetConfig, n: number, seed: number): Promise<NDArray> {
  const rng = Rng.derive(seed, 'unet-test');
  const net = UnetNetwork.fromParams(config, initUnetParams(config, rng.fork('init')), false);
  const denoiser = new TfjsUnetDenoiser(net, 3);
  const x = randomImages(rng, n, config.height, config.width, config.channels);
  const cond = config.condChannels > 0 ? randomImages(rng, n, config.height, config.width, config.condChannels) : null;
  const sigma = new Float32Array(n).map((_, i) => 0.01 * 10 ** i);
  try {
    return await denoiser.denoise(x, sigma, cond);
  } finally {
    denoiser.dispose();
  }
}

describe('U-Net denoiser', () => {
  before(async () => {
    await initBackend();
  });

  it('maps conditional batches to images of the input shape, in chunks', async () => {
    const out = await denoiseOnce(tiny, 5, 1);
    assert.deepEqual(out.shape, [5, 12, 10, 2]);
    assert.ok(out.data.every(Number.isFinite));
  });

  it('handles odd sizes: 28x28 with 2 levels, 7x7 with 3 levels, unconditional, avg pooling', async () => {
    const mnist: UnetConfig = {
      ...tiny,
      height: 28,
      width: 28,
      channels: 1,
      condChannels: 2,
      levels: [8, 8],
      dropout: 0,
    };
    assert.deepEqual((await denoiseOnce(mnist, 2, 2)).shape, [2, 28, 28, 1]);
    const odd: UnetConfig = { ...tiny, height: 7, width: 9, condChannels: 0, levels: [4, 8, 8], attentionLevels: [2] };
    assert.deepEqual((await denoiseOnce(odd, 2, 3)).shape, [2, 7, 9, 2]);
    const pooled: UnetConfig = { ...odd, downsample: 'avgpool' };
    assert.deepEqual((await denoiseOnce(pooled, 2, 4)).shape, [2, 7, 9, 2]);
  });

  it('accepts flat rows as the samplers hold them', async () => {
    const config: UnetConfig = { ...tiny, condChannels: 0 };
    const net = UnetNetwork.fromParams(config, initUnetParams(config, Rng.derive(5)), false);
    const denoiser = new TfjsUnetDenoiser(net);
    assert.equal(denoiser.dim, 12 * 10 * 2);
    assert.equal(denoiser.condDim, 0);
    const x = ndarray([2, denoiser.dim], Rng.derive(6).fillNormal(new Float32Array(2 * denoiser.dim)));
    const out = await denoiser.denoise(x, new Float32Array([1, 2]), null);
    assert.deepEqual(out.shape, [2, 240]);
    denoiser.dispose();
  });

  it('is the identity at vanishing noise (EDM preconditioning)', async () => {
    const config: UnetConfig = { ...tiny, condChannels: 0 };
    const net = UnetNetwork.fromParams(config, initUnetParams(config, Rng.derive(7)), false);
    const x = tf.randomNormal([1, 12, 10, 2], 0, 1, 'float32', 3) as tf.Tensor4D;
    const out = net.denoise(x, tf.tensor1d([1e-6]), null);
    const err = tf.abs(out.sub(x)).max().dataSync()[0];
    assert.ok(err < 1e-4, `|D - x| = ${err}`);
    net.dispose();
  });

  it('sends a non-zero gradient to every parameter, with seeded dropout', () => {
    const params = initUnetParams(tiny, Rng.derive(8));
    const net = UnetNetwork.fromParams(tiny, params, true);
    const n = 2;
    const x = tf.randomNormal([n, 12, 10, 2], 0, 1, 'float32', 1) as tf.Tensor4D;
    const cond = tf.randomNormal([n, 12, 10, 3], 0, 1, 'float32', 2) as tf.Tensor4D;
    const sigma = tf.tensor1d([0.5, 3]);
    const variables = Object.values(net.weights) as tf.Variable[];
    const { value, grads } = tf.variableGrads(
      () => net.denoise(x, sigma, cond, { training: true, seed: 11 }).sub(x).square().mean() as tf.Scalar,
      variables,
    );
    assert.ok(Number.isFinite(value.dataSync()[0]));
    const names = unetParamShapes(tiny).map(([name]) => name);
    assert.equal(Object.keys(grads).length, names.length);
    for (const v of variables) {
      const norm = grads[v.name].abs().max().dataSync()[0];
      assert.ok(norm > 0, `zero gradient for ${v.name}`);
    }
    // Dropout replays with its seed and is off at evaluation.
    const run = (opts: { training?: boolean; seed?: number }) => net.denoise(x, sigma, cond, opts).dataSync();
    assert.deepEqual(run({ training: true, seed: 11 }), run({ training: true, seed: 11 }));
    assert.notDeepEqual(run({ training: true, seed: 11 }), run({ training: true, seed: 12 }));
    assert.deepEqual(run({}), run({ training: false, seed: 99 }));
    assert.throws(() => net.denoise(x, sigma, cond, { training: true }), /seed/);
    net.dispose();
  });

  it('rejects inconsistent configurations', () => {
    assert.throws(() => unetParamShapes({ ...tiny, groups: 3 }), /groups/);
    assert.throws(() => unetParamShapes({ ...tiny, attentionLevels: [2] }), /attention level/);
    assert.throws(() => unetParamShapes({ ...tiny, height: 1, width: 1 }), /halved/);
  });

  it('constructs the paper CIFAR-10 configuration and counts its parameters', () => {
    const config = paperCifarUnetConfig(4);
    const shapes = unetParamShapes(config);
    // Closed form of the architecture, independent of the shape list.
    const E = config.embedDim;
    const res = (cin: number, cout: number) =>
      2 * cin +
      9 * cin * cout +
      cout +
      E * cout +
      cout +
      2 * cout +
      9 * cout * cout +
      cout +
      (cin !== cout ? cin * cout + cout : 0);
    const attn = (c: number) => 2 * c + 4 * (c * c + c);
    const [c0, c1, c2] = config.levels;
    const B = config.blocksPerLevel;
    let expected = 2 * (E * E + E) + 9 * (3 + 4) * c0 + c0;
    expected += res(c0, c0) + (B - 1) * res(c0, c0) + (9 * c0 * c0 + c0);
    expected += res(c0, c1) + (B - 1) * res(c1, c1) + (9 * c1 * c1 + c1);
    expected += res(c1, c2) + (B - 1) * res(c2, c2) + B * attn(c2);
    expected += 2 * res(c2, c2) + attn(c2);
    expected += res(2 * c2, c2) + (B - 1) * res(c2, c2) + B * attn(c2) + (9 * c2 * c1 + c1);
    expected += res(2 * c1, c1) + (B - 1) * res(c1, c1) + (9 * c1 * c0 + c0);
    expected += res(2 * c0, c0) + (B - 1) * res(c0, c0);
    expected += 2 * c0 + 9 * c0 * 3 + 3;
    assert.equal(unetParamCount(config), expected);
    // Built, not run: the parameter map is allocated and initialised in full.
    const params = initUnetParams(config, Rng.derive(9, 'paper'));
    assert.equal(
      Object.values(params).reduce((acc, p) => acc + p.data.length, 0),
      expected,
    );
    assert.equal(new Set(shapes.map(([n]) => n)).size, shapes.length, 'parameter names are unique');
    assert.ok(expected > 3e7 && expected < 1e8, `${expected} parameters`);
  });
});
