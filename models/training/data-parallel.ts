/**
 * Data-parallel training: each step's minibatch is cut into `shards` equal slices of rows;
 * every slice's gradient is computed on its own and the gradients are averaged in shard
 * order 0, 1, ..., K-1 through shared memory,
 *
 *     g = (1/K) * (((g_0 + g_1) + g_2) + ... + g_{K-1}),
 *
 * then every thread applies the same Adam update to its own replica of the weights. The
 * shard count belongs to the campaign and fixes the arithmetic; `threads` only decides how
 * many shards run at once (thread w computes shards w, w + T, ...), so the weights are
 * bit-identical for any thread count. With one shard the in-thread loop of trainer.ts runs.
 */
import { Worker } from 'node:worker_threads';

import type { BackendOptions } from '../backend.js';
import type { MlpConfig, ParamMap } from '../denoisers/mlp.js';
import type { UnetConfig } from '../denoisers/unet.js';
import type { OptimizerState } from './adam.js';
import type { TrainCheckpoint, TrainHooks, TrainingData, TrainOptions } from './trainer.js';

export type NetworkSpec = { kind: 'mlp'; config: MlpConfig } | { kind: 'unet'; config: UnetConfig };

export interface ParallelPlan {
  /** Slices of each minibatch, each with its own gradient (part of the campaign's numerics). */
  shards: number;
  /** Threads that compute them (capped at `shards`; does not change the result). */
  threads: number;
}

/** What a shard thread receives; the schedule travels as its two numbers. */
export interface ShardJob {
  network: NetworkSpec;
  data: TrainingData;
  params: ParamMap;
  resume: TrainCheckpoint | null;
  options: Omit<TrainOptions, 'schedule'>;
  sigmaMin: number;
  sigmaMax: number;
  shards: number;
  threads: number;
  thread: number;
  /** Steps between checkpoints thread 0 sends (0: none). */
  checkpointEvery: number;
  runtime: BackendOptions;
  /** Gradient slots [2 parities][shards][params] and losses [2][shards] (float32). */
  gradients: SharedArrayBuffer;
  losses: SharedArrayBuffer;
  /** int32: [arrived, generation, aborted]. */
  control: SharedArrayBuffer;
}

export type ShardMessage =
  | { type: 'step'; done: number; loss: number }
  | { type: 'checkpoint'; done: number; params: ParamMap; optimizer: OptimizerState }
  | { type: 'done'; params: ParamMap; optimizer: OptimizerState }
  | { type: 'error'; message: string; errorType: string };

export function parameterCount(shapes: number[][]): number {
  return shapes.reduce((sum, shape) => sum + shape.reduce((a, b) => a * b, 1), 0);
}

export function checkPlan(plan: ParallelPlan, batchSize: number): void {
  if (!Number.isInteger(plan.shards) || plan.shards < 1)
    throw new RangeError(`training.gradientShards must be a positive integer, got ${plan.shards}`);
  if (batchSize % plan.shards !== 0)
    throw new RangeError(
      `training.batchSize (${batchSize}) must be a multiple of training.gradientShards (${plan.shards})`,
    );
  if (!Number.isInteger(plan.threads) || plan.threads < 1)
    throw new RangeError(`training threads must be a positive integer, got ${plan.threads}`);
}

/**
 * Trains with `plan.shards` gradient shards on `min(plan.threads, plan.shards)` worker
 * threads. Same contract as `trainNetwork`: resumes `start.resume` exactly, reports
 * progress and checkpoints through `hooks`.
 */
export async function trainDataParallel(
  network: NetworkSpec,
  paramShapes: number[][],
  data: TrainingData,
  start: { params: ParamMap; resume?: TrainCheckpoint },
  options: TrainOptions,
  plan: ParallelPlan,
  hooks: TrainHooks = {},
  runtime: BackendOptions = {},
): Promise<TrainCheckpoint> {
  checkPlan(plan, options.batchSize);
  const threads = Math.min(plan.threads, plan.shards);
  const P = parameterCount(paramShapes);
  const gradients = new SharedArrayBuffer(2 * plan.shards * P * 4);
  const lossSlots = new SharedArrayBuffer(2 * plan.shards * 4);
  const control = new SharedArrayBuffer(3 * 4);
  const { schedule, ...plain } = options;
  const losses = [...(start.resume?.losses ?? [])];
  const lossEvery = hooks.lossEvery ?? 50;
  let [blockLoss, blockCount] = start.resume?.pendingLoss ?? [0, 0];

  const workers: Worker[] = [];
  for (let thread = 0; thread < threads; thread++) {
    const job: ShardJob = {
      network,
      data,
      params: start.params,
      resume: start.resume ?? null,
      options: plain,
      sigmaMin: schedule.sigmaMin,
      sigmaMax: schedule.sigmaMax,
      shards: plan.shards,
      threads,
      thread,
      checkpointEvery: thread === 0 && hooks.checkpoint ? hooks.checkpoint.every : 0,
      runtime,
      gradients,
      losses: lossSlots,
      control,
    };
    workers.push(new Worker(new URL('./shard-worker.js', import.meta.url), { workerData: job }));
  }
  const abort = () => {
    const flags = new Int32Array(control);
    Atomics.store(flags, 2, 1);
    Atomics.notify(flags, 1);
    for (const worker of workers) void worker.terminate();
  };

  try {
    return await new Promise<TrainCheckpoint>((resolve, reject) => {
      let saving: Promise<void> = Promise.resolve();
      let settled = false;
      // Thread 0 exits right after its result; the exit must not read as a crash.
      let finished = false;
      const fail = (error: unknown) => {
        if (settled) return;
        settled = true;
        abort();
        reject(error instanceof Error ? error : new Error(String(error)));
      };
      workers.forEach((worker, thread) => {
        worker.on('error', fail);
        worker.on('exit', (code) => {
          if (!settled && !finished && (thread === 0 || code !== 0))
            fail(new Error(`training shard thread ${thread} exited with code ${code} before finishing`));
        });
        worker.on('message', (message: ShardMessage) => {
          if (message.type === 'error') {
            // The type travels so callers still tell bad input (a non-finite loss) from a crash.
            return fail(Object.assign(new Error(message.message), { type: message.errorType }));
          }
          if (thread !== 0) return;
          try {
            switch (message.type) {
              case 'step': {
                hooks.shouldStop?.();
                blockLoss += message.loss;
                blockCount += 1;
                if (message.done % lossEvery === 0 || message.done === options.steps) {
                  losses.push(blockLoss / blockCount);
                  blockLoss = 0;
                  blockCount = 0;
                }
                hooks.progress?.(message.done, options.steps, message.loss);
                break;
              }
              case 'checkpoint': {
                const state: TrainCheckpoint = {
                  params: message.params,
                  optimizer: message.optimizer,
                  losses: [...losses],
                  pendingLoss: [blockLoss, blockCount],
                };
                const save = hooks.checkpoint!.save;
                saving = saving.then(() => save(state));
                saving.catch(fail);
                break;
              }
              case 'done': {
                finished = true;
                const state: TrainCheckpoint = { params: message.params, optimizer: message.optimizer, losses };
                saving.then(() => {
                  settled = true;
                  resolve(state);
                }, fail);
                break;
              }
            }
          } catch (error) {
            fail(error);
          }
        });
      });
    });
  } finally {
    abort();
  }
}
