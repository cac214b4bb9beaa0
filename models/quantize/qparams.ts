/**
 * Quantisation arithmetic: affine uint8 parameters for activations, symmetric per-channel int8 for
 * weights, int32 for biases (scale = input scale x weight scale, so integer kernels add them directly).
 * Rounding is half-to-even, as ONNX QuantizeLinear rounds.
 */

export interface AffineParams {
  /** float32-representable scale (what the graph stores). */
  scale: number;
  zeroPoint: number;
}

/** Round half to even. */
export function rint(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function clamp(x: number, lo: number, hi: number): number {
  return x < lo ? lo : x > hi ? hi : x;
}

/**
 * uint8 parameters covering [min, max]; the range is widened to contain 0 so zero (padding, ReLU
 * output) is exact. A range that is all zero gets scale 1.
 */
export function activationParams(min: number, max: number, qmin = 0, qmax = 255): AffineParams {
  const lo = Math.min(0, min);
  const hi = Math.max(0, max);
  if (!(hi - lo > 0) || !Number.isFinite(hi - lo)) return { scale: 1, zeroPoint: qmin < 0 ? 0 : qmin };
  const scale = Math.fround((hi - lo) / (qmax - qmin));
  return { scale, zeroPoint: clamp(rint(qmin - lo / scale), qmin, qmax) };
}

export function quantizeValue(x: number, p: AffineParams, qmin = 0, qmax = 255): number {
  return clamp(rint(x / p.scale) + p.zeroPoint, qmin, qmax);
}

export interface ChannelQuantized {
  values: Int8Array;
  /** One float32 scale per channel along `axis`. */
  scales: Float32Array;
}

/** Layout of a tensor split at `axis`: outer x channels x inner, row-major. */
export function axisLayout(dims: number[], axis: number): { outer: number; channels: number; inner: number } {
  const prod = (d: number[]) => d.reduce((a, b) => a * b, 1);
  return { outer: prod(dims.slice(0, axis)), channels: dims[axis], inner: prod(dims.slice(axis + 1)) };
}

/**
 * Symmetric int8 per channel: scale_c = max|w_c| / qmax, q = round(w / scale_c) in [-qmax, qmax]
 * (qmax 127; 63 with reduceRange, which keeps u8 x s8 pair sums inside int16 on CPUs without VNNI).
 */
export function quantizeWeightsPerChannel(
  w: Float32Array,
  dims: number[],
  axis: number,
  qmax = 127,
): ChannelQuantized {
  const { outer, channels, inner } = axisLayout(dims, axis);
  const maxAbs = new Float64Array(channels);
  for (let o = 0; o < outer; o++)
    for (let c = 0; c < channels; c++)
      for (let i = 0, base = (o * channels + c) * inner; i < inner; i++)
        maxAbs[c] = Math.max(maxAbs[c], Math.abs(w[base + i]));
  const scales = new Float32Array(channels);
  for (let c = 0; c < channels; c++) scales[c] = maxAbs[c] > 0 ? maxAbs[c] / qmax : 1;
  const values = new Int8Array(w.length);
  for (let o = 0; o < outer; o++)
    for (let c = 0; c < channels; c++)
      for (let i = 0, base = (o * channels + c) * inner; i < inner; i++)
        values[base + i] = clamp(rint(w[base + i] / scales[c]), -qmax, qmax);
  return { values, scales };
}

/** int32 bias with scale inputScale x weightScale[c] and zero point 0. */
export function quantizeBias(
  bias: Float32Array,
  inputScale: number,
  weightScales: Float32Array,
): { values: Int32Array; scales: Float32Array } {
  const scales = new Float32Array(bias.length);
  const values = new Int32Array(bias.length);
  for (let c = 0; c < bias.length; c++) {
    scales[c] = inputScale * weightScales[c];
    values[c] = clamp(rint(bias[c] / scales[c]), -2147483647, 2147483647);
  }
  return { values, scales };
}
