import assert from 'node:assert/strict';
import { test } from 'node:test';
import { initBackend } from '../models/backend.js';
import { initMlpParams, MlpNetwork, TfjsMlpDenoiser, type MlpConfig } from '../models/denoisers/mlp.js';
import { gaussianPosterior, type GaussianPrior } from '../models/gaussian/dense.js';
import { conjugateGradient } from '../models/guidance/cg.js';
import { gmres } from '../models/guidance/gmres.js';
import { DifferentiableMlp } from '../models/guidance/mlp.js';
import { mmpsDenoise, MmpsDenoiser, type Observation } from '../models/guidance/mmps.js';
import { denseOperator } from '../models/guidance/operator.js';
import { choleskySolve, cholesky } from '../models/linalg.js';
import { ndarray } from '../models/ndarray.js';
import { Rng } from '../models/rng.js';
import { ancestralSample } from '../models/samplers/ancestral.js';
import { logLinearSchedule } from '../models/schedule.js';
import { DifferentiableGaussianDenoiser } from './helpers/differentiable-gaussian.js';
import { empiricalMoments } from './helpers/gaussian-denoiser.js';

const schedule = logLinearSchedule(1e-3, 10);

/** A random SPD matrix B B^T / d + shift I. */
function randomSpd(rng: Rng, d: number, shift: number): Float64Array {
  const B = rng.fillNormal(new Float64Array(d * d));
  const S = new Float64Array(d * d);
  for (let i = 0; i < d; i++)
    for (let j = 0; j < d; j++) for (let k = 0; k < d; k++) S[i * d + j] += (B[i * d + k] * B[j * d + k]) / d;
  for (let i = 0; i < d; i++) S[i * d + i] += shift;
  return S;
}

/** A linear-Gaussian problem: x ~ N(mu, S), y_i = A_i x + e with one operator per row. */
function problem(n: number, d: number, m: number, sy: number, seed: number) {
  const rng = Rng.derive(seed, 'mmps-problem');
  const prior: GaussianPrior = { mean: rng.fillNormal(new Float64Array(d), 0.5), cov: randomSpd(rng, d, 0.05) };
  const A = ndarray([n, m, d]);
  rng.fillNormal(A.data);
  const y = rng.fillNormal(new Float64Array(n * m));
  const observation: Observation = { y, operator: denseOperator(A), noiseStd: sy };
  return { rng, prior, A, y, observation };
}

function identity(d: number): Float64Array {
  const I = new Float64Array(d * d);
  for (let i = 0; i < d; i++) I[i * d + i] = 1;
  return I;
}

function relativeError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let err = 0;
  let norm = 0;
  for (let i = 0; i < want.length; i++) {
    err += (got[i] - want[i]) ** 2;
    norm += want[i] ** 2;
  }
  return Math.sqrt(err / Math.max(norm, 1e-300));
}

test('MMPS over the exact Gaussian denoiser gives the exact E[x | x_t, y] at every noise level', async () => {
  const n = 6;
  const d = 5;
  const m = 2;
  const { rng, prior, A, y, observation } = problem(n, d, m, 0.05, 1);
  const denoiser = new DifferentiableGaussianDenoiser(prior.mean, prior.cov);
  for (const [solver, s] of (['cg', 'gmres'] as const).flatMap((solver) =>
    [1e-3, 1e-2, 0.1, 1, 10].map((s) => [solver, s] as const),
  )) {
    // x_t drawn from the model, so the check runs where the sampler goes.
    const xt = new Float64Array(n * d);
    for (let i = 0; i < n * d; i++)
      xt[i] = prior.mean[i % d] + Math.sqrt(prior.cov[(i % d) * (d + 1)]) * rng.normal() + s * rng.normal();
    const sigma = new Float64Array(n).fill(s);
    const guided = await mmpsDenoise(denoiser, xt, sigma, observation, { iterations: m, solver });
    for (let i = 0; i < n; i++) {
      // Two exact Bayesian updates: on x_t = x + sigma z, then on y_i = A_i x + e.
      const afterXt = gaussianPosterior(xt.subarray(i * d, (i + 1) * d), identity(d), s, prior);
      const exact = gaussianPosterior(
        y.subarray(i * m, (i + 1) * m),
        A.data.subarray(i * m * d, (i + 1) * m * d),
        observation.noiseStd,
        afterXt,
      );
      const got = guided.mean.subarray(i * d, (i + 1) * d);
      const err = relativeError(got, exact.mean);
      assert.ok(err < 1e-6, `${solver}, sigma ${s}, row ${i}: relative error ${err.toExponential(2)}`);
    }
  }
});

