/** A small append-only builder for ONNX graphs: nodes, initializers, inputs and outputs. */
import { floatTensor, int64Tensor } from './tensors';
import {
  AttributeProto,
  AttributeType,
  DataType,
  DimensionProto,
  GraphProto,
  ModelProto,
  NodeProto,
  TensorProto,
  ValueInfoProto,
} from './proto';

export function intAttr(name: string, i: number): AttributeProto {
  return { name, type: AttributeType.INT, i };
}

export function floatAttr(name: string, f: number): AttributeProto {
  return { name, type: AttributeType.FLOAT, f };
}

export function intsAttr(name: string, ints: number[]): AttributeProto {
  return { name, type: AttributeType.INTS, ints };
}

export function stringAttr(name: string, s: string): AttributeProto {
  return { name, type: AttributeType.STRING, s: Buffer.from(s, 'utf8') };
}

/** A dimension: a number is fixed, a string is a named symbolic size, null is unknown. */
export type Dim = number | string | null;

export function tensorValueInfo(name: string, elemType: number, dims?: Dim[]): ValueInfoProto {
  const tensorType: { elemType: number; shape?: { dim: DimensionProto[] } } = { elemType };
  if (dims) {
    tensorType.shape = {
      dim: dims.map((d) => (d === null ? {} : typeof d === 'number' ? { dimValue: d } : { dimParam: d })),
    };
  }
  return { name, type: { tensorType } };
}

export interface ModelInfo {
  producerName: string;
  producerVersion: string;
  opset: number;
  irVersion: number;
  docString?: string;
}

export class GraphBuilder {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  readonly inputs: ValueInfoProto[] = [];
  readonly outputs: ValueInfoProto[] = [];
  private readonly names = new Set<string>();
  private readonly nodeNames = new Set<string>();

  constructor(readonly name: string) {}

  /** Every tensor name is produced once; a clash means a converter bug, so it throws. */
  private claim(name: string): string {
    if (this.names.has(name)) throw new Error(`tensor name "${name}" is produced twice`);
    this.names.add(name);
    return name;
  }

  has(name: string): boolean {
    return this.names.has(name);
  }

  addInput(name: string, dims: Dim[], elemType: number = DataType.FLOAT): string {
    this.inputs.push(tensorValueInfo(this.claim(name), elemType, dims));
    return name;
  }

  addFloat(name: string, dims: number[], data: Float32Array): string {
    this.initializers.push(floatTensor(this.claim(name), dims, data));
    return name;
  }

  addInt64(name: string, dims: number[], data: number[]): string {
    this.initializers.push(int64Tensor(this.claim(name), dims, data));
    return name;
  }

  addNode(
    opType: string,
    inputs: string[],
    outputs: string[],
    attribute: AttributeProto[] = [],
    name?: string,
  ): void {
    const nodeName = name ?? outputs[0];
    // onnxruntime rejects graphs with duplicate node names.
    if (this.nodeNames.has(nodeName)) throw new Error(`node name "${nodeName}" is used twice`);
    this.nodeNames.add(nodeName);
    outputs.forEach((o) => this.claim(o));
    this.nodes.push({ name: nodeName, opType, input: inputs, output: outputs, attribute });
  }

  addOutput(name: string, dims?: Dim[], elemType: number = DataType.FLOAT): void {
    if (!this.names.has(name)) throw new Error(`graph output "${name}" is not produced by the graph`);
    this.outputs.push(tensorValueInfo(name, elemType, dims));
  }

  graph(): GraphProto {
    return {
      name: this.name,
      node: this.nodes,
      initializer: this.initializers,
      input: this.inputs,
      output: this.outputs,
      valueInfo: [],
    };
  }

  model(info: ModelInfo): ModelProto {
    const model: ModelProto = {
      irVersion: info.irVersion,
      opsetImport: [{ domain: '', version: info.opset }],
      producerName: info.producerName,
      producerVersion: info.producerVersion,
      graph: this.graph(),
    };
    if (info.docString) model.docString = info.docString;
    return model;
  }
}
