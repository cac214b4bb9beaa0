/** Stage-tensor agreement between a float model and a derived one on the same inputs. */
import * as ort from 'onnxruntime-node';

export interface StageError {
  tensor: string;
  /** sqrt(sum (a-b)^2 / sum a^2) over all inputs. */
  relRms: number;
  /** max |a-b| / max |a|. */
  relMax: number;
}

export async function runStages(
  onnx: Uint8Array | string,
  inputName: string,
  inputs: Float32Array[],
  size: [number, number],
  tensors: string[],
  options: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: 'all' },
): Promise<Map<string, Float32Array>[]> {
  const session =
    typeof onnx === 'string'
      ? await ort.InferenceSession.create(onnx, options)
      : await ort.InferenceSession.create(onnx, options);
  try {
    const out: Map<string, Float32Array>[] = [];
    for (const input of inputs) {
      const r = await session.run({ [inputName]: new ort.Tensor('float32', input, [1, 3, ...size]) });
      out.push(new Map(tensors.map((t) => [t, r[t].data as Float32Array])));
    }
    return out;
  } finally {
    await session.release();
  }
}

export function stageErrors(
  reference: Map<string, Float32Array>[],
  other: Map<string, Float32Array>[],
  tensors: string[],
): StageError[] {
  return tensors.map((tensor) => {
    let se = 0;
    let ss = 0;
    let maxDiff = 0;
    let maxAbs = 0;
    reference.forEach((ref, i) => {
      const a = ref.get(tensor) as Float32Array;
      const b = other[i].get(tensor) as Float32Array;
      if (a.length !== b.length) throw new Error(`stage ${tensor}: ${a.length} vs ${b.length} values`);
      for (let j = 0; j < a.length; j++) {
        const d = a[j] - b[j];
        se += d * d;
        ss += a[j] * a[j];
        maxDiff = Math.max(maxDiff, Math.abs(d));
        maxAbs = Math.max(maxAbs, Math.abs(a[j]));
      }
    });
    return { tensor, relRms: ss > 0 ? Math.sqrt(se / ss) : 0, relMax: maxAbs > 0 ? maxDiff / maxAbs : 0 };
  });
}
