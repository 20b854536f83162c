/**
 * The manifold workload of the PyTorch reference (shared/reference/torch_manifold_bench.py),
 * measured on diffem's runtimes and on the reference in the same run:
 *
 *   train_steps_per_s     M-step Adam steps/s at each --batches size (this project's trainer,
 *                         with --shards gradient shards on --threads threads)
 *   denoiser_evals_per_s  E-step denoiser rows/s at batch 4096, forward only (ONNX Runtime)
 *
 * Network: 81 -> 256 -> 256 -> 256 -> 5 with LayerNorm and SiLU; input [c_in x_t (5),
 * embed(log sigma) (64), y (2), flatten(A) (10)]. Prints one JSON line per figure set in the
 * reference's shape (engine, workload, batch, ...), the reference's line, then the ratios
 * diffem / torch; with the reference missing or on a degraded BLAS, no ratio and what to
 * install. Usage: node dist/bench/manifold.js [--seconds S] [--threads N] [--shards K] [--kernels fast|portable]
 * [--batches 512,1024] [--reference PATH]
 */
import { availableParallelism, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { blasGemmInstalled, initBackend } from '../models/backend.js';
import { initMlpParams, mlpParamShapes, type MlpConfig } from '../models/denoisers/mlp.js';
import { ndarray } from '../models/ndarray.js';
import { exportMlpToOnnx } from '../models/onnx/export-mlp.js';
import { OnnxDenoiser } from '../models/onnx/runtime.js';
import { Rng } from '../models/rng.js';
import { logLinearSchedule } from '../models/schedule.js';
import { trainDataParallel } from '../models/training/data-parallel.js';
import { trainDenoiser, type TrainHooks, type TrainOptions } from '../models/training/trainer.js';
import { ratio, runReference } from './reference.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    threads: { type: 'string', default: '2' },
    shards: { type: 'string', default: '2' },
    kernels: { type: 'string', default: 'fast' },
    batches: { type: 'string', default: '512,1024' },
    reference: {
      type: 'string',
      default: fileURLToPath(new URL('../../../shared/reference/torch_manifold_bench.py', import.meta.url)),
    },
  },
});
const seconds = Number(values.seconds);
const threads = Number(values.threads);
const shards = Number(values.shards);
const batches = values.batches.split(',').map(Number);
const network: MlpConfig = { dim: 5, condDim: 12, hidden: [256, 256, 256], embedDim: 64 };
const WORKLOAD = 'manifold-mlp';

function batch(rng: Rng, n: number) {
  const x = ndarray([n, 5], rng.fillNormal(new Float32Array(n * 5)));
  const cond = ndarray([n, 12], rng.fillNormal(new Float32Array(n * 12)));
  const sigma = new Float32Array(n);
  for (let i = 0; i < n; i++) sigma[i] = Math.exp(Math.log(1e-3) + rng.uniform() * Math.log(1e4));
  return { x, cond, sigma };
}

/** Steps/s of the campaign's trainer (clip and EMA on, as in a lap) at batch `B`. */
async function trainRate(B: number): Promise<number> {
  const rng = Rng.derive(0, 'bench');
  const data = batch(rng, B);
  const params = initMlpParams(network, rng);
  const stamps: number[] = [];
  const run = (steps: number) => {
    const options: TrainOptions = {
      steps,
      batchSize: B,
      optimizer: { lr: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, clip: 1, emaDecay: 0.999 },
      lrSchedule: 'constant',
      timeDistribution: 'beta-mixture',
      schedule: logLinearSchedule(1e-3, 10),
      seed: 0,
      streamPath: ['bench'],
    };
    const hooks: TrainHooks = { progress: () => stamps.push(performance.now()) };
    const shapes = mlpParamShapes(network).map(([, shape]) => shape);
    return shards > 1
      ? trainDataParallel(
          { kind: 'mlp', config: network },
          shapes,
          data,
          { params },
          options,
          { shards, threads },
          hooks,
          { kernels },
        )
      : trainDenoiser(network, data, { params }, options, hooks);
  };
  // The trainer runs a fixed number of steps: estimate from a short first run, then time.
  await run(8);
  const probe = (stamps[7] - stamps[2]) / 5;
  stamps.length = 0;
  const steps = Math.max(12, Math.ceil((seconds * 1000) / probe) + 2);
  await run(steps);
  // Over all but the first two steps (thread start-up, kernel warm-up).
  return (stamps.length - 3) / ((stamps[stamps.length - 1] - stamps[2]) / 1000);
}

async function sampleRate(): Promise<number> {
  const rng = Rng.derive(0, 'bench-sample');
  const data = batch(rng, 4096);
  const denoiser = await OnnxDenoiser.create(exportMlpToOnnx(network, initMlpParams(network, rng)), {
    dim: 5,
    condDim: 12,
    device: 'cpu',
    threads,
  });
  await denoiser.denoise(data.x, data.sigma, data.cond);
  let calls = 0;
  const start = performance.now();
  while (performance.now() - start < seconds * 1000) {
    await denoiser.denoise(data.x, data.sigma, data.cond);
    calls++;
  }
  const rate = (calls * 4096) / ((performance.now() - start) / 1000);
  await denoiser.dispose();
  return rate;
}

const kernels = values.kernels === 'portable' ? 'portable' : 'fast';
const backend = await initBackend({ kernels });
// Other processes share the cores: every run states the load it was measured under.
console.log(JSON.stringify({ cores: availableParallelism(), loadavg: loadavg().map((l) => Number(l.toFixed(2))) }));
const engine = `diffem tfjs-${backend.backend} (${kernels} kernels, gemm ${blasGemmInstalled() ? 'openblas' : 'xnnpack'})`;
const ours: Array<Record<string, string | number>> = [];
for (const B of batches) {
  const line = {
    engine,
    workload: WORKLOAD,
    batch: B,
    threads,
    gradient_shards: shards,
    train_steps_per_s: Number((await trainRate(B)).toFixed(2)),
  };
  ours.push(line);
  console.log(JSON.stringify(line));
}
const evals = { engine: 'diffem onnxruntime-node', workload: WORKLOAD, batch: 4096, threads };
const sampling = { ...evals, denoiser_evals_per_s: Math.round(await sampleRate()) };
console.log(JSON.stringify(sampling));

for (const line of ours) {
  const B = Number(line.batch);
  const reference = runReference(values.reference, [
    '--threads',
    String(threads),
    '--seconds',
    String(seconds),
    '--batch',
    String(B),
  ]);
  if (!reference.ok) {
    console.log(`no ratio at batch ${B}: the PyTorch reference did not run (${reference.reason})`);
    continue;
  }
  console.log(JSON.stringify({ ...reference.figures, workload: WORKLOAD }));
  console.log(
    JSON.stringify({
      ratio: 'diffem / torch',
      workload: WORKLOAD,
      batch: B,
      train_steps_per_s: ratio(Number(line.train_steps_per_s), reference.figures.train_steps_per_s),
      // The reference measures its E-step at batch 4096 whatever the training batch.
      denoiser_evals_per_s: ratio(sampling.denoiser_evals_per_s, reference.figures.denoiser_evals_per_s),
    }),
  );
}
