/** Per-channel means of intermediate tensors over calibration inputs (for pruning bias compensation). */
import * as ort from 'onnxruntime-node';
import { encodeModel } from '../onnx/io';
import { ModelProto } from '../onnx/proto';
import { CalibrationSet } from '../quantize/calibration-data';
import { exposeTensors } from '../quantize/calibrate';

export async function channelMeans(
  model: ModelProto,
  inputName: string,
  tensors: string[],
  set: CalibrationSet,
): Promise<Map<string, Float64Array>> {
  const session = await ort.InferenceSession.create(encodeModel(exposeTensors(model, tensors)), {
    graphOptimizationLevel: 'basic',
  });
  const sums = new Map<string, Float64Array>();
  try {
    for (const input of set.inputs) {
      const r = await session.run({
        [inputName]: new ort.Tensor('float32', input, [1, 3, set.height, set.width]),
      });
      for (const t of tensors) {
        const [, c, h, w] = r[t].dims as number[];
        const data = r[t].data as Float32Array;
        const sum = sums.get(t) ?? new Float64Array(c);
        for (let k = 0; k < c; k++) {
          let s = 0;
          for (let i = k * h * w; i < (k + 1) * h * w; i++) s += data[i];
          sum[k] += s / (h * w);
        }
        sums.set(t, sum);
      }
    }
  } finally {
    await session.release();
  }
  for (const sum of sums.values()) for (let k = 0; k < sum.length; k++) sum[k] /= set.inputs.length;
  return sums;
}
