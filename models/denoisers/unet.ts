/**
 * The conditional U-Net denoiser of the image experiments (docs/method.md), NHWC throughout:
 *
 *     e   = MLP(embed(log sigma))                                time embedding
 *     h   = conv3x3([c_in x_t, cond])                            cond: [y, mask] or [y]
 *     down: per level, `blocksPerLevel` x (ResBlock(h, e) [+ Attention]), keep skip, downsample
 *     mid:  ResBlock, Attention, ResBlock
 *     up:   per level, concat skip, `blocksPerLevel` x (ResBlock [+ Attention]), upsample
 *     F   = conv3x3(SiLU(GroupNorm(h)))
 *     D   = c_skip x_t + c_out F
 *
 *     ResBlock(h, e) = skip(h) + conv3x3(Dropout(SiLU(GroupNorm(
 *                          conv3x3(SiLU(GroupNorm(h))) + Linear(SiLU(e))))))
 *     Attention(h)   = h + W_o softmax(Q K^T / sqrt(c)) V,  Q, K, V = W_{q,k,v} GroupNorm(h)
 *
 * Downsampling is a stride-2 3x3 conv (or 2x2 average pooling); upsampling is nearest x2,
 * cropped to the skip's size (odd sizes such as 7 -> 4 -> 7 round trip), then a 3x3 conv.
 * With condChannels = 0 it is the unconditional twin (final prior, EM-MMPS).
 *
 * Parameters live in a flat dotted-name map. Convolution kernels are stored as tfjs lays them
 * out, [kh, kw, in, out]; the attention and embedding projections as [in, out] matrices.
 * References: Ho et al., "Denoising Diffusion Probabilistic Models" (2020), the U-Net of its
 * Appendix B; Karras et al. (2022) for the preconditioning; Rozet et al. (2024) for the
 * CIFAR-10 configuration that DiffEM reuses.
 */
import * as tf from '../tf.js';
import { embeddingFrequencies } from '../embedding.js';
import { groupNormSilu } from '../kernels/group-norm-silu.js';
import { fusedLayersEnabled } from '../kernels/layer-norm-silu.js';
import { ndarray, sizeOf, type NDArray } from '../ndarray.js';
import { edmCoefficients } from '../precondition.js';
import type { Rng } from '../rng.js';
import type { Denoiser } from './denoiser.js';
import type { ParamMap } from './mlp.js';

export interface UnetConfig {
  height: number;
  width: number;
  /** Image channels C. */
  channels: number;
  /** Conditioning channels: C + 1 for masks ([y, mask]), C for blur ([y]), 0 unconditional. */
  condChannels: number;
  /** Feature channels of each resolution level, finest first. */
  levels: number[];
  blocksPerLevel: number;
  /** Indices into `levels` of the resolutions with self-attention. */
  attentionLevels: number[];
  /** Width of the sinusoidal noise embedding and of the embedding MLP (even). */
  embedDim: number;
  /** Dropout rate inside the residual blocks, active only when training. */
  dropout: number;
  /** GroupNorm groups; must divide every level's channel count. */
  groups: number;
  /** How the resolution halves; default 'conv' (stride 2). */
  downsample?: 'conv' | 'avgpool';
}

export const GROUP_NORM_EPSILON = 1e-5;

/** tfjs variable names are global: a counter keeps two live networks apart. */
let nextVariableId = 0;

/**
 * The CIFAR-10 network of Rozet et al. (2024), which DiffEM inherits: levels (128, 256, 384)
 * with attention at the coarsest. Five blocks per level, a 256-wide embedding and dropout 0.1
 * follow that code as we read it; GroupNorm with 16 groups is this module's normalisation.
 */
export function paperCifarUnetConfig(condChannels: number): UnetConfig {
  return {
    height: 32,
    width: 32,
    channels: 3,
    condChannels,
    levels: [128, 256, 384],
    blocksPerLevel: 5,
    attentionLevels: [2],
    embedDim: 256,
    dropout: 0.1,
    groups: 16,
  };
}

