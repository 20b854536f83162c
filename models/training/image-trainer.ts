/**
 * U-Net training: the shared loop of trainer.ts (`trainNetwork`: the weighted denoising loss,
 * Adam, per-step seed-derived draws, exact resumption) over images x [n, H, W, C], with
 * t ~ Beta(3, 3) for images (docs/method.md) and a per-step dropout seed.
 */
import type { ParamMap } from '../denoisers/mlp.js';
import { UnetNetwork, type UnetConfig } from '../denoisers/unet.js';
import type { NDArray } from '../ndarray.js';
import {
  trainNetwork,
  type TrainCheckpoint,
  type TrainHooks,
  type TrainingData,
  type TrainOptions,
} from './trainer.js';

/**
 * Trains the U-Net of `config` from `start.params` (or resumes `start.resume`) on images
 * x [n, H, W, C] with conditioning [n, H, W, condChannels] (null when unconditional).
 */
export async function trainUnetDenoiser(
  config: UnetConfig,
  data: TrainingData,
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
    return await trainNetwork(
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
