/**
 * Exports the U-Net denoiser of `models/denoisers/unet.ts` to an ONNX graph computing the same
 * function as `UnetNetwork.denoise` at evaluation (no dropout), with the denoiser interface of
 * `DENOISER_ONNX_IO` on flat rows, so `OnnxDenoiser` runs it with dim = H W C and
 * condDim = H W condChannels:
 *
 *     x_t [N, H W C], sigma [N], cond [N, H W condChannels]  ->  denoised [N, H W C]
 *
 * Inside, images are NCHW as ONNX's Conv wants: rows are reshaped to NHWC and transposed once
 * at the input and once at the output. Kernels stored [kh, kw, in, out] become OIHW
 * initializers. tfjs 'same' padding is made explicit per level (a stride-2 step over an even
 * side pads only after: 28 -> 14 pads (0, 1)). GroupNorm, absent before opset 18, is
 * InstanceNormalization over [N, G, C/G H W], then the per-channel affine map. Upsampling is
 * Resize 'nearest' with asymmetric coordinates and floor rounding (src = floor(dst / 2)), the
 * rule of tfjs's resizeNearestNeighbor without corner alignment or half-pixel centres.
 * Reference: ONNX operator specs, opset 17 (Conv, InstanceNormalization, Resize, AveragePool).
 */
import { checkUnetParams, GROUP_NORM_EPSILON, unetLevelSizes, type UnetConfig } from '../denoisers/unet.js';
import type { ParamMap } from '../denoisers/mlp.js';
import { embeddingFrequencies } from '../embedding.js';
import { edmCoefficientNodes } from '../precondition.js';
import { attr, GraphBuilder } from './graph.js';
import { appendVjp } from './vjp.js';
import { DENOISER_ONNX_IO } from './export-mlp.js';

/** [kh, kw, in, out] (tfjs) to [out, in, kh, kw] (ONNX). */
export function hwioToOihw(data: Float32Array, shape: readonly number[]): { data: Float32Array; dims: number[] } {
  const [kh, kw, cin, cout] = shape;
  const out = new Float32Array(data.length);
  for (let y = 0; y < kh; y++) {
    for (let x = 0; x < kw; x++) {
      for (let i = 0; i < cin; i++) {
        for (let o = 0; o < cout; o++)
          out[((o * cin + i) * kh + y) * kw + x] = data[((y * kw + x) * cin + i) * cout + o];
      }
    }
  }
  return { data: out, dims: [cout, cin, kh, kw] };
}

/** tfjs 'same' padding of one side for kernel k and stride s: [before, after]. */
export function samePadding(size: number, kernel: number, stride: number): [number, number] {
  const out = Math.ceil(size / stride);
  const total = Math.max((out - 1) * stride + kernel - size, 0);
  const before = Math.floor(total / 2);
  return [before, total - before];
}

export function exportUnetToOnnx(config: UnetConfig, params: ParamMap): Uint8Array {
  const g = unetGraph(config, params);
  g.output(DENOISER_ONNX_IO.output, [DENOISER_ONNX_IO.batch, config.height * config.width * config.channels]);
  return g.toBytes(describeUnet(config));
}

/** The names of the VJP graph's extra input and its output (`exportUnetVjpToOnnx`). */
export const VJP_ONNX_IO = { cotangent: 'cotangent', vjp: 'vjp' } as const;

/**
 * The U-Net's vector-Jacobian product as an ONNX graph, what moment-matching guidance calls
 * several times per sampler step (`models/onnx/vjp.ts` appends the reverse pass):
 *
 *     x_t [N, H W C], sigma [N], (cond), cotangent v [N, H W C]  ->  vjp = J^T v [N, H W C]
 *
 * with J = d denoised / d x_t per row, the same denoiser as `exportUnetToOnnx`'s.
 */
export function exportUnetVjpToOnnx(config: UnetConfig, params: ParamMap): Uint8Array {
  const g = unetGraph(config, params);
  const { xt, output, batch } = DENOISER_ONNX_IO;
  const dim = config.height * config.width * config.channels;
  const cotangent = g.input(VJP_ONNX_IO.cotangent, [batch, dim]);
  g.output(appendVjp(g, { output, wrt: xt, cotangent, name: VJP_ONNX_IO.vjp }), [batch, dim]);
  return g.toBytes(`vector-Jacobian product of the ${describeUnet(config)}`);
}

function describeUnet(config: UnetConfig): string {
  const { height: H, width: W, channels: C, condChannels, levels, blocksPerLevel } = config;
  return (
    `diffem U-Net denoiser: ${H}x${W}x${C} condChannels=${condChannels} levels=[${levels.join(',')}] ` +
    `blocks=${blocksPerLevel} attention=[${config.attentionLevels.join(',')}] embedDim=${config.embedDim} ` +
    `groups=${config.groups} downsample=${config.downsample ?? 'conv'}`
  );
}

