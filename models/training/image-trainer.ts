/**
 * Denoiser training for any network shape, the U-Net's in particular: the weighted denoising
 * loss of method.md,
 *
 *     L = E_{t, x, z} [ (1/sigma(t)^2 + 1) * mean_j (D(x + sigma z, sigma, c) - x)_j^2 ],
 *
 * minimised by Adam over minibatches drawn with replacement, with t ~ Beta(3, 3) for images.
 * The contract is `trainDenoiser`'s (trainer.ts): every draw of step s (batch indices, t, z
 * and the dropout seed) comes from the stream `derive(seed, ...streamPath, s)`, so a run
 * resumed from the checkpoint of step s continues with exactly the numbers an uninterrupted
 * run would have drawn, and the same `TrainOptions`, `TrainCheckpoint` and `TrainHooks`.
 *
 * `trainDenoisingNetwork` is the loop over the `DenoisingNetwork` interface, which both
 * `UnetNetwork` and `MlpNetwork` satisfy; rows of x and of the conditioning may have any
 * trailing shape.
 */
import * as tf from '../tf.js';
import type { ParamMap } from '../denoisers/mlp.js';
import { UnetNetwork, type UnetConfig } from '../denoisers/unet.js';
import { sizeOf, type NDArray } from '../ndarray.js';
import { Rng } from '../rng.js';
import { Adam } from './adam.js';
import { sampleTime } from './time-distribution.js';
import { NonFiniteLossError, type TrainCheckpoint, type TrainHooks, type TrainOptions } from './trainer.js';

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

export interface ImageTrainingData {
  /** Targets x [n, ...] (images: [n, H, W, C]). */
  x: NDArray;
  /** Conditioning [n, ...] (images: [n, H, W, condChannels]), or null for an unconditional model. */
  cond: NDArray | null;
}

/** Trains `network` in place; the caller keeps ownership of it (and disposes it). */
export async function trainDenoisingNetwork(
  network: DenoisingNetwork,
  data: ImageTrainingData,
  resume: TrainCheckpoint | undefined,
  options: TrainOptions,
  hooks: TrainHooks = {},
): Promise<TrainCheckpoint> {
  const n = data.x.shape[0];
  const xShape = data.x.shape.slice(1);
  const dim = sizeOf(xShape);
  const condShape = data.cond ? data.cond.shape.slice(1) : null;
  const condDim = condShape ? sizeOf(condShape) : 0;
  if (data.cond && data.cond.shape[0] !== n)
    throw new RangeError(`${data.cond.shape[0]} conditioning rows for ${n} targets`);
  if (n === 0) throw new RangeError('no training data');

  const variables = new Map(Object.entries(network.weights) as Array<[string, tf.Variable]>);
  const adam = new Adam(variables, options.optimizer, resume?.optimizer);
  const losses = [...(resume?.losses ?? [])];
  const lossEvery = hooks.lossEvery ?? 50;
  const B = options.batchSize;
  const xb = new Float32Array(B * dim);
  const cb = condShape ? new Float32Array(B * condDim) : null;
  const sb = new Float32Array(B);
  const zb = new Float32Array(B * dim);
  let blockLoss = 0;
  let blockCount = 0;
  try {
    for (let step = adam.step; step < options.steps; step++) {
      hooks.shouldStop?.();
      const rng = Rng.derive(options.seed, ...options.streamPath, step);
      for (let b = 0; b < B; b++) {
        const i = rng.int(n);
        xb.set(data.x.data.subarray(i * dim, (i + 1) * dim), b * dim);
        if (cb && data.cond) cb.set(data.cond.data.subarray(i * condDim, (i + 1) * condDim), b * condDim);
        sb[b] = options.schedule.sigma(sampleTime(rng, options.timeDistribution));
      }
      rng.fillNormal(zb);
      const dropoutSeed = rng.nextUint32();
      const lr = learningRate(options, step);
      const loss = tf.tidy(() => {
        const x = tf.tensor(xb, [B, ...xShape]);
        const sigma = tf.tensor1d(sb);
        const z = tf.tensor(zb, [B, ...xShape]);
        const cond = cb && condShape ? tf.tensor(cb, [B, ...condShape]) : null;
        const broadcast = [B, ...xShape.map(() => 1)];
        const weight = sigma.square().reciprocal().add(1);
        const objective = () =>
          tf.tidy(() => {
            const xt = x.add(z.mul(sigma.reshape(broadcast)));
            const denoised = network.denoise(xt, sigma, cond, { training: true, seed: dropoutSeed });
            return denoised.sub(x).square().reshape([B, dim]).mean(1).mul(weight).mean() as tf.Scalar;
          });
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
        await hooks.checkpoint.save({ params: network.params(), optimizer: adam.state(), losses: [...losses] });
      }
    }
    return { params: network.params(), optimizer: adam.state(), losses };
  } finally {
    adam.dispose();
  }
}

/** trainer.ts's schedule: 'cosine' decays to 10 % of the base rate over `steps`. */
function learningRate(options: TrainOptions, step: number): number {
  const base = options.optimizer.lr;
  if (options.lrSchedule === 'constant') return base;
  const progress = step / Math.max(1, options.steps);
  return base * (0.1 + 0.9 * 0.5 * (1 + Math.cos(Math.PI * progress)));
}

/**
 * Trains the U-Net of `config` from `start.params` (or resumes `start.resume`) on images
 * x [n, H, W, C] with conditioning [n, H, W, condChannels] (null when unconditional).
 */
export async function trainUnetDenoiser(
  config: UnetConfig,
  data: ImageTrainingData,
  start: { params: ParamMap; resume?: TrainCheckpoint },
  options: TrainOptions,
  hooks: TrainHooks = {},
): Promise<TrainCheckpoint> {
  const { height, width, channels, condChannels } = config;
  const n = data.x.shape[0];
  const expect = (what: string, a: NDArray | null, c: number) => {
    const want = [n, height, width, c].join(',');
    if (!a || a.shape.join(',') !== want)
      throw new RangeError(`${what} must be [${want}], got [${a?.shape ?? 'none'}]`);
  };
  expect('training images', data.x, channels);
  if (condChannels > 0) expect('conditioning', data.cond, condChannels);
  const network = UnetNetwork.fromParams(config, start.resume?.params ?? start.params, true);
  try {
    return await trainDenoisingNetwork(
      network,
      { x: data.x, cond: condChannels > 0 ? data.cond : null },
      start.resume,
      options,
      hooks,
    );
  } finally {
    network.dispose();
  }
}
