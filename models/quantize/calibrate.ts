/**
 * Runs calibration inputs through the float model with the tensors to quantise exposed as extra
 * graph outputs, and returns one range per tensor. Percentile needs the min-max range first (the
 * histogram spans it), so it runs the inputs twice rather than holding every activation in memory.
 */
import * as ort from 'onnxruntime-node';
import { tensorValueInfo } from '../onnx/builder';
import { encodeModel } from '../onnx/io';
import { DataType, ModelProto } from '../onnx/proto';
import { CalibrationSet } from './calibration-data';
import { CalibrationMethod, Histogram, MinMax, Range } from './ranges';

export interface CalibrateOptions {
  method: CalibrationMethod;
  /** Percent of values kept by "percentile" (default 99.99). */
  percentile?: number;
  /** Histogram bins for "percentile" (default 4096). */
  bins?: number;
  onProgress?: (pass: string, done: number, total: number) => void;
}

/** A copy of the model whose outputs also include `tensors` (graph inputs are read from the feed). */
export function exposeTensors(model: ModelProto, tensors: string[]): ModelProto {
  const graph = model.graph;
  const present = new Set([...graph.output.map((o) => o.name), ...graph.input.map((i) => i.name)]);
  const extra = tensors.filter((t) => !present.has(t)).map((t) => tensorValueInfo(t, DataType.FLOAT));
  return { ...model, graph: { ...graph, output: [...graph.output, ...extra] } };
}

async function forEachActivation(
  session: ort.InferenceSession,
  inputName: string,
  set: CalibrationSet,
  tensors: string[],
  visit: (tensor: string, data: Float32Array) => void,
  progress: (done: number) => void,
): Promise<void> {
  for (const [i, input] of set.inputs.entries()) {
    const results = await session.run({
      [inputName]: new ort.Tensor('float32', input, [1, 3, set.height, set.width]),
    });
    for (const t of tensors) visit(t, t === inputName ? input : (results[t].data as Float32Array));
    progress(i + 1);
  }
}

export async function calibrateRanges(
  model: ModelProto,
  inputName: string,
  tensors: string[],
  set: CalibrationSet,
  options: CalibrateOptions,
): Promise<Map<string, Range>> {
  if (set.inputs.length === 0) throw new Error('calibration needs at least one input');
  // 'basic' keeps every exposed tensor and is enough for a handful of calibration runs.
  const session = await ort.InferenceSession.create(encodeModel(exposeTensors(model, tensors)), {
    graphOptimizationLevel: 'basic',
  });
  const total = set.inputs.length;
  try {
    const minmax = new Map(tensors.map((t) => [t, new MinMax()]));
    await forEachActivation(
      session,
      inputName,
      set,
      tensors,
      (t, data) => minmax.get(t)?.add(data),
      (done) => options.onProgress?.('calibrate min-max', done, total),
    );
    const ranges = new Map([...minmax].map(([t, m]) => [t, m.range()]));
    if (options.method === 'minmax') return ranges;
    const hists = new Map(
      [...ranges].map(([t, r]) => [t, new Histogram(r.min, r.max, options.bins ?? 4096)]),
    );
    await forEachActivation(
      session,
      inputName,
      set,
      tensors,
      (t, data) => hists.get(t)?.add(data),
      (done) => options.onProgress?.('calibrate histogram', done, total),
    );
    const percentile = options.percentile ?? 99.99;
    return new Map([...hists].map(([t, h]) => [t, h.percentileRange(percentile)]));
  } finally {
    await session.release();
  }
}
