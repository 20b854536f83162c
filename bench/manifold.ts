/**
 * The manifold workload of the PyTorch reference (shared/reference/torch_manifold_bench.py),
 * measured on diffem's runtimes, side by side with the reference in the same run:
 *
 *   train_steps_per_s     M-step Adam steps/s at batch 1024 (tfjs, this project's trainer)
 *   denoiser_evals_per_s  E-step denoiser rows/s at batch 4096, forward only (ONNX Runtime)
 *
 * Network: 81 -> 256 -> 256 -> 256 -> 5 with LayerNorm and SiLU; input [c_in x_t (5),
 * embed(log sigma) (64), y (2), flatten(A) (10)]. Prints one JSON line per engine, then the
 * ratios diffem / torch. Usage: node dist/bench/manifold.js [--seconds S] [--threads N]
 * [--reference PATH] (the reference runs when Debian's python3-torch is installed).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { initBackend } from '../models/backend.js';
import { initMlpParams, type MlpConfig } from '../models/denoisers/mlp.js';
import { ndarray } from '../models/ndarray.js';
import { exportMlpToOnnx } from '../models/onnx/export-mlp.js';
import { OnnxDenoiser } from '../models/onnx/runtime.js';
import { Rng } from '../models/rng.js';
import { logLinearSchedule } from '../models/schedule.js';
import { trainDenoiser } from '../models/training/trainer.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    threads: { type: 'string', default: '2' },
    reference: { type: 'string', default: '../shared/reference/torch_manifold_bench.py' },
  },
});
const seconds = Number(values.seconds);
const threads = Number(values.threads);
const network: MlpConfig = { dim: 5, condDim: 12, hidden: [256, 256, 256], embedDim: 64 };

function batch(rng: Rng, n: number) {
  const x = ndarray([n, 5], rng.fillNormal(new Float32Array(n * 5)));
  const cond = ndarray([n, 12], rng.fillNormal(new Float32Array(n * 12)));
  const sigma = new Float32Array(n);
  for (let i = 0; i < n; i++) sigma[i] = Math.exp(Math.log(1e-3) + rng.uniform() * Math.log(1e4));
  return { x, cond, sigma };
}

async function trainRate(): Promise<number> {
  const rng = Rng.derive(0, 'bench');
  const data = batch(rng, 1024);
  const stamps: number[] = [];
  // The trainer runs a fixed number of steps: estimate from a short first run, then time.
  const run = (steps: number) =>
    trainDenoiser(
      network,
      { x: data.x, cond: data.cond },
      { params: initMlpParams(network, rng) },
      {
        steps,
        batchSize: 1024,
        optimizer: { lr: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, clip: 0, emaDecay: 0 },
        lrSchedule: 'constant',
        timeDistribution: 'beta-mixture',
        schedule: logLinearSchedule(1e-3, 10),
        seed: 0,
        streamPath: ['bench'],
      },
      { progress: () => stamps.push(performance.now()) },
    );
  await run(5);
  const probe = (stamps[4] - stamps[0]) / 4;
  stamps.length = 0;
  const steps = Math.max(10, Math.ceil((seconds * 1000) / probe));
  await run(steps);
  // Rate over all but the first step (which pays for kernel warm-up).
  return (stamps.length - 1) / ((stamps[stamps.length - 1] - stamps[0]) / 1000);
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

const backend = await initBackend();
const ours = {
  engine: `diffem tfjs-${backend.backend} (train) + onnxruntime-node (sample)`,
  threads,
  train_steps_per_s: Number((await trainRate()).toFixed(2)),
  denoiser_evals_per_s: Math.round(await sampleRate()),
};
console.log(JSON.stringify(ours));

if (existsSync(values.reference) && existsSync('/usr/bin/python3')) {
  const result = spawnSync(
    '/usr/bin/python3',
    [values.reference, '--threads', String(threads), '--seconds', String(seconds)],
    {
      encoding: 'utf8',
    },
  );
  const line = result.stdout.trim().split('\n').pop() ?? '';
  if (result.status === 0 && line.startsWith('{')) {
    console.log(line);
    const torch = JSON.parse(line) as { train_steps_per_s: number; denoiser_evals_per_s: number };
    console.log(
      JSON.stringify({
        ratio: 'diffem / torch',
        train_steps_per_s: Number((ours.train_steps_per_s / torch.train_steps_per_s).toFixed(3)),
        denoiser_evals_per_s: Number((ours.denoiser_evals_per_s / torch.denoiser_evals_per_s).toFixed(3)),
      }),
    );
  } else {
    console.error(
      `reference benchmark did not run (${result.stderr.trim().split('\n').pop() ?? 'no output'}); install it with: apt-get install python3-torch libopenblas0-pthread`,
    );
  }
} else {
  console.error(`reference benchmark not found at ${values.reference}: printed diffem's figures only`);
}