test('with too few CG iterations MMPS is not exact (the exactness check has teeth)', async () => {
  const n = 6;
  const d = 5;
  const { prior, A, y, observation } = problem(n, d, 3, 0.05, 2);
  const denoiser = new DifferentiableGaussianDenoiser(prior.mean, prior.cov);
  const xt = Float64Array.from({ length: n * d }, (_, k) => prior.mean[k % d] + 0.3 * Math.sin(k));
  const sigma = new Float64Array(n).fill(1);
  const guided = await mmpsDenoise(denoiser, xt, sigma, observation, { iterations: 1 });
  let worst = 0;
  for (let i = 0; i < n; i++) {
    const afterXt = gaussianPosterior(xt.subarray(i * d, (i + 1) * d), identity(d), 1, prior);
    const exact = gaussianPosterior(
      y.subarray(i * 3, (i + 1) * 3),
      A.data.subarray(i * 3 * d, (i + 1) * 3 * d),
      observation.noiseStd,
      afterXt,
    );
    worst = Math.max(worst, relativeError(guided.mean.subarray(i * d, (i + 1) * d), exact.mean));
  }
  assert.ok(worst > 1e-3, `one iteration on a 3x3 system should not be exact, got ${worst}`);
});

test('conjugate gradients: the energy error never grows and m iterations solve an m x m system', async () => {
  const rng = Rng.derive(3, 'cg');
  const rows = 4;
  const size = 6;
  const mats = Array.from({ length: rows }, () => randomSpd(rng, size, 0.01));
  const b = rng.fillNormal(new Float64Array(rows * size));
  const matvec = (v: Float64Array) => {
    const out = new Float64Array(rows * size);
    for (let i = 0; i < rows; i++)
      for (let r = 0; r < size; r++)
        for (let c = 0; c < size; c++) out[i * size + r] += mats[i][r * size + c] * v[i * size + c];
    return out;
  };
  const exact = new Float64Array(rows * size);
  for (let i = 0; i < rows; i++)
    exact.set(choleskySolve(cholesky(mats[i], size), size, b.subarray(i * size, (i + 1) * size)), i * size);
  const energy = (x: Float64Array) => {
    const e = x.map((v, k) => v - exact[k]);
    return matvec(e).reduce((acc, v, k) => acc + v * e[k], 0);
  };
  let previous = Infinity;
  for (let k = 0; k <= size; k++) {
    const result = await conjugateGradient(matvec, b, rows, size, { iterations: k, tolerance: 0 });
    assert.equal(result.iterations, k);
    const e = energy(result.x);
    assert.ok(e <= previous * (1 + 1e-9) + 1e-15, `iteration ${k}: energy ${e} after ${previous}`);
    previous = e;
  }
  const solved = await conjugateGradient(matvec, b, rows, size, { iterations: 50 });
  assert.ok(relativeError(solved.x, exact) < 1e-8, `relative error ${relativeError(solved.x, exact)}`);
  assert.ok(solved.iterations <= size + 2, `converged rows stop: ${solved.iterations} iterations`);
  assert.ok(solved.residuals[solved.residuals.length - 1] < 1e-10);
});