export function checkUnetConfig(config: UnetConfig): void {
  const fail = (what: string): never => {
    throw new RangeError(`unet config: ${what}`);
  };
  const positiveInt = (v: number) => Number.isInteger(v) && v > 0;
  if (!positiveInt(config.height) || !positiveInt(config.width)) fail(`size ${config.height}x${config.width}`);
  if (!positiveInt(config.channels)) fail(`channels ${config.channels}`);
  if (!(Number.isInteger(config.condChannels) && config.condChannels >= 0)) fail(`condChannels ${config.condChannels}`);
  if (config.levels.length === 0 || !config.levels.every(positiveInt)) fail(`levels [${config.levels}]`);
  if (!positiveInt(config.blocksPerLevel)) fail(`blocksPerLevel ${config.blocksPerLevel}`);
  for (const l of config.attentionLevels) {
    if (!(Number.isInteger(l) && l >= 0 && l < config.levels.length)) fail(`attention level ${l} is not a level`);
  }
  if (!(config.dropout >= 0 && config.dropout < 1)) fail(`dropout ${config.dropout}`);
  if (!positiveInt(config.groups)) fail(`groups ${config.groups}`);
  for (const c of config.levels)
    if (c % config.groups !== 0) fail(`${config.groups} groups do not divide ${c} channels`);
  // embeddingFrequencies validates embedDim.
  embeddingFrequencies(config.embedDim);
  let h = config.height;
  let w = config.width;
  for (let l = 1; l < config.levels.length; l++) {
    if (h < 2 || w < 2)
      fail(`a ${config.height}x${config.width} image cannot be halved ${config.levels.length - 1} times`);
    h = Math.ceil(h / 2);
    w = Math.ceil(w / 2);
  }
}

/** Spatial size of each level: 'same'-padded stride-2 steps round up. */
export function unetLevelSizes(config: UnetConfig): Array<[number, number]> {
  const sizes: Array<[number, number]> = [[config.height, config.width]];
  for (let l = 1; l < config.levels.length; l++) {
    const [h, w] = sizes[l - 1];
    sizes.push([Math.ceil(h / 2), Math.ceil(w / 2)]);
  }
  return sizes;
}

function resBlockShapes(prefix: string, cin: number, cout: number, embedDim: number): Array<[string, number[]]> {
  const shapes: Array<[string, number[]]> = [
    [`${prefix}.norm1.weight`, [cin]],
    [`${prefix}.norm1.bias`, [cin]],
    [`${prefix}.conv1.weight`, [3, 3, cin, cout]],
    [`${prefix}.conv1.bias`, [cout]],
    [`${prefix}.emb.weight`, [embedDim, cout]],
    [`${prefix}.emb.bias`, [cout]],
    [`${prefix}.norm2.weight`, [cout]],
    [`${prefix}.norm2.bias`, [cout]],
    [`${prefix}.conv2.weight`, [3, 3, cout, cout]],
    [`${prefix}.conv2.bias`, [cout]],
  ];
  if (cin !== cout) shapes.push([`${prefix}.skip.weight`, [1, 1, cin, cout]], [`${prefix}.skip.bias`, [cout]]);
  return shapes;
}

function attentionShapes(prefix: string, c: number): Array<[string, number[]]> {
  const shapes: Array<[string, number[]]> = [
    [`${prefix}.norm.weight`, [c]],
    [`${prefix}.norm.bias`, [c]],
  ];
  for (const p of ['q', 'k', 'v', 'proj']) shapes.push([`${prefix}.${p}.weight`, [c, c]], [`${prefix}.${p}.bias`, [c]]);
  return shapes;
}

