/**
 * One converter per Keras layer type. Keras tensors are NHWC, the ONNX graph is NCHW: kernels are
 * transposed, channel axes remapped. TF's 'same' padding puts the odd extra pixel at the bottom/right,
 * which is ONNX's SAME_UPPER for any input size, so graphs keep dynamic spatial dims.
 */
import { floatAttr, intAttr, intsAttr, stringAttr } from '../onnx/builder';
import { AttributeProto } from '../onnx/proto';
import { ConvertContext, TensorInfo } from './context';
import { HEAD_LAYER_CONVERTERS } from './head-layers';
import { KerasLayer } from './topology';

type LayerConverter = (layer: KerasLayer, ctx: ConvertContext) => TensorInfo;

function pair(value: unknown, what: string, layer: KerasLayer): [number, number] {
  if (typeof value === 'number') return [value, value];
  if (Array.isArray(value) && value.length === 2 && value.every((v) => typeof v === 'number')) {
    return [value[0], value[1]];
  }
  throw new Error(`layer ${layer.name}: unsupported ${what} ${JSON.stringify(value)}`);
}

function requireChannelsLast(layer: KerasLayer): void {
  const format = layer.config.data_format;
  if (format !== undefined && format !== null && format !== 'channels_last') {
    throw new Error(
      `layer ${layer.name}: data_format ${String(format)} is not supported (channels_last only)`,
    );
  }
}

/** Keras channel axis of a rank-4 NHWC tensor -> NCHW axis. */
function nchwAxis(axis: unknown, layer: KerasLayer): number {
  const map: Record<string, number> = { '-1': 1, '3': 1, '1': 2, '-3': 2, '2': 3, '-2': 3 };
  const mapped = map[String(axis)];
  if (mapped === undefined) throw new Error(`layer ${layer.name}: unsupported axis ${String(axis)}`);
  return mapped;
}

/** Pads and auto_pad attributes; explicit pads are [top, left, bottom, right]. */
function paddingAttrs(layer: KerasLayer, explicit: number[] = [0, 0, 0, 0]): AttributeProto[] {
  const padding = layer.config.padding ?? 'valid';
  if (padding === 'same') return [stringAttr('auto_pad', 'SAME_UPPER')];
  if (padding === 'valid') return explicit.some((p) => p !== 0) ? [intsAttr('pads', explicit)] : [];
  throw new Error(`layer ${layer.name}: padding "${String(padding)}" is not supported`);
}

/** Emits `activation` from `input` into the tensor `output`; 'linear' needs a node only for a name. */
function emitActivation(
  ctx: ConvertContext,
  layer: KerasLayer,
  activation: unknown,
  input: string,
  output: string,
) {
  const b = ctx.builder;
  switch (activation ?? 'linear') {
    case 'linear':
      b.addNode('Identity', [input], [output]);
      return;
    case 'relu':
      b.addNode('Relu', [input], [output]);
      return;
    case 'relu6':
      b.addNode('Clip', [input, ctx.scalar(0), ctx.scalar(6)], [output]);
      return;
    case 'sigmoid':
      b.addNode('Sigmoid', [input], [output]);
      return;
    case 'tanh':
      b.addNode('Tanh', [input], [output]);
      return;
    case 'softmax':
      b.addNode('Softmax', [input], [output], [intAttr('axis', 1)]);
      return;
    default:
      throw new Error(`layer ${layer.name}: unsupported activation "${String(activation)}"`);
  }
}

/** Per-channel y = x * scale + shift for an inference-mode BatchNormalization. */
function batchNormAffine(
  ctx: ConvertContext,
  bn: KerasLayer,
  channels: number,
): { scale: Float64Array; shift: Float64Array } {
  const axis = bn.config.axis;
  const axisOk =
    axis === -1 ||
    axis === 3 ||
    (Array.isArray(axis) && axis.length === 1 && (axis[0] === -1 || axis[0] === 3));
  if (!axisOk)
    throw new Error(
      `layer ${bn.name}: BatchNormalization over axis ${JSON.stringify(axis)} is not supported`,
    );
  const eps = typeof bn.config.epsilon === 'number' ? bn.config.epsilon : 1e-3;
  const gamma = bn.config.scale === false ? undefined : ctx.weight(bn, 'gamma').data;
  const beta = bn.config.center === false ? undefined : ctx.weight(bn, 'beta').data;
  const mean = ctx.weight(bn, 'moving_mean').data;
  const variance = ctx.weight(bn, 'moving_variance').data;
  if (mean.length !== channels)
    throw new Error(`layer ${bn.name}: ${mean.length} statistics for ${channels} channels`);
  const scale = new Float64Array(channels);
  const shift = new Float64Array(channels);
  for (let c = 0; c < channels; c++) {
    scale[c] = (gamma ? gamma[c] : 1) / Math.sqrt(variance[c] + eps);
    shift[c] = (beta ? beta[c] : 0) - mean[c] * scale[c];
  }
  return { scale, shift };
}

