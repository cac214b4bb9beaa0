/** Model cards: where a converted backbone came from, what it contains and what it costs. */
import { FLOP_COUNTING, Measurement } from './measure';
import { ModelSpec } from './spec';

export interface ModelCard {
  id: string;
  architecture: string;
  source: {
    package: string;
    version: string;
    files: string[];
    kerasVersion: string;
    kerasModel: string;
  };
  weights: string;
  input: {
    name: string;
    layout: 'NCHW';
    channels: 'RGB';
    size: [number, number];
    normalize: ModelSpec['normalize'];
  };
  layersUsed: { count: number; first: string; last: string; byType: Record<string, number>; names: string[] };
  stages: { name: string; tensor: string; shape: number[]; stride: number; channels: number }[];
  defaultStages: string[];
  cost: { flops: number; macs: number; params: number; upToStage: string; counting: string };
  onnx: { file: string; opset: number; irVersion: number; nodes: number; bytes: number; sha256: string };
}

export interface CardInput {
  spec: ModelSpec;
  architecture: string;
  source: ModelCard['source'];
  weights: string;
  layers: { name: string; className: string }[];
  measurement: Measurement;
  onnx: ModelCard['onnx'];
}

export function buildCard(input: CardInput): ModelCard {
  const { spec, measurement } = input;
  const byType: Record<string, number> = {};
  for (const layer of input.layers) byType[layer.className] = (byType[layer.className] ?? 0) + 1;
  const sortedByType = Object.fromEntries(Object.entries(byType).sort(([a], [b]) => a.localeCompare(b)));
  return {
    id: spec.id,
    architecture: input.architecture,
    source: input.source,
    weights: input.weights,
    input: {
      name: spec.inputName,
      layout: 'NCHW',
      channels: 'RGB',
      size: spec.inputSize,
      normalize: spec.normalize,
    },
    layersUsed: {
      count: input.layers.length,
      first: input.layers[0]?.name ?? '',
      last: input.layers[input.layers.length - 1]?.name ?? '',
      byType: sortedByType,
      names: input.layers.map((l) => l.name),
    },
    stages: spec.stages.map((s) => ({ ...s, shape: measurement.shapes[s.tensor].slice(1) })),
    defaultStages: spec.defaultStages,
    cost: {
      flops: measurement.flops,
      macs: measurement.macs,
      params: measurement.params,
      upToStage: spec.stages[spec.stages.length - 1].name,
      counting: FLOP_COUNTING,
    },
    onnx: input.onnx,
  };
}

function giga(n: number): string {
  return `${(n / 1e9).toFixed(3)} G`;
}

function mega(n: number): string {
  return `${(n / 1e6).toFixed(3)} M`;
}

/** The "Stages" section shared by the cards of converted and of derived (INT8, pruned) models. */
export function stagesTable(
  stages: { name: string; tensor: string; shape: number[]; stride: number }[],
  defaultStages: string[],
): string[] {
  return [
    '## Stages',
    '',
    '| stage | tensor | shape (C x H x W) | stride | default |',
    '| --- | --- | --- | --- | --- |',
    ...stages.map(
      (s) =>
        `| ${s.name} | \`${s.tensor}\` | ${s.shape.join(' x ')} | ${s.stride} | ${defaultStages.includes(s.name) ? 'yes' : ''} |`,
    ),
  ];
}

export function cardToMarkdown(card: ModelCard): string {
  const lines = [
    `# ${card.id}`,
    '',
    `${card.architecture}, converted to an ONNX feature extractor by models/keras.`,
    '',
    '## Source',
    '',
    `- Package: ${card.source.package}@${card.source.version} (Keras ${card.source.kerasVersion} model "${card.source.kerasModel}")`,
    ...card.source.files.map((f) => `- File: ${f}`),
    `- Weights: ${card.weights}`,
    '',
    '## Input',
    '',
    `- Tensor \`${card.input.name}\`: float32 ${card.input.layout} ${card.input.channels}, default ${card.input.size[0]}x${card.input.size[1]} (batch and spatial sizes are dynamic)`,
    `- Normalisation on RGB in [0,1]: mean [${card.input.normalize.mean.join(', ')}], std [${card.input.normalize.std.join(', ')}]`,
    '',
    ...stagesTable(card.stages, card.defaultStages),
    '',
    '## Cost (batch 1, default input size)',
    '',
    `- FLOPs up to ${card.cost.upToStage}: ${giga(card.cost.flops)} (${giga(card.cost.macs)} MACs)`,
    `- Parameters: ${mega(card.cost.params)}`,
    `- Counting: ${card.cost.counting}`,
    '',
    '## Layers used',
    '',
    `${card.layersUsed.count} Keras layers, ${card.layersUsed.first} .. ${card.layersUsed.last}: ` +
      Object.entries(card.layersUsed.byType)
        .map(([type, n]) => `${type} ${n}`)
        .join(', '),
    '',
    '## ONNX',
    '',
    `- File: ${card.onnx.file} (${card.onnx.bytes} bytes, ${card.onnx.nodes} nodes, opset ${card.onnx.opset}, IR ${card.onnx.irVersion})`,
    `- sha256: ${card.onnx.sha256}`,
    '',
  ];
  return lines.join('\n');
}
