/**
 * A training job as plain data, so it can cross into a worker thread: the network
 * configuration, the data, where to start, and the optimiser settings. The schedule is
 * passed as its two numbers and rebuilt on the other side.
 */
import type { MlpConfig, ParamMap } from '../../models/denoisers/mlp.js';
import type { TrainCheckpoint, TrainingData, TrainOptions } from '../../models/training/trainer.js';
import type { DeviceChoice } from '../../models/backend.js';

export interface TrainingJob {
  network: MlpConfig;
  data: TrainingData;
  params: ParamMap;
  resume: TrainCheckpoint | null;
  options: Omit<TrainOptions, 'schedule'>;
  sigmaMin: number;
  sigmaMax: number;
  checkpointEvery: number;
  device: DeviceChoice;
}

export type TrainingMessage =
  | { type: 'progress'; step: number; steps: number; loss: number }
  | { type: 'checkpoint'; state: TrainCheckpoint }
  | { type: 'done'; state: TrainCheckpoint }
  | { type: 'error'; message: string; errorType: string; nonRetryable: boolean };
