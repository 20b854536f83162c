/**
 * The conditional MLP denoiser of the manifold experiment (docs/method.md):
 *
 *     h_0 = [c_in x_t, embed(log sigma), cond]
 *     h_l = SiLU(LayerNorm(W_l h_{l-1} + b_l)),  l = 1..L
 *     F   = W_out h_L + b_out
 *     D   = c_skip x_t + c_out F
 *
 * With condDim = 0 it is the unconditional twin used for the final prior and by EM-MMPS.
 * Parameters live in a flat name -> tensor map (`layers.{l}.linear.weight` [in, out], ...),
 * the layout stored in safetensors and read by the ONNX exporter.
 * Reference: Rozet et al. (NeurIPS 2024) and Hosseintabar et al. (2025), manifold experiments.
 */
import * as tf from '../tf.js';
import { embeddingFrequencies } from '../embedding.js';
import { biasLayerNormSilu, fusedLayersEnabled } from '../kernels/layer-norm-silu.js';
import { ndarray, type NDArray } from '../ndarray.js';
import { edmCoefficients } from '../precondition.js';
import type { Rng } from '../rng.js';
import type { Denoiser } from './denoiser.js';

export interface MlpConfig {
  /** Dimension of x. */
  dim: number;
  /** Width of the conditioning row (0: unconditional). */
  condDim: number;
  /** Widths of the hidden layers. */
  hidden: number[];
  /** Width of the noise-level embedding (even). */
  embedDim: number;
}

export type ParamMap = Record<string, NDArray>;

export const LAYER_NORM_EPSILON = 1e-5;

/** tfjs variable names are global: a counter keeps two live networks apart. */
let nextVariableId = 0;

export function mlpInputWidth(config: MlpConfig): number {
  return config.dim + config.embedDim + config.condDim;
}

/** Parameter names and shapes, in a fixed order. */
export function mlpParamShapes(config: MlpConfig): Array<[string, number[]]> {
  const shapes: Array<[string, number[]]> = [];
  let width = mlpInputWidth(config);
  config.hidden.forEach((out, l) => {
    shapes.push([`layers.${l}.linear.weight`, [width, out]]);
    shapes.push([`layers.${l}.linear.bias`, [out]]);
    shapes.push([`layers.${l}.norm.weight`, [out]]);
    shapes.push([`layers.${l}.norm.bias`, [out]]);
    width = out;
  });
  shapes.push(['head.weight', [width, config.dim]]);
  shapes.push(['head.bias', [config.dim]]);
  return shapes;
}

/** PyTorch's default Linear init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)); LayerNorm gain 1, shift 0. */
export function initMlpParams(config: MlpConfig, rng: Rng): ParamMap {
  const params: ParamMap = {};
  for (const [name, shape] of mlpParamShapes(config)) {
    const p = ndarray(shape);
    if (name.endsWith('norm.weight')) p.data.fill(1);
    else if (!name.endsWith('norm.bias')) {
      const fanIn = name.endsWith('.weight') ? shape[0] : inputWidthOf(config, name);
      const bound = 1 / Math.sqrt(fanIn);
      rng.fillUniform(p.data, -bound, bound);
    }
    params[name] = p;
  }
  return params;
}

function inputWidthOf(config: MlpConfig, biasName: string): number {
  const match = /^layers\.(\d+)\./.exec(biasName);
  if (!match) return config.hidden.length ? config.hidden[config.hidden.length - 1] : mlpInputWidth(config);
  const l = Number(match[1]);
  return l === 0 ? mlpInputWidth(config) : config.hidden[l - 1];
}

export function checkParams(config: MlpConfig, params: ParamMap, source: string): void {
  for (const [name, shape] of mlpParamShapes(config)) {
    const p = params[name];
    if (!p) throw new Error(`${source}: missing parameter '${name}'`);
    if (p.shape.join(',') !== shape.join(',')) {
      throw new Error(`${source}: parameter '${name}' has shape [${p.shape}], expected [${shape}]`);
    }
  }
}