/** Parameter names and shapes, in the order the forward pass uses them. */
export function unetParamShapes(config: UnetConfig): Array<[string, number[]]> {
  checkUnetConfig(config);
  const { levels, blocksPerLevel, embedDim } = config;
  const L = levels.length;
  const attention = new Set(config.attentionLevels);
  const shapes: Array<[string, number[]]> = [
    ['embedding.linear1.weight', [embedDim, embedDim]],
    ['embedding.linear1.bias', [embedDim]],
    ['embedding.linear2.weight', [embedDim, embedDim]],
    ['embedding.linear2.bias', [embedDim]],
    ['input.weight', [3, 3, config.channels + config.condChannels, levels[0]]],
    ['input.bias', [levels[0]]],
  ];
  let ch = levels[0];
  for (let l = 0; l < L; l++) {
    for (let b = 0; b < blocksPerLevel; b++) {
      shapes.push(...resBlockShapes(`down.${l}.blocks.${b}`, ch, levels[l], embedDim));
      ch = levels[l];
      if (attention.has(l)) shapes.push(...attentionShapes(`down.${l}.attn.${b}`, ch));
    }
    if (l < L - 1 && (config.downsample ?? 'conv') === 'conv') {
      shapes.push([`down.${l}.downsample.weight`, [3, 3, ch, ch]], [`down.${l}.downsample.bias`, [ch]]);
    }
  }
  shapes.push(...resBlockShapes('mid.block1', ch, ch, embedDim));
  shapes.push(...attentionShapes('mid.attn', ch));
  shapes.push(...resBlockShapes('mid.block2', ch, ch, embedDim));
  for (let l = L - 1; l >= 0; l--) {
    ch += levels[l];
    for (let b = 0; b < blocksPerLevel; b++) {
      shapes.push(...resBlockShapes(`up.${l}.blocks.${b}`, ch, levels[l], embedDim));
      ch = levels[l];
      if (attention.has(l)) shapes.push(...attentionShapes(`up.${l}.attn.${b}`, ch));
    }
    if (l > 0) {
      shapes.push([`up.${l}.upsample.weight`, [3, 3, ch, levels[l - 1]]], [`up.${l}.upsample.bias`, [levels[l - 1]]]);
      ch = levels[l - 1];
    }
  }
  shapes.push(
    ['output.norm.weight', [ch]],
    ['output.norm.bias', [ch]],
    ['output.conv.weight', [3, 3, ch, config.channels]],
    ['output.conv.bias', [config.channels]],
  );
  return shapes;
}

export function unetParamCount(config: UnetConfig): number {
  return unetParamShapes(config).reduce((acc, [, shape]) => acc + sizeOf(shape), 0);
}

/**
 * PyTorch's default init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases, with
 * fan_in = kh kw c_in for convolutions; GroupNorm gain 1, shift 0.
 */
export function initUnetParams(config: UnetConfig, rng: Rng): ParamMap {
  const shapes = unetParamShapes(config);
  const fanIn = new Map<string, number>();
  for (const [name, shape] of shapes) {
    if (name.endsWith('.weight') && shape.length > 1)
      fanIn.set(name.slice(0, -'.weight'.length), sizeOf(shape.slice(0, -1)));
  }
  const params: ParamMap = {};
  for (const [name, shape] of shapes) {
    const p = ndarray(shape);
    const owner = name.slice(0, name.lastIndexOf('.'));
    const fan = fanIn.get(owner);
    if (fan === undefined) {
      // Only normalisation layers have no matrix: gain 1, shift 0.
      if (name.endsWith('.weight')) p.data.fill(1);
    } else {
      const bound = 1 / Math.sqrt(fan);
      rng.fillUniform(p.data, -bound, bound);
    }
    params[name] = p;
  }
  return params;
}

export function checkUnetParams(config: UnetConfig, params: ParamMap, source: string): void {
  for (const [name, shape] of unetParamShapes(config)) {
    const p = params[name];
    if (!p) throw new Error(`${source}: missing parameter '${name}'`);
    if (p.shape.join(',') !== shape.join(',')) {
      throw new Error(`${source}: parameter '${name}' has shape [${p.shape}], expected [${shape}]`);
    }
  }
}

export interface UnetForwardOptions {
  /** Enables dropout; then `seed` is required so the masks are reproducible. */
  training?: boolean;
  /** Seed of this forward pass's dropout masks (one per training step). */
  seed?: number;
}

/** The network as tfjs ops over a map of (trainable or constant) tensors. */
export class UnetNetwork {
  private readonly freqs: tf.Tensor2D;
  private readonly attention: Set<number>;
  private readonly sizes: Array<[number, number]>;

