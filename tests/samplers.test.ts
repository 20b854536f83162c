import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gaussianPosterior } from '../models/gaussian/dense.js';
import { ndarray } from '../models/ndarray.js';
import { Rng } from '../models/rng.js';
import { ancestralSample } from '../models/samplers/ancestral.js';
import { heunSample } from '../models/samplers/heun.js';
import { logLinearSchedule, sigmaGrid } from '../models/schedule.js';
import { empiricalMoments, GaussianDenoiser } from './helpers/gaussian-denoiser.js';

const schedule = logLinearSchedule(1e-3, 10);

/** A linear-Gaussian problem with a known exact posterior: x ~ N(mu, Sigma), y = A x + e. */
function problem() {
  const rng = Rng.derive(11, 'problem');
  const d = 3;
  const mu = Float64Array.from([0.5, -1, 0.25]);
  const B = rng.fillNormal(new Float64Array(d * d));
  const Sigma = new Float64Array(d * d);
  for (let i = 0; i < d; i++)
    for (let j = 0; j < d; j++) for (let k = 0; k < d; k++) Sigma[i * d + j] += (B[i * d + k] * B[j * d + k]) / d;
  for (let i = 0; i < d; i++) Sigma[i * d + i] += 0.1;
  const A = Float64Array.from([1, 0.5, 0, 0, 1, -1]);
  const y = Float64Array.from([0.3, -0.7]);
  const sy = 0.2;
  return { d, prior: { mean: mu, cov: Sigma }, posterior: gaussianPosterior(y, A, sy, { mean: mu, cov: Sigma }) };
}

function assertMomentsMatch(samples: ReturnType<typeof ndarray>, mean: Float64Array, cov: Float64Array, n: number) {
  const d = mean.length;
  const got = empiricalMoments(samples);
  for (let j = 0; j < d; j++) {
    const se = Math.sqrt(cov[j * d + j] / n);
    assert.ok(Math.abs(got.mean[j] - mean[j]) < 4 * se + 2e-3, `mean[${j}]: ${got.mean[j]} vs ${mean[j]} (se ${se})`);
    for (let k = 0; k < d; k++) {
      const se2 = Math.sqrt((cov[j * d + j] * cov[k * d + k] + cov[j * d + k] ** 2) / n);
      assert.ok(
        Math.abs(got.cov[j * d + k] - cov[j * d + k]) < 4 * se2 + 2e-3,
        `cov[${j},${k}]: ${got.cov[j * d + k]} vs ${cov[j * d + k]}`,
      );
    }
  }
}

test('schedule grid runs from sigma_max to sigma_min', () => {
  const grid = sigmaGrid(schedule, 8);
  assert.equal(grid.length, 9);
  assert.ok(Math.abs(grid[0] - 10) < 1e-9 && Math.abs(grid[8] - 1e-3) < 1e-12);
  for (let k = 1; k < grid.length; k++) assert.ok(grid[k] < grid[k - 1]);
});

// With a mean-only denoiser each ancestral step misses tau^2 Var[x | x_t] of variance, an
// O(1/steps) error: about 13 % of the variance at 64 steps, 3 % at 256 (the images' count).
test('ancestral sampler with the exact posterior denoiser draws the exact posterior', async () => {
  const { posterior } = problem();
  const n = 6000;
  const denoiser = new GaussianDenoiser(posterior.mean, posterior.cov);
  const x = await ancestralSample(denoiser, {
    steps: 256,
    schedule,
    rng: Rng.derive(1, 'estep'),
    cond: null,
    count: n,
  });
  assert.equal(denoiser.calls, 257, 'one network pass per step plus the final denoise');
  assertMomentsMatch(x, posterior.mean, posterior.cov, n);
});

test('the sampler is wrong when the denoiser is wrong (the moment check has teeth)', async () => {
  const { posterior, prior } = problem();
  const n = 6000;
  const x = await ancestralSample(new GaussianDenoiser(prior.mean, prior.cov), {
    steps: 256,
    schedule,
    rng: Rng.derive(1, 'estep'),
    cond: null,
    count: n,
  });
  assert.throws(() => assertMomentsMatch(x, posterior.mean, posterior.cov, n));
});

// The ODE carries the N(0, sigma_max^2) start deterministically, so a prior mean mu leaves a
// bias sqrt(S / (S + sigma_max^2)) mu (3 % of mu at sigma_max = 10): test a centred prior.
test('Heun sampler with the exact prior denoiser reproduces the prior', async () => {
  const { prior: uncentred } = problem();
  const prior = { mean: new Float64Array(uncentred.mean.length), cov: uncentred.cov };
  const n = 6000;
  const x = await heunSample(new GaussianDenoiser(prior.mean, prior.cov), {
    steps: 32,
    schedule,
    rng: Rng.derive(2, 'prior'),
    cond: null,
    count: n,
  });
  assertMomentsMatch(x, prior.mean, prior.cov, n);
});

test('same stream, same samples; another stream, other samples', async () => {
  const { posterior } = problem();
  const run = (seed: number) =>
    ancestralSample(new GaussianDenoiser(posterior.mean, posterior.cov), {
      steps: 8,
      schedule,
      rng: Rng.derive(seed, 'estep', 'lap-1'),
      cond: null,
      count: 64,
    });
  const [a, b, c] = await Promise.all([run(5), run(5), run(6)]);
  assert.deepEqual(a.data, b.data);
  assert.notDeepEqual(a.data, c.data);
});
