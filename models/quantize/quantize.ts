/** Static INT8 post-training quantisation of a float ONNX backbone: plan, calibrate, rewrite to QDQ. */
import { ModelProto } from '../onnx/proto';
import { CalibrationSet } from './calibration-data';
import { CalibrateOptions, calibrateRanges } from './calibrate';
import { QdqPlan, paramsRoot, planQdq } from './plan';
import { AffineParams } from './qparams';
import { CalibrationMethod, Range } from './ranges';
import { ReduceRange, applyQdq } from './qdq';

export interface QuantizeOptions {
  method: CalibrationMethod;
  percentile?: number;
  reduceRange?: ReduceRange;
  weightType?: 'int8' | 'uint8';
  /** Op types to quantise (default Conv, Gemm, MatMul, Add, Concat, pools). */
  ops?: string[];
  /** Nodes (names or output tensors) left in float. */
  keepFloat?: string[];
  onProgress?: CalibrateOptions['onProgress'];
}

export interface QuantizeResult {
  model: ModelProto;
  plan: QdqPlan;
  ranges: Map<string, Range>;
  params: Map<string, AffineParams>;
}

export async function quantizeModel(
  model: ModelProto,
  inputName: string,
  calibration: CalibrationSet,
  options: QuantizeOptions,
): Promise<QuantizeResult> {
  const plan = planQdq(model.graph, { ops: options.ops, keepFloat: options.keepFloat });
  if (plan.weighted.length === 0)
    throw new Error('quantize: the model has no Conv/Gemm/MatMul with constant weights');
  // Tensors sharing parameters (MaxPool outputs) need only their root calibrated.
  const roots = [...new Set(plan.activations.map((t) => paramsRoot(plan, t)))];
  const ranges = await calibrateRanges(model, inputName, roots, calibration, {
    method: options.method,
    percentile: options.percentile,
    onProgress: options.onProgress,
  });
  const { model: quantized, params } = applyQdq(model, plan, ranges, {
    reduceRange: options.reduceRange,
    weightType: options.weightType,
  });
  return { model: quantized, plan, ranges, params };
}
