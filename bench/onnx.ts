/**
 * Denoiser evaluations (rows) per second of the conditional manifold MLP (81 -> 256x3 -> 5) at
 * batch 4096: on ONNX Runtime's CPU provider (2 threads, the E-step's runtime) and, for
 * comparison, on the tfjs wasm backend (the training runtime). Prints one JSON line.
 */
import '@tensorflow/tfjs-backend-wasm';
import * as tf from '../models/tf.js';
import { initMlpParams, MlpNetwork, TfjsMlpDenoiser, type MlpConfig } from '../models/denoisers/mlp.js';
import type { Denoiser } from '../models/denoisers/denoiser.js';
import { ndarray, type NDArray } from '../models/ndarray.js';
import { exportMlpToOnnx } from '../models/onnx/export-mlp.js';
import { OnnxDenoiser } from '../models/onnx/runtime.js';
import { Rng } from '../models/rng.js';

const CONFIG: MlpConfig = { dim: 5, condDim: 12, hidden: [256, 256, 256], embedDim: 64 };
const BATCH = 4096;
const THREADS = 2;
/**
 * Runtimes alternate in short rounds so that load from other processes hits both alike; each
 * reports its best round (the least disturbed). 2 x 3 rounds of 2 s keep the run near 15 s.
 */
const ROUNDS = 3;
const ROUND_MS = 2000;

interface Rate {
  evalsPerSec: number;
  msPerCall: number;
  calls: number;
}

interface Inputs {
  xt: NDArray;
  sigma: Float32Array;
  cond: NDArray;
}

function makeInputs(rng: Rng): Inputs {
  const sigma = new Float32Array(BATCH);
  for (let i = 0; i < BATCH; i++) sigma[i] = Math.exp(Math.log(1e-3) + rng.uniform() * Math.log(1e5));
  const xt = ndarray([BATCH, CONFIG.dim], rng.fillNormal(new Float32Array(BATCH * CONFIG.dim), 3));
  const cond = ndarray([BATCH, CONFIG.condDim], rng.fillNormal(new Float32Array(BATCH * CONFIG.condDim)));
  return { xt, sigma, cond };
}

async function round(d: Denoiser, x: Inputs): Promise<Rate> {
  let calls = 0;
  let elapsed = 0;
  const start = performance.now();
  while (elapsed < ROUND_MS) {
    await d.denoise(x.xt, x.sigma, x.cond);
    calls++;
    elapsed = performance.now() - start;
  }
  return { evalsPerSec: Math.round((calls * BATCH * 1000) / elapsed), msPerCall: +(elapsed / calls).toFixed(2), calls };
}

function best(rates: Rate[]): Rate {
  return rates.reduce((a, b) => (b.evalsPerSec > a.evalsPerSec ? b : a));
}

async function main(): Promise<void> {
  const params = initMlpParams(CONFIG, Rng.derive(0, 'bench', 'onnx', 'params'));
  const inputs = makeInputs(Rng.derive(0, 'bench', 'onnx', 'inputs'));

  const ort = await OnnxDenoiser.create(exportMlpToOnnx(CONFIG, params), {
    dim: CONFIG.dim,
    condDim: CONFIG.condDim,
    device: 'cpu',
    threads: THREADS,
    batchSize: BATCH,
  });
  await tf.setBackend('wasm');
  await tf.ready();
  const wasm = new TfjsMlpDenoiser(MlpNetwork.fromParams(CONFIG, params, false));

  // Warm-up: first calls pay for kernel selection, arena growth and wasm compilation.
  for (let i = 0; i < 2; i++) {
    await ort.denoise(inputs.xt, inputs.sigma, inputs.cond);
    await wasm.denoise(inputs.xt, inputs.sigma, inputs.cond);
  }
  const ortRates: Rate[] = [];
  const wasmRates: Rate[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    ortRates.push(await round(ort, inputs));
    wasmRates.push(await round(wasm, inputs));
  }
  await ort.dispose();
  wasm.dispose();

  const ortBest = best(ortRates);
  const wasmBest = best(wasmRates);
  console.log(
    JSON.stringify({
      bench: 'onnx',
      network: `${CONFIG.dim + CONFIG.embedDim + CONFIG.condDim}->${CONFIG.hidden.join('x')}->${CONFIG.dim}`,
      batch: BATCH,
      ort: { ...ortBest, threads: THREADS, device: ort.device, rounds: ortRates.map((r) => r.evalsPerSec) },
      tfjsWasm: { ...wasmBest, rounds: wasmRates.map((r) => r.evalsPerSec) },
      speedup: +(ortBest.evalsPerSec / wasmBest.evalsPerSec).toFixed(2),
    }),
  );
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
