/**
 * Reverse-mode differentiation inside an ONNX graph. For a graph computing y = f(x) and a
 * cotangent v of y's shape, `appendVjp` appends the nodes computing
 *
 *     J^T v,   J = dy/dx,
 *
 * by walking the nodes backwards and applying each operator's adjoint rule to the cotangent of
 * its output (g = dL/dy below, L = <y, v>):
 *
 *     Add/Sub     dL/da = g, dL/db = +-g           Mul     dL/da = g b, dL/db = g a
 *     Sigmoid     g y (1 - y)                      MatMul  g B^T, A^T g
 *     Softmax     y (g - sum(g y))                 Reshape/Transpose/Concat: their inverses
 *     Conv        ConvTranspose of g by the same kernel (the padding cropped back off)
 *     InstanceNormalization (x^ the normalised x, s its scale)
 *                 (1 / std) (g s - mean(g s) - x^ mean(g s x^))
 *     Resize (nearest, by k)  k^2 AveragePool_k(g);   AveragePool_k   nearest upsampling of g / count
 *
 * and summing the cotangents of a value read by several nodes. Only values that depend on x
 * ("active") are differentiated: weights, constants and functions of sigma alone get no
 * cotangent, so every rule only needs derivatives in its active operands. Moment-matching
 * guidance (models/guidance/mmps.ts) needs J^T v many times per sampler step; as one ONNX
 * graph it runs on ONNX Runtime's kernels (and its CUDA provider) instead of an autodiff tape.
 *
 * Limits, which the U-Net exporter satisfies (and `tests/onnx-vjp.test.ts` checks against
 * tfjs's autodiff): an active operand of Add, Sub or Mul has the output's shape (broadcasting
 * only along constant operands); MatMul is batched rank 3; InstanceNormalization acts on
 * [N, C, M]; Conv is 2-D with one group and no dilation; Resize is nearest, asymmetric, floor,
 * by integer scales; Slice starts at 0 with unit steps; AveragePool has its kernel equal to its
 * stride and pads only after. An operator without a rule is an error naming it, never a zero.
 * Reference: Griewank & Walther, "Evaluating Derivatives" (2nd ed., 2008), ch. 3 (reverse
 * mode); ONNX operator specs, opset 17.
 */
import { attr, type AttributeValue, type GraphBuilder, type NodeSpec } from './graph.js';

/** Operators whose outputs carry no derivative (integer shapes). */
const NON_DIFFERENTIABLE = new Set(['Shape']);

export interface VjpRequest {
  /** The value y to differentiate. */
  output: string;
  /** The value x it is differentiated with respect to (usually a graph input). */
  wrt: string;
  /** The cotangent v, a value of y's shape (usually a graph input). */
  cotangent: string;
  /** The name of the result J^T v (default 'vjp'). */
  name?: string;
}

/** Appends the nodes computing J^T v to `g` and returns the result's name. */
export function appendVjp(g: GraphBuilder, request: VjpRequest): string {
  const { output, wrt, cotangent } = request;
  const nodes = g.nodeSpecs();
  const active = new Set([wrt]);
  for (const node of nodes) {
    if (!NON_DIFFERENTIABLE.has(node.opType) && node.inputs.some((input) => active.has(input))) active.add(node.output);
  }
  if (!active.has(output)) throw new Error(`appendVjp: '${output}' does not depend on '${wrt}'`);
  const constants = new Constants(g);
  const cotangents = new Map<string, string[]>([[output, [cotangent]]]);
  const total = (value: string, name?: string): string => {
    const parts = cotangents.get(value) ?? [];
    if (parts.length === 1 && name === undefined) return parts[0];
    return g.node(parts.length === 1 ? 'Identity' : 'Sum', parts, {}, name);
  };
  for (let n = nodes.length - 1; n >= 0; n--) {
    const node = nodes[n];
    if (!active.has(node.output) || !cotangents.has(node.output)) continue;
    const rule = RULES[node.opType];
    if (!rule) throw new Error(`appendVjp: no derivative rule for ${node.opType} (node output '${node.output}')`);
    const isActive = (i: number): boolean => i < node.inputs.length && active.has(node.inputs[i]);
    rule({
      g,
      node,
      dy: total(node.output),
      k: constants,
      active: isActive,
      emit: (i, make) => {
        if (!isActive(i)) return;
        const input = node.inputs[i];
        const parts = cotangents.get(input) ?? [];
        parts.push(make());
        cotangents.set(input, parts);
      },
      constant: (i, what) => {
        if (isActive(i)) {
          throw new Error(
            `appendVjp: ${node.opType} '${node.output}' has an active ${what}; only constant ones are supported`,
          );
        }
      },
    });
  }
  if (!cotangents.has(wrt)) throw new Error(`appendVjp: no path from '${wrt}' to '${output}' carries a derivative`);
  return total(wrt, request.name ?? 'vjp');
}

