/**
 * Feasibility of the image path on this machine: U-Net training and forward throughput at
 * MNIST size (28x28x1, mask conditioning [y, mask]) on the active tfjs backend.
 *
 *     node dist/bench/unet.js [--backend wasm|cpu|auto] [--batch 32] [--steps 10]
 *     [--levels 32,64] [--blocks 1] [--attention last|0,1|''] [--groups 8] [--embed 64]
 *     [--dropout 0.1] [--torch true|false]
 *
 * Forward throughput is also measured through the ONNX export on ONNX Runtime (CPU), the
 * runtime the E-step sampler uses. With `--torch true` (the default) the same network runs
 * in PyTorch too (`bench/unet-torch.py` under /usr/bin/python3, same sizes, same batch), and
 * both sets of figures are printed side by side: training images/s and E-step (forward)
 * images/s.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import * as tf from '../models/tf.js';
import { initBackend, type BackendChoice } from '../models/backend.js';
import {
  initUnetParams,
  TfjsUnetDenoiser,
  unetParamCount,
  UnetNetwork,
  type UnetConfig,
} from '../models/denoisers/unet.js';
import { ndarray } from '../models/ndarray.js';
import { Rng } from '../models/rng.js';
import { exportUnetToOnnx } from '../models/onnx/export-unet.js';
import { OnnxDenoiser } from '../models/onnx/runtime.js';
import { logLinearSchedule } from '../models/schedule.js';
import { defaultAdam } from '../models/training/adam.js';
import { trainUnetDenoiser } from '../models/training/image-trainer.js';

const { values } = parseArgs({
  options: {
    backend: { type: 'string', default: 'auto' },
    batch: { type: 'string', default: '32' },
    steps: { type: 'string', default: '10' },
    levels: { type: 'string', default: '32,64' },
    blocks: { type: 'string', default: '1' },
    attention: { type: 'string', default: 'last' },
    groups: { type: 'string', default: '8' },
    embed: { type: 'string', default: '64' },
    dropout: { type: 'string', default: '0.1' },
    torch: { type: 'string', default: 'true' },
  },
});

const info = await initBackend({ backend: values.backend as BackendChoice });
const batch = Number(values.batch);
const steps = Number(values.steps);
const config: UnetConfig = {
  height: 28,
  width: 28,
  channels: 1,
  condChannels: 2,
  levels: values.levels.split(',').map(Number),
  blocksPerLevel: Number(values.blocks),
  attentionLevels:
    values.attention === 'last'
      ? [values.levels.split(',').length - 1]
      : values.attention
          .split(',')
          .filter((v) => v !== '')
          .map(Number),
  embedDim: Number(values.embed),
  dropout: Number(values.dropout),
  groups: Number(values.groups),
};
const rng = Rng.derive(0, 'bench');
const params = initUnetParams(config, rng.fork('init'));
const n = 256;
const x = ndarray([n, 28, 28, 1], rng.fillUniform(new Float32Array(n * 784), -2, 2));
const cond = ndarray([n, 28, 28, 2], rng.fillUniform(new Float32Array(n * 784 * 2), -2, 2));
console.log(
  `backend ${info.backend} (${tf.getBackend()}), U-Net levels [${config.levels}] x${config.blocksPerLevel}, ${unetParamCount(config)} parameters`,
);

const options = {
  batchSize: batch,
  optimizer: defaultAdam({ lr: 1e-4 }),
  lrSchedule: 'constant' as const,
  timeDistribution: 'beta33' as const,
  schedule: logLinearSchedule(1e-3, 1e2),
  seed: 1,
  streamPath: ['bench'],
};
// Warm-up: the first steps compile kernels and size buffers.
await trainUnetDenoiser(config, { x, cond }, { params }, { ...options, steps: 2 });
let t = performance.now();
await trainUnetDenoiser(config, { x, cond }, { params }, { ...options, steps });
let seconds = (performance.now() - t) / 1000;
const ourTrain = (steps * batch) / seconds;
console.log(
  `train: ${ourTrain.toFixed(1)} images/s (${((seconds / steps) * 1000).toFixed(0)} ms/step, batch ${batch})`,
);

const denoiser = new TfjsUnetDenoiser(UnetNetwork.fromParams(config, params, false), 128);
const sigma = new Float32Array(n).fill(1);
await denoiser.denoise(x, sigma, cond);
t = performance.now();
await denoiser.denoise(x, sigma, cond);
seconds = (performance.now() - t) / 1000;
console.log(`forward: ${(n / seconds).toFixed(1)} images/s (batch 128)`);
denoiser.dispose();

const onnx = await OnnxDenoiser.create(exportUnetToOnnx(config, params), {
  dim: 784,
  condDim: 784 * 2,
  batchSize: 128,
});
const flatX = ndarray([n, 784], x.data);
const flatCond = ndarray([n, 784 * 2], cond.data);
await onnx.denoise(flatX, sigma, flatCond);
t = performance.now();
await onnx.denoise(flatX, sigma, flatCond);
seconds = (performance.now() - t) / 1000;
const ourForward = n / seconds;
console.log(`forward (ONNX Runtime CPU): ${ourForward.toFixed(1)} images/s (batch 128)`);
await onnx.dispose();

interface TorchFigures {
  runtime: string;
  parameters: number;
  train_images_per_s: number;
  forward_images_per_s: number;
}

if (values.torch !== 'false') {
  const script = fileURLToPath(new URL('../../bench/unet-torch.py', import.meta.url));
  const args = [
    script,
    '--batch',
    String(batch),
    '--steps',
    String(steps),
    '--levels',
    config.levels.join(','),
    '--blocks',
    String(config.blocksPerLevel),
    '--attention',
    config.attentionLevels.join(','),
    '--groups',
    String(config.groups),
    '--embed',
    String(config.embedDim),
    '--dropout',
    String(config.dropout),
  ];
  const torch = spawnSync('/usr/bin/python3', args, { encoding: 'utf8' });
  if (torch.status !== 0) {
    console.log(
      `PyTorch reference unavailable: ${(torch.stderr || torch.error?.message || '').trim().split('\n').pop()}`,
    );
  } else {
    const ref = JSON.parse(torch.stdout.trim().split('\n').pop() ?? '{}') as TorchFigures;
    const row = (name: string, train: number, forward: number) =>
      `${name.padEnd(44)}${train.toFixed(1).padStart(14)}${forward.toFixed(1).padStart(16)}`;
    console.log(
      `\nU-Net at 28x28, levels [${config.levels}] x${config.blocksPerLevel}, attention [${config.attentionLevels}], batch ${batch}`,
    );
    console.log(`${''.padEnd(44)}${'train img/s'.padStart(14)}${'E-step img/s'.padStart(16)}`);
    console.log(row(`diffem (tfjs ${info.backend} / ORT CPU)`, ourTrain, ourForward));
    console.log(row(`${ref.runtime}`, ref.train_images_per_s, ref.forward_images_per_s));
    if (ref.parameters !== unetParamCount(config)) {
      console.log(`note: parameter counts differ (ours ${unetParamCount(config)}, PyTorch ${ref.parameters})`);
    }
  }
}
