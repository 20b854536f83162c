/**
 * A tiny typed builder for ONNX models over onnx-proto's generated message types: float and
 * int64 initializers, nodes with typed attributes, float32 inputs/outputs whose dimensions may be
 * symbolic (a batch dimension 'N'), and the serialized `ModelProto` bytes that ONNX Runtime loads.
 *
 * Models target the default ONNX domain at opset 17 (the first with LayerNormalization) and
 * IR version 8, the newest the onnx-proto message definitions (ONNX 1.10) describe.
 * Reference: ONNX IR specification (onnx/docs/IR.md) and operator specs (onnx/docs/Operators.md).
 */
import onnxProto from 'onnx-proto';

// onnx-proto is CommonJS assigning `module.exports = { onnx }`; Node's ESM loader cannot see that
// as a named export, so the namespace comes through the default import.
const { onnx } = onnxProto;

export type ModelProtoInit = onnxProto.onnx.IModelProto;
export type NodeProtoInit = onnxProto.onnx.INodeProto;
export type TensorProtoInit = onnxProto.onnx.ITensorProto;
export type ValueInfoProtoInit = onnxProto.onnx.IValueInfoProto;
export type AttributeProtoInit = onnxProto.onnx.IAttributeProto;

export const ONNX_OPSET_VERSION = 17;
export const ONNX_IR_VERSION = 8;
export const ONNX_PRODUCER_NAME = 'diffem';

/** A dimension: a fixed size, or a symbolic name shared by every value of that size. */
export type Dim = number | string;

/** An attribute value with its ONNX type made explicit (1 as an INT and 1 as a FLOAT differ). */
export type AttributeValue =
  | { readonly type: 'int'; readonly value: number }
  | { readonly type: 'float'; readonly value: number }
  | { readonly type: 'ints'; readonly value: readonly number[] }
  | { readonly type: 'floats'; readonly value: readonly number[] }
  | { readonly type: 'string'; readonly value: string };

export const attr = {
  int: (value: number): AttributeValue => ({ type: 'int', value }),
  float: (value: number): AttributeValue => ({ type: 'float', value }),
  ints: (value: readonly number[]): AttributeValue => ({ type: 'ints', value }),
  floats: (value: readonly number[]): AttributeValue => ({ type: 'floats', value }),
  string: (value: string): AttributeValue => ({ type: 'string', value }),
};

/** A node as it was built: what `vjp.ts` differentiates. */
export interface NodeSpec {
  readonly opType: string;
  readonly inputs: readonly string[];
  readonly output: string;
  readonly attributes: Readonly<Record<string, AttributeValue>>;
}

export class GraphBuilder {
  private readonly nodes: NodeProtoInit[] = [];
  private readonly specs: NodeSpec[] = [];
  /** Initializer values by name, for rules that read their operands (`vjp.ts`). */
  private readonly floatValues = new Map<string, { data: Float32Array; dims: readonly number[] }>();
  private readonly intValues = new Map<string, readonly number[]>();
  private readonly initializers: TensorProtoInit[] = [];
  private readonly inputs: ValueInfoProtoInit[] = [];
  private readonly outputs: ValueInfoProtoInit[] = [];
  /** Every value name in the graph: ONNX requires single static assignment. */
  private readonly names = new Set<string>();
  private counter = 0;

  constructor(private readonly name: string) {}

  /** A float32 graph input, e.g. `input('x_t', ['N', 5])`. */
  input(name: string, dims: readonly Dim[]): string {
    this.claim(name);
    this.inputs.push(valueInfo(name, dims));
    return name;
  }

  /** Declares an existing value as a float32 graph output. */
  output(name: string, dims: readonly Dim[]): string {
    if (!this.names.has(name)) throw new Error(`onnx graph '${this.name}': output '${name}' is not produced`);
    this.outputs.push(valueInfo(name, dims));
    return name;
  }

  /** A float32 constant; `dims` must cover `data` exactly. */
  initializer(name: string, data: Float32Array, dims: readonly number[]): string {
    checkSize(name, data.length, dims);
    this.claim(name);
    // Raw data is little-endian by the spec, whatever the host's byte order.
    const raw = new Uint8Array(data.length * 4);
    const view = new DataView(raw.buffer);
    for (let i = 0; i < data.length; i++) view.setFloat32(i * 4, data[i], true);
    this.initializers.push({ name, dataType: onnx.TensorProto.DataType.FLOAT, dims: [...dims], rawData: raw });
    this.floatValues.set(name, { data, dims: [...dims] });
    return name;
  }