  constructor(
    readonly config: UnetConfig,
    readonly weights: Record<string, tf.Tensor>,
  ) {
    checkUnetConfig(config);
    this.freqs = tf.tensor2d(embeddingFrequencies(config.embedDim), [1, config.embedDim / 2]);
    this.attention = new Set(config.attentionLevels);
    this.sizes = unetLevelSizes(config);
  }

  static fromParams(config: UnetConfig, params: ParamMap, trainable: boolean): UnetNetwork {
    checkUnetParams(config, params, 'unet');
    const weights: Record<string, tf.Tensor> = {};
    const id = nextVariableId++;
    for (const [name, shape] of unetParamShapes(config)) {
      const t = tf.tensor(params[name].data, shape);
      weights[name] = trainable ? tf.variable(t, true, `unet${id}/${name}`) : t;
      if (trainable) t.dispose();
    }
    return new UnetNetwork(config, weights);
  }

  /** D(x_t, sigma, cond) with EDM preconditioning; x_t [n, H, W, C], sigma [n], cond [n, H, W, condChannels]. */
  denoise(
    xt: tf.Tensor4D,
    sigma: tf.Tensor1D,
    cond: tf.Tensor4D | null,
    options: UnetForwardOptions = {},
  ): tf.Tensor4D {
    const { config } = this;
    const training = options.training === true && config.dropout > 0;
    if (training && options.seed === undefined) throw new Error('unet: training with dropout needs a seed');
    let dropoutCalls = 0;
    const dropout = (x: tf.Tensor4D): tf.Tensor4D => {
      if (!training) return x;
      // One seed per dropout site, derived from the step's seed: masks differ across sites
      // yet replay exactly when the step is re-run.
      return tf.dropout(x, config.dropout, undefined, (options.seed ?? 0) + 7919 * dropoutCalls++) as tf.Tensor4D;
    };
    return tf.tidy(() => {
      const n = xt.shape[0];
      const s = sigma.reshape([n, 1, 1, 1]);
      const { cSkip, cIn, cOut } = edmCoefficients(s);

      const angles = sigma.reshape([n, 1]).log().mul(this.freqs);
      let e = tf.concat([angles.sin(), angles.cos()], 1) as tf.Tensor2D;
      e = this.linear(e, 'embedding.linear1');
      e = this.linear(silu(e), 'embedding.linear2');
      const eAct = silu(e);

      const parts: tf.Tensor4D[] = [xt.mul(cIn) as tf.Tensor4D];
      if (config.condChannels > 0) {
        if (!cond) throw new Error('conditional denoiser called without conditioning');
        parts.push(cond);
      }
      let h = this.conv(tf.concat(parts, 3) as tf.Tensor4D, 'input', 1);

      const L = config.levels.length;
      const skips: tf.Tensor4D[] = [];
      for (let l = 0; l < L; l++) {
        for (let b = 0; b < config.blocksPerLevel; b++) {
          h = this.resBlock(h, eAct, `down.${l}.blocks.${b}`, dropout);
          if (this.attention.has(l)) h = this.selfAttention(h, `down.${l}.attn.${b}`);
        }
        skips.push(h);
        if (l < L - 1) {
          h = (config.downsample ?? 'conv') === 'conv' ? this.conv(h, `down.${l}.downsample`, 2) : averagePoolSame(h);
        }
      }
      h = this.resBlock(h, eAct, 'mid.block1', dropout);
      h = this.selfAttention(h, 'mid.attn');
      h = this.resBlock(h, eAct, 'mid.block2', dropout);
      for (let l = L - 1; l >= 0; l--) {
        h = tf.concat([h, skips[l]], 3) as tf.Tensor4D;
        for (let b = 0; b < config.blocksPerLevel; b++) {
          h = this.resBlock(h, eAct, `up.${l}.blocks.${b}`, dropout);
          if (this.attention.has(l)) h = this.selfAttention(h, `up.${l}.attn.${b}`);
        }
        if (l > 0) {
          const [th, tw] = this.sizes[l - 1];
          let u = tf.image.resizeNearestNeighbor(h, [2 * h.shape[1], 2 * h.shape[2]]);
          if (u.shape[1] !== th || u.shape[2] !== tw) u = u.slice([0, 0, 0, 0], [n, th, tw, u.shape[3]]);
          h = this.conv(u, `up.${l}.upsample`, 1);
        }
      }
      h = this.normSilu(h, 'output.norm');
      const f = this.conv(h, 'output.conv', 1);
      return xt.mul(cSkip).add(f.mul(cOut)) as tf.Tensor4D;
    });
  }

