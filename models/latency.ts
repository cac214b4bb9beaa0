/**
 * Latency and throughput of ONNX models on onnxruntime sessions: per-image milliseconds at batch 1
 * after a warm-up, and images/s with several session.run calls in flight on one session (the
 * gateway serves concurrent requests on one shared session). Note that onnxruntime-node 1.23 runs
 * the native inference synchronously on the JS thread, so concurrent calls on one session queue.
 *
 * Several models are timed interleaved (a few runs of each in turn, repeatedly), so load from other
 * processes on a shared machine slows all of them alike and their ratios stay meaningful.
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

/** One session with a fixed input, timed in pieces. */
class Probe {
  readonly times: number[] = [];
  concurrent?: number;

  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly feed: Record<string, ort.Tensor>,
  ) {}

  static async open(onnx: Uint8Array | string, options: LatencyOptions): Promise<Probe> {
    const sessionOptions = options.session ?? { graphOptimizationLevel: 'all' };
    const session =
      typeof onnx === 'string'
        ? await ort.InferenceSession.create(onnx, sessionOptions)
        : await ort.InferenceSession.create(onnx, sessionOptions);
    const [h, w] = options.inputSize;
    const data = new Float32Array(3 * h * w);
    for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.37) * 0.8;
    const probe = new Probe(session, { [options.inputName]: new ort.Tensor('float32', data, [1, 3, h, w]) });
    for (let i = 0; i < (options.warmup ?? 5); i++) await session.run(probe.feed);
    return probe;
  }

  async time(runs: number): Promise<void> {
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      await this.session.run(this.feed);
      this.times.push(performance.now() - t0);
    }
  }

  async timeConcurrent(lanes: number, perLane: number): Promise<void> {
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: lanes }, async () => {
        for (let i = 0; i < perLane; i++) await this.session.run(this.feed);
      }),
    );
    this.concurrent = (lanes * perLane * 1000) / (performance.now() - t0);
  }

  result(): Latency {
    const sorted = [...this.times].sort((a, b) => a - b);
    const mean = this.times.reduce((a, b) => a + b, 0) / this.times.length;
    return {
      p50: quantile(sorted, 0.5),
      p90: quantile(sorted, 0.9),
      p99: quantile(sorted, 0.99),
      mean,
      imagesPerSecond: 1000 / mean,
      concurrentImagesPerSecond: this.concurrent,
      runs: this.times.length,
    };
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

/** Times several models round-robin: `rounds` turns of runs/rounds runs each. */
export async function measureInterleaved(
  models: { onnx: Uint8Array | string; options: LatencyOptions }[],
  rounds = 5,
): Promise<Latency[]> {
  const probes: Probe[] = [];
  try {
    for (const m of models) probes.push(await Probe.open(m.onnx, m.options));
    for (let r = 0; r < rounds; r++) {
      for (const [i, p] of probes.entries()) {
        const runs = models[i].options.runs ?? 50;
        await p.time(Math.floor(runs / rounds) + (r < runs % rounds ? 1 : 0));
      }
    }
    for (const [i, p] of probes.entries()) {
      const lanes = models[i].options.concurrency ?? 0;
      const runs = models[i].options.runs ?? 50;
      if (lanes > 1)
        await p.timeConcurrent(
          lanes,
          models[i].options.concurrentRuns ?? Math.max(2, Math.ceil(runs / lanes)),
        );
    }
    return probes.map((p) => p.result());
  } finally {
    for (const p of probes) await p.release();
  }
}

export async function measureLatency(onnx: Uint8Array | string, options: LatencyOptions): Promise<Latency> {
  return (await measureInterleaved([{ onnx, options }], 1))[0];
}