/** The network as tfjs ops over a map of (trainable or constant) tensors. */
export class MlpNetwork {
  private readonly freqs: tf.Tensor1D;

  constructor(
    readonly config: MlpConfig,
    readonly weights: Record<string, tf.Tensor>,
  ) {
    this.freqs = tf.tensor1d(embeddingFrequencies(config.embedDim));
  }

  static fromParams(config: MlpConfig, params: ParamMap, trainable: boolean): MlpNetwork {
    checkParams(config, params, 'mlp');
    const weights: Record<string, tf.Tensor> = {};
    for (const [name, shape] of mlpParamShapes(config)) {
      const t = tf.tensor(params[name].data, shape);
      weights[name] = trainable ? tf.variable(t, true, `${name}#${nextVariableId++}`) : t;
      if (trainable) t.dispose();
    }
    return new MlpNetwork(config, weights);
  }

  /** D(x_t, sigma, cond) with EDM preconditioning; sigma is [n]. */
  denoise(xt: tf.Tensor2D, sigma: tf.Tensor1D, cond: tf.Tensor2D | null): tf.Tensor2D {
    return tf.tidy(() => {
      const s = sigma.reshape([-1, 1]) as tf.Tensor2D;
      const { cSkip, cIn, cOut } = edmCoefficients(s);
      const logSigma = s.log();
      const angles = logSigma.mul(this.freqs.reshape([1, -1])) as tf.Tensor2D;
      const parts: tf.Tensor2D[] = [xt.mul(cIn) as tf.Tensor2D, angles.sin(), angles.cos()];
      if (this.config.condDim > 0) {
        if (!cond) throw new Error('conditional denoiser called without conditioning');
        parts.push(cond);
      }
      let h = tf.concat(parts, 1) as tf.Tensor2D;
      this.config.hidden.forEach((_, l) => {
        const w = this.weights;
        if (fusedLayersEnabled()) {
          h = biasLayerNormSilu(
            h.matMul(w[`layers.${l}.linear.weight`] as tf.Tensor2D) as tf.Tensor2D,
            w[`layers.${l}.linear.bias`],
            w[`layers.${l}.norm.weight`],
            w[`layers.${l}.norm.bias`],
            LAYER_NORM_EPSILON,
          );
          return;
        }
        h = h.matMul(w[`layers.${l}.linear.weight`] as tf.Tensor2D).add(w[`layers.${l}.linear.bias`]);
        const { mean, variance } = tf.moments(h, 1, true);
        h = h
          .sub(mean)
          .mul(variance.add(LAYER_NORM_EPSILON).rsqrt())
          .mul(w[`layers.${l}.norm.weight`])
          .add(w[`layers.${l}.norm.bias`]);
        h = h.mul(h.sigmoid());
      });
      const f = h.matMul(this.weights['head.weight'] as tf.Tensor2D).add(this.weights['head.bias']);
      return xt.mul(cSkip).add(f.mul(cOut)) as tf.Tensor2D;
    });
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

/** A `Denoiser` on tfjs, evaluated in batches. */
export class TfjsMlpDenoiser implements Denoiser {
  readonly dim: number;
  readonly condDim: number;

  constructor(private readonly network: MlpNetwork) {
    this.dim = network.config.dim;
    this.condDim = network.config.condDim;
  }

  async denoise(xt: NDArray, sigma: Float32Array, cond: NDArray | null): Promise<NDArray> {
    const n = xt.shape[0];
    const out = tf.tidy(() =>
      this.network.denoise(
        tf.tensor2d(xt.data, [n, this.dim]),
        tf.tensor1d(sigma),
        cond ? tf.tensor2d(cond.data, [n, this.condDim]) : null,
      ),
    );
    const data = (await out.data()) as Float32Array;
    out.dispose();
    return ndarray([n, this.dim], data);
  }

  dispose(): void {
    this.network.dispose();
  }
}