  private linear(x: tf.Tensor2D, name: string): tf.Tensor2D {
    return x.matMul(this.weights[`${name}.weight`] as tf.Tensor2D).add(this.weights[`${name}.bias`]);
  }

  private conv(x: tf.Tensor4D, name: string, stride: 1 | 2): tf.Tensor4D {
    return tf
      .conv2d(x, this.weights[`${name}.weight`] as tf.Tensor4D, stride, 'same')
      .add(this.weights[`${name}.bias`]);
  }

  /** GroupNorm (Wu & He 2018): statistics over space and the channels of each group. */
  private groupNorm(x: tf.Tensor4D, name: string): tf.Tensor4D {
    const [n, h, w, c] = x.shape;
    const g = this.config.groups;
    const xg = x.reshape([n, h * w, g, c / g]);
    const { mean, variance } = tf.moments(xg, [1, 3], true);
    const normed = xg.sub(mean).mul(variance.add(GROUP_NORM_EPSILON).rsqrt()).reshape([n, h, w, c]);
    return normed.mul(this.weights[`${name}.weight`]).add(this.weights[`${name}.bias`]) as tf.Tensor4D;
  }

  /** SiLU(GroupNorm(x)), one fused op on the wasm backend with kernels 'fast' (group-norm-silu.ts). */
  private normSilu(x: tf.Tensor4D, name: string): tf.Tensor4D {
    if (!fusedLayersEnabled()) return silu(this.groupNorm(x, name));
    const gamma = this.weights[`${name}.weight`];
    const beta = this.weights[`${name}.bias`];
    return groupNormSilu(x, gamma, beta, this.config.groups, GROUP_NORM_EPSILON);
  }

  private resBlock(
    x: tf.Tensor4D,
    e: tf.Tensor2D,
    name: string,
    dropout: (x: tf.Tensor4D) => tf.Tensor4D,
  ): tf.Tensor4D {
    const n = x.shape[0];
    let h = this.conv(this.normSilu(x, `${name}.norm1`), `${name}.conv1`, 1);
    const cout = h.shape[3];
    h = h.add(this.linear(e, `${name}.emb`).reshape([n, 1, 1, cout]));
    h = this.conv(dropout(this.normSilu(h, `${name}.norm2`)), `${name}.conv2`, 1);
    const skip = this.weights[`${name}.skip.weight`] ? this.conv(x, `${name}.skip`, 1) : x;
    return skip.add(h);
  }

  /**
   * Single-head self-attention over the H W positions (Vaswani et al. 2017). The projections
   * run as 1x1 convolutions of their [in, out] matrices: same numbers, but the backends'
   * convolution path is much faster than their batched matmul at these shapes.
   */
  private selfAttention(x: tf.Tensor4D, name: string): tf.Tensor4D {
    const [n, h, w, c] = x.shape;
    const normed = this.groupNorm(x, `${name}.norm`);
    const project = (input: tf.Tensor4D, p: string) =>
      tf
        .conv2d(input, this.weights[`${name}.${p}.weight`].reshape([1, 1, c, c]) as tf.Tensor4D, 1, 'valid')
        .add(this.weights[`${name}.${p}.bias`]) as tf.Tensor4D;
    const q = project(normed, 'q').reshape([n, h * w, c]) as tf.Tensor3D;
    const k = project(normed, 'k').reshape([n, h * w, c]) as tf.Tensor3D;
    const v = project(normed, 'v').reshape([n, h * w, c]) as tf.Tensor3D;
    const weights = tf
      .matMul(q, k, false, true)
      .mul(1 / Math.sqrt(c))
      .softmax() as tf.Tensor3D;
    const attended = tf.matMul(weights, v).reshape([n, h, w, c]) as tf.Tensor4D;
    return x.add(project(attended, 'proj'));
  }

