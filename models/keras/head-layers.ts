/**
 * Converters for classifier-head layers (Flatten, Dense, Dropout, GlobalAveragePooling2D). The
 * backbones never use them - stages stop inside the frozen convolutional part - but the full-depth
 * timing baselines (models/full-depth.ts) run the whole network up to its softmax.
 */
import { intAttr, intsAttr } from '../onnx/builder';
import { ConvertContext, TensorInfo } from './context';
import { KerasLayer } from './topology';

type LayerConverter = (layer: KerasLayer, ctx: ConvertContext) => TensorInfo;

/** Keras flattens NHWC; transpose first so a Dense kernel sees the same element order. */
const flatten: LayerConverter = (layer, ctx) => {
  const input = ctx.input(layer);
  const b = ctx.builder;
  b.addNode('Transpose', [input.tensor], [`${layer.name}/nhwc`], [intsAttr('perm', [0, 2, 3, 1])]);
  b.addNode('Flatten', [`${layer.name}/nhwc`], [layer.name], [intAttr('axis', 1)]);
  // Width is channels x H x W, unknown here for dynamic sizes; Dense checks against its kernel.
  return { tensor: layer.name, channels: 0 };
};

const globalAveragePooling2D: LayerConverter = (layer, ctx) => {
  const input = ctx.input(layer);
  const b = ctx.builder;
  b.addNode('GlobalAveragePool', [input.tensor], [`${layer.name}/pooled`]);
  b.addNode('Flatten', [`${layer.name}/pooled`], [layer.name], [intAttr('axis', 1)]);
  return { tensor: layer.name, channels: input.channels };
};

/** Inference: dropout is the identity. */
const dropout: LayerConverter = (layer, ctx) => {
  const input = ctx.input(layer);
  ctx.builder.addNode('Identity', [input.tensor], [layer.name]);
  return { tensor: layer.name, channels: input.channels };
};

const dense: LayerConverter = (layer, ctx) => {
  const input = ctx.input(layer);
  const kernel = ctx.weight(layer, 'kernel');
  const [inDim, units] = kernel.shape;
  if (kernel.shape.length !== 2 || (input.channels > 0 && input.channels !== inDim))
    throw new Error(`layer ${layer.name}: kernel [${kernel.shape}] does not fit ${input.channels} inputs`);
  const b = ctx.builder;
  // Keras kernel is [in, out]: Gemm's B without transposition.
  const w = b.addFloat(`${layer.name}/W`, [inDim, units], kernel.data);
  const bias =
    layer.config.use_bias === false
      ? b.addFloat(`${layer.name}/B`, [units], new Float32Array(units))
      : b.addFloat(`${layer.name}/B`, [units], ctx.weight(layer, 'bias').data);
  const activation = String(layer.config.activation ?? 'linear');
  const gemmOut = activation === 'linear' ? layer.name : `${layer.name}/preact`;
  b.addNode('Gemm', [input.tensor, w, bias], [gemmOut], [], `${layer.name}/gemm`);
  if (activation === 'relu') b.addNode('Relu', [gemmOut], [layer.name]);
  else if (activation === 'softmax') b.addNode('Softmax', [gemmOut], [layer.name], [intAttr('axis', 1)]);
  else if (activation !== 'linear')
    throw new Error(`layer ${layer.name}: unsupported Dense activation "${activation}"`);
  return { tensor: layer.name, channels: units };
};

export const HEAD_LAYER_CONVERTERS: Record<string, LayerConverter> = {
  Flatten: flatten,
  GlobalAveragePooling2D: globalAveragePooling2D,
  Dropout: dropout,
  Dense: dense,
};
