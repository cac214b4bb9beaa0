/** Cuts channels out of initializers and rewires the nodes of a channel group. */
import { intAttr } from '../onnx/builder';
import { NodeProto, TensorProto } from '../onnx/proto';
import { floatTensor, readFloatTensor, tensorDims } from '../onnx/tensors';
import { ChannelGroup } from './channel-groups';

/** Keeps the listed indices along `axis` of a float initializer. */
export function sliceAxis(tensor: TensorProto, axis: number, keep: number[]): TensorProto {
  const dims = tensorDims(tensor);
  const data = readFloatTensor(tensor);
  const outer = dims.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const out = new Float32Array(outer * keep.length * inner);
  for (let o = 0; o < outer; o++)
    keep.forEach((c, k) => {
      const src = (o * dims[axis] + c) * inner;
      out.set(data.subarray(src, src + inner), (o * keep.length + k) * inner);
    });
  const newDims = [...dims];
  newDims[axis] = keep.length;
  return floatTensor(tensor.name, newDims, out);
}

/**
 * Replacement initializers (by name) and nodes (by identity) that remove all but `keep` channels
 * of the group. Node and tensor names stay the same.
 */
export function pruneGroup(
  g: ChannelGroup,
  keep: number[],
  inits: Map<string, TensorProto>,
  means?: Map<string, Float64Array>,
): { tensors: TensorProto[]; nodes: Map<NodeProto, NodeProto> } {
  const tensors: TensorProto[] = [];
  const nodes = new Map<NodeProto, NodeProto>();
  const cut = (name: string | undefined, axis: number) => {
    if (name) tensors.push(sliceAxis(inits.get(name) as TensorProto, axis, keep));
  };
  cut(g.producer.input[1], 0);
  cut(g.producer.input[2], 0);
  for (const dw of g.depthwise) {
    cut(dw.input[1], 0);
    cut(dw.input[2], 0);
    const attribute = dw.attribute.map((a) => (a.name === 'group' ? intAttr('group', keep.length) : a));
    nodes.set(dw, { ...dw, attribute });
  }
  for (const reader of g.readers) {
    const mean = means?.get(reader.input[0]);
    if (mean && reader.input[2]) tensors.push(compensatedBias(reader, keep, mean, inits));
    cut(reader.input[1], 1);
  }
  return { tensors, nodes };
}

/**
 * A reader's bias with the removed input channels' average contribution folded in:
 * b[o] += sum over removed c and kernel taps of W[o, c, tap] * mean[c]. Exact for 1x1 readers when a
 * removed channel is constant; it keeps the output's mean where dropping the channel would shift it.
 */
export function compensatedBias(
  reader: NodeProto,
  keep: number[],
  mean: Float64Array,
  inits: Map<string, TensorProto>,
): TensorProto {
  const wTensor = inits.get(reader.input[1]) as TensorProto;
  const bTensor = inits.get(reader.input[2]) as TensorProto;
  const [outC, inC] = tensorDims(wTensor);
  const taps = readFloatTensor(wTensor).length / (outC * inC);
  const w = readFloatTensor(wTensor);
  const bias = Float64Array.from(readFloatTensor(bTensor));
  const kept = new Set(keep);
  for (let c = 0; c < inC; c++) {
    if (kept.has(c)) continue;
    for (let o = 0; o < outC; o++) {
      let sum = 0;
      for (let t = 0; t < taps; t++) sum += w[(o * inC + c) * taps + t];
      bias[o] += sum * mean[c];
    }
  }
  return floatTensor(bTensor.name, [outC], Float32Array.from(bias));
}
