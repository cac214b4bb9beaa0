/**
 * Rewrites a float graph into QDQ form following a QdqPlan and calibrated ranges. A quantised tensor
 * T keeps its name as the DequantizeLinear output (its producer now writes `T/f32`), so consumers and
 * graph outputs - the engine's stage tensors - are unchanged and stay float32.
 */
import { intAttr } from '../onnx/builder';
import { GraphProto, ModelProto, NodeProto, TensorProto, int64ToNumber } from '../onnx/proto';
import { pruneGraph } from '../onnx/prune';
import { floatTensor, readFloatTensor, tensorDims } from '../onnx/tensors';
import { AffineParams, activationParams, quantizeBias, quantizeWeightsPerChannel } from './qparams';
import { QdqPlan, paramsRoot } from './plan';
import { Range } from './ranges';
import { QuantType, initializerMap, intTensor } from './tensors';

export type ReduceRange = 'none' | 'gemm' | 'all';

export interface QdqOptions {
  /**
   * Which convolutions get 7-bit weights ([-63, 63]). onnxruntime's u8 x s8 GEMM kernels on CPUs
   * without VNNI (AVX2) add pairs of u8*s8 products in int16 and saturate with full 8-bit weights;
   * its depthwise kernel accumulates in int32 and does not. 'gemm' (default) narrows only the
   * GEMM-lowered ones (regular convs, Gemm, MatMul); measured on MobileNetV2 it is as accurate as
   * 8-bit everywhere, while 8-bit everywhere ('none') loses ~3x accuracy on AVX2 machines.
   */
  reduceRange?: ReduceRange;
  /**
   * Storage of the symmetric weights: int8 (zero point 0) or uint8 (same grid shifted by 128, zero
   * point 128), which selects onnxruntime's u8 x u8 kernels - slower on VNNI CPUs, exact on AVX2.
   */
  weightType?: 'int8' | 'uint8';
}

export interface QdqResult {
  model: ModelProto;
  /** uint8 parameters of each quantised activation tensor. */
  params: Map<string, AffineParams>;
}

const FLOAT_SUFFIX = '/f32';

function qNode(op: 'QuantizeLinear' | 'DequantizeLinear', inputs: string[], output: string, axis?: number) {
  // Node names must differ from the producer's, which is often named after the same tensor.
  const name = `${output}/${op === 'QuantizeLinear' ? 'Q' : 'DQ'}`;
  const node: NodeProto = { name, opType: op, input: inputs, output: [output], attribute: [] };
  if (axis !== undefined) node.attribute = [intAttr('axis', axis)];
  return node;
}

/** A grouped conv with one input channel per group (MobileNet's depthwise 3x3). */
function isDepthwise(node: NodeProto, weightDims: number[]): boolean {
  const group = node.attribute.find((a) => a.name === 'group');
  return node.opType === 'Conv' && !!group && int64ToNumber(group.i) > 1 && weightDims[1] === 1;
}