  /** An int64 constant, for the shape and axes inputs of Reshape, Unsqueeze and friends. */
  int64Initializer(name: string, values: readonly number[], dims: readonly number[] = [values.length]): string {
    checkSize(name, values.length, dims);
    this.claim(name);
    const raw = new Uint8Array(values.length * 8);
    const view = new DataView(raw.buffer);
    values.forEach((v, i) => {
      if (!Number.isSafeInteger(v)) throw new RangeError(`onnx initializer '${name}': ${v} is not an integer`);
      view.setBigInt64(i * 8, BigInt(v), true);
    });
    this.initializers.push({ name, dataType: onnx.TensorProto.DataType.INT64, dims: [...dims], rawData: raw });
    this.intValues.set(name, [...values]);
    return name;
  }

  /**
   * Appends a node of the default domain and returns the name of its (single) output, `output`
   * if given, else a fresh name derived from the operator.
   */
  node(
    opType: string,
    inputs: readonly string[],
    attributes: Readonly<Record<string, AttributeValue>> = {},
    output?: string,
  ): string {
    for (const input of inputs) {
      // The empty name marks an omitted optional input.
      if (input !== '' && !this.names.has(input)) {
        throw new Error(`onnx graph '${this.name}': ${opType} reads '${input}' before it is defined`);
      }
    }
    const out = output ?? this.fresh(opType);
    this.claim(out);
    this.nodes.push({
      name: `${opType}_${this.nodes.length}`,
      opType,
      domain: '',
      input: [...inputs],
      output: [out],
      attribute: Object.entries(attributes).map(([key, value]) => attribute(key, value)),
    });
    this.specs.push({ opType, inputs: [...inputs], output: out, attributes: { ...attributes } });
    return out;
  }

  /** The nodes so far, in order (a topological order: a node reads only earlier values). */
  nodeSpecs(): readonly NodeSpec[] {
    return [...this.specs];
  }

  /** The values of an int64 initializer or of a small float one (at most 16 values: scales, scalars). */
  constantValues(name: string): readonly number[] | undefined {
    const floats = this.floatValues.get(name)?.data;
    if (floats) return floats.length <= 16 ? Array.from(floats) : undefined;
    return this.intValues.get(name);
  }

  /** A float32 initializer's values and dims (not copied: do not modify), or undefined. */
  floatInitializer(name: string): { data: Float32Array; dims: readonly number[] } | undefined {
    return this.floatValues.get(name);
  }

  /** Whether a value of this name exists (an input, initializer or node output). */
  has(name: string): boolean {
    return this.names.has(name);
  }

  model(docString = ''): ModelProtoInit {
    if (this.outputs.length === 0) throw new Error(`onnx graph '${this.name}' has no outputs`);
    return {
      irVersion: ONNX_IR_VERSION,
      opsetImport: [{ domain: '', version: ONNX_OPSET_VERSION }],
      producerName: ONNX_PRODUCER_NAME,
      docString,
      graph: {
        name: this.name,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      },
    };
  }

  /** The serialized `ModelProto`, as ONNX Runtime loads it. */
  toBytes(docString = ''): Uint8Array {
    return onnx.ModelProto.encode(this.model(docString)).finish();
  }

  private claim(name: string): void {
    if (name === '') throw new Error(`onnx graph '${this.name}': empty value name`);
    if (this.names.has(name)) throw new Error(`onnx graph '${this.name}': value '${name}' is defined twice`);
    this.names.add(name);
  }

  private fresh(opType: string): string {
    let name: string;
    do name = `${opType.toLowerCase()}_${this.counter++}`;
    while (this.names.has(name));
    return name;
  }
}

/** Parses serialized model bytes back into a message (for inspection and tests). */
export function decodeModel(bytes: Uint8Array): onnxProto.onnx.ModelProto {
  return onnx.ModelProto.decode(bytes);
}

function valueInfo(name: string, dims: readonly Dim[]): ValueInfoProtoInit {
  return {
    name,
    type: {
      tensorType: {
        elemType: onnx.TensorProto.DataType.FLOAT,
        shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) },
      },
    },
  };
}

function attribute(name: string, a: AttributeValue): AttributeProtoInit {
  const T = onnx.AttributeProto.AttributeType;
  switch (a.type) {
    case 'int':
      if (!Number.isSafeInteger(a.value)) throw new RangeError(`attribute '${name}': ${a.value} is not an integer`);
      return { name, type: T.INT, i: a.value };
    case 'float':
      return { name, type: T.FLOAT, f: a.value };
    case 'ints':
      return { name, type: T.INTS, ints: [...a.value] };
    case 'floats':
      return { name, type: T.FLOATS, floats: [...a.value] };
    case 'string':
      return { name, type: T.STRING, s: new TextEncoder().encode(a.value) };
  }
}

function checkSize(name: string, length: number, dims: readonly number[]): void {
  const size = dims.reduce((a, b) => a * b, 1);
  if (size !== length) {
    throw new RangeError(`onnx initializer '${name}': ${length} values do not fill dims [${dims.join(', ')}]`);
  }
}
