/**
 * Patch embedding on worker threads. onnxruntime-node runs inference on the calling thread, so a
 * gateway that embeds on its event loop serialises concurrent requests behind one another and
 * stalls gRPC meanwhile. The pool keeps N workers, each with its own backbone sessions; decode and
 * search stay on the main thread's async paths, so the three overlap across requests. Requests that
 * queue up while every worker is busy go to the next free worker together, as one backbone batch.
 */
import * as os from 'node:os';
import { Worker } from 'node:worker_threads';
import { startWorker } from '../util/worker';
import { SessionSettings, sessionSettingsFromEnv } from '../backbone/backbone';
import { RgbImage } from '../image/decode';
import { ErrorKind, SpiError } from '../errors';
import { ImageEmbedding } from './feature-extractor';
import type { ExtractorSettings } from './extractor-settings';

export interface EmbedPoolOptions {
  /** Worker threads (at least 1). */
  workers: number;
  /** Session settings inside each worker (default: the cores shared out among the workers). */
  session?: SessionSettings;
  /** Most queued requests one worker takes at once (default 4). */
  maxBatch?: number;
}

export type ToWorker =
  | { type: 'embed'; id: number; settings: ExtractorSettings; images: RgbImage[] }
  | { type: 'warm'; id: number; settings: ExtractorSettings };

export type FromWorker =
  | { type: 'done'; id: number; embeddings: ImageEmbedding[] }
  | { type: 'error'; id: number; kind: ErrorKind | null; message: string };

interface Job {
  settings: ExtractorSettings;
  key: string;
  /** Absent for a warm-up. */
  image?: RgbImage;
  resolve(embedding: ImageEmbedding | undefined): void;
  reject(err: Error): void;
}

interface PoolWorker {
  worker: Worker;
  /** Jobs of the message in flight (empty = idle). */
  busy: Job[];
  messageId: number;
  /** Warm-ups meant for this worker, run before it takes shared work. */
  warmups: Job[];
  /** Extractor settings (keys) whose backbone this worker has loaded. */
  loaded: Set<string>;
}

/** "auto": one worker per core beyond the first (the main thread decodes, searches and scores). */
export function embedWorkersSetting(value: string | undefined): number {
  if (value === undefined || value === '' || value === 'auto')
    return Math.max(0, os.availableParallelism() - 1);
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0)
    throw new SpiError('INVALID_ARGUMENT', `embed workers must be "auto" or an integer >= 0, got "${value}"`);
  return n;
}

export class EmbedPool {
  private readonly workers: PoolWorker[] = [];
  private readonly queue: Job[] = [];
  private nextId = 1;
  private closed = false;
  private readonly maxBatch: number;
  private readonly session: SessionSettings;

  constructor(options: EmbedPoolOptions) {
    if (!Number.isInteger(options.workers) || options.workers < 1)
      throw new SpiError(
        'INVALID_ARGUMENT',
        `an embedding pool needs at least 1 worker, got ${options.workers}`,
      );
    this.maxBatch = Math.max(1, options.maxBatch ?? 4);
    // The cores shared out among the workers, unless SPI_INTRA_OP_THREADS says how many each gets.
    const fromEnv = sessionSettingsFromEnv();
    const threads =
      fromEnv.intraOpThreads || Math.max(1, Math.floor(os.availableParallelism() / options.workers));
    this.session = options.session ?? { ...fromEnv, intraOpThreads: threads };
    for (let i = 0; i < options.workers; i++) this.workers.push(this.spawn());
  }

  get size(): number {
    return this.workers.length;
  }

  embed(settings: ExtractorSettings, image: RgbImage): Promise<ImageEmbedding> {
    return new Promise<ImageEmbedding | undefined>((resolve, reject) => {
      this.enqueue({ settings, key: keyOf(settings), image, resolve, reject });
    }) as Promise<ImageEmbedding>;
  }

  /** Loads the backbone for `settings` in every worker, so the first request does not pay for it. */
  async warm(settings: ExtractorSettings): Promise<void> {
    const key = keyOf(settings);
    await Promise.all(
      this.workers
        .filter((w) => !w.loaded.has(key))
        .map(
          (w) =>
            new Promise<void>((resolve, reject) => {
              if (this.closed) return reject(closedError());
              const job: Job = { settings, key, resolve: () => resolve(), reject };
              // To this very worker (after what it is doing): through the shared queue another,
              // already warm worker could take it and this one would stay cold.
              if (w.busy.length === 0) this.send(w, [job]);
              else w.warmups.push(job);
            }),
        ),
    );
  }

