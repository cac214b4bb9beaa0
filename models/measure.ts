/**
 * Measures an ONNX feature extractor by running it once with onnxruntime at a given input size:
 * stage output shapes (for the spec) and a FLOP/parameter count (for the model card). FLOPs need
 * every intermediate shape, so the run exposes all node outputs as extra graph outputs.
 */
import * as ort from 'onnxruntime-node';
import { encodeModel } from './onnx/io';
import { DataType, ModelProto, NodeProto, int64ToNumber } from './onnx/proto';
import { elementCount, tensorDims } from './onnx/tensors';

export interface Measurement {
  /** NCHW shape (batch 1) of each requested tensor. */
  shapes: Record<string, number[]>;
  /** 2 x multiply-accumulates of Conv/Gemm/MatMul, plus one FLOP per output element of other compute ops. */
  flops: number;
  macs: number;
  /** Elements of float initializers (weights and biases after BN folding). */
  params: number;
  flopsByOp: Record<string, number>;
}

const FREE_OPS = new Set([
  'Identity',
  'Concat',
  'Pad',
  'Reshape',
  'Flatten',
  'Squeeze',
  'Unsqueeze',
  'Transpose',
]);
/** How `flops` is counted, for model cards. */
export const FLOP_COUNTING =
  'FLOPs = 2 x MACs of Conv/Gemm/MatMul + kernel-window ops of pooling + 1 per output element of ' +
  'other compute ops (activations, Add); Concat/Pad/Identity/reshapes count 0. Batch 1, default input size.';

function product(dims: number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

function attrInts(node: NodeProto, name: string): number[] | undefined {
  const attr = node.attribute.find((a) => a.name === name);
  return attr?.ints?.map(int64ToNumber);
}

/** MACs and FLOPs of one node given every tensor's shape. */
function nodeCost(
  node: NodeProto,
  shapes: Map<string, number[]>,
  weights: Map<string, number[]>,
): { macs: number; flops: number } {
  const out = shapes.get(node.output[0]);
  if (!out || FREE_OPS.has(node.opType)) return { macs: 0, flops: 0 };
  const outElems = product(out);
  switch (node.opType) {
    case 'Conv': {
      const w = weights.get(node.input[1]) ?? shapes.get(node.input[1]);
      if (!w) return { macs: 0, flops: 0 };
      const macs = outElems * product(w.slice(1));
      return { macs, flops: 2 * macs };
    }
    case 'Gemm':
    case 'MatMul': {
      const a = shapes.get(node.input[0]) ?? weights.get(node.input[0]);
      if (!a) return { macs: 0, flops: 0 };
      const transA = node.attribute.some((x) => x.name === 'transA' && int64ToNumber(x.i) === 1);
      const k = transA ? a[a.length - 2] : a[a.length - 1];
      return { macs: outElems * k, flops: 2 * outElems * k };
    }
    case 'MaxPool':
    case 'AveragePool':
      return { macs: 0, flops: outElems * product(attrInts(node, 'kernel_shape') ?? [1]) };
    case 'GlobalAveragePool':
    case 'GlobalMaxPool':
      return { macs: 0, flops: product(shapes.get(node.input[0]) ?? out) };
    case 'Sum':
      return { macs: 0, flops: outElems * Math.max(1, node.input.length - 1) };
    default:
      return { macs: 0, flops: outElems };
  }
}

export async function measureModel(
  model: ModelProto,
  inputName: string,
  inputSize: [number, number],
  tensors: string[],
): Promise<Measurement> {
  const graph = model.graph;
  const known = new Set(graph.output.map((o) => o.name));
  // Untyped extra outputs: onnxruntime fills in their types from shape inference.
  const extra = graph.node.flatMap((n) => n.output).filter((name) => name !== '' && !known.has(name));
  const probe: ModelProto = {
    ...model,
    graph: { ...graph, output: [...graph.output, ...extra.map((name) => ({ name }))] },
  };
  // Unoptimised: shapes and FLOPs of the graph as written, not of onnxruntime's fused version.
  const session = await ort.InferenceSession.create(encodeModel(probe), {
    graphOptimizationLevel: 'disabled',
  });
  const [h, w] = inputSize;
  const input = new Float32Array(3 * h * w);
  for (let i = 0; i < input.length; i++) input[i] = ((i * 7919) % 1000) / 1000 - 0.5;
  const results = await session.run({ [inputName]: new ort.Tensor('float32', input, [1, 3, h, w]) });
  await session.release();
  const shapes = new Map(Object.entries(results).map(([name, t]) => [name, t.dims.map(Number)]));
  shapes.set(inputName, [1, 3, h, w]);
  const weights = new Map((graph.initializer ?? []).map((t) => [t.name, tensorDims(t)]));
  let macs = 0;
  let flops = 0;
  const flopsByOp: Record<string, number> = {};
  for (const node of graph.node) {
    const cost = nodeCost(node, shapes, weights);
    macs += cost.macs;
    flops += cost.flops;
    flopsByOp[node.opType] = (flopsByOp[node.opType] ?? 0) + cost.flops;
  }
  const params = (graph.initializer ?? [])
    .filter((t) => t.dataType === DataType.FLOAT)
    .reduce((sum, t) => sum + elementCount(t), 0);
  const stageShapes: Record<string, number[]> = {};
  for (const name of tensors) {
    const shape = shapes.get(name);
    if (!shape) throw new Error(`tensor ${name} was not produced by the model`);
    stageShapes[name] = shape;
  }
  return { shapes: stageShapes, flops, macs, params, flopsByOp };
}

/** Nominal stride: the power of two nearest input/output size (299 -> 35 is stride 8 with 'valid' borders). */
export function nominalStride(inputSize: number, outputSize: number): number {
  return 2 ** Math.round(Math.log2(inputSize / outputSize));
}