/** Conv2D and DepthwiseConv2D, with a following BatchNormalization and a leading ZeroPadding2D folded in. */
const convolution: LayerConverter = (layer, ctx) => {
  requireChannelsLast(layer);
  const depthwise = layer.className === 'DepthwiseConv2D';
  const pad = ctx.plan.padBefore.get(layer.name);
  const input = pad ? ctx.input(pad) : ctx.input(layer);
  const kernel = ctx.weight(layer, depthwise ? 'depthwise_kernel' : 'kernel');
  const [kh, kw, cin, last] = kernel.shape;
  if (kernel.shape.length !== 4 || cin !== input.channels) {
    throw new Error(
      `layer ${layer.name}: kernel shape [${kernel.shape}] does not fit ${input.channels} input channels`,
    );
  }
  const outChannels = depthwise ? cin * last : last;
  const perGroupIn = depthwise ? 1 : cin;
  // Keras [kh, kw, cin, cout] (depthwise: [kh, kw, cin, mult]) -> ONNX [cout, cin/group, kh, kw].
  const w = new Float64Array(outChannels * perGroupIn * kh * kw);
  for (let y = 0; y < kh; y++) {
    for (let x = 0; x < kw; x++) {
      for (let c = 0; c < cin; c++) {
        for (let j = 0; j < last; j++) {
          const value = kernel.data[((y * kw + x) * cin + c) * last + j];
          const o = depthwise ? c * last + j : j;
          const ci = depthwise ? 0 : c;
          w[((o * perGroupIn + ci) * kh + y) * kw + x] = value;
        }
      }
    }
  }
  const bias = new Float64Array(outChannels);
  if (layer.config.use_bias !== false) {
    const b = ctx.weight(layer, 'bias').data;
    for (let o = 0; o < outChannels; o++) bias[o] = b[o];
  }
  const bn = ctx.plan.bnAfter.get(layer.name);
  if (bn) {
    const { scale, shift } = batchNormAffine(ctx, bn, outChannels);
    const per = perGroupIn * kh * kw;
    for (let o = 0; o < outChannels; o++) {
      for (let k = 0; k < per; k++) w[o * per + k] *= scale[o];
      bias[o] = bias[o] * scale[o] + shift[o];
    }
  }
  const b = ctx.builder;
  const weightName = b.addFloat(`${layer.name}/W`, [outChannels, perGroupIn, kh, kw], Float32Array.from(w));
  const biasName = b.addFloat(`${layer.name}/B`, [outChannels], Float32Array.from(bias));
  const explicitPads = pad ? zeroPadding(pad) : undefined;
  const attrs = [
    intsAttr('kernel_shape', [kh, kw]),
    intsAttr('strides', pair(layer.config.strides ?? 1, 'strides', layer)),
    intsAttr('dilations', pair(layer.config.dilation_rate ?? 1, 'dilation_rate', layer)),
    intAttr('group', depthwise ? cin : 1),
    ...paddingAttrs(layer, explicitPads),
  ];
  // The layer's final tensor carries its name, or the folded BN's name (what Keras calls that tensor).
  const outName = bn ? bn.name : layer.name;
  const activation = layer.config.activation ?? 'linear';
  if (activation === 'linear') {
    b.addNode('Conv', [input.tensor, weightName, biasName], [outName], attrs);
  } else {
    b.addNode(
      'Conv',
      [input.tensor, weightName, biasName],
      [`${outName}/preact`],
      attrs,
      `${layer.name}/conv`,
    );
    emitActivation(ctx, layer, activation, `${outName}/preact`, outName);
  }
  const info = { tensor: outName, channels: outChannels };
  if (bn) ctx.define(bn.name, info);
  return info;
};

const batchNormalization: LayerConverter = (layer, ctx) => {
  const input = ctx.input(layer);
  const { scale, shift } = batchNormAffine(ctx, layer, input.channels);
  const b = ctx.builder;
  const dims = [1, input.channels, 1, 1];
  const s = b.addFloat(`${layer.name}/scale`, dims, Float32Array.from(scale));
  const t = b.addFloat(`${layer.name}/shift`, dims, Float32Array.from(shift));
  b.addNode('Mul', [input.tensor, s], [`${layer.name}/scaled`]);
  b.addNode('Add', [`${layer.name}/scaled`, t], [layer.name]);
  return { tensor: layer.name, channels: input.channels };
};

const relu: LayerConverter = (layer, ctx) => {
  const input = ctx.input(layer);
  const maxValue = layer.config.max_value ?? null;
  const slope = (layer.config.negative_slope as number | undefined) ?? 0;
  const threshold = (layer.config.threshold as number | undefined) ?? 0;
  if (threshold !== 0) throw new Error(`layer ${layer.name}: ReLU threshold ${threshold} is not supported`);
  const b = ctx.builder;
  if (slope !== 0) {
    if (maxValue !== null)
      throw new Error(`layer ${layer.name}: ReLU with both negative_slope and max_value is not supported`);
    b.addNode('LeakyRelu', [input.tensor], [layer.name], [floatAttr('alpha', slope)]);
  } else if (maxValue !== null) {
    b.addNode('Clip', [input.tensor, ctx.scalar(0), ctx.scalar(Number(maxValue))], [layer.name]);
  } else {
    b.addNode('Relu', [input.tensor], [layer.name]);
  }
  return { tensor: layer.name, channels: input.channels };
};

