import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { initBackend } from '../models/backend.js';
import { initMlpParams, type MlpConfig } from '../models/denoisers/mlp.js';
import { ndarray } from '../models/ndarray.js';
import { Rng } from '../models/rng.js';
import { logLinearSchedule } from '../models/schedule.js';
import { sampleTime } from '../models/training/time-distribution.js';
import {
  NonFiniteLossError,
  trainDenoiser,
  type TrainCheckpoint,
  type TrainOptions,
} from '../models/training/trainer.js';

const network: MlpConfig = { dim: 3, condDim: 2, hidden: [32, 32], embedDim: 8 };

function options(steps: number, lr = 3e-3): TrainOptions {
  return {
    steps,
    batchSize: 64,
    optimizer: { lr, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, clip: 1, emaDecay: 0.99 },
    lrSchedule: 'cosine',
    timeDistribution: 'beta-mixture',
    schedule: logLinearSchedule(1e-3, 10),
    seed: 5,
    streamPath: ['train', 'lap-0'],
  };
}

function data(n = 512) {
  const rng = Rng.derive(5, 'data');
  const x = ndarray([n, 3]);
  const cond = ndarray([n, 2]);
  for (let i = 0; i < n; i++) {
    const a = rng.normal();
    const b = rng.normal();
    x.data.set([a, b, a + b], i * 3);
    cond.data.set([a, b], i * 2);
  }
  return { x, cond };
}

before(async () => {
  await initBackend();
});

test('Beta-mixture times put mass at both ends; Beta(3,3) in the middle', () => {
  const rng = Rng.derive(1, 't');
  const schedule = logLinearSchedule(1e-3, 1e2);
  let ends = 0;
  let middle = 0;
  for (let i = 0; i < 20000; i++) {
    const t = sampleTime(rng, 'beta-mixture', schedule);
    assert.ok(t > 0 && t < 1);
    if (t < 0.2 || t > 0.8) ends++;
    const u = sampleTime(rng, 'beta33', schedule);
    if (u > 0.3 && u < 0.7) middle++;
  }
  // 1/2 Beta(2,5) + 1/2 Beta(5,2): P(t < 0.2 or t > 0.8) = P(Beta(2,5) < 0.2) = 0.345; Beta(3,3) in (0.3,0.7): 0.674 (CDF 10x^3 - 15x^4 + 6x^5).
  assert.ok(Math.abs(ends / 20000 - 0.345) < 0.015, `ends ${ends / 20000}`);
  assert.ok(Math.abs(middle / 20000 - 0.674) < 0.015, `middle ${middle / 20000}`);
});

test('lognormal times give log sigma ~ N(-0.5, 1.2^2), kept inside the schedule', () => {
  const rng = Rng.derive(2, 't');
  const wide = logLinearSchedule(1e-3, 1e2);
  const n = 20000;
  let sum = 0;
  let sumSq = 0;
  for (let i = 0; i < n; i++) {
    const logSigma = Math.log(wide.sigma(sampleTime(rng, 'lognormal', wide)));
    sum += logSigma;
    sumSq += logSigma * logSigma;
  }
  const mean = sum / n;
  const std = Math.sqrt(sumSq / n - mean * mean);
  // [1e-3, 1e2] truncates N(-0.5, 1.2^2) beyond 4 standard deviations: the moments are the untruncated ones.
  assert.ok(Math.abs(mean + 0.5) < 0.04, `mean ${mean}`);
  assert.ok(Math.abs(std - 1.2) < 0.04, `std ${std}`);
  // A schedule narrower than the distribution: every draw stays on it.
  const narrow = logLinearSchedule(0.5, 2);
  for (let i = 0; i < 2000; i++) {
    const t = sampleTime(rng, 'lognormal', narrow);
    assert.ok(t >= 0 && t <= 1, `t ${t}`);
  }
});

test('training lowers the denoising loss', async () => {
  const state = await trainDenoiser(
    network,
    data(),
    { params: initMlpParams(network, Rng.derive(5, 'init')) },
    options(200),
    { lossEvery: 20 },
  );
  assert.equal(state.optimizer.step, 200);
  assert.equal(state.losses.length, 10);
  assert.ok(state.losses[9] < 0.7 * state.losses[0], `losses ${state.losses.map((l) => l.toFixed(3))}`);
  assert.ok(state.optimizer.ema, 'EMA weights are kept');
});

test('a run resumed from a checkpoint ends with exactly the weights of an uninterrupted run', async () => {
  const init = initMlpParams(network, Rng.derive(5, 'init'));
  const whole = await trainDenoiser(network, data(), { params: init }, options(60));
  let saved: TrainCheckpoint | null = null;
  await assert.rejects(
    trainDenoiser(network, data(), { params: init }, options(60), {
      checkpoint: { every: 20, save: async (s) => void (saved = s) },
      shouldStop: () => {
        if (saved && saved.optimizer.step >= 40) throw new Error('interrupted');
      },
    }),
    /interrupted/,
  );
  assert.equal(saved!.optimizer.step, 40);
  const resumed = await trainDenoiser(network, data(), { params: init, resume: saved! }, options(60));
  for (const name of Object.keys(whole.params)) {
    assert.deepEqual(resumed.params[name].data, whole.params[name].data, name);
    assert.deepEqual(resumed.optimizer.ema![name].data, whole.optimizer.ema![name].data, `ema ${name}`);
  }
  assert.deepEqual(resumed.losses, whole.losses);
});

test('a diverging run stops with a NonFiniteLoss error', async () => {
  const bad = data();
  bad.x.data[7] = Number.NaN;
  await assert.rejects(
    trainDenoiser(network, bad, { params: initMlpParams(network, Rng.derive(5, 'init')) }, options(400)),
    (e: unknown) => e instanceof NonFiniteLossError && e.type === 'NonFiniteLoss',
  );
});

test('mismatched data shapes are refused before training', async () => {
  const wrong = { x: ndarray([10, 4]), cond: ndarray([10, 2]) };
  await assert.rejects(
    trainDenoiser(network, wrong, { params: initMlpParams(network, Rng.derive(5, 'init')) }, options(1)),
    /dim 3/,
  );
});
