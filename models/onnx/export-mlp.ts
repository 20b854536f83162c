/**
 * Exports the MLP denoiser of `models/denoisers/mlp.ts` to an ONNX graph computing the same
 * function as `MlpNetwork.denoise`, preconditioning and noise embedding included, so that the
 * runtime feeds raw (x_t, sigma, cond) rows:
 *
 *     s = sigma[:, None];  c_skip = 1/(s^2+1),  c_in = 1/sqrt(s^2+1),  c_out = s c_in
 *     a = log(s) freqs;    h_0 = [c_in x_t, sin a, cos a, cond]
 *     h_l = SiLU(LayerNorm(Gemm(h_{l-1}, W_l, b_l)))
 *     denoised = c_skip x_t + c_out Gemm(h_L, W_out, b_out)
 *
 * Linear layers are single Gemm nodes (weights stored [in, out], so transB = 0): ONNX Runtime's
 * CPU Gemm runs on the same MLAS sgemm as MatMul with the bias folded in, and would fuse
 * MatMul+Add into it anyway. LayerNormalization is the opset-17 operator (ORT has a dedicated
 * CPU kernel); SiLU is Sigmoid then Mul, which ORT's 'all' level fuses into one QuickGelu kernel.
 * Reference: ONNX operator specs (Gemm, LayerNormalization, Unsqueeze, Concat; opset 17).
 */
import { checkParams, LAYER_NORM_EPSILON, type MlpConfig, type ParamMap } from '../denoisers/mlp.js';
import { embeddingFrequencies } from '../embedding.js';
import { edmCoefficientNodes } from '../precondition.js';
import { attr, GraphBuilder } from './graph.js';

/** The interface every exported denoiser graph follows, and the runtime relies on. */
export const DENOISER_ONNX_IO = {
  xt: 'x_t',
  sigma: 'sigma',
  cond: 'cond',
  output: 'denoised',
  batch: 'N',
} as const;

export function exportMlpToOnnx(config: MlpConfig, params: ParamMap): Uint8Array {
  checkParams(config, params, 'onnx export');
  const { xt, sigma, cond, output, batch } = DENOISER_ONNX_IO;
  const g = new GraphBuilder('diffem_mlp_denoiser');
  const p = (name: string): string => g.initializer(name, params[name].data, params[name].shape);

  g.input(xt, [batch, config.dim]);
  g.input(sigma, [batch]);
  if (config.condDim > 0) g.input(cond, [batch, config.condDim]);

  const one = g.initializer('const.one', new Float32Array([1]), []);
  const freqs = embeddingFrequencies(config.embedDim);
  const freqRow = g.initializer('embedding.freqs', freqs, [1, freqs.length]);
  const axis1 = g.int64Initializer('const.axes_1', [1]);

  // Preconditioning: every coefficient is a [N, 1] column broadcast over the row.
  const s = g.node('Unsqueeze', [sigma, axis1], {}, 'sigma_col');
  const { cSkip, cIn, cOut } = edmCoefficientNodes(g, s, one);

  const angles = g.node('Mul', [g.node('Log', [s], {}, 'log_sigma'), freqRow], {}, 'angles');
  const parts = [g.node('Mul', [xt, cIn], {}, 'x_in'), g.node('Sin', [angles]), g.node('Cos', [angles])];
  if (config.condDim > 0) parts.push(cond);
  let h = g.node('Concat', parts, { axis: attr.int(1) }, 'h_0');

  config.hidden.forEach((_, l) => {
    const prefix = `layers.${l}`;
    const lin = g.node('Gemm', [h, p(`${prefix}.linear.weight`), p(`${prefix}.linear.bias`)], {}, `${prefix}.linear`);
    const norm = g.node(
      'LayerNormalization',
      [lin, p(`${prefix}.norm.weight`), p(`${prefix}.norm.bias`)],
      { axis: attr.int(-1), epsilon: attr.float(LAYER_NORM_EPSILON) },
      `${prefix}.norm`,
    );
    h = g.node('Mul', [norm, g.node('Sigmoid', [norm])], {}, `${prefix}.silu`);
  });

  const f = g.node('Gemm', [h, p('head.weight'), p('head.bias')], {}, 'head');
  const skip = g.node('Mul', [xt, cSkip], {}, 'skip');
  g.node('Add', [skip, g.node('Mul', [f, cOut], {}, 'scaled_head')], {}, output);
  g.output(output, [batch, config.dim]);

  return g.toBytes(
    `diffem MLP denoiser: dim=${config.dim} condDim=${config.condDim} ` +
      `hidden=[${config.hidden.join(',')}] embedDim=${config.embedDim}`,
  );
}
