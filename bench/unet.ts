/**
 * Feasibility of the image path on this machine: U-Net training and forward throughput at
 * MNIST size (28x28x1, mask conditioning [y, mask]) on the active tfjs backend.
 *
 *     node dist/bench/unet.js [--backend wasm|cpu|auto] [--batch 32] [--steps 10]
 *     [--levels 32,64] [--blocks 1] [--attention last|0,1|''] [--groups 8] [--embed 64]
 *     [--dropout 0.1] [--torch true|false]
 *
 * Forward throughput is also measured through the ONNX export on ONNX Runtime (CPU), the
 * runtime the E-step sampler uses, and so are EM-MMPS's guidance VJPs (J^T v of the
 * unconditional U-Net, its VJP graph on ONNX Runtime). With `--torch true` (the default) the same network runs
 * in PyTorch too (`bench/unet-torch.py` under /usr/bin/python3, same sizes, same batch), and
 * both sets of figures are printed side by side: training images/s, E-step (forward)
 * images/s and VJP images/s.
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import * as tf from '../models/tf.js';
import { blasGemmInstalled, initBackend, type BackendChoice } from '../models/backend.js';
import {
  initUnetParams,
  TfjsUnetDenoiser,
  unetParamCount,
  unetParamShapes,
  UnetNetwork,
  type UnetConfig,
} from '../models/denoisers/unet.js';
import { ndarray } from '../models/ndarray.js';
import { Rng } from '../models/rng.js';
import { exportUnetToOnnx, exportUnetVjpToOnnx } from '../models/onnx/export-unet.js';
import { OnnxDenoiser } from '../models/onnx/runtime.js';
import { OnnxDifferentiableDenoiser } from '../models/guidance/onnx-network.js';
import { logLinearSchedule } from '../models/schedule.js';
import { defaultAdam } from '../models/training/adam.js';
import { trainUnetDenoiser } from '../models/training/image-trainer.js';
import { trainDataParallel } from '../models/training/data-parallel.js';
import type { TrainOptions } from '../models/training/trainer.js';
import { ratio, runReference } from './reference.js';

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
    shards: { type: 'string', default: '1' },
    kernels: { type: 'string', default: 'fast' },
    threads: { type: 'string', default: '2' },
  },
});

const kernels = values.kernels === 'portable' ? 'portable' : 'fast';
const info = await initBackend({ backend: values.backend as BackendChoice, kernels });
const batch = Number(values.batch);
const steps = Number(values.steps);
const shards = Number(values.shards);
const threads = Number(values.threads);
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
console.error(
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
const stamps: number[] = [];
const timed = (count: number) => {
  const run: TrainOptions = { ...options, steps: count };
  const hooks = { progress: () => stamps.push(performance.now()) };
  if (shards === 1) return trainUnetDenoiser(config, { x, cond }, { params }, run, hooks);
  const shapes = unetParamShapes(config).map(([, shape]) => shape);
  return trainDataParallel({ kind: 'unet', config }, shapes, { x, cond }, { params }, run, { shards, threads }, hooks, {
    backend: values.backend as BackendChoice,
    kernels,
  });
};
// Warm-up: the first steps compile kernels and size buffers.
await timed(2);
stamps.length = 0;
// Timed from the first step's end, so thread start-up is not counted.
await timed(steps + 1);
let seconds = (stamps[stamps.length - 1] - stamps[0]) / 1000;
const ourTrain = (steps * batch) / seconds;
let t: number;
console.error(
  `train: ${ourTrain.toFixed(1)} images/s (${((seconds / steps) * 1000).toFixed(0)} ms/step, batch ${batch})`,
);

const denoiser = new TfjsUnetDenoiser(UnetNetwork.fromParams(config, params, false), 128);
const sigma = new Float32Array(n).fill(1);
await denoiser.denoise(x, sigma, cond);
t = performance.now();
await denoiser.denoise(x, sigma, cond);
seconds = (performance.now() - t) / 1000;
console.error(`forward: ${(n / seconds).toFixed(1)} images/s (batch 128)`);
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
console.error(`forward (ONNX Runtime CPU): ${ourForward.toFixed(1)} images/s (batch 128)`);
await onnx.dispose();

// EM-MMPS's E-step work: J^T v of the UNCONDITIONAL U-Net (one network pass each), through the
// VJP graph on ONNX Runtime, as `activities/images/mmps.ts` runs it.
const prior: UnetConfig = { ...config, condChannels: 0, dropout: 0 };
const priorParams = initUnetParams(prior, rng.fork('prior'));
const differentiable = await OnnxDifferentiableDenoiser.create(
  exportUnetToOnnx(prior, priorParams),
  exportUnetVjpToOnnx(prior, priorParams),
  { dim: 784, batchSize: 128 },
);
const at = await differentiable.linearize(Float64Array.from(x.data), sigma);
const cotangent = rng.fillNormal(new Float64Array(n * 784));
await at.vjp(cotangent);
t = performance.now();
await at.vjp(cotangent);
seconds = (performance.now() - t) / 1000;
const ourVjp = n / seconds;
console.error(`VJP of the unconditional U-Net (ONNX Runtime CPU): ${ourVjp.toFixed(1)} images/s (batch 128)`);
at.dispose();
await differentiable.dispose();

const ourLine = {
  engine: `diffem tfjs-${info.backend} (${kernels} kernels, gemm ${blasGemmInstalled() ? 'openblas' : 'xnnpack'}) + onnxruntime-node (E-step)`,
  workload: 'mnist-unet',
  batch,
  gradient_shards: shards,
  threads,
  train_steps_per_s: Number((ourTrain / batch).toFixed(3)),
  // E-step rows/s (images/s) through ONNX Runtime at batch 128.
  denoiser_evals_per_s: Number(ourForward.toFixed(1)),
  // EM-MMPS guidance: unconditional U-Net VJPs/s (images) through ONNX Runtime at batch 128.
  vjp_images_per_s: Number(ourVjp.toFixed(1)),
};
console.log(JSON.stringify(ourLine));

if (values.torch !== 'false') {
  const script = fileURLToPath(new URL('../../bench/unet-torch.py', import.meta.url));
  const reference = runReference(script, [
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
    '--threads',
    String(threads),
  ]);
  if (!reference.ok) {
    console.log(`no U-Net ratio: the PyTorch reference did not run (${reference.reason})`);
  } else {
    const ref = reference.figures;
    const train = typeof ref.train_images_per_s === 'number' ? ref.train_images_per_s / batch : undefined;
    console.log(
      JSON.stringify({
        engine: ref.runtime,
        workload: 'mnist-unet',
        batch,
        train_steps_per_s: train === undefined ? null : Number(train.toFixed(3)),
        denoiser_evals_per_s: ref.forward_images_per_s,
        vjp_images_per_s: ref.vjp_images_per_s,
        blas_gflops_1thread: ref.blas_gflops_1thread,
        parameters: ref.parameters,
      }),
    );
    if (ref.parameters !== unetParamCount(config)) {
      console.log(`note: parameter counts differ (ours ${unetParamCount(config)}, PyTorch ${String(ref.parameters)})`);
    }
    console.log(
      JSON.stringify({
        ratio: 'diffem / torch',
        workload: 'mnist-unet',
        batch,
        train_steps_per_s: ratio(ourLine.train_steps_per_s, train),
        denoiser_evals_per_s: ratio(ourLine.denoiser_evals_per_s, ref.forward_images_per_s),
        vjp_images_per_s: ratio(ourLine.vjp_images_per_s, ref.vjp_images_per_s),
      }),
    );
  }
}
