import assert from 'node:assert/strict';
import { test } from 'node:test';

import { fitMaskedFactorGaussian, sampleMaskedPosterior, type MaskedData } from '../models/gaussian/factor.js';
import { Rng } from '../models/rng.js';

/** n draws of x = mu + W z + eps (rank 2, d = P = 12, one channel), half the pixels masked. */
function maskedLowRankData(n: number, noiseStd: number): { data: MaskedData; clean: Float32Array } {
  const rng = Rng.derive(5, 'factor-test');
  const P = 12;
  const W = rng.fillNormal(new Float64Array(P * 2));
  const mu = rng.fillNormal(new Float64Array(P), 0.5);
  const clean = new Float32Array(n * P);
  const y = new Float32Array(n * P);
  const masks = new Float32Array(n * P);
  for (let i = 0; i < n; i++) {
    const z = rng.fillNormal(new Float64Array(2));
    for (let j = 0; j < P; j++) {
      const x = mu[j] + W[j * 2] * z[0] + W[j * 2 + 1] * z[1] + 0.05 * rng.normal();
      clean[i * P + j] = x;
      masks[i * P + j] = rng.uniform() < 0.5 ? 1 : 0;
      y[i * P + j] = masks[i * P + j] ? x + noiseStd * rng.normal() : 0;
    }
  }
  return { data: { y, masks, n, P, C: 1 }, clean };
}

test('factor model: EM never lowers the likelihood, and posterior samples fill the masked pixels', async () => {
  const noiseStd = 1e-3;
  const { data, clean } = maskedLowRankData(400, noiseStd);
  const { fit, logLikelihood } = await fitMaskedFactorGaussian(data, {
    rank: 2,
    iterations: 30,
    noiseStd,
    rng: Rng.derive(5, 'factor-test/init'),
  });
  for (let t = 1; t < logLikelihood.length; t++) {
    assert.ok(
      logLikelihood[t] >= logLikelihood[t - 1] - 1e-9,
      `iteration ${t}: ${logLikelihood[t - 1]} -> ${logLikelihood[t]}`,
    );
  }
  const samples = sampleMaskedPosterior(fit, data, noiseStd, Rng.derive(5, 'factor-test/sample'));
  let observedError = 0;
  let maskedError = 0;
  let maskedSpread = 0;
  let observed = 0;
  let masked = 0;
  const P = data.P;
  for (let q = 0; q < data.n * P; q++) {
    const error = (samples.data[q] - clean[q]) ** 2;
    if (data.masks[q]) {
      observedError += error;
      observed++;
    } else {
      maskedError += error;
      maskedSpread += (clean[q] - fit.mean[q % P]) ** 2;
      masked++;
    }
  }
  // Observed pixels are kept up to the noise; masked ones come from the observed neighbours
  // through the two factors, far closer than the per-pixel mean alone.
  assert.ok(Math.sqrt(observedError / observed) < 0.01, `observed RMSE ${Math.sqrt(observedError / observed)}`);
  assert.ok(
    maskedError < 0.1 * maskedSpread,
    `masked error ${maskedError / masked} vs spread ${maskedSpread / masked}`,
  );
});
