import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';

import { initBackend } from '../models/backend.js';
import { imageChannel } from '../models/channels/image.js';
import { initUnetParams, type UnetConfig } from '../models/denoisers/unet.js';
import { ndarray } from '../models/ndarray.js';
import { Rng } from '../models/rng.js';
import { logLinearSchedule } from '../models/schedule.js';
import { defaultAdam } from '../models/training/adam.js';
import { trainUnetDenoiser } from '../models/training/image-trainer.js';
import type { TrainCheckpoint, TrainOptions } from '../models/training/trainer.js';

const config: UnetConfig = {
  height: 8,
  width: 8,
  channels: 1,
  condChannels: 2,
  levels: [8, 16],
  blocksPerLevel: 1,
  attentionLevels: [1],
  embedDim: 8,
  dropout: 0.1,
  groups: 4,
};

function dataset(n: number) {
  const rng = Rng.derive(1, 'data');
  const x = ndarray([n, 8, 8, 1]);
  // Smooth random blobs in [-2, 2].
  for (let i = 0; i < n; i++) {
    const cx = rng.uniform() * 8;
    const cy = rng.uniform() * 8;
    for (let p = 0; p < 64; p++)
      x.data[i * 64 + p] = 4 * Math.exp(-(((p % 8) - cx) ** 2) / 4 - (Math.floor(p / 8) - cy) ** 2 / 4) - 2;
  }
  const channel = imageChannel({ kind: 'mask', rate: 0.5, height: 8, width: 8, channels: 1, noiseStd: 1e-3 });
  const ops = channel.drawOperators(rng.fork('ops'), n);
  const cond = channel.conditioning(ops, channel.apply(ops, x, rng.fork('noise')));
  return { x, cond };
}

function options(steps: number): TrainOptions {
  return {
    steps,
    batchSize: 4,
    optimizer: defaultAdam({ lr: 2e-3, emaDecay: 0.9 }),
    lrSchedule: 'cosine',
    timeDistribution: 'beta33',
    schedule: logLinearSchedule(1e-3, 1e2),
    seed: 5,
    streamPath: ['test', 'unet'],
  };
}

describe('U-Net training', () => {
  before(async () => {
    await initBackend();
  });

  it('resumes from a checkpoint to exactly the weights of an uninterrupted run', async () => {
    const data = dataset(16);
    const params = initUnetParams(config, Rng.derive(2, 'init'));
    const full = await trainUnetDenoiser(config, data, { params }, options(6), { lossEvery: 2 });
    assert.equal(full.losses.length, 3);
    assert.ok(full.losses.every(Number.isFinite));
    assert.notDeepEqual(full.params['output.conv.weight'].data, params['output.conv.weight'].data);

    let saved: TrainCheckpoint | null = null;
    await assert.rejects(
      trainUnetDenoiser(config, data, { params }, options(6), {
        lossEvery: 2,
        checkpoint: {
          every: 4,
          save: async (state) => {
            saved = state;
          },
        },
        progress: (step) => {
          if (step === 5) throw new Error('interrupted');
        },
      }),
      /interrupted/,
    );
    assert.ok(saved !== null);
    const resumed = await trainUnetDenoiser(config, data, { params, resume: saved }, options(6), { lossEvery: 2 });
    for (const name of Object.keys(full.params))
      assert.deepEqual(resumed.params[name].data, full.params[name].data, name);
    assert.deepEqual(resumed.losses, full.losses);
    assert.ok(resumed.optimizer.ema !== null);
  });

  it('lowers the loss on a small set', async () => {
    const data = dataset(32);
    const params = initUnetParams(config, Rng.derive(3, 'init'));
    const result = await trainUnetDenoiser(
      config,
      data,
      { params },
      { ...options(60), batchSize: 8 },
      { lossEvery: 20 },
    );
    assert.equal(result.losses.length, 3);
    assert.ok(result.losses[2] < result.losses[0], `losses ${result.losses}`);
  });

  it('checks the data against the configuration', async () => {
    const data = dataset(4);
    const params = initUnetParams(config, Rng.derive(3, 'init'));
    await assert.rejects(
      trainUnetDenoiser(config, { x: data.x, cond: null }, { params }, options(1)),
      /conditioning must be/,
    );
  });
});
