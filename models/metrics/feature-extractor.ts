/**
 * A small convolutional classifier of MNIST-like images whose penultimate activations stand in
 * for the Inception features of FID (Heusel et al. 2017) on grey 28x28 data, where Inception
 * features say little:
 *
 *     conv3x3(C -> w0) ReLU, conv3x3 stride 2 (w0 -> w1) ReLU, conv3x3 stride 2 (w1 -> w2) ReLU,
 *     flatten, Linear -> featureDim, ReLU  = features
 *     Linear -> classes                    = logits
 *
 * Strided convolutions rather than pooling keep every op one that all backends differentiate.
 * Trained with Adam on softmax cross-entropy over the clean training set; the FID of a
 * sample set is then the Frechet distance between Gaussian fits of its features and those of
 * the clean data (`models/metrics/frechet.ts`). Numbers from different classifier weights are
 * not comparable: fix the seed and steps of the classifier for a study.
 */
import * as tf from '../tf.js';
import type { ImageDataset } from '../datasets/dataset.js';
import type { ParamMap } from '../denoisers/mlp.js';
import { ndarray, sizeOf, type NDArray } from '../ndarray.js';
import { Rng } from '../rng.js';
import { Adam, defaultAdam } from '../training/adam.js';

export interface ClassifierConfig {
  height: number;
  width: number;
  channels: number;
  classes: number;
  /** Channels of the three convolutions. */
  widths: [number, number, number];
  featureDim: number;
}

export const MNIST_CLASSIFIER: ClassifierConfig = {
  height: 28,
  width: 28,
  channels: 1,
  classes: 10,
  widths: [16, 32, 64],
  featureDim: 128,
};

let nextVariableId = 0;

function flatSize(config: ClassifierConfig): number {
  const h = Math.ceil(Math.ceil(config.height / 2) / 2);
  const w = Math.ceil(Math.ceil(config.width / 2) / 2);
  return h * w * config.widths[2];
}

export function classifierParamShapes(config: ClassifierConfig): Array<[string, number[]]> {
  const [w0, w1, w2] = config.widths;
  return [
    ['conv1.weight', [3, 3, config.channels, w0]],
    ['conv1.bias', [w0]],
    ['conv2.weight', [3, 3, w0, w1]],
    ['conv2.bias', [w1]],
    ['conv3.weight', [3, 3, w1, w2]],
    ['conv3.bias', [w2]],
    ['fc.weight', [flatSize(config), config.featureDim]],
    ['fc.bias', [config.featureDim]],
    ['head.weight', [config.featureDim, config.classes]],
    ['head.bias', [config.classes]],
  ];
}

/** He-uniform weights for the ReLU layers (He et al. 2015), zero biases. */
export function initClassifierParams(config: ClassifierConfig, rng: Rng): ParamMap {
  const params: ParamMap = {};
  for (const [name, shape] of classifierParamShapes(config)) {
    const p = ndarray(shape);
    if (name.endsWith('.weight')) {
      const bound = Math.sqrt(6 / sizeOf(shape.slice(0, -1)));
      rng.fillUniform(p.data, -bound, bound);
    }
    params[name] = p;
  }
  return params;
}

export class ClassifierNetwork {
  constructor(
    readonly config: ClassifierConfig,
    readonly weights: Record<string, tf.Tensor>,
  ) {}

  static fromParams(config: ClassifierConfig, params: ParamMap, trainable: boolean): ClassifierNetwork {
    const weights: Record<string, tf.Tensor> = {};
    const id = nextVariableId++;
    for (const [name, shape] of classifierParamShapes(config)) {
      const p = params[name];
      if (!p || p.shape.join(',') !== shape.join(',')) {
        throw new Error(`classifier: parameter '${name}' is [${p?.shape ?? 'missing'}], expected [${shape}]`);
      }
      const t = tf.tensor(p.data, shape);
      weights[name] = trainable ? tf.variable(t, true, `classifier${id}/${name}`) : t;
      if (trainable) t.dispose();
    }
    return new ClassifierNetwork(config, weights);
  }

  /** Penultimate activations [n, featureDim] of images [n, H, W, C] in [-2, 2]. */
  features(x: tf.Tensor4D): tf.Tensor2D {
    return tf.tidy(() => {
      const w = this.weights;
      const conv = (h: tf.Tensor4D, name: string, stride: 1 | 2) =>
        tf.relu(tf.conv2d(h, w[`${name}.weight`] as tf.Tensor4D, stride, 'same').add(w[`${name}.bias`])) as tf.Tensor4D;
      let h = conv(x, 'conv1', 1);
      h = conv(h, 'conv2', 2);
      h = conv(h, 'conv3', 2);
      const flat = h.reshape([x.shape[0], -1]) as tf.Tensor2D;
      return tf.relu(flat.matMul(w['fc.weight'] as tf.Tensor2D).add(w['fc.bias'])) as tf.Tensor2D;
    });
  }

  logits(x: tf.Tensor4D): tf.Tensor2D {
    return tf.tidy(() =>
      this.features(x)
        .matMul(this.weights['head.weight'] as tf.Tensor2D)
        .add(this.weights['head.bias']),
    );
  }

  params(): ParamMap {
    const out: ParamMap = {};
    for (const [name, t] of Object.entries(this.weights)) out[name] = ndarray(t.shape, t.dataSync() as Float32Array);
    return out;
  }

