/**
 * The model variants the backbone benchmark compares, built on demand into the models folder (and
 * reused while their parent's sha256 is unchanged): the full-depth float network (baseline), the
 * cut float backbone, INT8 with random and nominal calibration, channel-pruned, pruned + INT8, and
 * the fast recipe (early layers thinned and bias-compensated, INT8, calibrated on nominal images).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DerivedCard, writeDerived } from '../../models/derived';
import { FULL_DEPTH, buildFullDepth, readFullDepth, writeFullDepth } from '../../models/full-depth';
import { decodeModel, readModel } from '../../models/onnx/io';
import { measureModel } from '../../models/measure';
import { stageGraph } from '../../lib/backbone/backbone';
import { buildPruned } from '../../models/prune/build';
import { buildInt8 } from '../../models/quantize/build';
import { buildFastInt8, fastRecipe } from '../../models/quantize/fast-recipe';
import { CalibrationMethod } from '../../models/quantize/ranges';
import { CalibrationView } from '../../models/quantize/calibration-data';
import { resolveModel } from '../../models/registry';
import { ModelSpec } from '../../models/spec';

export type VariantKind =
  | 'full-f32'
  | 'cut-f32'
  | 'cut-int8-randn'
  | 'cut-int8-nominal'
  | 'cut-pruned25'
  | 'cut-pruned50'
  | 'cut-pruned50-int8-randn'
  | 'cut-fast-int8';

export const ALL_VARIANTS: VariantKind[] = [
  'full-f32',
  'cut-f32',
  'cut-int8-randn',
  'cut-int8-nominal',
  'cut-pruned25',
  'cut-pruned50',
  'cut-pruned50-int8-randn',
  'cut-fast-int8',
];

/** Whether a variant can be built for a backbone (the fast recipe exists for some only). */
export function variantApplies(backbone: string, kind: VariantKind): boolean {
  return kind !== 'cut-fast-int8' || fastRecipe({ id: backbone }) !== undefined;
}

export interface Variant {
  kind: VariantKind;
  id: string;
  onnxPath: string;
  /**
   * What is timed: the graph the engine runs (cut after the default stages, see stageGraph), or the
   * full-depth file as it is.
   */
  timedGraph: Uint8Array | string;
  inputName: string;
  inputSize: [number, number];
  /** The spec (absent for the timing-only full-depth model). */
  spec?: ModelSpec;
  /** FLOPs of timedGraph. */
  flops: number;
  bytes: number;
}

export interface VariantOptions {
  modelsDir: string;
  /** Folder of nominal images for the "nominal" calibration. */
  nominal: string;
  calibrationCount: number;
  /** How nominal images become inputs ("tile" for tiled jobs, see calibration-data.ts). */
  calibrationView?: CalibrationView;
  method: CalibrationMethod;
  rebuild: boolean;
  log: (message: string) => void;
}

/** Backbone id -> its full-depth baseline id. */
export function fullDepthId(backbone: string): string {
  return backbone.replace(/-imagenet$/, '-full');
}

export function variantId(backbone: string, kind: VariantKind): string {
  if (kind === 'full-f32') return fullDepthId(backbone);
  if (kind === 'cut-f32') return backbone;
  return `${backbone}-${kind.replace(/^cut-/, '')}`;
}

function upToDate(dir: string, parent: ModelSpec, rebuild: boolean): boolean {
  const card = path.join(dir, 'card.json');
  if (rebuild || !fs.existsSync(card)) return false;
  const parsed = JSON.parse(fs.readFileSync(card, 'utf8')) as DerivedCard;
  // Default stages are the parent's choice (they change without the weights changing).
  const same = (a: string[], b: string[]) => a.length === b.length && a.every((x, i) => x === b[i]);
  return parsed.derivedFrom?.sha256 === parent.sha256 && same(parsed.defaultStages, parent.defaultStages);
}

