import assert from 'node:assert/strict';
import { test } from 'node:test';
import { blurImageChannel, maskImageChannel, type ImageChannel } from '../models/channels/image.js';
import { gaussianPosterior, type GaussianPrior } from '../models/gaussian/dense.js';
import { imageOperator } from '../models/guidance/image-operator.js';
import { mmpsDenoise } from '../models/guidance/mmps.js';
import { Rng } from '../models/rng.js';
import { DifferentiableGaussianDenoiser } from './helpers/differentiable-gaussian.js';

const H = 4;
const W = 4;
const C = 1;
const D = H * W * C;
const N = 3;
const SY = 0.1;

/** A smooth Gaussian image prior: covariance exp(-|p - q|^2 / 4) between pixels, plus a little white noise. */
function imagePrior(rng: Rng): GaussianPrior {
  const cov = new Float64Array(D * D);
  for (let p = 0; p < D; p++)
    for (let q = 0; q < D; q++) {
      const dy = Math.floor(p / W) - Math.floor(q / W);
      const dx = (p % W) - (q % W);
      cov[p * D + q] = Math.exp(-(dx * dx + dy * dy) / 4) + (p === q ? 0.05 : 0);
    }
  return { mean: rng.fillNormal(new Float64Array(D), 0.3), cov };
}

/** Row i's operator as a dense D x D matrix, column j = A e_j (what the exact posterior needs). */
function denseRow(apply: (x: Float64Array) => Float64Array, i: number): Float64Array {
  const A = new Float64Array(D * D);
  for (let j = 0; j < D; j++) {
    const e = new Float64Array(N * D);
    e[i * D + j] = 1;
    const column = apply(e);
    for (let r = 0; r < D; r++) A[r * D + j] = column[i * D + r];
  }
  return A;
}

function identity(d: number): Float64Array {
  const I = new Float64Array(d * d);
  for (let i = 0; i < d; i++) I[i * d + i] = 1;
  return I;
}

async function checkExact(channel: ImageChannel, seed: number): Promise<void> {
  const rng = Rng.derive(seed, 'mmps-image');
  const prior = imagePrior(rng);
  const ops = channel.drawOperators(rng, N);
  const operator = imageOperator(channel, ops, N);
  // The adjoint is the transpose: <A x, v> = <x, A^T v>.
  const x = rng.fillNormal(new Float64Array(N * D));
  const v = rng.fillNormal(new Float64Array(N * D));
  const Ax = operator.apply(x);
  const ATv = operator.adjoint(v);
  const left = Ax.reduce((s, a, k) => s + a * v[k], 0);
  const right = x.reduce((s, a, k) => s + a * ATv[k], 0);
  assert.ok(
    Math.abs(left - right) < 1e-5 * (1 + Math.abs(left)),
    `${channel.kind}: <Ax, v> ${left} vs <x, A^T v> ${right}`,
  );

  const y = rng.fillNormal(new Float64Array(N * D), 0.5);
  const denoiser = new DifferentiableGaussianDenoiser(prior.mean, prior.cov);
  for (const solver of ['cg', 'gmres'] as const) {
    for (const s of [1e-2, 0.3, 3]) {
      const xt = new Float64Array(N * D);
      for (let k = 0; k < N * D; k++) xt[k] = prior.mean[k % D] + rng.normal() + s * rng.normal();
      const guided = await mmpsDenoise(
        denoiser,
        xt,
        new Float64Array(N).fill(s),
        { y, operator, noiseStd: SY },
        {
          iterations: D,
          solver,
        },
      );
      for (let i = 0; i < N; i++) {
        // Two exact Bayesian updates: on x_t = x + sigma z, then on y_i = A_i x + e.
        const afterXt = gaussianPosterior(xt.subarray(i * D, (i + 1) * D), identity(D), s, prior);
        const exact = gaussianPosterior(y.subarray(i * D, (i + 1) * D), denseRow(operator.apply, i), SY, afterXt);
        let err = 0;
        let norm = 0;
        for (let j = 0; j < D; j++) {
          err += (guided.mean[i * D + j] - exact.mean[j]) ** 2;
          norm += exact.mean[j] ** 2;
        }
        const relative = Math.sqrt(err / norm);
        // float32 images at the channel's boundary bound the agreement, not the method.
        assert.ok(
          relative < 1e-4,
          `${channel.kind} ${solver} sigma ${s} row ${i}: relative error ${relative.toExponential(2)}`,
        );
      }
    }
  }
  // One iteration is not exact: the check has teeth.
  const xt = Float64Array.from({ length: N * D }, (_, k) => prior.mean[k % D] + Math.sin(k));
  const rough = await mmpsDenoise(
    denoiser,
    xt,
    new Float64Array(N).fill(1),
    { y, operator, noiseStd: SY },
    {
      iterations: 1,
    },
  );
  const afterXt = gaussianPosterior(xt.subarray(0, D), identity(D), 1, prior);
  const exact = gaussianPosterior(y.subarray(0, D), denseRow(operator.apply, 0), SY, afterXt);
  const gap = Math.hypot(...exact.mean.map((m, j) => m - rough.mean[j])) / Math.hypot(...exact.mean);
  assert.ok(gap > 1e-3, `${channel.kind}: one iteration came within ${gap} of the exact mean`);
}

test('MMPS through the pixel-mask operator gives the exact posterior mean of a Gaussian image prior', async () => {
  await checkExact(maskImageChannel({ height: H, width: W, channels: C, noiseStd: SY, rate: 0.5 }), 1);
});

test('MMPS through the blur operator (reflect padding, per-image sigma) gives the exact posterior mean', async () => {
  await checkExact(
    blurImageChannel({ height: H, width: W, channels: C, noiseStd: SY, kernelSize: 3, sigma: [0.6, 1.2] }),
    2,
  );
});
