/** Integer initializers (int8 weights, uint8 zero points, int32 biases) and graph lookups the passes share. */
import { GraphProto, NodeProto, TensorProto } from '../onnx/proto';

/** ONNX TensorProto.DataType codes used by quantized graphs (models/onnx/proto.ts has only FLOAT/INT64). */
export const QuantType = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6 } as const;

/** An integer initializer as little-endian raw_data. */
export function intTensor(
  name: string,
  dims: number[],
  dataType: number,
  data: Int8Array | Uint8Array | Int32Array,
): TensorProto {
  const expected = dims.reduce((a, b) => a * b, 1);
  if (data.length !== expected)
    throw new Error(`tensor ${name}: ${data.length} values do not fill dims [${dims.join(', ')}]`);
  const raw = Buffer.alloc(data.byteLength);
  if (data instanceof Int32Array) data.forEach((v, i) => raw.writeInt32LE(v, i * 4));
  else raw.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return { name, dims, dataType, rawData: raw };
}

/** Reads an int8/uint8/int32 initializer (raw_data or int32_data, as ONNX stores them). */
export function readIntTensor(tensor: TensorProto): Int32Array {
  const count = (tensor.dims ?? []).reduce<number>((a, d) => a * Number(d), 1);
  const out = new Int32Array(count);
  const raw = tensor.rawData && tensor.rawData.length > 0 ? Buffer.from(tensor.rawData) : undefined;
  for (let i = 0; i < count; i++) {
    if (!raw) out[i] = tensor.int32Data?.[i] ?? 0;
    else if (tensor.dataType === QuantType.INT8) out[i] = raw.readInt8(i);
    else if (tensor.dataType === QuantType.UINT8) out[i] = raw.readUInt8(i);
    else if (tensor.dataType === QuantType.INT32) out[i] = raw.readInt32LE(i * 4);
    else throw new Error(`tensor ${tensor.name}: data type ${tensor.dataType} is not an 8/32-bit integer`);
  }
  return out;
}

/** Nodes reading each tensor (a node reading a tensor twice is listed once). */
export function consumers(graph: GraphProto): Map<string, NodeProto[]> {
  const map = new Map<string, NodeProto[]>();
  for (const node of graph.node) {
    for (const name of new Set(node.input)) {
      if (name === '') continue;
      const list = map.get(name) ?? [];
      list.push(node);
      map.set(name, list);
    }
  }
  return map;
}

export function initializerMap(graph: GraphProto): Map<string, TensorProto> {
  return new Map((graph.initializer ?? []).map((t) => [t.name, t]));
}

/** Counts of op types, sorted by name (model cards, fusion checks). */
export function opCounts(graph: GraphProto): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const node of graph.node) {
    const key = node.domain ? `${node.domain}.${node.opType}` : node.opType;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return Object.fromEntries(Object.entries(counts).sort(([a], [b]) => a.localeCompare(b)));
}
