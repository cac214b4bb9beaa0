/**
 * Which convolution output channels can be removed, and what else must change with them. Starting
 * from a regular conv's output, the channel set flows through per-channel ops (activations, pools)
 * and depthwise convs (which lose the same channels) until it reaches regular convs, which lose
 * those input channels. Anything else on the way - a residual Add, a Concat, a Gemm - ties the
 * channels to another tensor, so that conv is left alone. In MobileNetV2 this frees the expand convs
 * (1x1 expand -> depthwise -> 1x1 project) and blocks the project convs that feed residual Adds.
 */
import { GraphProto, NodeProto, TensorProto, int64ToNumber } from '../onnx/proto';
import { tensorDims } from '../onnx/tensors';
import { consumers, initializerMap } from '../quantize/tensors';

export interface ChannelGroup {
  /** The regular conv whose output channels are pruned (also its name in reports). */
  producer: NodeProto;
  channels: number;
  /** Depthwise convs carrying the same channels (weights, bias and group shrink with them). */
  depthwise: NodeProto[];
  /** Regular convs reading the channels (their weights lose those input channels). */
  readers: NodeProto[];
  /** Tensors carrying the channel set; graph outputs among them get narrower. */
  tensors: string[];
  /** Graph outputs among `tensors`. */
  outputs: string[];
  /** Why the channels cannot be pruned, if so. */
  blocked?: string;
}

const PER_CHANNEL_OPS = new Set([
  'Relu',
  'Clip',
  'LeakyRelu',
  'Sigmoid',
  'Tanh',
  'Identity',
  'MaxPool',
  'AveragePool',
]);

function group(node: NodeProto): number {
  const attr = node.attribute.find((a) => a.name === 'group');
  return attr ? int64ToNumber(attr.i) : 1;
}

export function nodeLabel(node: NodeProto): string {
  return node.name || node.output[0];
}

export function channelGroups(graph: GraphProto): ChannelGroup[] {
  const inits = initializerMap(graph);
  const readers = consumers(graph);
  const graphOutputs = new Set(graph.output.map((o) => o.name));
  // Weights read by more than one node cannot be cut for one of them.
  const ownWeights = (node: NodeProto) =>
    node.input
      .slice(1)
      .filter((n) => n !== '')
      .every((n) => inits.has(n) && (readers.get(n) ?? []).length === 1);
  const groups: ChannelGroup[] = [];
  for (const producer of graph.node) {
    if (producer.opType !== 'Conv' || group(producer) !== 1 || !inits.has(producer.input[1])) continue;
    const channels = tensorDims(inits.get(producer.input[1]) as TensorProto)[0];
    const g: ChannelGroup = { producer, channels, depthwise: [], readers: [], tensors: [], outputs: [] };
    const block = (why: string) => (g.blocked ??= why);
    if (!ownWeights(producer)) block('its weights are shared');
    const stack = [producer.output[0]];
    while (stack.length > 0 && !g.blocked) {
      const tensor = stack.pop() as string;
      if (g.tensors.includes(tensor)) continue;
      g.tensors.push(tensor);
      if (graphOutputs.has(tensor)) g.outputs.push(tensor);
      for (const node of readers.get(tensor) ?? []) {
        const dataOnly = node.input.indexOf(tensor) === 0 && node.input.lastIndexOf(tensor) === 0;
        const isConv = node.opType === 'Conv' && inits.has(node.input[1]) && ownWeights(node);
        if (!(PER_CHANNEL_OPS.has(node.opType) || isConv)) {
          block(`${node.opType} ${nodeLabel(node)} ties the channels to another tensor`);
        } else if (!dataOnly) {
          block(`${node.opType} ${nodeLabel(node)} reads the channels as a parameter`);
        } else if (!isConv) {
          stack.push(node.output[0]);
        } else {
          const w = tensorDims(inits.get(node.input[1]) as TensorProto);
          if (group(node) === 1) g.readers.push(node);
          else if (group(node) === channels && w[0] === channels && w[1] === 1) {
            g.depthwise.push(node);
            stack.push(node.output[0]);
          } else block(`grouped conv ${nodeLabel(node)} mixes channels`);
        }
      }
    }
    if (!g.blocked && g.readers.length === 0 && g.outputs.length === 0) block('nothing reads its channels');
    groups.push(g);
  }
  return groups;
}
