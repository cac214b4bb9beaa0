/**
 * The trained head as ONNX (issue #20), written with the project's own graph builder
 * (models/onnx/builder.ts), run by onnxruntime-node, and its INT8 sibling from the project's QDQ
 * quantiser (models/quantize: planQdq + applyQdq, calibrated here on good patch embeddings, since the
 * backbone calibration feeds images).
 *
 * Graph: embeddings [patches x D] -> Gemm (adaptor, standardisation and first layer folded, D x H)
 * -> Relu -> Gemm (H x 1) -> logits [patches x 1]. INT8: the first Gemm's weights int8 per output
 * channel, its input and (ReLU-folded) output uint8 per tensor; the last Gemm (H multiply-adds per
 * patch) stays float so the score keeps its full resolution.
 */
import * as ort from 'onnxruntime-node';
import { GraphBuilder, intAttr } from '../../models/onnx/builder';
import { encodeModel } from '../../models/onnx/io';
import { ModelProto } from '../../models/onnx/proto';
import { exposeTensors } from '../../models/quantize/calibrate';
import { planQdq } from '../../models/quantize/plan';
import { applyQdq } from '../../models/quantize/qdq';
import { MinMax, Range } from '../../models/quantize/ranges';
import { ortSessionOptions, sessionSettingsFromEnv } from '../backbone/backbone';
import { FoldedHead } from './weights';

export const HEAD_INPUT = 'embeddings';
export const HEAD_OUTPUT = 'logits';
const OPSET = 13;
const IR_VERSION = 7;

export function buildHeadModel(
  head: FoldedHead,
  doc = 'SparsePrintInspector discriminator head',
): ModelProto {
  const g = new GraphBuilder('glass_head');
  g.addInput(HEAD_INPUT, ['patches', head.inDim]);
  g.addFloat('head/w1', [head.inDim, head.hidden], head.w);
  g.addFloat('head/b1', [head.hidden], head.b);
  g.addFloat('head/w2', [head.hidden, 1], head.w2);
  g.addFloat('head/b2', [1], Float32Array.of(head.b2));
  g.addNode('Gemm', [HEAD_INPUT, 'head/w1', 'head/b1'], ['hidden_linear'], [intAttr('transB', 0)], 'gemm1');
  g.addNode('Relu', ['hidden_linear'], ['hidden'], [], 'relu1');
  g.addNode('Gemm', ['hidden', 'head/w2', 'head/b2'], [HEAD_OUTPUT], [intAttr('transB', 0)], 'gemm2');
  g.addOutput(HEAD_OUTPUT, ['patches', 1]);
  return g.model({
    producerName: 'sparse-print-inspector',
    producerVersion: '0.1.0',
    opset: OPSET,
    irVersion: IR_VERSION,
    docString: doc,
  });
}

/** The float head -> QDQ INT8, calibrated min-max on `calibration` (good patch embeddings, rows x D). */
export async function quantizeHead(
  model: ModelProto,
  calibration: Float32Array,
  dim: number,
): Promise<{ model: ModelProto; ranges: Record<string, Range> }> {
  const plan = planQdq(model.graph, { ops: ['Gemm'], keepFloat: ['gemm2'] });
  const tensors = [...new Set(plan.activations)];
  const session = await ort.InferenceSession.create(encodeModel(exposeTensors(model, tensors)), {
    graphOptimizationLevel: 'basic',
  });
  const minmax = new Map(tensors.map((t) => [t, new MinMax()]));
  try {
    const rows = calibration.length / dim;
    const chunk = 4096;
    for (let s = 0; s < rows; s += chunk) {
      const part = calibration.subarray(s * dim, Math.min(rows, s + chunk) * dim);
      const out = await session.run({
        [HEAD_INPUT]: new ort.Tensor('float32', part, [part.length / dim, dim]),
      });
      for (const t of tensors) minmax.get(t)!.add(t === HEAD_INPUT ? part : (out[t].data as Float32Array));
    }
  } finally {
    await session.release();
  }
  const ranges = new Map([...minmax].map(([t, m]) => [t, m.range()]));
  const { model: quantized } = applyQdq(model, plan, ranges);
  return { model: quantized, ranges: Object.fromEntries(ranges) };
}

/** An onnxruntime session over a head model: raw patch embeddings in, anomaly logits out. */
export class HeadSession {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly dim: number,
  ) {}

  static async create(bytes: Uint8Array, dim: number): Promise<HeadSession> {
    const session = await ort.InferenceSession.create(bytes, ortSessionOptions(sessionSettingsFromEnv()));
    return new HeadSession(session, dim);
  }

  async score(vectors: Float32Array): Promise<Float32Array> {
    const rows = vectors.length / this.dim;
    if (rows === 0) return new Float32Array(0);
    const out = await this.session.run({
      [HEAD_INPUT]: new ort.Tensor('float32', vectors, [rows, this.dim]),
    });
    return Float32Array.from(out[HEAD_OUTPUT].data as Float32Array);
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}
