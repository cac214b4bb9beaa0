/**
 * Graph surgery for user-supplied ONNX backbones: the named intermediate tensors become the graph
 * outputs, the original outputs go, and every node they do not need is removed (a ResNet cut at
 * layer3 no longer runs layer4, pooling or the classifier).
 */
import { tensorValueInfo } from './onnx/builder';
import { DataType, GraphProto, ModelProto, ValueInfoProto } from './onnx/proto';
import { pruneGraph } from './onnx/prune';

/** Every tensor a stage could name: graph inputs and node outputs, with the producing op. */
export function listTensors(graph: GraphProto): { name: string; opType: string }[] {
  const initializers = new Set((graph.initializer ?? []).map((t) => t.name));
  return [
    ...graph.input.filter((v) => !initializers.has(v.name)).map((v) => ({ name: v.name, opType: '(input)' })),
    ...graph.node.flatMap((n) =>
      n.output.filter((o) => o !== '').map((name) => ({ name, opType: n.opType })),
    ),
  ];
}

function suggestions(query: string, names: string[]): string[] {
  const words = query
    .toLowerCase()
    .split(/[/._:-]+/)
    .filter((w) => w.length > 1 && !/^(output|\d+)$/.test(w));
  const scored = names
    .map((name) => ({ name, score: words.filter((w) => name.toLowerCase().includes(w)).length }))
    .filter((s) => s.score > 0)
    .sort((a, b) => b.score - a.score);
  return scored.slice(0, 8).map((s) => s.name);
}

function findValueInfo(graph: GraphProto, name: string): ValueInfoProto | undefined {
  return [...(graph.valueInfo ?? []), ...graph.output, ...graph.input].find((v) => v.name === name && v.type);
}

/** Returns a new model whose outputs are `tensors` (in that order) and which holds only what they need. */
export function cutAtStages(model: ModelProto, tensors: string[]): ModelProto {
  const graph = model.graph;
  if (tensors.length === 0) throw new Error('no stage tensors given');
  if (new Set(tensors).size !== tensors.length)
    throw new Error(`stage tensors listed twice: ${tensors.join(', ')}`);
  const available = listTensors(graph).map((t) => t.name);
  const known = new Set(available);
  for (const tensor of tensors) {
    if (!known.has(tensor)) {
      const similar = suggestions(tensor, available);
      throw new Error(
        `stage tensor "${tensor}" does not exist in the ONNX graph (${available.length} tensors)` +
          (similar.length > 0
            ? `; similar names: ${similar.join(', ')}`
            : '; list them with surgery-cli --list'),
      );
    }
  }
  // Keep known types/shapes; otherwise declare float32 (feature maps) and let the runtime infer the shape.
  const outputs = tensors.map((name) => findValueInfo(graph, name) ?? tensorValueInfo(name, DataType.FLOAT));
  return { ...model, graph: pruneGraph(graph, outputs) };
}