const activation: LayerConverter = (layer, ctx) => {
  const input = ctx.input(layer);
  emitActivation(ctx, layer, layer.config.activation, input.tensor, layer.name);
  return { tensor: layer.name, channels: input.channels };
};

/** ZeroPadding2D padding as [top, left, bottom, right]. */
function zeroPadding(layer: KerasLayer): number[] {
  requireChannelsLast(layer);
  const p = layer.config.padding;
  if (typeof p === 'number') return [p, p, p, p];
  if (Array.isArray(p) && p.length === 2) {
    if (p.every((v) => typeof v === 'number')) return [p[0], p[1], p[0], p[1]];
    if (p.every((v) => Array.isArray(v) && v.length === 2)) return [p[0][0], p[1][0], p[0][1], p[1][1]];
  }
  throw new Error(`layer ${layer.name}: unsupported padding ${JSON.stringify(p)}`);
}

const zeroPadding2D: LayerConverter = (layer, ctx) => {
  const input = ctx.input(layer);
  const [t, l, bottom, r] = zeroPadding(layer);
  const pads = ctx.builder.addInt64(`${layer.name}/pads`, [8], [0, 0, t, l, 0, 0, bottom, r]);
  ctx.builder.addNode('Pad', [input.tensor, pads], [layer.name], [stringAttr('mode', 'constant')]);
  return { tensor: layer.name, channels: input.channels };
};

function pooling(opType: 'MaxPool' | 'AveragePool'): LayerConverter {
  return (layer, ctx) => {
    requireChannelsLast(layer);
    const input = ctx.input(layer);
    const size = pair(layer.config.pool_size ?? 2, 'pool_size', layer);
    const strides = pair(layer.config.strides ?? size, 'strides', layer);
    // 'valid' is spelled auto_pad=VALID, not left implicit: onnxruntime's PadFusion otherwise merges a
    // preceding ZeroPadding2D into the pool, which is wrong for pools (MaxPool pads count as -inf,
    // AveragePool here excludes pads) - zeros would be lost where a window's values are all negative.
    const padding =
      layer.config.padding === 'valid' ? [stringAttr('auto_pad', 'VALID')] : paddingAttrs(layer);
    const attrs = [intsAttr('kernel_shape', size), intsAttr('strides', strides), ...padding];
    // TF averages over the valid (unpadded) pixels only.
    if (opType === 'AveragePool') attrs.push(intAttr('count_include_pad', 0));
    ctx.builder.addNode(opType, [input.tensor], [layer.name], attrs);
    return { tensor: layer.name, channels: input.channels };
  };
}

const add: LayerConverter = (layer, ctx) => {
  const inputs = layer.inputs.map((_, i) => ctx.input(layer, i));
  if (inputs.length < 2) throw new Error(`layer ${layer.name}: Add needs at least two inputs`);
  if (inputs.some((t) => t.channels !== inputs[0].channels))
    throw new Error(`layer ${layer.name}: Add of differing channel counts`);
  ctx.builder.addNode(
    inputs.length === 2 ? 'Add' : 'Sum',
    inputs.map((t) => t.tensor),
    [layer.name],
  );
  return { tensor: layer.name, channels: inputs[0].channels };
};

const concatenate: LayerConverter = (layer, ctx) => {
  const inputs = layer.inputs.map((_, i) => ctx.input(layer, i));
  const axis = nchwAxis(layer.config.axis ?? -1, layer);
  if (axis !== 1) throw new Error(`layer ${layer.name}: only channel concatenation is supported`);
  ctx.builder.addNode(
    'Concat',
    inputs.map((t) => t.tensor),
    [layer.name],
    [intAttr('axis', axis)],
  );
  return { tensor: layer.name, channels: inputs.reduce((sum, t) => sum + t.channels, 0) };
};

const inputLayer: LayerConverter = (layer, ctx) => {
  const shape = layer.config.batch_input_shape as (number | null)[] | undefined;
  if (!Array.isArray(shape) || shape.length !== 4 || typeof shape[3] !== 'number') {
    throw new Error(
      `input layer ${layer.name}: expected an NHWC batch_input_shape, got ${JSON.stringify(shape)}`,
    );
  }
  // Batch and spatial sizes stay symbolic so the engine can feed any tile size and batch.
  ctx.builder.addInput(ctx.inputName, ['N', shape[3], 'H', 'W']);
  return { tensor: ctx.inputName, channels: shape[3] };
};

export const LAYER_CONVERTERS: Record<string, LayerConverter> = {
  InputLayer: inputLayer,
  Conv2D: convolution,
  DepthwiseConv2D: convolution,
  BatchNormalization: batchNormalization,
  ReLU: relu,
  Activation: activation,
  ZeroPadding2D: zeroPadding2D,
  MaxPooling2D: pooling('MaxPool'),
  AveragePooling2D: pooling('AveragePool'),
  Add: add,
  Concatenate: concatenate,
  ...HEAD_LAYER_CONVERTERS,
};
