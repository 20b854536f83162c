/**
 * The vector EM-MMPS E-step takes the campaign's `runtime.kernels`: the guidance VJPs are
 * forward + backward passes of the tfjs MLP, the work the fast kernels speed up in training.
 * The choice must be the config's alone (a portable E-step run after a fast one in the same
 * process gives the same bits as before it), and the fast kernels must guide to the same
 * samples up to float32 reordering. The image E-step runs on ONNX Runtime and must not depend
 * on the choice at all.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { imageChannelOf, unetConfigOf } from '../activities/images/common.js';
import { mmpsImagePosteriorSample } from '../activities/images/mmps.js';
import { networkConfig } from '../activities/vector/train.js';
import { mmpsPosteriorSample } from '../activities/vector/mmps.js';
import { initMlpParams } from '../models/denoisers/mlp.js';
import { initUnetParams } from '../models/denoisers/unet.js';
import { fusedLayersEnabled } from '../models/kernels/layer-norm-silu.js';
import { ndarray } from '../models/ndarray.js';
import { Rng } from '../models/rng.js';
import { storeFor } from '../store/open.js';
import { putTensors } from '../store/tensors.js';
import { parseCampaignConfig, type ImageCampaignConfig, type VectorCampaignConfig } from '../workflows/config.js';
import { maxRelativeError } from './helpers/relative-error.js';

let dir = '';
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

type Kernels = 'portable' | 'fast';

test('vector EM-MMPS: fast kernels guide like portable ones, and the choice is the config’s alone', async () => {
  dir = dir || (await mkdtemp(join(tmpdir(), 'diffem-mmps-kernels-')));
  const store = storeFor(dir);
  const configOf = (kernels: Kernels): VectorCampaignConfig =>
    parseCampaignConfig({
      seed: 3,
      method: 'emmps',
      data: { kind: 'manifold', dim: 5, count: 64, terms: 4 },
      channel: { kind: 'projection', obsDim: 2, noiseStd: 0.01 },
      schedule: { sigmaMin: 0.001, sigmaMax: 10 },
      model: { hidden: [32, 32], embedDim: 16 },
      estep: { steps: 8 },
      runtime: { device: 'cpu', threads: 1, kernels },
    }) as VectorCampaignConfig;
  const network = networkConfig(configOf('portable'), false);
  const weights = await putTensors(store, 'mlp.safetensors', initMlpParams(network, Rng.derive(1, 'mlp')));
  const n = 48;
  const A = ndarray([n, 2, 5]);
  Rng.derive(2, 'A').fillNormal(A.data);
  const y = ndarray([n, 2]);
  Rng.derive(3, 'y').fillNormal(y.data);
  const run = async (kernels: Kernels) => {
    const result = await mmpsPosteriorSample({
      store,
      config: configOf(kernels),
      weights,
      y,
      A,
      rng: Rng.derive(4, 'estep'),
    });
    return { x: result.x.data, fused: fusedLayersEnabled() };
  };
  const before = await run('portable');
  const fast = await run('fast');
  const again = await run('portable');
  assert.equal(before.fused, false);
  assert.equal(fast.fused, true, 'a fast config runs the E-step on the fused layers');
  assert.equal(again.fused, false, 'a portable config after a fast one is portable again');
  assert.deepEqual(again.x, before.x, 'the portable E-step is bit-identical whatever ran before it');
  const gap = maxRelativeError(before.x, fast.x);
  assert.ok(gap < 1e-3, `fast and portable samples differ by ${gap} of their scale`);
});

test('image EM-MMPS: the U-Net E-step runs on ONNX Runtime, bit-identical whichever tfjs kernels are active', async () => {
  dir = dir || (await mkdtemp(join(tmpdir(), 'diffem-mmps-kernels-')));
  const store = storeFor(dir);
  const configOf = (kernels: Kernels): ImageCampaignConfig =>
    parseCampaignConfig({
      seed: 2,
      method: 'emmps',
      data: { kind: 'mnist', count: 4, heldout: 4 },
      channel: { kind: 'pixel-mask', rate: 0.5, noiseStd: 0.01 },
      model: { kind: 'unet', levels: [4, 4], blocksPerLevel: 1, attentionLevels: [], embedDim: 8, groups: 2 },
      estep: { steps: 3 },
      runtime: { device: 'cpu', threads: 1, kernels },
    }) as ImageCampaignConfig;
  const network = unetConfigOf(configOf('portable'), false);
  const weights = await putTensors(store, 'unet.safetensors', initUnetParams(network, Rng.derive(3, 'unet')));
  const channel = imageChannelOf(configOf('portable'));
  const n = 2;
  const ops = channel.drawOperators(Rng.derive(4, 'ops'), n);
  const clean = ndarray([n, 28, 28, 1]);
  Rng.derive(5, 'clean').fillNormal(clean.data);
  const y = channel.apply(ops, clean, Rng.derive(6, 'noise'));
  const run = async (kernels: Kernels) =>
    (await mmpsImagePosteriorSample({ store, config: configOf(kernels), weights, y, ops, rng: Rng.derive(7, 'e') }))
      .rows.data;
  const portable = await run('portable');
  assert.ok(portable.every(Number.isFinite));
  // Its forward passes and VJPs are ONNX graphs (models/guidance/onnx-network.ts): tfjs's kernels play no part.
  assert.deepEqual(await run('fast'), portable, 'the kernel choice changed the image E-step');
  assert.deepEqual(await run('portable'), portable, 'a re-run drew different samples');
});
