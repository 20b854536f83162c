import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { unetConfigOf, imageChannelOf } from '../activities/images/common.js';
import { mmpsImagePosteriorSample } from '../activities/images/mmps.js';
import { initBackend } from '../models/backend.js';
import { initUnetParams, UnetNetwork } from '../models/denoisers/unet.js';
import { DifferentiableUnet } from '../models/guidance/unet.js';
import { ndarray } from '../models/ndarray.js';
import { Rng } from '../models/rng.js';
import { storeFor } from '../store/open.js';
import { putTensors } from '../store/tensors.js';
import { parseCampaignConfig, type ImageCampaignConfig } from '../workflows/config.js';

let dir = '';
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const STEPS = 3;

function config(): ImageCampaignConfig {
  return parseCampaignConfig({
    seed: 2,
    method: 'emmps',
    data: { kind: 'mnist', count: 4, heldout: 4 },
    channel: { kind: 'pixel-mask', rate: 0.5, noiseStd: 0.01 },
    model: { kind: 'unet', levels: [4, 4], blocksPerLevel: 1, attentionLevels: [], embedDim: 8, groups: 2 },
    estep: { steps: STEPS },
    runtime: { device: 'cpu', threads: 1 },
  }) as ImageCampaignConfig;
}

test('image configs accept method emmps', () => {
  assert.equal(config().method, 'emmps');
});

test('the U-Net VJP matches finite differences of the U-Net', async () => {
  await initBackend({ device: 'cpu' });
  const network = unetConfigOf(config(), false);
  const unet = new DifferentiableUnet(
    UnetNetwork.fromParams(network, initUnetParams(network, Rng.derive(1, 'unet-vjp')), false),
  );
  const rng = Rng.derive(2, 'unet-vjp-point');
  const d = unet.dim;
  const x = rng.fillNormal(new Float64Array(2 * d));
  const v = rng.fillNormal(new Float64Array(2 * d));
  const dx = rng.fillNormal(new Float64Array(2 * d));
  const sigma = [0.5, 2];
  const at = await unet.linearize(x, sigma);
  const vjp = await at.vjp(v);
  // <v, J dx> by central differences against <J^T v, dx>, per image (images never mix).
  const h = 1e-2;
  const plus = await unet.linearize(
    x.map((xi, k) => xi + h * dx[k]),
    sigma,
  );
  const minus = await unet.linearize(
    x.map((xi, k) => xi - h * dx[k]),
    sigma,
  );
  for (let i = 0; i < 2; i++) {
    let fd = 0;
    let ad = 0;
    for (let k = i * d; k < (i + 1) * d; k++) {
      fd += (v[k] * (plus.value[k] - minus.value[k])) / (2 * h);
      ad += vjp[k] * dx[k];
    }
    assert.ok(Math.abs(fd - ad) < 2e-2 * Math.max(1, Math.abs(ad)), `image ${i}: finite differences ${fd}, VJP ${ad}`);
  }
  for (const l of [at, plus, minus]) l.dispose();
  unet.dispose();
});

test('the EM-MMPS image E-step: finite samples, its passes and solves counted', async () => {
  dir = await mkdtemp(join(tmpdir(), 'diffem-mmps-unet-'));
  const store = storeFor(dir);
  const cfg = config();
  const network = unetConfigOf(cfg, false);
  const weights = await putTensors(store, 'w.safetensors', initUnetParams(network, Rng.derive(3, 'unet')));
  const channel = imageChannelOf(cfg);
  const n = 3;
  const ops = channel.drawOperators(Rng.derive(4, 'ops'), n);
  const clean = ndarray([n, 28, 28, 1]);
  Rng.derive(5, 'clean').fillNormal(clean.data);
  const y = channel.apply(ops, clean, Rng.derive(6, 'noise'));
  const result = await mmpsImagePosteriorSample({ store, config: cfg, weights, y, ops, rng: Rng.derive(7, 'estep') });
  assert.deepEqual(result.rows.shape, [n, 28 * 28]);
  assert.ok(result.rows.data.every(Number.isFinite));
  // m = 784 > 64: three CG iterations; each evaluation is 1 forward + 3 + 1 VJPs unless a row's solve ends early.
  assert.deepEqual([result.guidance.solver, result.guidance.iterations], ['cg', 3]);
  assert.equal(result.guidance.evaluations, STEPS + 1);
  assert.ok(result.passes > 2 * (STEPS + 1) && result.passes <= 5 * (STEPS + 1), `passes ${result.passes}`);
  // A random U-Net's Jacobian is no covariance: the solves may clamp, but they are recorded and finite.
  assert.ok(Number.isInteger(result.guidance.breakdowns) && result.guidance.breakdowns >= 0);
  assert.ok(
    Number.isFinite(result.guidance.residualMax) && result.guidance.residualMax >= result.guidance.residualMean,
  );
});
