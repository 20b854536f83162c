import assert from 'node:assert/strict';
import { test } from 'node:test';
import { guidanceSettings } from '../activities/vector/mmps.js';
import { initBackend } from '../models/backend.js';
import * as tf from '../models/tf.js';
import { Adam } from '../models/training/adam.js';
import { ConfigError, parseCampaignConfig } from '../workflows/config.js';

const image = {
  seed: 1,
  data: { kind: 'mnist', count: 16, heldout: 16 },
  channel: { kind: 'pixel-mask', rate: 0.5, noiseStd: 0.001 },
  model: { kind: 'unet', levels: [8, 8], blocksPerLevel: 1, attentionLevels: [], embedDim: 8, groups: 4 },
};
const vector = { seed: 1, data: { kind: 'manifold' }, channel: { kind: 'projection', obsDim: 2, noiseStd: 0.01 } };

test('per-kind defaults: images get sigma_max 1e2 and Beta(3,3), vectors 10 and the mixture; given values stay', () => {
  const img = parseCampaignConfig(image);
  assert.equal(img.schedule.sigmaMax, 100);
  assert.equal(img.training.timeDistribution, 'beta33');
  const vec = parseCampaignConfig(vector);
  assert.equal(vec.schedule.sigmaMax, 10);
  assert.equal(vec.training.timeDistribution, 'beta-mixture');
  const given = parseCampaignConfig({
    ...image,
    schedule: { sigmaMin: 0.01, sigmaMax: 50 },
    training: { timeDistribution: 'uniform' },
  });
  assert.deepEqual(
    [given.schedule.sigmaMin, given.schedule.sigmaMax, given.training.timeDistribution],
    [0.01, 50, 'uniform'],
  );
  const partial = parseCampaignConfig({ ...image, schedule: { sigmaMin: 0.01 } });
  assert.equal(partial.schedule.sigmaMax, 100);
  assert.equal(img.training.emaWarmup, 100);
  // A bad section is still reported by its path, not hidden by the defaults.
  assert.throws(
    () => parseCampaignConfig({ ...image, schedule: 'fast' }),
    (e: unknown) => e instanceof ConfigError && e.issues.some((i) => i.startsWith('schedule:')),
  );
});

test('EM-MMPS guidance: the solver is a config field, and small systems are solved exactly by default', () => {
  const vec = parseCampaignConfig({ ...vector, estep: { mmpsSolver: 'gmres' } });
  assert.equal(vec.estep.mmpsSolver, 'gmres');
  assert.deepEqual(guidanceSettings(vec.estep, 2), { solver: 'gmres', iterations: 2 });
  assert.deepEqual(guidanceSettings(parseCampaignConfig(vector).estep, 784), { solver: 'cg', iterations: 3 });
  assert.deepEqual(guidanceSettings({ mmpsSolver: 'cg', mmpsCgIterations: 1 }, 2), { solver: 'cg', iterations: 1 });
  assert.throws(
    () => parseCampaignConfig({ ...vector, estep: { mmpsSolver: 'lsqr' } }),
    (e: unknown) => e instanceof ConfigError && e.issues.some((i) => i.startsWith('estep.mmpsSolver:')),
  );
});

test('the EMA follows the warm-up ramp for emaWarmup steps, then the configured decay exactly', async () => {
  await initBackend({ device: 'cpu' });
  const w = tf.variable(tf.tensor1d([1, -2]), true, 'ema-test-w');
  const decay = 0.999;
  const warmup = 20;
  const adam = new Adam(new Map([['w', w]]), {
    lr: 0.1,
    beta1: 0.9,
    beta2: 0.999,
    epsilon: 1e-8,
    clip: 0,
    emaDecay: decay,
    emaWarmup: warmup,
  });
  let previous = Float64Array.from(adam.state().ema!.w.data);
  for (let t = 1; t <= 40; t++) {
    const grad = tf.tensor1d([Math.sin(t), Math.cos(t)]);
    adam.apply({ w: grad }, 0.1);
    grad.dispose();
    const state = adam.state();
    const weights = state.ema!.w.data;
    const current = Float64Array.from(weights);
    const now = Float64Array.from(w.dataSync());
    const expected = t > warmup ? decay : Math.min(decay, (1 + t) / (10 + t));
    // ema_t = d_t ema_{t-1} + (1 - d_t) w_t, so d_t = (ema_t - w_t) / (ema_{t-1} - w_t).
    const d = (current[0] - now[0]) / (previous[0] - now[0]);
    assert.ok(Math.abs(d - expected) < 1e-3, `step ${t}: decay ${d}, expected ${expected}`);
    previous = current;
  }
  adam.dispose();
  w.dispose();
});
