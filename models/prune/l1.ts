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

/** Channels to keep (ascending) after removing floor(ratio x C) lowest-norm ones; at least one stays. */
export function keepChannels(norms: Float64Array, ratio: number): number[] {
  if (!(ratio >= 0 && ratio < 1)) throw new Error(`pruning ratio must be in [0, 1), got ${ratio}`);
  const remove = Math.min(Math.floor(ratio * norms.length), norms.length - 1);
  // Ties broken by index, so the choice is reproducible.
  const order = Array.from(norms.keys()).sort((a, b) => norms[a] - norms[b] || a - b);
  const dropped = new Set(order.slice(0, remove));
  return Array.from(norms.keys()).filter((c) => !dropped.has(c));
}
