/**
 * Builds a faiss index on a worker thread. Training an IVF index (k-means) or adding a large bank is
 * seconds of synchronous native work; on the shard's event loop it would stall every search of the
 * other partitions meanwhile. The worker builds and serialises; the caller restores the bytes.
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { KnnConfig, KnnIndex, parseFactory, resolveKnn } from './index';
import { ErrorKind, SpiError } from '../errors';
import { startWorker } from '../util/worker';

interface BuildJob {
  vectors: Float32Array;
  dim: number;
  config: KnnConfig;
}

type BuildReply = { ok: true; bytes: Uint8Array } | { ok: false; kind: ErrorKind | null; message: string };

/** Below this many values a build is quick enough for the calling thread (no worker start-up). */
const OFF_THREAD_MIN_VALUES = 4 * 1024 * 1024;

/**
 * KnnIndex.build, on a worker thread for IVF indexes (k-means), HNSW indexes (the graph: ~0.2 ms per
 * vector) and large banks.
 */
export async function buildIndex(vectors: Float32Array, dim: number, config: KnnConfig): Promise<KnnIndex> {
  config = resolveKnn(config, vectors.length / dim);
  const slow = /^(IVF|HNSW)/.test(parseFactory(config.factory).factory);
  if (!slow && vectors.length < OFF_THREAD_MIN_VALUES) return KnnIndex.build(vectors, dim, config);
  const bytes = await new Promise<Uint8Array>((resolve, reject) => {
    const job: BuildJob = { vectors, dim, config };
    const worker = startWorker(__filename, 'build-worker', job);
    let settled = false;
    worker.once('message', (reply: BuildReply) => {
      settled = true;
      if (reply.ok) resolve(reply.bytes);
      else reject(reply.kind ? new SpiError(reply.kind, reply.message) : new Error(reply.message));
    });
    worker.once('error', (err) => {
      settled = true;
      reject(err);
    });
    worker.once('exit', (code) => {
      if (!settled) reject(new Error(`index build worker exited with code ${code}`));
    });
  });
  return KnnIndex.deserialize(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), config);
}

if (!isMainThread && parentPort && (workerData as BuildJob | undefined)?.config) {
  const { vectors, dim, config } = workerData as BuildJob;
  let reply: BuildReply;
  try {
    const serialized = KnnIndex.build(vectors, dim, config).serialize();
    const bytes = new Uint8Array(serialized.length);
    bytes.set(serialized);
    reply = { ok: true, bytes };
  } catch (err) {
    reply = {
      ok: false,
      kind: err instanceof SpiError ? err.kind : null,
      message: err instanceof Error ? err.message : String(err),
    };
  }
  parentPort.postMessage(reply, reply.ok ? [reply.bytes.buffer as ArrayBuffer] : []);
}
