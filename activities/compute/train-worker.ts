/**
 * Worker-thread entry of a training job. tfjs on wasm computes synchronously, so training
 * on the activity's own thread would block the event loop and with it the heartbeats that
 * tell the engine the activity is alive; here it runs beside it and reports by message.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { initBackend } from '../../models/backend.js';
import { logLinearSchedule } from '../../models/schedule.js';
import { trainDenoiser } from '../../models/training/trainer.js';
import { errorType, isNonRetryable } from '../errors.js';
import type { TrainingJob, TrainingMessage } from './training-job.js';

const port = parentPort;
if (!port) throw new Error('train-worker must run in a worker thread');
const job = workerData as TrainingJob;

function post(message: TrainingMessage): void {
  port!.postMessage(message);
}

try {
  await initBackend({ device: job.device });
  let lastReport = 0;
  const state = await trainDenoiser(
    job.network,
    job.data,
    { params: job.params, resume: job.resume ?? undefined },
    { ...job.options, schedule: logLinearSchedule(job.sigmaMin, job.sigmaMax) },
    {
      progress: (step, steps, loss) => {
        const now = Date.now();
        if (now - lastReport > 250 || step === steps) {
          lastReport = now;
          post({ type: 'progress', step, steps, loss });
        }
      },
      checkpoint: {
        every: job.checkpointEvery,
        save: async (checkpoint) => post({ type: 'checkpoint', state: checkpoint }),
      },
    },
  );
  post({ type: 'done', state });
} catch (error) {
  post({
    type: 'error',
    message: error instanceof Error ? error.message : String(error),
    errorType: errorType(error),
    nonRetryable: isNonRetryable(error),
  });
}