  dispose(): void {
    for (const t of Object.values(this.weights)) t.dispose();
  }
}

export interface ClassifierTrainOptions {
  steps: number;
  batchSize: number;
  lr: number;
  seed: number;
  config?: ClassifierConfig;
  progress?: (step: number, steps: number, loss: number) => void;
}

export interface TrainedClassifier {
  config: ClassifierConfig;
  params: ParamMap;
  /** Mean loss of each block of 50 steps. */
  losses: number[];
}

/** Trains the classifier on labelled images; batch draws of step s come from `derive(seed, 'classifier', s)`. */
export async function trainMnistClassifier(
  data: ImageDataset,
  options: ClassifierTrainOptions,
): Promise<TrainedClassifier> {
  const config = options.config ?? MNIST_CLASSIFIER;
  const { labels, images } = data;
  if (!labels) throw new Error('the classifier needs labelled images');
  const [n, h, w, c] = images.shape;
  if (h !== config.height || w !== config.width || c !== config.channels) {
    throw new RangeError(
      `images [${images.shape}] do not fit the classifier's ${config.height}x${config.width}x${config.channels}`,
    );
  }
  const network = ClassifierNetwork.fromParams(
    config,
    initClassifierParams(config, Rng.derive(options.seed, 'classifier', 'init')),
    true,
  );
  const variables = new Map(Object.entries(network.weights) as Array<[string, tf.Variable]>);
  const adam = new Adam(variables, defaultAdam({ lr: options.lr, clip: 5 }));
  const B = options.batchSize;
  const pixels = h * w * c;
  const xb = new Float32Array(B * pixels);
  const yb = new Int32Array(B);
  const losses: number[] = [];
  let block = 0;
  let count = 0;
  try {
    for (let step = 0; step < options.steps; step++) {
      const rng = Rng.derive(options.seed, 'classifier', step);
      for (let b = 0; b < B; b++) {
        const i = rng.int(n);
        xb.set(images.data.subarray(i * pixels, (i + 1) * pixels), b * pixels);
        yb[b] = labels[i];
      }
      const loss = tf.tidy(() => {
        const x = tf.tensor4d(xb, [B, h, w, c]);
        const onehot = tf.oneHot(tf.tensor1d(yb, 'int32'), config.classes);
        const { value, grads } = tf.variableGrads(
          () => tf.losses.softmaxCrossEntropy(onehot, network.logits(x)) as tf.Scalar,
          [...variables.values()],
        );
        const named: Record<string, tf.Tensor> = {};
        for (const [param, variable] of variables) named[param] = grads[variable.name];
        adam.apply(named, options.lr);
        return value.dataSync()[0];
      });
      if (!Number.isFinite(loss)) throw new Error(`classifier loss became ${loss} at step ${step}`);
      block += loss;
      count++;
      if (count === 50 || step === options.steps - 1) {
        losses.push(block / count);
        block = 0;
        count = 0;
      }
      options.progress?.(step + 1, options.steps, loss);
    }
    return { config, params: network.params(), losses };
  } finally {
    adam.dispose();
    network.dispose();
  }
}

async function batched(
  classifier: { config: ClassifierConfig; params: ParamMap },
  images: NDArray,
  width: (config: ClassifierConfig) => number,
  run: (network: ClassifierNetwork, x: tf.Tensor4D) => tf.Tensor2D,
  batchSize: number,
): Promise<NDArray> {
  const { config } = classifier;
  const [n, h, w, c] = images.shape;
  if (h !== config.height || w !== config.width || c !== config.channels) {
    throw new RangeError(
      `images [${images.shape}] do not fit the classifier's ${config.height}x${config.width}x${config.channels}`,
    );
  }
  const k = width(config);
  const out = ndarray([n, k]);
  const network = ClassifierNetwork.fromParams(config, classifier.params, false);
  try {
    for (let start = 0; start < n; start += batchSize) {
      const m = Math.min(batchSize, n - start);
      const result = tf.tidy(() =>
        run(network, tf.tensor4d(images.data.subarray(start * h * w * c, (start + m) * h * w * c), [m, h, w, c])),
      );
      out.data.set((await result.data()) as Float32Array, start * k);
      result.dispose();
    }
    return out;
  } finally {
    network.dispose();
  }
}

/** Features [n, featureDim] of images [n, H, W, C], for `gaussianStats` / `frechetDistance`. */
export function classifierFeatures(
  classifier: { config: ClassifierConfig; params: ParamMap },
  images: NDArray,
  batchSize = 256,
): Promise<NDArray> {
  return batched(
    classifier,
    images,
    (c) => c.featureDim,
    (net, x) => net.features(x),
    batchSize,
  );
}

/** Fraction of images whose arg-max logit is their label. */
export async function classifierAccuracy(
  classifier: { config: ClassifierConfig; params: ParamMap },
  data: ImageDataset,
  batchSize = 256,
): Promise<number> {
  if (!data.labels) throw new Error('accuracy needs labelled images');
  const logits = await batched(
    classifier,
    data.images,
    (c) => c.classes,
    (net, x) => net.logits(x),
    batchSize,
  );
  const k = classifier.config.classes;
  let correct = 0;
  for (let i = 0; i < data.labels.length; i++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (logits.data[i * k + j] > logits.data[i * k + best]) best = j;
    if (best === data.labels[i]) correct++;
  }
  return correct / data.labels.length;
}