/** The denoiser's nodes up to the value `DENOISER_ONNX_IO.output`, declared as no output yet. */
function unetGraph(config: UnetConfig, params: ParamMap): GraphBuilder {
  checkUnetParams(config, params, 'onnx export');
  const { xt, sigma, cond, output, batch } = DENOISER_ONNX_IO;
  const { height: H, width: W, channels: C, condChannels, levels, blocksPerLevel } = config;
  const g = new GraphBuilder('diffem_unet_denoiser');
  const sizes = unetLevelSizes(config);
  const attention = new Set(config.attentionLevels);
  const dim = H * W * C;

  const p = (name: string): string => g.initializer(name, params[name].data, params[name].shape);
  const convWeight = (name: string): string => {
    const { data, dims } = hwioToOihw(params[`${name}.weight`].data, params[`${name}.weight`].shape);
    return g.initializer(`${name}.weight`, data, dims);
  };
  /** A [in, out] projection matrix as a 1x1 convolution kernel. */
  const matrixAsConv = (name: string): string => {
    const [cin, cout] = params[`${name}.weight`].shape;
    const { data, dims } = hwioToOihw(params[`${name}.weight`].data, [1, 1, cin, cout]);
    return g.initializer(`${name}.weight`, data, dims);
  };
  const ints = (name: string, values: number[]) => g.int64Initializer(name, values);
  const scalar = (name: string, v: number) => g.initializer(name, new Float32Array([v]), []);

  g.input(xt, [batch, dim]);
  g.input(sigma, [batch]);
  if (condChannels > 0) g.input(cond, [batch, H * W * condChannels]);

  const one = scalar('const.one', 1);
  const axes1 = ints('const.axes_1', [1]);
  const axes23 = ints('const.axes_2_3', [2, 3]);
  const toNchw = (value: string, channels: number, name: string) =>
    g.node(
      'Transpose',
      [g.node('Reshape', [value, ints(`${name}.shape`, [-1, H, W, channels])])],
      { perm: attr.ints([0, 3, 1, 2]) },
      name,
    );

  // Preconditioning on flat rows: every coefficient is an [N, 1] column.
  const s = g.node('Unsqueeze', [sigma, axes1], {}, 'sigma_col');
  const { cSkip, cIn, cOut } = edmCoefficientNodes(g, s, one);

  const freqs = embeddingFrequencies(config.embedDim);
  const angles = g.node(
    'Mul',
    [g.node('Log', [s]), g.initializer('embedding.freqs', freqs, [1, freqs.length])],
    {},
    'angles',
  );
  const silu = (x: string, name?: string) => g.node('Mul', [x, g.node('Sigmoid', [x])], {}, name);
  const gemm = (x: string, name: string) => g.node('Gemm', [x, p(`${name}.weight`), p(`${name}.bias`)], {}, name);
  let e = g.node(
    'Concat',
    [g.node('Sin', [angles]), g.node('Cos', [angles])],
    { axis: attr.int(1) },
    'embedding.input',
  );
  e = gemm(e, 'embedding.linear1');
  e = gemm(silu(e), 'embedding.linear2');
  const eAct = silu(e, 'embedding.act');

  const conv = (x: string, name: string, level: number, stride: 1 | 2, kernel: 1 | 3, weight = convWeight(name)) => {
    const [h, w] = sizes[level];
    const [top, bottom] = kernel === 1 ? [0, 0] : samePadding(h, kernel, stride);
    const [left, right] = kernel === 1 ? [0, 0] : samePadding(w, kernel, stride);
    return g.node(
      'Conv',
      [x, weight, p(`${name}.bias`)],
      {
        strides: attr.ints([stride, stride]),
        pads: attr.ints([top, left, bottom, right]),
        kernel_shape: attr.ints([kernel, kernel]),
      },
      name,
    );
  };
  const groupNorm = (x: string, name: string, channels: number) => {
    const G = config.groups;
    const grouped = g.node('Reshape', [x, ints(`${name}.group_shape`, [0, G, -1])]);
    const normed = g.node(
      'InstanceNormalization',
      [
        grouped,
        g.initializer(`${name}.ones`, new Float32Array(G).fill(1), [G]),
        g.initializer(`${name}.zeros`, new Float32Array(G), [G]),
      ],
      {
        epsilon: attr.float(GROUP_NORM_EPSILON),
      },
    );
    const back = g.node('Reshape', [normed, g.node('Shape', [x])]);
    const gamma = g.initializer(`${name}.weight`, params[`${name}.weight`].data, [channels, 1, 1]);
    const beta = g.initializer(`${name}.bias`, params[`${name}.bias`].data, [channels, 1, 1]);
    return g.node('Add', [g.node('Mul', [back, gamma]), beta], {}, name);
  };
  const resBlock = (x: string, name: string, level: number, cin: number, cout: number) => {
    let h = conv(silu(groupNorm(x, `${name}.norm1`, cin)), `${name}.conv1`, level, 1, 3);
    const emb = g.node('Unsqueeze', [gemm(eAct, `${name}.emb`), axes23]);
    h = g.node('Add', [h, emb]);
    h = conv(silu(groupNorm(h, `${name}.norm2`, cout)), `${name}.conv2`, level, 1, 3);
    const skip = cin !== cout ? conv(x, `${name}.skip`, level, 1, 1) : x;
    return g.node('Add', [skip, h], {}, name);
  };
  const selfAttention = (x: string, name: string, level: number, c: number) => {
    const [h, w] = sizes[level];
    const normed = groupNorm(x, `${name}.norm`, c);
    const project = (input: string, part: string) =>
      conv(input, `${name}.${part}`, level, 1, 1, matrixAsConv(`${name}.${part}`));
    const flatShape = ints(`${name}.flat_shape`, [0, c, h * w]);
    const flat = (v: string) => g.node('Reshape', [v, flatShape]);
    const q = g.node('Transpose', [flat(project(normed, 'q'))], { perm: attr.ints([0, 2, 1]) });
    const k = flat(project(normed, 'k'));
    const v = flat(project(normed, 'v'));
    const scores = g.node('Mul', [g.node('MatMul', [q, k]), scalar(`${name}.scale`, 1 / Math.sqrt(c))]);
    const weights = g.node('Softmax', [scores], { axis: attr.int(-1) });
    const attended = g.node('MatMul', [v, g.node('Transpose', [weights], { perm: attr.ints([0, 2, 1]) })]);
    const image = g.node('Reshape', [attended, ints(`${name}.image_shape`, [0, c, h, w])]);
    return g.node('Add', [x, project(image, 'proj')], {}, name);
  };

  const parts = [toNchw(g.node('Mul', [xt, cIn], {}, 'x_in'), C, 'x_in_nchw')];
  if (condChannels > 0) parts.push(toNchw(cond, condChannels, 'cond_nchw'));
  let h = conv(parts.length > 1 ? g.node('Concat', parts, { axis: attr.int(1) }) : parts[0], 'input', 0, 1, 3);

  const L = levels.length;
  const skips: string[] = [];
  let ch = levels[0];
  for (let l = 0; l < L; l++) {
    for (let b = 0; b < blocksPerLevel; b++) {
      h = resBlock(h, `down.${l}.blocks.${b}`, l, ch, levels[l]);
      ch = levels[l];
      if (attention.has(l)) h = selfAttention(h, `down.${l}.attn.${b}`, l, ch);
    }
    skips.push(h);
    if (l < L - 1) {
      if ((config.downsample ?? 'conv') === 'conv') h = conv(h, `down.${l}.downsample`, l, 2, 3);
      else {
        const [top, bottom] = samePadding(sizes[l][0], 2, 2);
        const [left, right] = samePadding(sizes[l][1], 2, 2);
        h = g.node('AveragePool', [h], {
          kernel_shape: attr.ints([2, 2]),
          strides: attr.ints([2, 2]),
          pads: attr.ints([top, left, bottom, right]),
          count_include_pad: attr.int(0),
        });
      }
    }
  }
  h = resBlock(h, 'mid.block1', L - 1, ch, ch);
  h = selfAttention(h, 'mid.attn', L - 1, ch);
  h = resBlock(h, 'mid.block2', L - 1, ch, ch);
  const scales = g.initializer('const.upsample_scales', new Float32Array([1, 1, 2, 2]), [4]);
  for (let l = L - 1; l >= 0; l--) {
    h = g.node('Concat', [h, skips[l]], { axis: attr.int(1) });
    ch += levels[l];
    for (let b = 0; b < blocksPerLevel; b++) {
      h = resBlock(h, `up.${l}.blocks.${b}`, l, ch, levels[l]);
      ch = levels[l];
      if (attention.has(l)) h = selfAttention(h, `up.${l}.attn.${b}`, l, ch);
    }
    if (l > 0) {
      const [th, tw] = sizes[l - 1];
      const [sh, sw] = sizes[l];
      let u = g.node('Resize', [h, '', scales], {
        mode: attr.string('nearest'),
        coordinate_transformation_mode: attr.string('asymmetric'),
        nearest_mode: attr.string('floor'),
      });
      if (2 * sh !== th || 2 * sw !== tw) {
        u = g.node('Slice', [u, ints(`up.${l}.crop_starts`, [0, 0]), ints(`up.${l}.crop_ends`, [th, tw]), axes23]);
      }
      h = conv(u, `up.${l}.upsample`, l - 1, 1, 3);
      ch = levels[l - 1];
    }
  }
  h = silu(groupNorm(h, 'output.norm', ch));
  const f = conv(h, 'output.conv', 0, 1, 3);
  const fRows = g.node(
    'Reshape',
    [g.node('Transpose', [f], { perm: attr.ints([0, 2, 3, 1]) }), ints('const.rows_shape', [-1, dim])],
    {},
    'f_rows',
  );
  const skipTerm = g.node('Mul', [xt, cSkip], {}, 'skip');
  g.node('Add', [skipTerm, g.node('Mul', [fRows, cOut], {}, 'scaled_f')], {}, output);
  return g;
}
