/** Filter ranking for pruning: the L1 norm of each output channel's weights (BN already folded in). */
import { readFloatTensor, tensorDims } from '../onnx/tensors';
import { TensorProto } from '../onnx/proto';

export function filterL1(weight: TensorProto): Float64Array {
  const dims = tensorDims(weight);
  const w = readFloatTensor(weight);
  const per = w.length / dims[0];
  const norms = new Float64Array(dims[0]);
  for (let o = 0; o < dims[0]; o++) for (let i = 0; i < per; i++) norms[o] += Math.abs(w[o * per + i]);
  return norms;
}

/**
 * How many of `channels` stay. align 1: all but floor(ratio x C), at least one. align N > 1: (1 - ratio)
 * x C rounded to the nearest multiple of N (a tie keeps fewer), at least N, at most C: onnxruntime's
 * integer kernels on AVX2 run channel counts off a multiple of 16 slower than the next multiple up
 * (measured: a depthwise conv on 108 channels 229 us against 175 us on 144).
 */
export function keptCount(channels: number, ratio: number, align = 1): number {
  if (!(ratio >= 0 && ratio < 1)) throw new Error(`pruning ratio must be in [0, 1), got ${ratio}`);
  if (!(Number.isInteger(align) && align >= 1))
    throw new Error(`channel alignment must be an integer >= 1, got ${align}`);
  if (align === 1) return Math.max(1, channels - Math.floor(ratio * channels));
  const rounded = Math.ceil((channels * (1 - ratio)) / align - 0.5) * align;
  return Math.min(channels, Math.max(Math.min(align, channels), rounded));
}

/** Channels to keep (ascending): the keptCount(C, ratio, align) of highest norm. */
export function keepChannels(norms: Float64Array, ratio: number, align = 1): number[] {
  const remove = norms.length - keptCount(norms.length, ratio, align);
  // Ties broken by index, so the choice is reproducible.
  const order = Array.from(norms.keys()).sort((a, b) => norms[a] - norms[b] || a - b);
  const dropped = new Set(order.slice(0, remove));
  return Array.from(norms.keys()).filter((c) => !dropped.has(c));
}
