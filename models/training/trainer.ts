/**
 * Denoiser training, for every network shape (the MLP's rows, the U-Net's images): minimise
 * the weighted denoising loss of docs/method.md,
 *
 *     L = E_{t, x, z} [ (1/sigma(t)^2 + 1) * mean_j (D(x + sigma z, sigma, c) - x)_j^2 ],
 *
 * by Adam over minibatches drawn with replacement. Every draw of step s (batch indices,
 * t, z, the dropout seed) comes from the stream `derive(seed, ...streamPath, s)`, so a run resumed from the
 * checkpoint of step s continues with exactly the numbers an uninterrupted run would have
 * drawn: resumption changes neither weights nor digests.
 */
import * as tf from '../tf.js';
import { MlpNetwork, type MlpConfig, type ParamMap } from '../denoisers/mlp.js';
import { sizeOf, type NDArray } from '../ndarray.js';
import { edmLossWeight } from '../precondition.js';
import { Rng } from '../rng.js';
import type { NoiseSchedule } from '../schedule.js';
import { Adam, type AdamOptions, type OptimizerState } from './adam.js';
import { sampleTime, type TimeDistributionName } from './time-distribution.js';

export interface TrainingData {
  /** Targets x [n, ...]: rows [n, dim] for vectors, images [n, H, W, C]. */
  x: NDArray;
  /** Conditioning [n, ...], or null for an unconditional model. */
  cond: NDArray | null;
}

export interface TrainOptions {
  steps: number;
  batchSize: number;
  optimizer: AdamOptions;
  /** 'cosine' decays the learning rate to 10 % of its start over `steps`. */
  lrSchedule: 'constant' | 'cosine';
  timeDistribution: TimeDistributionName;
  schedule: NoiseSchedule;
  seed: number;
  streamPath: Array<string | number>;
}

export interface TrainCheckpoint {
  params: ParamMap;
  optimizer: OptimizerState;
  /** Mean loss of each finished block of `lossEvery` steps. */
  losses: number[];
  /** Sum and count of the losses of the unfinished block, so a resumed run's curve matches. */
  pendingLoss?: [number, number];
}

export interface TrainHooks {
  /** Called every `every` steps (and at the end) with the state; may persist it. */
  checkpoint?: { every: number; save(state: TrainCheckpoint): Promise<void> };
  progress?: (step: number, steps: number, loss: number) => void;
  /** Steps per recorded loss value. */
  lossEvery?: number;
  /** Checked between steps; throwing aborts training (cancellation). */
  shouldStop?: () => void;
}

export class NonFiniteLossError extends Error {
  readonly type = 'NonFiniteLoss';
  constructor(step: number, loss: number) {
    super(`training loss became ${loss} at step ${step}: lower the learning rate or check the data for NaN/Inf`);
  }
}

/** A network the loop can train: trainable weights and a batched D(x_t, sigma, c). */
export interface DenoisingNetwork {
  /** Trainable variables by parameter name (from `fromParams(..., true)`). */
  readonly weights: Record<string, tf.Tensor>;
  denoise(
    xt: tf.Tensor,
    sigma: tf.Tensor1D,
    cond: tf.Tensor | null,
    options: { training: boolean; seed: number },
  ): tf.Tensor;
  params(): ParamMap;
  dispose(): void;
}

/** The MLP denoiser (vectors): builds the network and runs the loop. */
export async function trainDenoiser(
  config: MlpConfig,
  data: TrainingData,
  start: { params: ParamMap; resume?: TrainCheckpoint },
  options: TrainOptions,
  hooks: TrainHooks = {},
): Promise<TrainCheckpoint> {
  const n = data.x.shape[0];
  const { dim, condDim } = config;
  if (data.x.shape[1] !== dim)
    throw new RangeError(`training targets are [${data.x.shape}], the model expects dim ${dim}`);
  if (condDim > 0 && (!data.cond || data.cond.shape[1] !== condDim || data.cond.shape[0] !== n)) {
    throw new RangeError(`conditioning must be [${n}, ${condDim}], got [${data.cond?.shape ?? 'none'}]`);
  }
  const network = MlpNetwork.fromParams(config, start.resume?.params ?? start.params, true);
  try {
    return await trainNetwork(
      network,
      { x: data.x, cond: condDim > 0 ? data.cond : null },
      start.resume,
      options,
      hooks,
    );
  } finally {
    network.dispose();
  }
}

/**
 * The training loop over any `DenoisingNetwork` (the MLP's rows, the U-Net's images: x and
 * the conditioning may have any trailing shape). Trains `network` in place; the caller owns
 * and disposes it.
 */
