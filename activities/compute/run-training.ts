/**
 * Runs a training job in a worker thread and relays what it reports: progress (for
 * heartbeats and progress bars) and checkpoints (persisted by the caller, in order).
 * Aborting the signal terminates the thread at once.
 */
import { Worker } from 'node:worker_threads';
import type { TrainCheckpoint } from '../../models/training/trainer.js';
import { BadInputError } from '../errors.js';
import type { TrainingJob, TrainingMessage } from './training-job.js';

export interface TrainingCallbacks {
  signal: AbortSignal;
  onProgress(step: number, steps: number, loss: number): void;
  onCheckpoint(state: TrainCheckpoint): Promise<void>;
}

export function runTrainingJob(job: TrainingJob, callbacks: TrainingCallbacks): Promise<TrainCheckpoint> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./train-worker.js', import.meta.url), { workerData: job });
    let saving: Promise<void> = Promise.resolve();
    let settled = false;
    // Set once the job has reported its end, so the thread's exit is expected.
    let ended = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      callbacks.signal.removeEventListener('abort', onAbort);
      fn();
    };
    const onAbort = () => {
      void worker.terminate();
      finish(() =>
        reject(callbacks.signal.reason instanceof Error ? callbacks.signal.reason : new Error('training cancelled')),
      );
    };
    if (callbacks.signal.aborted) return onAbort();
    callbacks.signal.addEventListener('abort', onAbort);
    worker.on('message', (message: TrainingMessage) => {
      switch (message.type) {
        case 'progress':
          callbacks.onProgress(message.step, message.steps, message.loss);
          break;
        case 'checkpoint':
          saving = saving.then(() => callbacks.onCheckpoint(message.state));
          break;
        case 'done':
          ended = true;
          saving.then(
            () => finish(() => resolve(message.state)),
            (error: unknown) => finish(() => reject(error)),
          );
          void worker.terminate();
          break;
        case 'error': {
          ended = true;
          const error = message.nonRetryable
            ? new BadInputError(message.errorType, message.message)
            : new Error(message.message);
          finish(() => reject(error));
          void worker.terminate();
          break;
        }
      }
    });
    worker.on('error', (error) => finish(() => reject(error)));
    worker.on('exit', (code) => {
      if (!ended) finish(() => reject(new Error(`training worker exited with code ${code} before finishing`)));
    });
  });
}
