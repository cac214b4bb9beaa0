/** Building and reading TensorProto values (initializers). */
import { DataType, TensorProto, int64ToNumber } from './proto';

/** A float32 initializer stored as little-endian raw_data, the compact form ONNX tools expect. */
export function floatTensor(name: string, dims: number[], data: Float32Array): TensorProto {
  const expected = dims.reduce((a, b) => a * b, 1);
  if (data.length !== expected) {
    throw new Error(`tensor ${name}: ${data.length} values do not fill dims [${dims.join(', ')}]`);
  }
  const raw = Buffer.alloc(data.length * 4);
  for (let i = 0; i < data.length; i++) raw.writeFloatLE(data[i], i * 4);
  return { name, dims, dataType: DataType.FLOAT, rawData: raw };
}

export function int64Tensor(name: string, dims: number[], data: number[]): TensorProto {
  const raw = Buffer.alloc(data.length * 8);
  data.forEach((v, i) => raw.writeBigInt64LE(BigInt(v), i * 8));
  return { name, dims, dataType: DataType.INT64, rawData: raw };
}

export function tensorDims(tensor: TensorProto): number[] {
  return (tensor.dims ?? []).map(int64ToNumber);
}

export function elementCount(tensor: TensorProto): number {
  return tensorDims(tensor).reduce((a, b) => a * b, 1);
}

/** Reads a float32 initializer from raw_data or float_data. */
export function readFloatTensor(tensor: TensorProto): Float32Array {
  if (tensor.dataType !== DataType.FLOAT) throw new Error(`tensor ${tensor.name} is not float32`);
  const count = elementCount(tensor);
  if (tensor.rawData && tensor.rawData.length > 0) {
    const raw = Buffer.from(tensor.rawData.buffer, tensor.rawData.byteOffset, tensor.rawData.byteLength);
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) out[i] = raw.readFloatLE(i * 4);
    return out;
  }
  return Float32Array.from(tensor.floatData ?? []);
}
