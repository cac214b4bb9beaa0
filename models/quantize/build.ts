/**
 * A built float backbone -> its INT8 sibling: calibration set, QDQ rewrite, onnxruntime fusion check,
 * stage-error check, and the spec/card of the new model (see models/derived.ts).
 */
import { DerivedModel, describeDerived } from '../derived';
import { encodeModel } from '../onnx/io';
import { ModelProto } from '../onnx/proto';
import { ModelSpec } from '../spec';
import { CalibrationSet, CalibrationView, folderSet, randnSet } from './calibration-data';
import { StageError, runStages, stageErrors } from './compare';
import { FusionReport, optimizedOps } from './fusion-check';
import { ReduceRange } from './qdq';
import { quantizeModel } from './quantize';
import { CalibrationMethod } from './ranges';
import { opCounts } from './tensors';

export interface Int8Options {
  id: string;
  /** "randn" or a folder of nominal (good) images. */
  calibration: string;
  /** How folder images become inputs: "resize" (default) or "tile" (crops, for tiled jobs). */
  calibrationView?: CalibrationView;
  method: CalibrationMethod;
  percentile?: number;
  count: number;
  seed?: number;
  reduceRange?: ReduceRange;
  weightType?: 'int8' | 'uint8';
  /** Nodes (names or output tensors) left in float. */
  keepFloat?: string[];
  /** Inputs for the stage-error check (default: the first 4 calibration inputs). */
  checkInputs?: Float32Array[];
  /** Transforms already applied to `model` (e.g. pruning), recorded first on the card. */
  prior?: { transforms: string[]; details: Record<string, unknown> };
  log?: (message: string) => void;
  onProgress?: (stage: string, done: number, total: number) => void;
}

export interface Int8Build {
  derived: DerivedModel;
  fusion: FusionReport;
  errors: StageError[];
  calibration: Pick<CalibrationSet, 'source' | 'files' | 'seed'> & { count: number };
}

export async function calibrationSet(
  source: string,
  count: number,
  spec: ModelSpec,
  seed = 1234,
  view: CalibrationView = 'resize',
): Promise<CalibrationSet> {
  return source === 'randn'
    ? randnSet(count, spec.inputSize, seed)
    : folderSet(source, count, spec, seed, view);
}

export async function buildInt8(
  parent: ModelSpec,
  model: ModelProto,
  options: Int8Options,
): Promise<Int8Build> {
  const log = options.log ?? (() => {});
  const seed = options.seed ?? 1234;
  log(`calibration: ${options.count} inputs from ${options.calibration} (seed ${seed})`);
  const set = await calibrationSet(options.calibration, options.count, parent, seed, options.calibrationView);
  log(
    `calibrating ${options.method}${options.method === 'percentile' ? ` ${options.percentile ?? 99.99}%` : ''}`,
  );
  const q = await quantizeModel(model, parent.inputName, set, {
    method: options.method,
    percentile: options.percentile,
    reduceRange: options.reduceRange,
    weightType: options.weightType,
    keepFloat: options.keepFloat,
    onProgress: options.onProgress,
  });
  const bytes = encodeModel(q.model);
  log('checking what onnxruntime fuses (optimisation level all)');
  const fusion = await optimizedOps(bytes, 'all');
  const tensors = parent.stages.map((s) => s.tensor);
  const checkInputs = options.checkInputs ?? set.inputs.slice(0, 4);
  const [ref, got] = await Promise.all([
    runStages(encodeModel(model), parent.inputName, checkInputs, [set.height, set.width], tensors),
    runStages(bytes, parent.inputName, checkInputs, [set.height, set.width], tensors),
  ]);
  const errors = stageErrors(ref, got, tensors);
  const quantizedOps: Record<string, number> = {};
  for (const w of q.plan.weighted) quantizedOps[w.node.opType] = (quantizedOps[w.node.opType] ?? 0) + 1;
  const calibration = { source: set.source, files: set.files, seed: set.seed, count: set.inputs.length };
  const derived = await describeDerived(q.model, parent, {
    id: options.id,
    stages: parent.stages,
    transforms: [...(options.prior?.transforms ?? []), 'int8'],
    details: {
      ...options.prior?.details,
      int8: {
        format: 'QDQ (QuantizeLinear/DequantizeLinear), opset 13',
        weights: `${options.weightType ?? 'int8'} symmetric per output channel (axis 0; Gemm/MatMul: output axis), reduceRange ${options.reduceRange ?? 'gemm'}`,
        activations:
          'uint8 asymmetric per tensor; ReLU/Clip(0,6) after a quantised op folded into its quantiser',
        bias: 'int32, scale = input scale x weight scale',
        calibrationMethod:
          options.method === 'percentile' ? `percentile ${options.percentile ?? 99.99}%` : 'min-max',
        calibrationSource:
          set.source === 'randn'
            ? 'seeded standard-normal inputs'
            : `nominal images in ${set.source}${options.calibrationView === 'tile' ? ', tile-sized crops at full resolution' : ''}`,
        calibrationCount: set.inputs.length,
        calibrationSeed: seed,
        calibrationFiles: set.files.map((f) => f.split('/').slice(-3).join('/')),
        weightedNodes: quantizedOps,
        keptFloat: options.keepFloat ?? [],
        activationTensors: q.plan.activations.length,
        foldedActivations: q.plan.absorbed.size,
        stageRelRmsError: Object.fromEntries(errors.map((e) => [e.tensor, Number(e.relRms.toFixed(4))])),
        onnxruntimeIntegerKernels: fusion.integerOps,
        onnxruntimeFloatConvsLeft: fusion.floatComputeOps,
      },
    },
    opCounts: { graph: opCounts(q.model.graph), [`onnxruntime ${fusion.level}`]: fusion.ops },
    notes: [
      'Stage outputs are dequantised float32 under the same names, so the engine uses this model like its parent.',
      'Stage errors are relative RMS differences from the float parent on calibration inputs.',
    ],
  });
  return { derived, fusion, errors, calibration };
}