export async function trainNetwork(
  network: DenoisingNetwork,
  data: TrainingData,
  resume: TrainCheckpoint | undefined,
  options: TrainOptions,
  hooks: TrainHooks = {},
): Promise<TrainCheckpoint> {
  const n = data.x.shape[0];
  const xShape = data.x.shape.slice(1);
  const condShape = data.cond ? data.cond.shape.slice(1) : null;
  if (data.cond && data.cond.shape[0] !== n)
    throw new RangeError(`${data.cond.shape[0]} conditioning rows for ${n} targets`);
  if (n === 0) throw new RangeError('no training data');
  const variables = new Map(Object.entries(network.weights) as Array<[string, tf.Variable]>);
  const adam = new Adam(variables, options.optimizer, resume?.optimizer);
  const losses = [...(resume?.losses ?? [])];
  const lossEvery = hooks.lossEvery ?? 50;
  const B = options.batchSize;
  const draws = stepDraws(data, B);
  let [blockLoss, blockCount] = resume?.pendingLoss ?? [0, 0];
  try {
    for (let step = adam.step; step < options.steps; step++) {
      hooks.shouldStop?.();
      const dropoutSeed = drawStep(draws, data, options, step);
      const lr = learningRate(options, step);
      const loss = tf.tidy(() => {
        const { xb, cb, sb, zb } = draws;
        const x = tf.tensor(xb, [B, ...xShape]);
        const sigma = tf.tensor1d(sb);
        const z = tf.tensor(zb, [B, ...xShape]);
        const cond = cb && condShape ? tf.tensor(cb, [B, ...condShape]) : null;
        const objective = denoisingObjective(network, x, z, sigma, cond, dropoutSeed);
        const { value, grads } = tf.variableGrads(objective, [...variables.values()]);
        const lossValue = value.dataSync()[0];
        if (!Number.isFinite(lossValue)) throw new NonFiniteLossError(step, lossValue);
        // variableGrads keys gradients by the (globally unique) tfjs variable name.
        const named: Record<string, tf.Tensor> = {};
        for (const [param, variable] of variables) named[param] = grads[variable.name];
        adam.apply(named, lr);
        return lossValue;
      });
      blockLoss += loss;
      blockCount += 1;
      const done = step + 1;
      if (done % lossEvery === 0 || done === options.steps) {
        losses.push(blockLoss / blockCount);
        blockLoss = 0;
        blockCount = 0;
      }
      hooks.progress?.(done, options.steps, loss);
      if (hooks.checkpoint && done % hooks.checkpoint.every === 0 && done < options.steps) {
        await hooks.checkpoint.save({
          params: network.params(),
          optimizer: adam.state(),
          losses: [...losses],
          pendingLoss: [blockLoss, blockCount],
        });
      }
    }
    return { params: network.params(), optimizer: adam.state(), losses };
  } finally {
    adam.dispose();
  }
}

/** The weighted denoising loss of one minibatch, as a function for `tf.variableGrads`. */
export function denoisingObjective(
  network: DenoisingNetwork,
  x: tf.Tensor,
  z: tf.Tensor,
  sigma: tf.Tensor1D,
  cond: tf.Tensor | null,
  dropoutSeed: number,
): () => tf.Scalar {
  const B = x.shape[0];
  const dim = sizeOf(x.shape.slice(1));
  const broadcast = [B, ...x.shape.slice(1).map(() => 1)];
  const weight = edmLossWeight(sigma);
  return () =>
    tf.tidy(() => {
      const xt = x.add(z.mul(sigma.reshape(broadcast)));
      const denoised = network.denoise(xt, sigma, cond, { training: true, seed: dropoutSeed });
      return denoised.sub(x).square().reshape([B, dim]).mean(1).mul(weight).mean() as tf.Scalar;
    });
}

/** One step's minibatch: targets, conditioning, noise levels and noise, as flat rows. */
export interface StepDraws {
  xb: Float32Array;
  cb: Float32Array | null;
  sb: Float32Array;
  zb: Float32Array;
}

export function stepDraws(data: TrainingData, batchSize: number): StepDraws {
  const dim = sizeOf(data.x.shape.slice(1));
  const condDim = data.cond ? sizeOf(data.cond.shape.slice(1)) : 0;
  return {
    xb: new Float32Array(batchSize * dim),
    cb: data.cond ? new Float32Array(batchSize * condDim) : null,
    sb: new Float32Array(batchSize),
    zb: new Float32Array(batchSize * dim),
  };
}

/**
 * Fills `draws` with step `step`'s minibatch from its own stream (rows with replacement, t,
 * z) and returns the step's dropout seed. Every data-parallel shard draws the whole batch
 * and keeps its rows, so the numbers do not depend on how the batch is split.
 */
export function drawStep(draws: StepDraws, data: TrainingData, options: TrainOptions, step: number): number {
  const n = data.x.shape[0];
  const B = draws.sb.length;
  const dim = draws.xb.length / B;
  const condDim = draws.cb ? draws.cb.length / B : 0;
  const rng = Rng.derive(options.seed, ...options.streamPath, step);
  for (let b = 0; b < B; b++) {
    const i = rng.int(n);
    draws.xb.set(data.x.data.subarray(i * dim, (i + 1) * dim), b * dim);
    if (draws.cb && data.cond) draws.cb.set(data.cond.data.subarray(i * condDim, (i + 1) * condDim), b * condDim);
    draws.sb[b] = options.schedule.sigma(sampleTime(rng, options.timeDistribution, options.schedule));
  }
  rng.fillNormal(draws.zb);
  return rng.nextUint32();
}

export function learningRate(options: TrainOptions, step: number): number {
  const base = options.optimizer.lr;
  if (options.lrSchedule === 'constant') return base;
  const progress = step / Math.max(1, options.steps);
  return base * (0.1 + 0.9 * 0.5 * (1 + Math.cos(Math.PI * progress)));
}

/** The weights a lap hands on: the EMA where one is kept, else the raw weights. */
export function exportedWeights(state: TrainCheckpoint): ParamMap {
  return state.optimizer.ema ?? state.params;
}