interface RuleContext {
  g: GraphBuilder;
  node: NodeSpec;
  /** The cotangent of the node's output. */
  dy: string;
  k: Constants;
  /** Whether operand i depends on x. */
  active(i: number): boolean;
  /** Adds make()'s value to operand i's cotangent; `make` runs only for an active operand. */
  emit(i: number, make: () => string): void;
  /** Fails unless operand i is constant (for operands a rule does not differentiate). */
  constant(i: number, what: string): void;
}

type Rule = (ctx: RuleContext) => void;

/** Small constants created once per differentiated graph. */
class Constants {
  private readonly cache = new Map<string, string>();
  private count = 0;

  constructor(private readonly g: GraphBuilder) {}

  float(value: number): string {
    return this.memo(`f${value}`, (name) => this.g.initializer(name, new Float32Array([value]), []));
  }

  floats(values: readonly number[]): string {
    return this.memo(`fs${values.join(',')}`, (name) =>
      this.g.initializer(name, Float32Array.from(values), [values.length]),
    );
  }

  ints(values: readonly number[]): string {
    return this.memo(`i${values.join(',')}`, (name) => this.g.int64Initializer(name, values));
  }

  private memo(key: string, create: (name: string) => string): string {
    let name = this.cache.get(key);
    if (name === undefined) {
      do name = `vjp.const_${this.count++}`;
      while (this.g.has(name));
      name = create(name);
      this.cache.set(key, name);
    }
    return name;
  }
}

function intAttr(node: NodeSpec, key: string, fallback: number): number {
  const a = node.attributes[key];
  if (a === undefined) return fallback;
  if (a.type !== 'int') throw new Error(`appendVjp: ${node.opType} '${node.output}': attribute ${key} is not an int`);
  return a.value;
}

function intsAttr(node: NodeSpec, key: string, fallback?: readonly number[]): readonly number[] {
  const a: AttributeValue | undefined = node.attributes[key];
  if (a === undefined) {
    if (fallback) return fallback;
    throw new Error(`appendVjp: ${node.opType} '${node.output}' needs attribute ${key}`);
  }
  if (a.type !== 'ints') throw new Error(`appendVjp: ${node.opType} '${node.output}': attribute ${key} is not ints`);
  return a.value;
}

function stringAttr(node: NodeSpec, key: string, fallback: string): string {
  const a = node.attributes[key];
  if (a === undefined) return fallback;
  if (a.type !== 'string')
    throw new Error(`appendVjp: ${node.opType} '${node.output}': attribute ${key} is not a string`);
  return a.value;
}

function unsupported(node: NodeSpec, why: string): Error {
  return new Error(`appendVjp: ${node.opType} '${node.output}': ${why}`);
}

/** [out, in, kh, kw] -> [in, out, kh, kw], flipped in both spatial axes. */
function adjointKernel({ data, dims }: { data: Float32Array; dims: readonly number[] }): Float32Array {
  const [cout, cin, kh, kw] = dims;
  const out = new Float32Array(data.length);
  for (let o = 0; o < cout; o++) {
    for (let i = 0; i < cin; i++) {
      for (let y = 0; y < kh; y++) {
        for (let x = 0; x < kw; x++) {
          out[((i * cout + o) * kh + (kh - 1 - y)) * kw + (kw - 1 - x)] = data[((o * cin + i) * kh + y) * kw + x];
        }
      }
    }
  }
  return out;
}

