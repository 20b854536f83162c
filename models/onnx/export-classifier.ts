/**
 * Exports the feature classifier of `models/metrics/feature-extractor.ts` to ONNX:
 *
 *     images [N, H, W, C] (NHWC, [-2, 2])  ->  features [N, featureDim], logits [N, classes]
 *
 * The convolutions run NCHW; the activations go back to NHWC before flattening, so the
 * fully connected layer reads them in the order tfjs does.
 * Reference: ONNX operator specs, opset 17 (Conv, Gemm, Relu, Transpose, Reshape).
 */
import { classifierParamShapes, type ClassifierConfig } from '../metrics/feature-extractor.js';
import type { ParamMap } from '../denoisers/mlp.js';
import { attr, GraphBuilder } from './graph.js';
import { hwioToOihw, samePadding } from './export-unet.js';

export const CLASSIFIER_ONNX_IO = { images: 'images', features: 'features', logits: 'logits', batch: 'N' } as const;

export function exportClassifierToOnnx(config: ClassifierConfig, params: ParamMap): Uint8Array {
  for (const [name, shape] of classifierParamShapes(config)) {
    if (params[name]?.shape.join(',') !== shape.join(',')) {
      throw new Error(
        `onnx export: classifier parameter '${name}' is [${params[name]?.shape ?? 'missing'}], expected [${shape}]`,
      );
    }
  }
  const { images, features, logits, batch } = CLASSIFIER_ONNX_IO;
  const g = new GraphBuilder('diffem_feature_classifier');
  const p = (name: string) => g.initializer(name, params[name].data, params[name].shape);
  g.input(images, [batch, config.height, config.width, config.channels]);

  let h = g.node('Transpose', [images], { perm: attr.ints([0, 3, 1, 2]) });
  let size: [number, number] = [config.height, config.width];
  for (const [name, stride] of [
    ['conv1', 1],
    ['conv2', 2],
    ['conv3', 2],
  ] as const) {
    const { data, dims } = hwioToOihw(params[`${name}.weight`].data, params[`${name}.weight`].shape);
    const [top, bottom] = samePadding(size[0], 3, stride);
    const [left, right] = samePadding(size[1], 3, stride);
    h = g.node('Relu', [
      g.node('Conv', [h, g.initializer(`${name}.weight`, data, dims), p(`${name}.bias`)], {
        strides: attr.ints([stride, stride]),
        pads: attr.ints([top, left, bottom, right]),
        kernel_shape: attr.ints([3, 3]),
      }),
    ]);
    size = [Math.ceil(size[0] / stride), Math.ceil(size[1] / stride)];
  }
  const flat = g.node('Reshape', [
    g.node('Transpose', [h], { perm: attr.ints([0, 2, 3, 1]) }),
    g.int64Initializer('const.flat_shape', [0, -1]),
  ]);
  g.node('Relu', [g.node('Gemm', [flat, p('fc.weight'), p('fc.bias')])], {}, features);
  g.node('Gemm', [features, p('head.weight'), p('head.bias')], {}, logits);
  g.output(features, [batch, config.featureDim]);
  g.output(logits, [batch, config.classes]);
  return g.toBytes(
    `diffem feature classifier: ${config.height}x${config.width}x${config.channels} widths=[${config.widths.join(',')}] ` +
      `featureDim=${config.featureDim} classes=${config.classes}`,
  );
}