test('GMRES: the residual never grows, also for a non-symmetric system, and m iterations solve it', async () => {
  const rng = Rng.derive(8, 'gmres');
  const rows = 4;
  const size = 5;
  // SPD plus a skew part: what a learned, non-symmetric Jacobian makes of the system.
  const mats = Array.from({ length: rows }, () => {
    const M = randomSpd(rng, size, 0.05);
    const K = rng.fillNormal(new Float64Array(size * size), 0.3);
    for (let r = 0; r < size; r++) for (let c = 0; c < size; c++) M[r * size + c] += K[r * size + c] - K[c * size + r];
    return M;
  });
  const b = rng.fillNormal(new Float64Array(rows * size));
  const matvec = (v: Float64Array) => {
    const out = new Float64Array(rows * size);
    for (let i = 0; i < rows; i++)
      for (let r = 0; r < size; r++)
        for (let c = 0; c < size; c++) out[i * size + r] += mats[i][r * size + c] * v[i * size + c];
    return out;
  };
  const residualNorm = (x: Float64Array) => Math.sqrt(matvec(x).reduce((acc, v, k) => acc + (b[k] - v) ** 2, 0));
  let previous = Infinity;
  for (let k = 0; k <= size; k++) {
    const result = await gmres(matvec, b, rows, size, { iterations: k, tolerance: 0 });
    const r = residualNorm(result.x);
    assert.ok(r <= previous * (1 + 1e-9) + 1e-12, `iteration ${k}: residual ${r} after ${previous}`);
    previous = r;
  }
  const solved = await gmres(matvec, b, rows, size, { iterations: size });
  assert.ok(
    residualNorm(solved.x) < 1e-9 * Math.sqrt(b.reduce((a, v) => a + v * v, 0)),
    `residual ${residualNorm(solved.x)}`,
  );
  assert.ok(solved.iterations <= size);
});

test('the ancestral sampler with MMPS draws from the exact posterior of a Gaussian prior', async () => {
  const d = 3;
  const m = 2;
  const n = 4000;
  const rng = Rng.derive(4, 'mmps-sampler');
  const prior: GaussianPrior = { mean: Float64Array.from([0.5, -1, 0.25]), cov: randomSpd(rng, d, 0.1) };
  const Ai = Float64Array.from([1, 0.5, 0, 0, 1, -1]);
  const yi = Float64Array.from([0.3, -0.7]);
  const sy = 0.2;
  const A = ndarray([n, m, d]);
  const y = new Float64Array(n * m);
  for (let i = 0; i < n; i++) {
    A.data.set(Ai, i * m * d);
    y.set(yi, i * m);
  }
  const posterior = gaussianPosterior(yi, Ai, sy, prior);
  const prior3 = new DifferentiableGaussianDenoiser(prior.mean, prior.cov);
  const guided = new MmpsDenoiser(prior3, { y, operator: denseOperator(A), noiseStd: sy }, { iterations: m });
  const x = await ancestralSample(guided, { steps: 256, schedule, rng: Rng.derive(4, 'estep'), cond: null, count: n });
  const got = empiricalMoments(x);
  for (let j = 0; j < d; j++) {
    const se = Math.sqrt(posterior.cov[j * d + j] / n);
    assert.ok(
      Math.abs(got.mean[j] - posterior.mean[j]) < 4 * se + 2e-3,
      `mean[${j}]: ${got.mean[j]} vs ${posterior.mean[j]} (se ${se})`,
    );
    // The ancestral chain loses O(1/steps) of the variance (tests/samplers.test.ts): a loose check.
    const v = posterior.cov[j * d + j];
    assert.ok(
      Math.abs(got.cov[j * d + j] - v) < 0.1 * v + 4 * v * Math.sqrt(2 / n),
      `var[${j}]: ${got.cov[j * d + j]} vs ${v}`,
    );
  }
  // Far from the prior mean: the samples did follow y.
  const priorGap = relativeError(prior.mean, posterior.mean);
  assert.ok(priorGap > 0.1, `the posterior should differ from the prior (${priorGap})`);
});

test('pass counting: 1 forward + CG products + 1 VJP per guided evaluation', async () => {
  const n = 16;
  const d = 5;
  const { prior, observation } = problem(n, d, 2, 0.01, 5);
  for (const [solver, iterations, perEvaluation] of [
    ['cg', 1, 3],
    ['cg', 2, 4],
    // A 2 x 2 solve of an exact (SPD) covariance is done after 2 products: the third is skipped.
    ['cg', 3, 4],
    ['gmres', 1, 3],
    ['gmres', 3, 4],
  ] as const) {
    const exact = new DifferentiableGaussianDenoiser(prior.mean, prior.cov);
    const guided = new MmpsDenoiser(exact, observation, { iterations, solver });
    await ancestralSample(guided, { steps: 8, schedule, rng: Rng.derive(5, 'count'), cond: null, count: n });
    assert.equal(guided.evaluations, 9, 'eight steps and the final denoise');
    assert.equal(guided.passes, 9 * perEvaluation, `${solver}, ${iterations} iterations`);
    assert.equal(exact.passes, guided.passes, 'the count is what the network saw');
  }
});