function swapped(dims: readonly number[]): number[] {
  const [cout, cin, kh, kw] = dims;
  return [cin, cout, kh, kw];
}

/** The cotangent of a shape-only op (Reshape and kin): g reshaped back to the operand's shape. */
const reshapeBack: Rule = ({ g, node, dy, emit }) =>
  emit(0, () => g.node('Reshape', [dy, g.node('Shape', [node.inputs[0]])]));

/** Nearest upsampling of [N, C, h, w] by k with src = floor(dst / k), as the exporter's Resize. */
function upsampleNearest(ctx: RuleContext, x: string, factor: number): string {
  return ctx.g.node('Resize', [x, '', ctx.k.floats([1, 1, factor, factor])], {
    mode: attr.string('nearest'),
    coordinate_transformation_mode: attr.string('asymmetric'),
    nearest_mode: attr.string('floor'),
  });
}

const RULES: Readonly<Record<string, Rule>> = {
  Identity: ({ dy, emit }) => emit(0, () => dy),
  Add: ({ dy, emit }) => {
    emit(0, () => dy);
    emit(1, () => dy);
  },
  Sub: ({ g, dy, emit }) => {
    emit(0, () => dy);
    emit(1, () => g.node('Neg', [dy]));
  },
  Neg: ({ g, dy, emit }) => emit(0, () => g.node('Neg', [dy])),
  Mul: ({ g, node, dy, emit }) => {
    const [a, b] = node.inputs;
    emit(0, () => g.node('Mul', [dy, b]));
    emit(1, () => g.node('Mul', [dy, a]));
  },
  Div: ({ g, node, dy, emit }) => {
    const b = node.inputs[1];
    emit(0, () => g.node('Div', [dy, b]));
    // d(a / b)/db = -(a / b) / b.
    emit(1, () => g.node('Neg', [g.node('Div', [g.node('Mul', [dy, node.output]), b])]));
  },
  Sigmoid: ({ g, node, dy, k, emit }) => {
    const y = node.output;
    emit(0, () => g.node('Mul', [dy, g.node('Mul', [y, g.node('Sub', [k.float(1), y])])]));
  },
  Reshape: reshapeBack,
  Unsqueeze: reshapeBack,
  Squeeze: reshapeBack,
  Flatten: reshapeBack,
  Transpose: ({ g, node, dy, emit }) => {
    const perm = intsAttr(node, 'perm');
    const inverse = new Array<number>(perm.length);
    perm.forEach((p, i) => (inverse[p] = i));
    emit(0, () => g.node('Transpose', [dy], { perm: attr.ints(inverse) }));
  },
  Concat: ({ g, node, dy, k, active, emit }) => {
    const axis = intAttr(node, 'axis', 0);
    if (axis < 0) throw unsupported(node, 'a negative axis');
    let offset = k.ints([0]);
    node.inputs.forEach((input, i) => {
      const size = g.node('Shape', [input], { start: attr.int(axis), end: attr.int(axis + 1) });
      const start = offset;
      const end = g.node('Add', [offset, size]);
      if (active(i)) emit(i, () => g.node('Slice', [dy, start, end, k.ints([axis])]));
      offset = end;
    });
  },
  MatMul: ({ g, node, dy, emit }) => {
    const [a, b] = node.inputs;
    const swap = { perm: attr.ints([0, 2, 1]) };
    emit(0, () => g.node('MatMul', [dy, g.node('Transpose', [b], swap)]));
    emit(1, () => g.node('MatMul', [g.node('Transpose', [a], swap), dy]));
  },
  Softmax: ({ g, node, dy, k, emit }) => {
    if (intAttr(node, 'axis', -1) !== -1) throw unsupported(node, 'softmax over an axis other than the last');
    const y = node.output;
    const dot = g.node('ReduceSum', [g.node('Mul', [dy, y]), k.ints([-1])], { keepdims: attr.int(1) });
    emit(0, () => g.node('Mul', [y, g.node('Sub', [dy, dot])]));
  },
  Conv: ({ g, node, dy, k, constant, emit }) => {
    constant(1, 'kernel');
    constant(2, 'bias');
    if (intAttr(node, 'group', 1) !== 1) throw unsupported(node, 'grouped convolution');
    const kernel = intsAttr(node, 'kernel_shape');
    if (kernel.length !== 2) throw unsupported(node, 'a convolution that is not 2-D');
    if (intsAttr(node, 'dilations', [1, 1]).some((d) => d !== 1)) throw unsupported(node, 'dilation');
    if (stringAttr(node, 'auto_pad', 'NOTSET') !== 'NOTSET') throw unsupported(node, 'auto_pad');
    const strides = intsAttr(node, 'strides', [1, 1]);
    const [top, left, bottom, right] = intsAttr(node, 'pads', [0, 0, 0, 0]);
    const x = node.inputs[0];
    const weight = node.inputs[1];
    emit(0, () => {
      const kernelValues = g.floatInitializer(weight);
      if (strides.every((s) => s === 1) && kernelValues) {
        // Stride 1: the adjoint of a convolution is the convolution with the kernel flipped in
        // space and its in/out channels swapped, padded by k - 1 - pad. ONNX Runtime's Conv is
        // far better tuned than its ConvTranspose, and the kernel is a constant.
        const [kh, kw] = kernel;
        // A kernel shared by several convolutions gets one adjoint.
        const adjoint = g.has(`${weight}.adjoint`)
          ? `${weight}.adjoint`
          : g.initializer(`${weight}.adjoint`, adjointKernel(kernelValues), swapped(kernelValues.dims));
        return g.node('Conv', [dy, adjoint], {
          kernel_shape: attr.ints(kernel),
          pads: attr.ints([kh - 1 - top, kw - 1 - left, kh - 1 - bottom, kw - 1 - right]),
        });
      }
      if (strides.every((s) => s === 1)) {
        // The transposed convolution with the same pads lands exactly on x's grid.
        return g.node('ConvTranspose', [dy, weight], {
          kernel_shape: attr.ints(kernel),
          pads: attr.ints([top, left, bottom, right]),
        });
      }
      // Strided: the full transposed convolution covers the padded input from its start up to
      // the last window's end; zeros complete it to the padded size, then the pads come off.
      const full = g.node('ConvTranspose', [dy, weight], {
        kernel_shape: attr.ints(kernel),
        strides: attr.ints(strides),
      });
      const inputSize = g.node('Shape', [x], { start: attr.int(2) });
      const padded = g.node('Add', [inputSize, k.ints([top + bottom, left + right])]);
      const missing = g.node('Sub', [padded, g.node('Shape', [full], { start: attr.int(2) })]);
      const pads = g.node('Concat', [k.ints([0, 0, 0, 0, 0, 0]), missing], { axis: attr.int(0) });
      const starts = k.ints([top, left]);
      return g.node('Slice', [g.node('Pad', [full, pads]), starts, g.node('Add', [inputSize, starts]), k.ints([2, 3])]);
    });
  },
  InstanceNormalization: ({ g, node, dy, k, constant, emit }) => {
    constant(1, 'scale');
    constant(2, 'bias');
    const eps = node.attributes.epsilon?.type === 'float' ? node.attributes.epsilon.value : 1e-5;
    const [x, scale] = node.inputs;
    emit(0, () => {
      const mean = (v: string) => g.node('ReduceMean', [v], { axes: attr.ints([-1]), keepdims: attr.int(1) });
      const centred = g.node('Sub', [x, mean(x)]);
      const variance = mean(g.node('Mul', [centred, centred]));
      const inverseStd = g.node('Reciprocal', [g.node('Sqrt', [g.node('Add', [variance, k.float(eps)])])]);
      const normalized = g.node('Mul', [centred, inverseStd]);
      const scaled = g.node('Mul', [dy, g.node('Unsqueeze', [scale, k.ints([1])])]);
      const projection = g.node('Mul', [normalized, mean(g.node('Mul', [scaled, normalized]))]);
      return g.node('Mul', [inverseStd, g.node('Sub', [g.node('Sub', [scaled, mean(scaled)]), projection])]);
    });
  },
  Resize: (ctx) => {
    const { g, node, dy, k, constant, emit } = ctx;
    constant(2, 'scales');
    const scales = node.inputs[2] === undefined ? undefined : g.constantValues(node.inputs[2]);
    const factor = scales?.[2];
    if (
      node.inputs[3] !== undefined ||
      !scales ||
      scales.length !== 4 ||
      scales[0] !== 1 ||
      scales[1] !== 1 ||
      factor === undefined ||
      scales[3] !== factor ||
      !Number.isInteger(factor) ||
      factor < 1
    ) {
      throw unsupported(node, 'only resizing by a constant integer factor [1, 1, k, k] is supported');
    }
    if (
      stringAttr(node, 'mode', 'nearest') !== 'nearest' ||
      stringAttr(node, 'coordinate_transformation_mode', 'half_pixel') !== 'asymmetric' ||
      stringAttr(node, 'nearest_mode', 'round_prefer_floor') !== 'floor'
    ) {
      throw unsupported(node, 'only nearest resizing with asymmetric coordinates and floor rounding is supported');
    }
    // Each input pixel is copied to a k x k block: its cotangent is the block's sum.
    emit(0, () =>
      g.node('Mul', [
        g.node('AveragePool', [dy], {
          kernel_shape: attr.ints([factor, factor]),
          strides: attr.ints([factor, factor]),
        }),
        k.float(factor * factor),
      ]),
    );
  },
  Slice: ({ g, node, dy, emit }) => {
    const [x, starts, , , steps] = node.inputs;
    const startValues = g.constantValues(starts);
    if (!startValues || startValues.some((s) => s !== 0))
      throw unsupported(node, 'only slices from index 0 are supported');
    if (steps !== undefined && steps !== '' && (g.constantValues(steps) ?? [0]).some((s) => s !== 1)) {
      throw unsupported(node, 'only unit steps are supported');
    }
    emit(0, () => {
      // Zeros after the kept block, along every axis (0 where nothing was cut).
      const shape = g.node('Shape', [x]);
      const after = g.node('Sub', [shape, g.node('Shape', [dy])]);
      const before = g.node('Sub', [shape, shape]);
      return g.node('Pad', [dy, g.node('Concat', [before, after], { axis: attr.int(0) })]);
    });
  },
  AveragePool: (ctx) => {
    const { g, node, dy, k, emit } = ctx;
    const kernel = intsAttr(node, 'kernel_shape');
    const strides = intsAttr(node, 'strides', [1, 1]);
    const pads = intsAttr(node, 'pads', [0, 0, 0, 0]);
    if (
      kernel.length !== 2 ||
      kernel[0] !== kernel[1] ||
      strides[0] !== kernel[0] ||
      strides[1] !== kernel[1] ||
      pads[0] !== 0 ||
      pads[1] !== 0
    ) {
      throw unsupported(node, 'only square pooling with stride = kernel and padding after is supported');
    }
    const factor = kernel[0];
    const x = node.inputs[0];
    emit(0, () => {
      // Each output averaged `count` inputs: the window's size, or only its unpadded part.
      let count = k.float(factor * factor);
      if (intAttr(node, 'count_include_pad', 0) === 0) {
        const ones = g.node('Expand', [k.float(1), g.node('Shape', [x])]);
        const valid = g.node('AveragePool', [ones], {
          kernel_shape: attr.ints(kernel),
          strides: attr.ints(strides),
          pads: attr.ints(pads),
          count_include_pad: attr.int(1),
        });
        count = g.node('Mul', [valid, count]);
      }
      const spread = upsampleNearest(ctx, g.node('Div', [dy, count]), factor);
      return g.node('Slice', [spread, k.ints([0, 0]), g.node('Shape', [x], { start: attr.int(2) }), k.ints([2, 3])]);
    });
  },
};
