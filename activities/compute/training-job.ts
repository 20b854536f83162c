/**
 * A training job as plain data, so it can cross into a worker thread: which network, its
 * configuration, the data, where to start, and the optimiser settings. The schedule is
 * passed as its two numbers and rebuilt on the other side.
 *
 *   mlp         the vector denoiser (`models/training/trainer.ts`)
 *   unet        the image denoiser (`models/training/image-trainer.ts`), conditional or not
 *   classifier  the FID feature classifier (`models/metrics/feature-extractor.ts`); its
 *               result comes back as a checkpoint whose `params` are the classifier's
 */
import type { MlpConfig, ParamMap } from '../../models/denoisers/mlp.js';
import type { UnetConfig } from '../../models/denoisers/unet.js';
import type { ClassifierConfig } from '../../models/metrics/feature-extractor.js';
import type { NDArray } from '../../models/ndarray.js';
import type { TrainCheckpoint, TrainingData, TrainOptions } from '../../models/training/trainer.js';
import { availableParallelism } from 'node:os';

import type { DeviceChoice, KernelChoice } from '../../models/backend.js';

interface DenoiserJob {
  params: ParamMap;
  resume: TrainCheckpoint | null;
  options: Omit<TrainOptions, 'schedule'>;
  sigmaMin: number;
  sigmaMax: number;
  checkpointEvery: number;
  device: DeviceChoice;
  kernels: KernelChoice;
  /** Gradient shards of each minibatch (models/training/data-parallel.ts); 1: one thread. */
  gradientShards: number;
  /** Threads that compute the shards at once (does not change the result). */
  threads: number;
}

/**
 * Threads for data-parallel training on this machine: DIFFEM_TRAIN_THREADS when set, else
 * one per core, never more than there are shards.
 */
export function trainingThreads(gradientShards: number): number {
  const configured = process.env.DIFFEM_TRAIN_THREADS;
  const wanted = configured ? Number(configured) : availableParallelism();
  if (!Number.isInteger(wanted) || wanted < 1)
    throw new RangeError(`DIFFEM_TRAIN_THREADS must be a positive integer, got '${configured}'`);
  return Math.min(wanted, gradientShards);
}

export interface MlpTrainingJob extends DenoiserJob {
  kind: 'mlp';
  network: MlpConfig;
  data: TrainingData;
}

export interface UnetTrainingJob extends DenoiserJob {
  kind: 'unet';
  network: UnetConfig;
  /** x [n, H, W, C]; cond [n, H, W, condChannels] or null (unconditional). */
  data: { x: NDArray; cond: NDArray | null };
}

export interface ClassifierTrainingJob {
  kind: 'classifier';
  config: ClassifierConfig;
  /** Labelled images [n, H, W, C] in [-2, 2]. */
  images: NDArray;
  labels: Int32Array;
  steps: number;
  batchSize: number;
  lr: number;
  seed: number;
  device: DeviceChoice;
}

export type TrainingJob = MlpTrainingJob | UnetTrainingJob | ClassifierTrainingJob;

export type TrainingMessage =
  | { type: 'progress'; step: number; steps: number; loss: number }
  | { type: 'checkpoint'; state: TrainCheckpoint }
  | { type: 'done'; state: TrainCheckpoint }
  | { type: 'error'; message: string; errorType: string; nonRetryable: boolean };