  /** How many workers have the backbone of `settings` loaded. */
  warmWorkers(settings: ExtractorSettings): number {
    const key = keyOf(settings);
    return this.workers.filter((w) => w.loaded.has(key)).length;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.queue.splice(0)) job.reject(closedError());
    for (const w of this.workers) for (const job of w.warmups.splice(0)) job.reject(closedError());
    await Promise.all(
      this.workers.map(async (w) => {
        for (const job of w.busy.splice(0)) job.reject(closedError());
        await w.worker.terminate();
      }),
    );
  }

  private enqueue(job: Job): void {
    if (this.closed) return job.reject(closedError());
    this.queue.push(job);
    this.dispatch();
  }

  private dispatch(): void {
    for (const w of this.workers) {
      if (w.busy.length > 0) continue;
      if (w.warmups.length > 0) {
        this.send(w, [w.warmups.shift() as Job]);
        continue;
      }
      if (this.queue.length === 0) continue;
      const first = this.queue.shift() as Job;
      const jobs = [first];
      // Batch only real requests with the same extractor settings (same model, stages and view).
      for (let i = 0; first.image && i < this.queue.length && jobs.length < this.maxBatch; ) {
        if (this.queue[i].key === first.key && this.queue[i].image) jobs.push(...this.queue.splice(i, 1));
        else i++;
      }
      this.send(w, jobs);
    }
  }

  private send(w: PoolWorker, jobs: Job[]): void {
    w.busy = jobs;
    w.messageId = this.nextId++;
    w.worker.ref(); // keeps the process alive while a request waits on this worker
    const settings = jobs[0].settings;
    if (!jobs[0].image) {
      w.worker.postMessage({ type: 'warm', id: w.messageId, settings } satisfies ToWorker);
      return;
    }
    // Copies in unpooled buffers, so the transfer cannot detach memory the caller (or Node's Buffer
    // pool) still uses.
    const images = jobs.map(({ image }) => {
      const im = image as RgbImage;
      const data = Buffer.allocUnsafeSlow(im.data.length);
      data.set(im.data);
      return { ...im, data };
    });
    w.worker.postMessage(
      { type: 'embed', id: w.messageId, settings, images } satisfies ToWorker,
      images.map((im) => im.data.buffer as ArrayBuffer),
    );
  }

  private spawn(): PoolWorker {
    const worker = startWorker(__filename, 'embed-worker', { session: this.session });
    const entry: PoolWorker = { worker, busy: [], messageId: 0, warmups: [], loaded: new Set() };
    worker.on('message', (msg: FromWorker) => {
      if (msg.id !== entry.messageId) return;
      const jobs = entry.busy.splice(0);
      worker.unref(); // an idle pool does not keep the process alive
      if (msg.type === 'done') {
        entry.loaded.add(jobs[0].key);
        jobs.forEach((job, i) => job.resolve(msg.embeddings[i]));
      } else {
        const err = msg.kind ? new SpiError(msg.kind, msg.message) : new Error(msg.message);
        jobs.forEach((job) => job.reject(err));
      }
      this.dispatch();
    });
    // A worker that dies (out of memory, a native crash) fails only its own requests; a new one
    // takes its place.
    const replace = (why: string) => {
      const jobs = entry.busy.splice(0);
      for (const job of jobs) job.reject(new SpiError('INTERNAL', `embedding worker failed: ${why}`));
      const i = this.workers.indexOf(entry);
      if (i < 0 || this.closed) return;
      this.workers[i] = this.spawn();
      this.workers[i].warmups.push(...entry.warmups.splice(0)); // the new worker starts cold too
      this.dispatch();
    };
    worker.on('error', (err) => replace(err.message));
    worker.on('exit', (code) => {
      if (!this.closed) replace(`exited with code ${code}`);
    });
    worker.unref();
    return entry;
  }
}

function keyOf(s: ExtractorSettings): string {
  return JSON.stringify([
    s.model,
    s.stages ?? [],
    s.view,
    s.projectionDim,
    s.projectionSeed,
    s.batchSize ?? 0,
  ]);
}

function closedError(): SpiError {
  return new SpiError('UNAVAILABLE', 'the embedding pool is shutting down');
}
