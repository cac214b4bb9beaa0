/**
 * Models derived from a built backbone (INT8-quantised, channel-pruned, or both): written like
 * `make models` output (model.onnx, spec.json, card.json, card.md) under a new id, with a card that
 * names the parent model and records what was done to it, so a bank built on one can be traced.
 */
import * as fs from 'fs';
import * as path from 'path';
import { sha256Hex } from './hash';
import { FLOP_COUNTING, measureModel } from './measure';
import { encodeModel } from './onnx/io';
import { ModelProto } from './onnx/proto';
import { ModelSpec } from './spec';
import { stagesTable } from './card';
import { specToJson } from './spec-file';

export const DERIVED_ONNX_FILE = 'model.onnx';

export interface DerivedCard {
  id: string;
  derivedFrom: { id: string; sha256?: string };
  /** What was done, in order, e.g. ["prune", "int8"]. */
  transforms: string[];
  /** Transform details (calibration, pruned channels, ...), one object per transform name. */
  details: Record<string, unknown>;
  stages: { name: string; tensor: string; shape: number[]; stride: number; channels: number }[];
  defaultStages: string[];
  /** Q/DQ nodes are bookkeeping, not arithmetic: they are left out of the FLOPs. */
  cost: { flops: number; macs: number; counting: string };
  opCounts: Record<string, Record<string, number>>;
  onnx: { file: string; bytes: number; sha256: string; nodes: number };
  notes: string[];
}

export interface DerivedModel {
  onnx: Uint8Array;
  spec: ModelSpec;
  card: DerivedCard;
}

const QDQ_OPS = ['QuantizeLinear', 'DequantizeLinear'];

/** Encodes the model, fills in the spec's id/sha256 and measures it with onnxruntime for the card. */
export async function describeDerived(
  model: ModelProto,
  parent: ModelSpec,
  input: {
    id: string;
    stages: ModelSpec['stages'];
    transforms: string[];
    details: Record<string, unknown>;
    opCounts: Record<string, Record<string, number>>;
    notes?: string[];
  },
): Promise<DerivedModel> {
  const onnx = encodeModel(model);
  const sha256 = sha256Hex(onnx);
  const spec: ModelSpec = { ...parent, id: input.id, file: DERIVED_ONNX_FILE, stages: input.stages, sha256 };
  const m = await measureModel(
    model,
    spec.inputName,
    spec.inputSize,
    spec.stages.map((s) => s.tensor),
  );
  const qdqFlops = QDQ_OPS.reduce((sum, op) => sum + (m.flopsByOp[op] ?? 0), 0);
  const card: DerivedCard = {
    id: input.id,
    derivedFrom: { id: parent.id, sha256: parent.sha256 },
    transforms: input.transforms,
    details: input.details,
    stages: spec.stages.map((s) => ({ ...s, shape: m.shapes[s.tensor].slice(1) })),
    defaultStages: spec.defaultStages,
    cost: { flops: m.flops - qdqFlops, macs: m.macs, counting: FLOP_COUNTING },
    opCounts: input.opCounts,
    onnx: { file: DERIVED_ONNX_FILE, bytes: onnx.length, sha256, nodes: model.graph.node.length },
    notes: input.notes ?? [],
  };
  for (const s of card.stages) {
    if (s.shape[0] !== s.channels)
      throw new Error(`stage ${s.name}: ${s.shape[0]} channels measured, spec says ${s.channels}`);
  }
  return { onnx, spec, card };
}

function mdValue(value: unknown): string {
  if (Array.isArray(value)) return value.length > 12 ? `${value.length} entries` : JSON.stringify(value);
  if (typeof value === 'object' && value !== null) return JSON.stringify(value);
  return String(value);
}

export function derivedCardToMarkdown(card: DerivedCard): string {
  const lines = [
    `# ${card.id}`,
    '',
    `Derived from \`${card.derivedFrom.id}\` (sha256 ${card.derivedFrom.sha256 ?? 'n/a'}) by: ${card.transforms.join(' -> ')}.`,
    '',
    ...Object.entries(card.details).flatMap(([name, detail]) => [
      `## ${name}`,
      '',
      ...Object.entries(detail as Record<string, unknown>).map(([k, v]) => `- ${k}: ${mdValue(v)}`),
      '',
    ]),
    ...stagesTable(card.stages, card.defaultStages),
    '',
    '## Cost (batch 1, default input size)',
    '',
    `- FLOPs: ${(card.cost.flops / 1e9).toFixed(3)} G (${(card.cost.macs / 1e9).toFixed(3)} G MACs); Q/DQ nodes not counted`,
    '',
    '## Op counts',
    '',
    ...Object.entries(card.opCounts).map(
      ([where, ops]) =>
        `- ${where}: ${Object.entries(ops)
          .map(([op, n]) => `${op} ${n}`)
          .join(', ')}`,
    ),
    '',
    '## ONNX',
    '',
    `- File: ${card.onnx.file} (${card.onnx.bytes} bytes, ${card.onnx.nodes} nodes)`,
    `- sha256: ${card.onnx.sha256}`,
    '',
    ...(card.notes.length > 0 ? ['## Notes', '', ...card.notes.map((n) => `- ${n}`), ''] : []),
  ];
  return lines.join('\n');
}

export function writeDerived(dir: string, derived: DerivedModel): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, DERIVED_ONNX_FILE), derived.onnx);
  fs.writeFileSync(path.join(dir, 'spec.json'), specToJson(derived.spec));
  fs.writeFileSync(path.join(dir, 'card.json'), `${JSON.stringify(derived.card, null, 2)}\n`);
  fs.writeFileSync(path.join(dir, 'card.md'), derivedCardToMarkdown(derived.card));
}
