/**
 * Worker-thread entry of a training job. tfjs on wasm computes synchronously, so training
 * on the activity's own thread would block the event loop and with it the heartbeats that
 * tell the engine the activity is alive; here it runs beside it and reports by message.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { initBackend } from '../../models/backend.js';
import { trainMnistClassifier } from '../../models/metrics/feature-extractor.js';
import { mlpParamShapes } from '../../models/denoisers/mlp.js';
import { unetParamShapes } from '../../models/denoisers/unet.js';
import { logLinearSchedule } from '../../models/schedule.js';
import { trainDataParallel, type NetworkSpec } from '../../models/training/data-parallel.js';
import { trainUnetDenoiser } from '../../models/training/image-trainer.js';
import { trainDenoiser, type TrainCheckpoint, type TrainHooks } from '../../models/training/trainer.js';
import { errorType, isNonRetryable } from '../errors.js';
import type { TrainingJob, TrainingMessage } from './training-job.js';

const port = parentPort;
if (!port) throw new Error('train-worker must run in a worker thread');
const job = workerData as TrainingJob;

function post(message: TrainingMessage): void {
  port!.postMessage(message);
}

let lastReport = 0;
function progress(step: number, steps: number, loss: number): void {
  const now = Date.now();
  if (now - lastReport > 250 || step === steps) {
    lastReport = now;
    post({ type: 'progress', step, steps, loss });
  }
}

async function run(): Promise<TrainCheckpoint> {
  await initBackend({ device: job.device, kernels: job.kind === 'classifier' ? 'portable' : job.kernels });
  if (job.kind === 'classifier') {
    const trained = await trainMnistClassifier(
      { images: job.images, labels: job.labels },
      { steps: job.steps, batchSize: job.batchSize, lr: job.lr, seed: job.seed, config: job.config, progress },
    );
    return { params: trained.params, optimizer: { step: job.steps, m: {}, v: {}, ema: null }, losses: trained.losses };
  }
  const hooks: TrainHooks = {
    progress,
    checkpoint: {
      every: job.checkpointEvery,
      save: async (checkpoint) => post({ type: 'checkpoint', state: checkpoint }),
    },
  };
  const options = { ...job.options, schedule: logLinearSchedule(job.sigmaMin, job.sigmaMax) };
  const start = { params: job.params, resume: job.resume ?? undefined };
  if (job.gradientShards > 1) {
    const network: NetworkSpec =
      job.kind === 'unet' ? { kind: 'unet', config: job.network } : { kind: 'mlp', config: job.network };
    const shapes = job.kind === 'unet' ? unetParamShapes(job.network) : mlpParamShapes(job.network);
    const plan = { shards: job.gradientShards, threads: job.threads };
    return trainDataParallel(
      network,
      shapes.map(([, shape]) => shape),
      job.data,
      start,
      options,
      plan,
      hooks,
      { device: job.device, kernels: job.kernels },
    );
  }
  return job.kind === 'unet'
    ? trainUnetDenoiser(job.network, job.data, start, options, hooks)
    : trainDenoiser(job.network, job.data, start, options, hooks);
}

try {
  post({ type: 'done', state: await run() });
} catch (error) {
  post({
    type: 'error',
    message: error instanceof Error ? error.message : String(error),
    errorType: errorType(error),
    nonRetryable: isNonRetryable(error),
  });
}
