/** Decodes TF.js weight manifests (weightSpecs + concatenated shard bytes) into float32 arrays. */

export interface WeightSpec {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: { dtype: string; min?: number; scale?: number };
}

export interface Weight {
  shape: number[];
  data: Float32Array;
}

export type WeightMap = Map<string, Weight>;

function bytesPerElement(spec: WeightSpec): number {
  const q = spec.quantization?.dtype;
  if (q === 'uint8') return 1;
  if (q === 'uint16' || q === 'float16') return 2;
  if (q) throw new Error(`weight ${spec.name}: unsupported quantization dtype ${q}`);
  if (spec.dtype === 'float32') return 4;
  throw new Error(`weight ${spec.name}: unsupported dtype ${spec.dtype}`);
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

function decodeOne(spec: WeightSpec, bytes: Buffer): Float32Array {
  const count = spec.shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(count);
  const q = spec.quantization;
  if (!q) {
    for (let i = 0; i < count; i++) out[i] = bytes.readFloatLE(i * 4);
  } else if (q.dtype === 'float16') {
    for (let i = 0; i < count; i++) out[i] = halfToFloat(bytes.readUInt16LE(i * 2));
  } else {
    if (q.min === undefined || q.scale === undefined)
      throw new Error(`weight ${spec.name}: quantization lacks min/scale`);
    const read = q.dtype === 'uint8' ? (i: number) => bytes[i] : (i: number) => bytes.readUInt16LE(i * 2);
    // Same expression and order as tfjs-core's decodeWeights, so both sides get identical floats.
    for (let i = 0; i < count; i++) out[i] = read(i) * q.scale + q.min;
  }
  return out;
}

/** Weights are stored back to back in manifest order; sizes must add up exactly. */
export function decodeWeights(specs: WeightSpec[], data: Uint8Array): WeightMap {
  const buffer = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const weights: WeightMap = new Map();
  let offset = 0;
  for (const spec of specs) {
    const size = spec.shape.reduce((a, b) => a * b, 1) * bytesPerElement(spec);
    if (offset + size > buffer.length) throw new Error(`weight data ends before weight ${spec.name}`);
    weights.set(spec.name, {
      shape: [...spec.shape],
      data: decodeOne(spec, buffer.subarray(offset, offset + size)),
    });
    offset += size;
  }
  if (offset !== buffer.length)
    throw new Error(`weight data has ${buffer.length - offset} bytes beyond the manifest`);
  return weights;
}
