/**
 * Keras (TF.js layers format) -> ONNX feature extractor. Only the layers the requested stages depend
 * on are converted; each stage becomes a graph output named after its Keras layer.
 */
import { GraphBuilder } from '../onnx/builder';
import { ModelProto } from '../onnx/proto';
import { pruneGraph } from '../onnx/prune';
import { ConvertContext } from './context';
import { planFusions } from './fusion';
import { LAYER_CONVERTERS } from './layers';
import { KerasLayer, ancestorLayers, parseTopology } from './topology';
import { WeightMap } from './weights';

export const OPSET = 13;
export const IR_VERSION = 7;

export interface ConvertOptions {
  /** Keras layer names to export as graph outputs. */
  stages: string[];
  /** Graph input name (NCHW float32). */
  inputName?: string;
  /** Last layer (in model order) whose weights are usable; stages after it are refused. */
  lastUsableLayer?: string;
  /** Refuse stages that depend on a layer marked trainable (i.e. fine-tuned weights). */
  requireFrozen?: boolean;
  /** Recorded in the ONNX doc_string. */
  description?: string;
}

export interface ConvertResult {
  model: ModelProto;
  /** Keras layers the graph was built from, in model order. */
  layers: KerasLayer[];
  stageChannels: Record<string, number>;
}

function checkStages(model: ReturnType<typeof parseTopology>, options: ConvertOptions): void {
  if (options.stages.length === 0) throw new Error('no stages requested');
  const last = options.lastUsableLayer === undefined ? undefined : model.byName.get(options.lastUsableLayer);
  if (options.lastUsableLayer !== undefined && !last) {
    throw new Error(
      `lastUsableLayer "${options.lastUsableLayer}" does not exist in Keras model ${model.name}`,
    );
  }
  for (const stage of options.stages) {
    const layer = model.byName.get(stage);
    if (!layer) throw new Error(`stage "${stage}" does not exist in Keras model ${model.name}`);
    if (layer.className === 'InputLayer') throw new Error(`stage "${stage}" is the input layer`);
    if (last && layer.index > last.index) {
      throw new Error(
        `stage "${stage}" lies after the frozen layers of ${model.name} (the last usable layer is ${last.name}); ` +
          'later layers were fine-tuned and are not ImageNet features',
      );
    }
  }
}

function checkLayers(
  layers: KerasLayer[],
  weights: WeightMap,
  stages: string[],
  requireFrozen: boolean,
): void {
  // Only layers that own weights can have been fine-tuned; `trainable` means nothing on the others.
  const owners = new Set([...weights.keys()].map((name) => name.slice(0, name.lastIndexOf('/'))));
  for (const layer of layers) {
    if (!LAYER_CONVERTERS[layer.className]) {
      throw new Error(`unsupported Keras layer type "${layer.className}" (layer ${layer.name})`);
    }
    if (requireFrozen && owners.has(layer.name) && layer.config.trainable !== false) {
      throw new Error(
        `stages ${stages.join(', ')} depend on layer ${layer.name}, which is trainable (fine-tuned), ` +
          'so its weights are not the frozen pretrained ones',
      );
    }
  }
}

export function convertKerasModel(
  modelTopology: unknown,
  weights: WeightMap,
  options: ConvertOptions,
): ConvertResult {
  const model = parseTopology(modelTopology);
  checkStages(model, options);
  const layers = ancestorLayers(model, options.stages);
  checkLayers(layers, weights, options.stages, options.requireFrozen ?? false);
  const plan = planFusions(layers, options.stages);
  const builder = new GraphBuilder(model.name);
  const ctx = new ConvertContext(builder, model, weights, plan, options.inputName ?? 'input');
  for (const layer of layers) {
    if (plan.absorbed.has(layer.name)) continue;
    ctx.define(layer.name, LAYER_CONVERTERS[layer.className](layer, ctx));
  }
  const stageChannels: Record<string, number> = {};
  for (const stage of options.stages) {
    const info = ctx.output(stage);
    stageChannels[stage] = info.channels;
    builder.addOutput(info.tensor, ['N', info.channels, null, null]);
  }
  const onnx = builder.model({
    producerName: 'SparsePrintInspector keras2onnx',
    producerVersion: '1',
    opset: OPSET,
    irVersion: IR_VERSION,
    docString: options.description,
  });
  // Converters emit only needed layers; pruning also drops helper tensors nobody reads.
  onnx.graph = pruneGraph(onnx.graph, onnx.graph.output);
  return { model: onnx, layers, stageChannels };
}
