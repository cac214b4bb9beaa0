/**
 * Where each feature-map cell sits on the input image. A cell i of a stage with stride s is
 * commonly assumed centred at s * (i + 0.5) (the align_corners = false convention), which holds only
 * for symmetric "same" padding of the strided layers. Keras MobileNetV2 pads its stride-2 layers
 * at the bottom/right only (ZeroPadding2D ((0, 1), (0, 1))), so its cells sit at s * (i + 1) - 0.5:
 * 3.5 px right/down of the assumption at stride 8, 7.5 px at stride 16, enough to misplace the
 * anomaly map of a 224 px image against its ground truth. ResNets (pad 1 and 3 on all sides) sit
 * at s * i + 0.5, the other way. This module reads the actual placement off the ONNX graph.
 *
 * Coordinates are continuous pixels: pixel j spans [j, j + 1), its centre is j + 0.5. A tensor's
 * placement per axis is affine: cell i is centred at scale * i + offset.
 */
import { GraphProto, NodeProto, int64ToNumber } from '../../models/onnx/proto';
import { tensorDims } from '../../models/onnx/tensors';

export interface AxisPlacement {
  scale: number;
  offset: number;
}

export interface CellPlacement {
  x: AxisPlacement;
  y: AxisPlacement;
}

interface Placed {
  y: AxisPlacement & { size: number };
  x: AxisPlacement & { size: number };
}

/** Ops that keep the spatial layout of their first input (elementwise, normalisation, QDQ...). */
const SPATIAL_PASS = new Set([
  'Relu',
  'Clip',
  'LeakyRelu',
  'Sigmoid',
  'HardSigmoid',
  'HardSwish',
  'Tanh',
  'Identity',
  'BatchNormalization',
  'Add',
  'Sub',
  'Mul',
  'Div',
  'Concat',
  'QuantizeLinear',
  'DequantizeLinear',
  'Cast',
  'Dropout',
]);

const WINDOWED = new Set(['Conv', 'ConvInteger', 'QLinearConv', 'MaxPool', 'AveragePool']);

/**
 * Placement of each named tensor for an input of height x width, or undefined for a tensor whose
 * path from the input holds an op this module does not model (resize, reshape...): callers then
 * keep the align_corners = false assumption.
 */
export function cellPlacements(
  graph: GraphProto,
  inputName: string,
  height: number,
  width: number,
  tensors: string[],
): (CellPlacement | undefined)[] {
  const placed = new Map<string, Placed | null>();
  placed.set(inputName, {
    y: { scale: 1, offset: 0.5, size: height },
    x: { scale: 1, offset: 0.5, size: width },
  });
  const initializers = new Map((graph.initializer ?? []).map((t) => [t.name, t]));
  for (const node of graph.node) {
    const from = node.input.find((name) => name !== '' && placed.has(name));
    const source = from !== undefined ? placed.get(from)! : undefined;
    let out: Placed | null | undefined;
    if (source === undefined)
      out = undefined; // not downstream of the image (weights, constants)
    else if (source === null) out = null;
    else if (SPATIAL_PASS.has(node.opType)) out = source;
    else if (WINDOWED.has(node.opType)) out = windowed(node, source, initializers);
    else if (node.opType === 'Pad') out = padded(node, source, initializers);
    else out = null;
    if (out !== undefined) for (const o of node.output) if (o !== '') placed.set(o, out);
  }
  return tensors.map((t) => {
    const p = placed.get(t);
    return p
      ? { x: { scale: p.x.scale, offset: p.x.offset }, y: { scale: p.y.scale, offset: p.y.offset } }
      : undefined;
  });
}

function attr(node: NodeProto, name: string): number[] | string | undefined {
  const a = (node.attribute ?? []).find((x) => x.name === name);
  if (!a) return undefined;
  if (a.ints && a.ints.length > 0) return a.ints.map(int64ToNumber);
  if (a.s && a.s.length > 0) return Buffer.from(a.s).toString();
  if (a.i !== undefined && a.i !== null) return [int64ToNumber(a.i)];
  return undefined;
}

function windowed(
  node: NodeProto,
  src: Placed,
  initializers: Map<string, import('../../models/onnx/proto').TensorProto>,
): Placed | null {
  let kernel = attr(node, 'kernel_shape') as number[] | undefined;
  if (!kernel) {
    const w = initializers.get(node.input[node.opType === 'QLinearConv' ? 3 : 1]);
    if (!w) return null;
    kernel = tensorDims(w).slice(2);
  }
  if (kernel.length !== 2) return null;
  const strides = (attr(node, 'strides') as number[] | undefined) ?? [1, 1];
  const dilations = (attr(node, 'dilations') as number[] | undefined) ?? [1, 1];
  const pads = (attr(node, 'pads') as number[] | undefined) ?? [0, 0, 0, 0];
  const autoPad = (attr(node, 'auto_pad') as string | undefined) ?? 'NOTSET';
  const axis = (a: Placed['x'], i: 0 | 1): Placed['x'] => {
    const extent = (kernel![i] - 1) * dilations[i] + 1;
    let begin = pads[i];
    let end = pads[i + 2];
    if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
      const total = Math.max(0, (Math.ceil(a.size / strides[i]) - 1) * strides[i] + extent - a.size);
      begin = autoPad === 'SAME_UPPER' ? Math.floor(total / 2) : Math.ceil(total / 2);
      end = total - begin;
    } else if (autoPad === 'VALID') {
      begin = 0;
      end = 0;
    }
    return {
      scale: a.scale * strides[i],
      offset: a.offset + a.scale * ((extent - 1) / 2 - begin),
      size: Math.floor((a.size + begin + end - extent) / strides[i]) + 1,
    };
  };
  return { y: axis(src.y, 0), x: axis(src.x, 1) };
}

function padded(
  node: NodeProto,
  src: Placed,
  initializers: Map<string, import('../../models/onnx/proto').TensorProto>,
): Placed | null {
  let pads = attr(node, 'pads') as number[] | undefined;
  if (!pads && node.input[1]) {
    const t = initializers.get(node.input[1]);
    if (!t) return null;
    pads = (t.int64Data ?? []).map(int64ToNumber);
    if (pads.length === 0 && t.rawData) {
      const raw = Buffer.from(t.rawData);
      pads = Array.from({ length: raw.length / 8 }, (_, i) => Number(raw.readBigInt64LE(i * 8)));
    }
  }
  if (!pads || pads.length !== 8) return null;
  const axis = (a: Placed['x'], begin: number, end: number): Placed['x'] => ({
    scale: a.scale,
    offset: a.offset - a.scale * begin,
    size: a.size + begin + end,
  });
  return { y: axis(src.y, pads[2], pads[6]), x: axis(src.x, pads[3], pads[7]) };
}