async function ensureDerived(
  kind: VariantKind,
  backbone: string,
  id: string,
  options: VariantOptions,
  nominal = options.nominal,
): Promise<void> {
  const { spec, onnxPath } = resolveModel(backbone, options.modelsDir);
  const dir = path.join(options.modelsDir, id);
  if (upToDate(dir, spec, options.rebuild)) return;
  options.log(`building ${id}`);
  const model = readModel(onnxPath);
  const int8 = {
    method: options.method,
    count: options.calibrationCount,
    calibrationView: options.calibrationView,
  };
  if (kind === 'cut-int8-randn' || kind === 'cut-int8-nominal') {
    const calibration = kind === 'cut-int8-randn' ? 'randn' : nominal;
    writeDerived(dir, (await buildInt8(spec, model, { id, calibration, ...int8 })).derived);
  } else if (kind === 'cut-pruned25' || kind === 'cut-pruned50') {
    const ratio = kind === 'cut-pruned25' ? 0.25 : 0.5;
    writeDerived(dir, (await buildPruned(spec, model, { id, ratio })).derived);
  } else if (kind === 'cut-pruned50-int8-randn') {
    const pruned = await buildPruned(spec, model, { id: `${id}-float`, ratio: 0.5 });
    const card = pruned.derived.card;
    const built = await buildInt8({ ...spec, stages: pruned.derived.spec.stages }, pruned.model, {
      id,
      calibration: 'randn',
      ...int8,
      prior: { transforms: card.transforms, details: card.details },
    });
    writeDerived(dir, built.derived);
  } else if (kind === 'cut-fast-int8') {
    writeDerived(dir, (await buildFastInt8(spec, model, { id, calibration: nominal, ...int8 })).derived);
  }
}

/** Builds (if needed) and describes one variant of a backbone. */
export async function prepareVariant(
  backbone: string,
  kind: VariantKind,
  options: VariantOptions,
): Promise<Variant> {
  const id = variantId(backbone, kind);
  const dir = path.join(options.modelsDir, id);
  if (kind === 'full-f32') {
    let info = options.rebuild ? undefined : readFullDepth(dir);
    if (!info) {
      const def = FULL_DEPTH.find((d) => d.id === id);
      if (!def) throw new Error(`no full-depth definition for ${backbone} (expected id ${id})`);
      options.log(`building ${id}`);
      const built = await buildFullDepth(def);
      writeFullDepth(dir, def, built);
      info = built.info;
    }
    return {
      kind,
      id,
      onnxPath: path.join(dir, info.file),
      timedGraph: path.join(dir, info.file),
      inputName: info.inputName,
      inputSize: info.inputSize,
      flops: info.flops,
      bytes: fs.statSync(path.join(dir, info.file)).size,
    };
  }
  if (kind !== 'cut-f32') await ensureDerived(kind, backbone, id, options);
  const { spec, onnxPath } = resolveModel(kind === 'cut-f32' ? backbone : dir, options.modelsDir);
  const stages = spec.stages.filter((s) => spec.defaultStages.includes(s.name));
  const graph = stageGraph(spec, onnxPath, stages);
  const cost = await measureModel(
    decodeModel(graph.onnx),
    spec.inputName,
    spec.inputSize,
    stages.map((s) => s.tensor),
  );
  return {
    kind,
    id,
    onnxPath,
    timedGraph: graph.onnx,
    inputName: spec.inputName,
    inputSize: spec.inputSize,
    spec,
    flops: cost.flops,
    bytes: fs.statSync(onnxPath).size,
  };
}

/** A 50%-pruned model with bias compensation from one job's nominal images (accuracy comparison). */
export async function preparePrunedCompensatedFor(
  backbone: string,
  folder: string,
  tag: string,
  options: VariantOptions,
): Promise<string> {
  const id = `${backbone}-pruned50-comp-${tag}`;
  const { spec, onnxPath } = resolveModel(backbone, options.modelsDir);
  const dir = path.join(options.modelsDir, id);
  if (!upToDate(dir, spec, options.rebuild)) {
    options.log(`building ${id}`);
    const built = await buildPruned(spec, readModel(onnxPath), { id, ratio: 0.5, compensate: folder });
    writeDerived(dir, built.derived);
  }
  return dir;
}

/**
 * INT8 calibrated on one job's nominal images, or the fast recipe compensated and calibrated on
 * them (for the accuracy comparison): one model per job, and per view.
 */
export async function prepareForJob(
  kind: 'cut-int8-nominal' | 'cut-fast-int8',
  backbone: string,
  folder: string,
  tag: string,
  options: VariantOptions,
): Promise<string> {
  const view = options.calibrationView === 'tile' ? '-tile' : '';
  const id = `${variantId(backbone, kind)}-${tag}${view}`;
  await ensureDerived(kind, backbone, id, options, folder);
  return path.join(options.modelsDir, id);
}