const mlpConfig: MlpConfig = { dim: 5, condDim: 0, hidden: [32, 32], embedDim: 8 };

test('the tfjs MLP VJP matches finite differences, and its value is the network output', async () => {
  await initBackend();
  const network = MlpNetwork.fromParams(mlpConfig, initMlpParams(mlpConfig, Rng.derive(6, 'mlp')), false);
  const mlp = new DifferentiableMlp(network);
  try {
    const rng = Rng.derive(6, 'points');
    const sigma = Float64Array.from([0.05, 0.3, 1, 4]);
    const n = sigma.length;
    const d = mlpConfig.dim;
    const xt = rng.fillNormal(new Float64Array(n * d));
    const v = rng.fillNormal(new Float64Array(n * d));
    const linear = await mlp.linearize(xt, sigma);
    const g = await linear.vjp(v);
    linear.dispose();
    assert.equal(mlp.passes, 2);
    const direct = await new TfjsMlpDenoiser(network).denoise(
      ndarray([n, d], Float32Array.from(xt)),
      Float32Array.from(sigma),
      null,
    );
    assert.deepEqual(Float32Array.from(linear.value), direct.data);

    const h = 1e-2;
    const dot = async (x: Float64Array) => {
      const l = await mlp.linearize(x, sigma);
      l.dispose();
      return Array.from({ length: n }, (_, i) =>
        l.value.subarray(i * d, (i + 1) * d).reduce((acc, val, j) => acc + val * v[i * d + j], 0),
      );
    };
    let worst = 0;
    let scale = 0;
    let fromSkip = 0;
    for (let j = 0; j < d; j++) {
      // Rows do not interact, so coordinate j of every row is perturbed at once.
      const plus = Float64Array.from(xt);
      const minus = Float64Array.from(xt);
      for (let i = 0; i < n; i++) {
        plus[i * d + j] += h;
        minus[i * d + j] -= h;
      }
      const [fp, fm] = await Promise.all([dot(plus), dot(minus)]);
      for (let i = 0; i < n; i++) {
        const fd = (fp[i] - fm[i]) / (2 * h);
        worst = Math.max(worst, Math.abs(fd - g[i * d + j]));
        scale = Math.max(scale, Math.abs(g[i * d + j]));
        // What the preconditioning's skip term alone would give: the network part must matter.
        fromSkip = Math.max(fromSkip, Math.abs(g[i * d + j] - v[i * d + j] / (sigma[i] ** 2 + 1)));
      }
    }
    assert.ok(worst < 2e-3 * Math.max(1, scale), `VJP vs finite differences: ${worst} (scale ${scale})`);
    assert.ok(fromSkip > 1e-2, `the Jacobian should not be the skip connection's alone (${fromSkip})`);
  } finally {
    mlp.dispose();
  }
});

test('MMPS over the tfjs MLP: shapes, finite samples and the pass count', async () => {
  await initBackend();
  const network = MlpNetwork.fromParams(mlpConfig, initMlpParams(mlpConfig, Rng.derive(7, 'mlp')), false);
  const mlp = new DifferentiableMlp(network);
  const n = 32;
  const { observation } = problem(n, mlpConfig.dim, 2, 0.01, 7);
  const guided = new MmpsDenoiser(mlp, observation, { iterations: 1 });
  try {
    const x = await ancestralSample(guided, { steps: 4, schedule, rng: Rng.derive(7, 'estep'), cond: null, count: n });
    assert.deepEqual(x.shape, [n, mlpConfig.dim]);
    assert.ok(x.data.every(Number.isFinite));
    assert.equal(guided.passes, 5 * 3);
    assert.equal(mlp.passes, guided.passes);
  } finally {
    guided.dispose();
  }
});
