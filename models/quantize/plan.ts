/**
 * Decides what a QDQ graph quantises. Weighted ops (Conv; Gemm/MatMul with a constant right operand)
 * get int8 weights; they and the ops onnxruntime runs on uint8 (Add, Concat, pools) get a
 * QuantizeLinear/DequantizeLinear pair on every activation input and output, so each one sits in a
 * DQ -> op -> Q group the runtime fuses into an integer kernel. A ReLU or Clip(0, max) right after a
 * weighted op or Add is dropped: quantising its output with zero point 0 saturates exactly like it.
 */
import { GraphProto, NodeProto, int64ToNumber } from '../onnx/proto';
import { readFloatTensor } from '../onnx/tensors';
import { consumers, initializerMap } from './tensors';

export interface WeightedNode {
  node: NodeProto;
  /** Output-channel axis of the weight initializer (per-channel scales). */
  axis: number;
}

export interface AbsorbedActivation {
  /** The ReLU/Clip node removed from the graph. */
  activation: NodeProto;
  /** The node whose output now feeds the quantiser directly. */
  producer: NodeProto;
}

export interface QdqPlan {
  weighted: WeightedNode[];
  /** Activation tensors that get a Q/DQ pair, in graph order (post-activation names for absorbed ones). */
  activations: string[];
  /** Absorbed activations by the tensor they produced. */
  absorbed: Map<string, AbsorbedActivation>;
  /** Tensors that reuse another tensor's parameters (MaxPool: keeps Q/DQ removable around it). */
  shared: Map<string, string>;
}

const DATA_OPS = new Set(['Add', 'Concat', 'MaxPool', 'AveragePool', 'GlobalAveragePool']);
const ABSORBING_OPS = new Set(['Conv', 'Gemm', 'MatMul', 'Add']);

export interface PlanOptions {
  /** Op types to quantise (default: all supported). */
  ops?: string[];
  /**
   * Nodes left in float (node names or output tensors). Where an integer kernel is slower than the
   * float one (measured: a stem conv on 3 input channels on AVX2), keeping it float also saves the
   * input's QuantizeLinear and layout transpose.
   */
  keepFloat?: string[];
}

function weightAxis(node: NodeProto, dims: number): number | undefined {
  if (node.opType === 'Conv') return 0;
  if (node.opType === 'Gemm') {
    const transB = node.attribute.find((a) => a.name === 'transB');
    return transB && int64ToNumber(transB.i) === 1 ? 0 : 1;
  }
  if (node.opType === 'MatMul' && dims === 2) return 1;
  return undefined;
}

/** Clip(x, 0, max) or Relu: the ops whose effect a zero-point-0 quantiser reproduces. */
function isZeroFloorActivation(node: NodeProto, graph: GraphProto): boolean {
  if (node.opType === 'Relu') return true;
  if (node.opType !== 'Clip') return false;
  const inits = initializerMap(graph);
  const min = node.input[1] ? inits.get(node.input[1]) : undefined;
  const max = node.input[2] ? inits.get(node.input[2]) : undefined;
  if (!min || readFloatTensor(min)[0] !== 0) return false;
  return !max || readFloatTensor(max)[0] > 0;
}

export function planQdq(graph: GraphProto, options: PlanOptions = {}): QdqPlan {
  const allowed = new Set(options.ops ?? ['Conv', 'Gemm', 'MatMul', ...DATA_OPS]);
  const inits = initializerMap(graph);
  const readers = consumers(graph);
  const outputs = new Set(graph.output.map((o) => o.name));
  const keepFloat = new Set(options.keepFloat ?? []);
  const known = new Set(graph.node.flatMap((n) => [n.name ?? '', ...n.output]));
  const unknown = [...keepFloat].filter((name) => !known.has(name));
  if (unknown.length > 0)
    throw new Error(`quantize: no node or tensor named ${unknown.join(', ')} to keep float`);
  const weighted: WeightedNode[] = [];
  const quantized: NodeProto[] = [];
  for (const node of graph.node) {
    if (!allowed.has(node.opType)) continue;
    if (keepFloat.has(node.name ?? '') || node.output.some((o) => keepFloat.has(o))) continue;
    if (node.opType === 'Conv' || node.opType === 'Gemm' || node.opType === 'MatMul') {
      const w = inits.get(node.input[1]);
      const axis = w ? weightAxis(node, w.dims.length) : undefined;
      if (!w || axis === undefined || inits.has(node.input[0])) continue;
      if (node.input[2] && !inits.has(node.input[2])) continue;
      weighted.push({ node, axis });
      quantized.push(node);
    } else if (DATA_OPS.has(node.opType) && node.input.every((name) => name !== '' && !inits.has(name))) {
      quantized.push(node);
    }
  }
  const absorbed = new Map<string, AbsorbedActivation>();
  const renamed = new Map<string, string>();
  for (const node of quantized) {
    if (!ABSORBING_OPS.has(node.opType)) continue;
    const out = node.output[0];
    const readersOfOut = readers.get(out) ?? [];
    const act = readersOfOut[0];
    if (readersOfOut.length !== 1 || outputs.has(out) || !isZeroFloorActivation(act, graph)) continue;
    absorbed.set(act.output[0], { activation: act, producer: node });
    renamed.set(out, act.output[0]);
  }
  const wanted = new Set<string>();
  const shared = new Map<string, string>();
  for (const node of quantized) {
    const dataInputs = weighted.some((w) => w.node === node) ? [node.input[0]] : node.input;
    for (const name of dataInputs) wanted.add(renamed.get(name) ?? name);
    const out = renamed.get(node.output[0]) ?? node.output[0];
    wanted.add(out);
    if (node.opType === 'MaxPool') shared.set(out, renamed.get(node.input[0]) ?? node.input[0]);
  }
  // Graph order: inputs first, then node outputs as produced.
  const order = [...graph.input.map((v) => v.name), ...graph.node.flatMap((n) => n.output)];
  const activations = order.filter((name) => wanted.has(name));
  return { weighted, activations, absorbed, shared };
}

/** The tensor whose parameters `name` uses (following MaxPool chains). */
export function paramsRoot(plan: QdqPlan, name: string): string {
  let root = name;
  for (let guard = 0; plan.shared.has(root) && guard < 1000; guard++) root = plan.shared.get(root) as string;
  return root;
}
