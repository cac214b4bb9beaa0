/**
 * Latency and throughput of an ONNX model on one onnxruntime session: per-image milliseconds at
 * batch 1 after a warm-up, and images/s with several session.run calls in flight at once (the
 * engine's gateway serves concurrent requests on one shared session).
 */
import * as ort from 'onnxruntime-node';

export interface LatencyOptions {
  inputName: string;
  inputSize: [number, number];
  warmup?: number;
  runs?: number;
  /** session.run calls in flight for the throughput figure (0 = skip it). */
  concurrency?: number;
  /** Runs per concurrent lane. */
  concurrentRuns?: number;
  session?: ort.InferenceSession.SessionOptions;
}

export interface Latency {
  p50: number;
  p90: number;
  p99: number;
  mean: number;
  /** images/s with one call at a time (1000 / mean). */
  imagesPerSecond: number;
  /** images/s with `concurrency` calls in flight, when measured. */
  concurrentImagesPerSecond?: number;
  runs: number;
}

function quantile(sorted: number[], q: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

export async function measureLatency(onnx: Uint8Array | string, options: LatencyOptions): Promise<Latency> {
  const sessionOptions = options.session ?? { graphOptimizationLevel: 'all' };
  const session =
    typeof onnx === 'string'
      ? await ort.InferenceSession.create(onnx, sessionOptions)
      : await ort.InferenceSession.create(onnx, sessionOptions);
  try {
    const [h, w] = options.inputSize;
    const data = new Float32Array(3 * h * w);
    for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.37) * 0.8;
    const feed = { [options.inputName]: new ort.Tensor('float32', data, [1, 3, h, w]) };
    for (let i = 0; i < (options.warmup ?? 5); i++) await session.run(feed);
    const times: number[] = [];
    for (let i = 0; i < (options.runs ?? 50); i++) {
      const t0 = performance.now();
      await session.run(feed);
      times.push(performance.now() - t0);
    }
    const sorted = [...times].sort((a, b) => a - b);
    const mean = times.reduce((a, b) => a + b, 0) / times.length;
    const result: Latency = {
      p50: quantile(sorted, 0.5),
      p90: quantile(sorted, 0.9),
      p99: quantile(sorted, 0.99),
      mean,
      imagesPerSecond: 1000 / mean,
      runs: times.length,
    };
    const lanes = options.concurrency ?? 0;
    if (lanes > 1) {
      const perLane = options.concurrentRuns ?? Math.max(2, Math.ceil((options.runs ?? 50) / lanes));
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: lanes }, async () => {
          for (let i = 0; i < perLane; i++) await session.run(feed);
        }),
      );
      result.concurrentImagesPerSecond = (lanes * perLane * 1000) / (performance.now() - t0);
    }
    return result;
  } finally {
    await session.release();
  }
}