export function applyQdq(
  model: ModelProto,
  plan: QdqPlan,
  ranges: Map<string, Range>,
  options: QdqOptions = {},
): QdqResult {
  const graph = model.graph;
  const inits = initializerMap(graph);
  const graphInputs = new Set(graph.input.map((v) => v.name));
  const taken = new Set([...inits.keys(), ...graphInputs, ...graph.node.flatMap((n) => n.output)]);
  const claim = (name: string) => {
    if (taken.has(name)) throw new Error(`quantize: tensor name ${name} already exists in the graph`);
    taken.add(name);
    return name;
  };
  const newInits: TensorProto[] = [];
  const params = new Map<string, AffineParams>();
  const paramNames = new Map<string, { scale: string; zp: string }>();

  // One scale/zero-point initializer pair per parameter root (MaxPool outputs share their input's).
  const paramsOf = (tensor: string) => {
    const root = paramsRoot(plan, tensor);
    let names = paramNames.get(root);
    if (!names) {
      const range = ranges.get(root);
      if (!range) throw new Error(`quantize: no calibrated range for tensor ${root}`);
      const p = activationParams(range.min, range.max);
      params.set(root, p);
      names = { scale: claim(`${root}/scale`), zp: claim(`${root}/zero_point`) };
      newInits.push(floatTensor(names.scale, [], Float32Array.of(p.scale)));
      newInits.push(intTensor(names.zp, [], QuantType.UINT8, Uint8Array.of(p.zeroPoint)));
      paramNames.set(root, names);
    }
    params.set(tensor, params.get(root) as AffineParams);
    return names;
  };
  /** Q/DQ from `source` into `target`, with the parameters calibrated for `tensor`. */
  const qdqPair = (source: string, target: string, tensor = target): NodeProto[] => {
    const { scale, zp } = paramsOf(tensor);
    if (target !== tensor) params.set(target, params.get(tensor) as AffineParams);
    const q = claim(`${target}/q`);
    return [
      qNode('QuantizeLinear', [source, scale, zp], q),
      qNode('DequantizeLinear', [q, scale, zp], target),
    ];
  };

  const quantizedSet = new Set(plan.activations);
  const absorbedActs = new Set([...plan.absorbed.values()].map((a) => a.activation));
  // Pre-activation tensor -> the post-activation name its quantiser now produces.
  const absorbedTarget = new Map([...plan.absorbed].map(([t, a]) => [a.producer.output[0], t]));
  // Producer output renames: T -> T/f32, or (absorbed) pre-activation -> T/f32.
  const outputRename = new Map<string, string>();
  for (const name of plan.activations) {
    if (graphInputs.has(name)) continue;
    const absorbed = plan.absorbed.get(name);
    outputRename.set(absorbed ? absorbed.producer.output[0] : name, claim(`${name}${FLOAT_SUFFIX}`));
  }
  // Graph inputs cannot be renamed: their consumers read `<input>/dq` instead.
  const inputRename = new Map<string, string>();
  const nodes: NodeProto[] = [];
  for (const name of plan.activations) {
    if (!graphInputs.has(name)) continue;
    const dq = claim(`${name}/dq`);
    inputRename.set(name, dq);
    nodes.push(...qdqPair(name, dq, name));
  }

  const weightedByNode = new Map(plan.weighted.map((w) => [w.node, w]));
  const reduce = options.reduceRange ?? 'gemm';
  const qmaxFor = (node: NodeProto, dims: number[]) =>
    reduce === 'all' || (reduce === 'gemm' && !isDepthwise(node, dims)) ? 63 : 127;
  for (const node of graph.node) {
    if (absorbedActs.has(node)) continue;
    let inputs = node.input.map((name) => inputRename.get(name) ?? name);
    const weighted = weightedByNode.get(node);
    if (weighted) inputs = quantizeWeights(node, inputs, weighted.axis);
    const outputs = node.output.map((name) => outputRename.get(name) ?? name);
    nodes.push({ ...node, input: inputs, output: outputs });
    for (const original of node.output) {
      const renamed = outputRename.get(original);
      if (!renamed) continue;
      const target = absorbedTarget.get(original) ?? original;
      if (!quantizedSet.has(target)) throw new Error(`internal: ${target} renamed but not quantised`);
      nodes.push(...qdqPair(renamed, target));
    }
  }

  function quantizeWeights(node: NodeProto, inputs: string[], axis: number): string[] {
    const wInit = inits.get(node.input[1]) as TensorProto;
    const dims = tensorDims(wInit);
    const q = quantizeWeightsPerChannel(readFloatTensor(wInit), dims, axis, qmaxFor(node, dims));
    const base = `${node.name || node.output[0]}`;
    const wq = claim(`${base}/W_quantized`);
    const ws = claim(`${base}/W_scale`);
    const wz = claim(`${base}/W_zero_point`);
    const wdq = claim(`${base}/W_dq`);
    if (options.weightType === 'uint8') {
      newInits.push(
        intTensor(
          wq,
          dims,
          QuantType.UINT8,
          Uint8Array.from(q.values, (v) => v + 128),
        ),
      );
      newInits.push(
        intTensor(wz, [q.scales.length], QuantType.UINT8, new Uint8Array(q.scales.length).fill(128)),
      );
    } else {
      newInits.push(intTensor(wq, dims, QuantType.INT8, q.values));
      newInits.push(intTensor(wz, [q.scales.length], QuantType.INT8, new Int8Array(q.scales.length)));
    }
    newInits.push(floatTensor(ws, [q.scales.length], q.scales));
    nodes.push(qNode('DequantizeLinear', [wq, ws, wz], wdq, axis));
    const out = [...inputs];
    out[1] = wdq;
    if (node.input[2]) {
      const bInit = inits.get(node.input[2]) as TensorProto;
      const xParams = params.get(inputs[0]);
      if (!xParams) throw new Error(`internal: input ${inputs[0]} of ${node.name} is not quantised`);
      const b = quantizeBias(readFloatTensor(bInit), xParams.scale, q.scales);
      const bq = claim(`${base}/B_quantized`);
      const bs = claim(`${base}/B_scale`);
      const bz = claim(`${base}/B_zero_point`);
      const bdq = claim(`${base}/B_dq`);
      newInits.push(intTensor(bq, [b.values.length], QuantType.INT32, b.values));
      newInits.push(floatTensor(bs, [b.scales.length], b.scales));
      newInits.push(intTensor(bz, [b.values.length], QuantType.INT32, new Int32Array(b.values.length)));
      nodes.push(qNode('DequantizeLinear', [bq, bs, bz], bdq, 0));
      out[2] = bdq;
    }
    return out;
  }

  const rewritten: GraphProto = {
    ...graph,
    node: nodes,
    initializer: [...(graph.initializer ?? []), ...newInits],
    valueInfo: (graph.valueInfo ?? []).filter((v) => !outputRename.has(v.name)),
  };
  // Float weights, biases and Clip bounds nobody reads any more are dropped.
  return { model: { ...model, graph: pruneGraph(rewritten, rewritten.output) }, params };
}
