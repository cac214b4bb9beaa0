/**
 * Decides which layers fold into a neighbouring convolution: BatchNormalization into the conv before
 * it (scaled weights + bias), and ZeroPadding2D into the 'valid' conv after it (explicit pads). A
 * fold is only safe when the absorbed tensor is read by nobody else and is not a stage output.
 */
import { KerasLayer, consumerCounts } from './topology';

export interface FusionPlan {
  /** conv layer name -> the BatchNormalization layer folded into it */
  bnAfter: Map<string, KerasLayer>;
  /** conv layer name -> the ZeroPadding2D layer folded into its pads */
  padBefore: Map<string, KerasLayer>;
  /** layers that emit no node of their own */
  absorbed: Set<string>;
}

export const CONV_TYPES = new Set(['Conv2D', 'DepthwiseConv2D']);

export function planFusions(layers: KerasLayer[], stages: string[]): FusionPlan {
  const byName = new Map(layers.map((l) => [l.name, l]));
  const consumers = consumerCounts(layers, stages);
  const plan: FusionPlan = { bnAfter: new Map(), padBefore: new Map(), absorbed: new Set() };
  const soleReader = (name: string) => consumers.get(name) === 1 && !stages.includes(name);
  for (const layer of layers) {
    const source = layer.inputs.length === 1 ? byName.get(layer.inputs[0]) : undefined;
    if (!source) continue;
    if (
      layer.className === 'BatchNormalization' &&
      CONV_TYPES.has(source.className) &&
      soleReader(source.name) &&
      (source.config.activation ?? 'linear') === 'linear'
    ) {
      plan.bnAfter.set(source.name, layer);
      plan.absorbed.add(layer.name);
    }
    if (
      CONV_TYPES.has(layer.className) &&
      layer.config.padding === 'valid' &&
      source.className === 'ZeroPadding2D' &&
      soleReader(source.name)
    ) {
      plan.padBefore.set(layer.name, source);
      plan.absorbed.add(source.name);
    }
  }
  return plan;
}
