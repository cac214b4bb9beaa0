/** Dead-node removal: keeps only what the requested outputs depend on. */
import { GraphProto, NodeProto } from './proto';

/**
 * Tensor names a node reads, including names its subgraphs (If/Loop/Scan bodies) take from the
 * enclosing scope: a node is needed if any of its outputs is, and then all of these are needed.
 */
export function nodeReads(node: NodeProto): string[] {
  const reads = node.input.filter((name) => name !== '');
  for (const attr of node.attribute ?? []) {
    const graphs = [...(attr.g ? [attr.g] : []), ...(attr.graphs ?? [])];
    for (const sub of graphs) reads.push(...outerScopeReads(sub));
  }
  return reads;
}

function outerScopeReads(graph: GraphProto): string[] {
  const local = new Set<string>([
    ...(graph.input ?? []).map((v) => v.name),
    ...(graph.initializer ?? []).map((t) => t.name),
    ...(graph.node ?? []).flatMap((n) => n.output),
  ]);
  return (graph.node ?? []).flatMap(nodeReads).filter((name) => !local.has(name));
}

/** Names every node of the graph produces, with the producing node. */
export function producers(graph: GraphProto): Map<string, NodeProto> {
  const map = new Map<string, NodeProto>();
  for (const node of graph.node) for (const out of node.output) if (out !== '') map.set(out, node);
  return map;
}

/** Names the given outputs depend on (transitively), themselves included. */
export function ancestorTensors(graph: GraphProto, outputs: string[]): Set<string> {
  const made = producers(graph);
  const needed = new Set<string>();
  const stack = [...outputs];
  while (stack.length > 0) {
    const name = stack.pop() as string;
    if (needed.has(name)) continue;
    needed.add(name);
    const node = made.get(name);
    if (node) stack.push(...nodeReads(node));
  }
  return needed;
}

/**
 * Returns a copy of the graph whose outputs are `outputs` (value infos supplied by the caller) and
 * which holds only the nodes, initializers, inputs and value infos those outputs need. Node order
 * (already topological in a valid ONNX graph) is kept.
 */
export function pruneGraph(graph: GraphProto, outputs: GraphProto['output']): GraphProto {
  const needed = ancestorTensors(
    graph,
    outputs.map((o) => o.name),
  );
  const pruned: GraphProto = {
    ...graph,
    node: graph.node.filter((n) => n.output.some((o) => needed.has(o))),
    initializer: (graph.initializer ?? []).filter((t) => needed.has(t.name)),
    input: (graph.input ?? []).filter((v) => needed.has(v.name)),
    output: outputs,
    valueInfo: (graph.valueInfo ?? []).filter(
      (v) => needed.has(v.name) && !outputs.some((o) => o.name === v.name),
    ),
  };
  return pruned;
}
