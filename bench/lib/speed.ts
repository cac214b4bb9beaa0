/** Speed rows for the backbone benchmark: one per variant, ratios against the full-depth baseline. */
import * as ort from 'onnxruntime-node';
import { measureInterleaved } from '../../models/latency';
import { Variant } from './variants';

export interface BackboneBenchRow {
  backbone: string;
  variant: string;
  modelId: string;
  inputSize: [number, number];
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  /** images/s, one session.run at a time. */
  imagesPerSecondC1: number;
  /** images/s with 4 session.run calls in flight on the one session. */
  imagesPerSecondC4: number;
  flops: number;
  bytes: number;
  /** Default-stage channels (the embedding width the engine sees); absent for the full model. */
  embeddingChannels?: number;
  /** p50 of the full-depth float baseline / p50 of this variant, measured in the same run. */
  speedupVsFull: number;
  /** Same for the cut float backbone. */
  speedupVsCut: number;
}

export interface SpeedOptions {
  runs: number;
  warmup: number;
  concurrency: number;
  session: ort.InferenceSession.SessionOptions;
  /** Round-robin turns the runs are split into (see models/latency.ts). */
  rounds: number;
}

export async function timeVariants(
  backbone: string,
  variants: Variant[],
  options: SpeedOptions,
  log: (message: string) => void,
): Promise<BackboneBenchRow[]> {
  const latencies = await measureInterleaved(
    variants.map((v) => ({
      onnx: v.timedGraph,
      options: {
        inputName: v.inputName,
        inputSize: v.inputSize,
        warmup: options.warmup,
        runs: options.runs,
        concurrency: options.concurrency,
        session: options.session,
      },
    })),
    options.rounds,
  );
  const rows: BackboneBenchRow[] = variants.map((v, i) => {
    const l = latencies[i];
    const embedding = v.spec?.stages
      .filter((s) => v.spec?.defaultStages.includes(s.name))
      .reduce((n, s) => n + s.channels, 0);
    log(
      `${v.id}: p50 ${l.p50.toFixed(2)} ms, p99 ${l.p99.toFixed(2)} ms, ${l.imagesPerSecond.toFixed(1)} img/s (c${options.concurrency} ${l.concurrentImagesPerSecond?.toFixed(1)})`,
    );
    return {
      backbone,
      variant: v.kind,
      modelId: v.id,
      inputSize: v.inputSize,
      p50Ms: l.p50,
      p99Ms: l.p99,
      meanMs: l.mean,
      imagesPerSecondC1: l.imagesPerSecond,
      imagesPerSecondC4: l.concurrentImagesPerSecond ?? l.imagesPerSecond,
      flops: v.flops,
      bytes: v.bytes,
      embeddingChannels: embedding,
      speedupVsFull: NaN,
      speedupVsCut: NaN,
    };
  });
  const full = rows.find((r) => r.variant === 'full-f32');
  const cut = rows.find((r) => r.variant === 'cut-f32');
  for (const r of rows) {
    r.speedupVsFull = full ? full.p50Ms / r.p50Ms : NaN;
    r.speedupVsCut = cut ? cut.p50Ms / r.p50Ms : NaN;
  }
  return rows;
}

export interface SettingsRow {
  modelId: string;
  graphOptimizationLevel: 'basic' | 'all';
  intraOpNumThreads: number;
  enableCpuMemArena: boolean;
  p50Ms: number;
  p99Ms: number;
}

/** The onnxruntime session options that matter on a small CPU, tried in every combination. */
export async function timeSettings(variants: Variant[], runs: number): Promise<SettingsRow[]> {
  const combos: Omit<SettingsRow, 'p50Ms' | 'p99Ms'>[] = [];
  for (const v of variants)
    for (const level of ['basic', 'all'] as const)
      for (const threads of [1, 2])
        for (const arena of [true, false])
          combos.push({
            modelId: v.id,
            graphOptimizationLevel: level,
            intraOpNumThreads: threads,
            enableCpuMemArena: arena,
          });
  const latencies = await measureInterleaved(
    combos.map((c) => {
      const v = variants.find((x) => x.id === c.modelId) as Variant;
      return {
        onnx: v.timedGraph,
        options: {
          inputName: v.inputName,
          inputSize: v.inputSize,
          warmup: 3,
          runs,
          session: {
            graphOptimizationLevel: c.graphOptimizationLevel,
            intraOpNumThreads: c.intraOpNumThreads,
            enableCpuMemArena: c.enableCpuMemArena,
          },
        },
      };
    }),
  );
  return combos.map((c, i) => ({ ...c, p50Ms: latencies[i].p50, p99Ms: latencies[i].p99 }));
}
