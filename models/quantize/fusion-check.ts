/**
 * What onnxruntime actually runs: the graph after its optimisations (at 'all' on CPU, DQ -> Conv -> Q
 * groups become QLinearConv, DQ -> Add -> Q become QLinearAdd, ...), read back from the optimised
 * model file the session writes, as op counts.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { readModel } from '../onnx/io';
import { opCounts } from './tensors';

export interface FusionReport {
  level: 'basic' | 'extended' | 'all';
  ops: Record<string, number>;
  /** Integer kernels: QLinear* ops and ConvInteger/MatMulInteger-style ops. */
  integerOps: number;
  /** Float Conv/FusedConv/Gemm/MatMul left (weights not fused into an integer kernel). */
  floatComputeOps: number;
  /** Q/DQ nodes left unfused. */
  qdqLeft: number;
}

export async function optimizedOps(
  onnx: Uint8Array | string,
  level: FusionReport['level'] = 'all',
): Promise<FusionReport> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spi-ort-opt-'));
  const file = path.join(dir, 'optimized.onnx');
  try {
    // Severity 3 (errors only): serialising an 'all'-level graph warns that it is hardware specific.
    const options = {
      graphOptimizationLevel: level,
      optimizedModelFilePath: file,
      logSeverityLevel: 3 as const,
    };
    const session =
      typeof onnx === 'string'
        ? await ort.InferenceSession.create(onnx, options)
        : await ort.InferenceSession.create(onnx, options);
    await session.release();
    const ops = opCounts(readModel(file).graph);
    const count = (test: (op: string) => boolean) =>
      Object.entries(ops)
        .filter(([op]) => test(op.replace(/^.*\./, '')))
        .reduce((n, [, c]) => n + c, 0);
    return {
      level,
      ops,
      integerOps: count((op) => op.startsWith('QLinear') || /Integer$/.test(op) || op === 'QGemm'),
      floatComputeOps: count((op) =>
        ['Conv', 'FusedConv', 'Gemm', 'FusedGemm', 'MatMul', 'FusedMatMul'].includes(op),
      ),
      qdqLeft: count((op) => op === 'QuantizeLinear' || op === 'DequantizeLinear'),
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
