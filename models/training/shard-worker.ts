/**
 * One thread of data-parallel training (data-parallel.ts): a replica of the network and of
 * Adam that, each step, computes the gradients of its shards, meets the other threads at a
 * barrier, sums every shard's gradient in shard order and applies the shared update.
 * Gradient slots alternate between two parities, so one barrier per step suffices: a thread
 * writes a parity again only after every thread has passed the next step's barrier, that
 * is, after all have finished reading it.
 */
import { parentPort, workerData } from 'node:worker_threads';

import * as tf from '../tf.js';
import { initBackend } from '../backend.js';
import { MlpNetwork } from '../denoisers/mlp.js';
import { UnetNetwork } from '../denoisers/unet.js';
import { logLinearSchedule } from '../schedule.js';
import { sizeOf } from '../ndarray.js';
import { Adam } from './adam.js';
import type { ShardJob, ShardMessage } from './data-parallel.js';
import {
  denoisingObjective,
  drawStep,
  learningRate,
  NonFiniteLossError,
  stepDraws,
  type DenoisingNetwork,
} from './trainer.js';

const port = parentPort;
if (!port) throw new Error('shard-worker must run in a worker thread');
const job = workerData as ShardJob;
const post = (message: ShardMessage) => port.postMessage(message);

class Aborted extends Error {}

/** A reusable barrier over int32 [arrived, generation, aborted]. */
function barrier(control: Int32Array, parties: number): void {
  const generation = Atomics.load(control, 1);
  if (Atomics.add(control, 0, 1) === parties - 1) {
    Atomics.store(control, 0, 0);
    Atomics.add(control, 1, 1);
    Atomics.notify(control, 1);
    return;
  }
  while (Atomics.load(control, 1) === generation) {
    Atomics.wait(control, 1, generation, 1000);
    if (Atomics.load(control, 2) !== 0) throw new Aborted('training aborted');
  }
}

function build(params: ShardJob['params']): DenoisingNetwork {
  return job.network.kind === 'mlp'
    ? MlpNetwork.fromParams(job.network.config, params, true)
    : UnetNetwork.fromParams(job.network.config, params, true);
}

async function run(): Promise<void> {
  await initBackend(job.runtime);
  const { shards, threads, thread, data } = job;
  const options = { ...job.options, schedule: logLinearSchedule(job.sigmaMin, job.sigmaMax) };
  const network = build(job.resume?.params ?? job.params);
  const variables = new Map(Object.entries(network.weights) as Array<[string, tf.Variable]>);
  const adam = new Adam(variables, options.optimizer, job.resume?.optimizer ?? undefined);
  const offsets: number[] = [];
  let P = 0;
  for (const variable of variables.values()) {
    offsets.push(P);
    P += variable.size;
  }
  const slots = new Float32Array(job.gradients);
  const lossSlots = new Float32Array(job.losses);
  const control = new Int32Array(job.control);
  const B = options.batchSize;
  const rows = B / shards;
  const xShape = data.x.shape.slice(1);
  const condShape = data.cond ? data.cond.shape.slice(1) : null;
  const dim = sizeOf(xShape);
  const condDim = condShape ? sizeOf(condShape) : 0;
  const draws = stepDraws(data, B);
  const sum = new Float32Array(P);
  try {
    for (let step = adam.step; step < options.steps; step++) {
      const dropoutSeed = drawStep(draws, data, options, step);
      const parity = step & 1;
      for (let k = thread; k < shards; k += threads) {
        const slice = (a: Float32Array, width: number) => a.subarray(k * rows * width, (k + 1) * rows * width);
        tf.tidy(() => {
          const x = tf.tensor(slice(draws.xb, dim), [rows, ...xShape]);
          const sigma = tf.tensor1d(slice(draws.sb, 1));
          const z = tf.tensor(slice(draws.zb, dim), [rows, ...xShape]);
          const cond = draws.cb && condShape ? tf.tensor(slice(draws.cb, condDim), [rows, ...condShape]) : null;
          // Each shard draws its own dropout masks: the seed is mixed with the shard index.
          const seed = (dropoutSeed + k * 0x9e3779b9) >>> 0;
          const objective = denoisingObjective(network, x, z, sigma, cond, seed);
          const { value, grads } = tf.variableGrads(objective, [...variables.values()]);
          lossSlots[parity * shards + k] = value.dataSync()[0];
          const base = (parity * shards + k) * P;
          let i = 0;
          for (const variable of variables.values()) {
            slots.set(grads[variable.name].dataSync() as Float32Array, base + offsets[i++]);
          }
        });
      }
      barrier(control, threads);
      let loss = 0;
      sum.set(slots.subarray(parity * shards * P, (parity * shards + 1) * P));
      loss += lossSlots[parity * shards];
      for (let k = 1; k < shards; k++) {
        const base = (parity * shards + k) * P;
        for (let j = 0; j < P; j++) sum[j] += slots[base + j];
        loss += lossSlots[parity * shards + k];
      }
      const scale = 1 / shards;
      for (let j = 0; j < P; j++) sum[j] *= scale;
      loss *= scale;
      if (!Number.isFinite(loss)) throw new NonFiniteLossError(step, loss);
      const named: Record<string, Float32Array> = {};
      let i = 0;
      for (const [name, variable] of variables) {
        named[name] = sum.subarray(offsets[i], offsets[i] + variable.size);
        i++;
      }
      adam.apply(named, learningRate(options, step));
      if (thread !== 0) continue;
      const done = step + 1;
      post({ type: 'step', done, loss });
      if (job.checkpointEvery > 0 && done % job.checkpointEvery === 0 && done < options.steps) {
        post({ type: 'checkpoint', done, params: network.params(), optimizer: adam.state() });
      }
    }
    if (thread === 0) post({ type: 'done', params: network.params(), optimizer: adam.state() });
  } finally {
    adam.dispose();
    network.dispose();
  }
}

try {
  await run();
} catch (error) {
  if (!(error instanceof Aborted)) {
    const type = (error as { type?: unknown } | null)?.type;
    post({
      type: 'error',
      message: error instanceof Error ? error.message : String(error),
      errorType: typeof type === 'string' ? type : error instanceof Error ? error.name : 'Error',
    });
  }
}