  params(): ParamMap {
    const out: ParamMap = {};
    for (const [name, t] of Object.entries(this.weights)) out[name] = ndarray(t.shape, t.dataSync() as Float32Array);
    return out;
  }

  dispose(): void {
    this.freqs.dispose();
    for (const t of Object.values(this.weights)) t.dispose();
  }
}

function silu<T extends tf.Tensor>(x: T): T {
  return x.mul(x.sigmoid());
}

/**
 * A `Denoiser` on tfjs. Rows may come flat ([n, H W C], as the samplers hold them) or as
 * images ([n, H, W, C]); the output keeps the shape of x_t. Large batches are cut into
 * chunks of `batchSize` to bound the activations' memory.
 */
export class TfjsUnetDenoiser implements Denoiser {
  readonly dim: number;
  readonly condDim: number;

  constructor(
    private readonly network: UnetNetwork,
    private readonly batchSize = 64,
  ) {
    const { height, width, channels, condChannels } = network.config;
    this.dim = height * width * channels;
    this.condDim = height * width * condChannels;
  }

  async denoise(xt: NDArray, sigma: Float32Array, cond: NDArray | null): Promise<NDArray> {
    const { height, width, channels, condChannels } = this.network.config;
    const n = xt.shape[0];
    if (xt.data.length !== n * this.dim)
      throw new RangeError(`x_t [${xt.shape}] is not ${n} images of ${height}x${width}x${channels}`);
    if (sigma.length !== n) throw new RangeError(`sigma has ${sigma.length} entries for ${n} images`);
    if (condChannels > 0 && (!cond || cond.data.length !== n * this.condDim)) {
      throw new RangeError(
        `conditioning must hold ${n} x ${height}x${width}x${condChannels}, got [${cond?.shape ?? 'none'}]`,
      );
    }
    const out = new Float32Array(n * this.dim);
    for (let start = 0; start < n; start += this.batchSize) {
      const m = Math.min(this.batchSize, n - start);
      const result = tf.tidy(() =>
        this.network.denoise(
          tf.tensor4d(xt.data.subarray(start * this.dim, (start + m) * this.dim), [m, height, width, channels]),
          tf.tensor1d(sigma.subarray(start, start + m)),
          condChannels > 0 && cond
            ? tf.tensor4d(cond.data.subarray(start * this.condDim, (start + m) * this.condDim), [
                m,
                height,
                width,
                condChannels,
              ])
            : null,
        ),
      );
      out.set((await result.data()) as Float32Array, start * this.dim);
      result.dispose();
    }
    return ndarray(xt.shape, out);
  }

  dispose(): void {
    this.network.dispose();
  }
}

/**
 * 2 x 2 average pooling with stride 2 and 'same' padding, each window averaging only its pixels
 * inside the image (tf.avgPool's forward rule, ONNX's AveragePool with count_include_pad = 0).
 * Built from zero padding, 'valid' pooling and a per-window count correction because
 * tf.avgPool's gradient divides every window by 4, the padded ones at an odd side included
 * (tfjs-backend-cpu AvgPoolGrad: avgMultiplier = 1 / (filterHeight * filterWidth)), which is not
 * the derivative of its forward pass: on a 7 x 5 image it was off by 28 % (tests/onnx-vjp.test.ts).
 */
function averagePoolSame(x: tf.Tensor4D): tf.Tensor4D {
  const [, height, width] = x.shape;
  const [padRows, padCols] = [height % 2, width % 2];
  if (padRows === 0 && padCols === 0) return tf.avgPool(x, 2, 2, 'valid');
  const pooled = tf.avgPool(
    tf.pad(x, [
      [0, 0],
      [0, padRows],
      [0, padCols],
      [0, 0],
    ]),
    2,
    2,
    'valid',
  );
  const [rows, cols] = [pooled.shape[1], pooled.shape[2]];
  const scale = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const inside = (padRows && r === rows - 1 ? 1 : 2) * (padCols && c === cols - 1 ? 1 : 2);
      scale[r * cols + c] = 4 / inside;
    }
  }
  return pooled.mul(tf.tensor4d(scale, [1, rows, cols, 1]));
}
