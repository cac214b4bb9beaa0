/** Structured L1 channel pruning of a float ONNX backbone (no fine-tuning). */
import { GraphProto, ModelProto, NodeProto, TensorProto } from '../onnx/proto';
import { initializerMap } from '../quantize/tensors';
import { pruneGroup } from './apply';
import { ChannelGroup, channelGroups, nodeLabel } from './channel-groups';
import { filterL1, keepChannels } from './l1';

export interface PruneOptions {
  /** Fraction of each chosen conv's output channels removed. */
  ratio: number;
  /** Producer convs to prune, by node name or output tensor (default: every prunable one). */
  convs?: string[];
  /** Per-conv ratios (node name or output tensor) overriding `ratio`; such convs count as chosen. */
  ratios?: Map<string, number>;
  /** Kept channel counts rounded to a multiple of this (see keptCount; default 1). */
  align?: number;
  /** Leave convs whose channels reach a graph output (keeps every stage's width). */
  keepOutputWidths?: boolean;
  /**
   * Per-channel means of the tensors pruned convs' readers read (see compensationTensors): the
   * removed channels' average is folded into the readers' biases instead of dropped.
   */
  means?: Map<string, Float64Array>;
}

export interface PrunedConv {
  conv: string;
  channels: number;
  kept: number;
  depthwise: string[];
  readers: string[];
  outputs: string[];
}

export interface PruneResult {
  model: ModelProto;
  pruned: PrunedConv[];
  skipped: { conv: string; reason: string }[];
  /** New channel count of each graph output that got narrower. */
  outputChannels: Map<string, number>;
}

/** Why a group is left alone, if it is; `listed`: the convs named by --convs or a ratio (empty = all). */
function chosen(g: ChannelGroup, options: PruneOptions, listed: string[]): string | undefined {
  if (g.blocked) return g.blocked;
  const names = [nodeLabel(g.producer), g.producer.output[0]];
  if (listed.length > 0 && !listed.some((c) => names.includes(c))) return 'not selected';
  if (options.keepOutputWidths && g.outputs.length > 0) return `reaches output ${g.outputs.join(', ')}`;
  return undefined;
}

export function pruneModel(model: ModelProto, options: PruneOptions): PruneResult {
  const graph = model.graph;
  const inits = initializerMap(graph);
  const groups = channelGroups(graph);
  const listed = [...(options.convs ?? []), ...(options.ratios?.keys() ?? [])];
  if (listed.length > 0) {
    const known = new Set(groups.flatMap((g) => [nodeLabel(g.producer), g.producer.output[0]]));
    const unknown = listed.filter((c) => !known.has(c));
    if (unknown.length > 0) throw new Error(`prune: no regular Conv named ${unknown.join(', ')}`);
  }
  // Updated in place: a conv can lose output channels (as a producer) and input channels (as a reader).
  const current = new Map(inits);
  const replaced = new Set<string>();
  const replacedNodes = new Map<NodeProto, NodeProto>();
  const pruned: PrunedConv[] = [];
  const skipped: PruneResult['skipped'] = [];
  const outputChannels = new Map<string, number>();
  for (const g of groups) {
    const reason = chosen(g, options, listed);
    if (reason) {
      skipped.push({ conv: nodeLabel(g.producer), reason });
      continue;
    }
    // Ranked on the parent's weights, so the choice does not depend on the order groups are cut.
    const ratio =
      options.ratios?.get(nodeLabel(g.producer)) ??
      options.ratios?.get(g.producer.output[0]) ??
      options.ratio;
    const keep = keepChannels(filterL1(inits.get(g.producer.input[1]) as TensorProto), ratio, options.align);
    // Nothing removed: leave the initializers untouched so ratio 0 gives the identical model.
    if (keep.length < g.channels) {
      const change = pruneGroup(g, keep, current, options.means);
      for (const t of change.tensors) {
        current.set(t.name, t);
        replaced.add(t.name);
      }
      for (const [from, to] of change.nodes) replacedNodes.set(from, to);
      for (const o of g.outputs) outputChannels.set(o, keep.length);
    }
    pruned.push({
      conv: nodeLabel(g.producer),
      channels: g.channels,
      kept: keep.length,
      depthwise: g.depthwise.map(nodeLabel),
      readers: g.readers.map(nodeLabel),
      outputs: g.outputs,
    });
  }
  const newGraph: GraphProto = {
    ...graph,
    node: graph.node.map((n) => replacedNodes.get(n) ?? n),
    initializer: (graph.initializer ?? []).map((t) =>
      replaced.has(t.name) ? (current.get(t.name) as TensorProto) : t,
    ),
    output: graph.output.map((o) => withChannels(o, outputChannels.get(o.name))),
  };
  return { model: { ...model, graph: newGraph }, pruned, skipped, outputChannels };
}

/** A graph output's value info with its channel dimension (NCHW axis 1) updated. */
function withChannels(output: GraphProto['output'][number], channels: number | undefined) {
  const dims = output.type?.tensorType?.shape?.dim;
  if (channels === undefined || !dims || dims.length < 2) return output;
  const tensorType = output.type?.tensorType as NonNullable<NonNullable<typeof output.type>['tensorType']>;
  return {
    ...output,
    type: {
      ...output.type,
      tensorType: {
        ...tensorType,
        shape: { dim: dims.map((d, i) => (i === 1 ? { dimValue: channels } : d)) },
      },
    },
  };
}

/** Tensors whose channel means bias compensation needs: what the prunable convs' readers read. */
export function compensationTensors(model: ModelProto): string[] {
  const groups = channelGroups(model.graph).filter((g) => !g.blocked);
  return [...new Set(groups.flatMap((g) => g.readers.map((r) => r.input[0])))];
}
