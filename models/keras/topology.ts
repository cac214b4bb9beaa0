/** Parses the Keras model config inside a TF.js layers model (model.json's modelTopology). */

export type LayerConfig = Record<string, unknown> & { name?: string; trainable?: boolean };

export interface KerasLayer {
  name: string;
  className: string;
  config: LayerConfig;
  /** Names of the layers feeding this one, in argument order. */
  inputs: string[];
  /** Position in the model's layer list (topological for saved functional models). */
  index: number;
}

export interface KerasModel {
  name: string;
  layers: KerasLayer[];
  byName: Map<string, KerasLayer>;
  inputLayers: string[];
}

interface RawLayer {
  name: string;
  class_name: string;
  config: LayerConfig;
  inbound_nodes?: unknown[];
}

/** An inbound node is a list of [layerName, nodeIndex, tensorIndex, kwargs] entries (Keras 2 format). */
function parseInbound(layer: RawLayer): string[] {
  const nodes = layer.inbound_nodes ?? [];
  if (nodes.length === 0) return [];
  if (nodes.length > 1)
    throw new Error(`layer ${layer.name}: shared layers (called more than once) are not supported`);
  const node = nodes[0];
  if (!Array.isArray(node))
    throw new Error(`layer ${layer.name}: unsupported inbound_nodes format (expected Keras 2 lists)`);
  return node.map((entry: unknown) => {
    if (!Array.isArray(entry) || typeof entry[0] !== 'string') {
      throw new Error(`layer ${layer.name}: malformed inbound node entry ${JSON.stringify(entry)}`);
    }
    if (entry[1] !== 0 || entry[2] !== 0) {
      throw new Error(
        `layer ${layer.name}: input ${entry[0]} uses node/tensor index ${entry[1]}/${entry[2]}, only 0/0 is supported`,
      );
    }
    return entry[0];
  });
}

/** Accepts either a tfjs modelTopology ({model_config: ...}) or the bare Keras model config. */
export function parseTopology(modelTopology: unknown): KerasModel {
  const topo = modelTopology as { model_config?: unknown };
  const modelConfig = (topo.model_config ?? topo) as {
    class_name?: string;
    config?: Record<string, unknown>;
  };
  if (modelConfig.class_name !== 'Model' && modelConfig.class_name !== 'Functional') {
    throw new Error(
      `unsupported Keras model class "${modelConfig.class_name}" (expected a functional Model)`,
    );
  }
  const config = modelConfig.config ?? {};
  const rawLayers = config.layers as RawLayer[] | undefined;
  if (!Array.isArray(rawLayers)) throw new Error('Keras model config has no layers list');
  const byName = new Map<string, KerasLayer>();
  const layers = rawLayers.map((raw, index) => {
    const layer: KerasLayer = {
      name: raw.name,
      className: raw.class_name,
      config: raw.config ?? {},
      inputs: parseInbound(raw),
      index,
    };
    if (byName.has(layer.name)) throw new Error(`duplicate layer name ${layer.name}`);
    byName.set(layer.name, layer);
    return layer;
  });
  for (const layer of layers) {
    for (const input of layer.inputs) {
      const source = byName.get(input);
      if (!source) throw new Error(`layer ${layer.name} reads unknown layer ${input}`);
      // Emitting in list order needs every input listed first; saved functional models are sorted so.
      if (source.index >= layer.index)
        throw new Error(`layer ${layer.name} is listed before its input ${input}`);
    }
  }
  const inputLayers = ((config.input_layers as unknown[][] | undefined) ?? []).map((entry) =>
    String(entry[0]),
  );
  return { name: String(config.name ?? 'model'), layers, byName, inputLayers };
}

/** The layers the named layers depend on (themselves included), in model order. */
export function ancestorLayers(model: KerasModel, names: string[]): KerasLayer[] {
  const seen = new Set<string>();
  const stack = [...names];
  while (stack.length > 0) {
    const name = stack.pop() as string;
    if (seen.has(name)) continue;
    const layer = model.byName.get(name);
    if (!layer) throw new Error(`layer ${name} does not exist in model ${model.name}`);
    seen.add(name);
    stack.push(...layer.inputs);
  }
  return model.layers.filter((l) => seen.has(l.name));
}

/** How many needed layers read each layer's output (stage outputs count as readers too). */
export function consumerCounts(layers: KerasLayer[], stages: string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const layer of layers)
    for (const input of layer.inputs) counts.set(input, (counts.get(input) ?? 0) + 1);
  for (const stage of stages) counts.set(stage, (counts.get(stage) ?? 0) + 1);
  return counts;
}
