/**
 * Bank fitting on a worker thread. Fitting is long and partly synchronous (coreset selection, the
 * embedding maths); on its own thread it never stalls the gRPC event loop of the process that
 * serves inspections meanwhile (a gateway rotating a bank under load).
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { BackbonePool, createExtractor, extractorForBank } from './engine';
import { addToBank } from './incremental';
import type { BankMeta } from '../bank/bank-meta';
import { startWorker } from '../util/worker';
import { FitProgress, FitSettings, FittedBank, ImageSource, fitBank } from './fit';
import { autoFit } from '../autoconfig/auto-fit';
import { ErrorKind, SpiError } from '../errors';
import { HeadRequest, inlineHead } from '../head/head-bank';

export interface FitJob {
  model: string;
  settings: FitSettings;
  images: { path: string; data: Uint8Array }[];
  /**
   * Let the automatic fit choose backbone, stages, view and reference (lib/autoconfig) among these
   * models; single banks only, as the cluster serves them.
   */
  auto?: { models: string[]; budgetMs: number; seed: number };
  /**
   * Build the next version of this bank from it plus `images` (patchcore/incremental.ts): only the
   * images are embedded; `settings` give the version number, the rest comes from the bank.
   */
  add?: { meta: BankMeta; vectors: Float32Array; reason?: string };
  /** Train a discriminator head beside the bank, inline in its metadata (lib/head/; not with `add`). */
  head?: HeadRequest;
}

export type FitResult = Omit<FittedBank, 'index'>;

type WorkerMessage =
  | { type: 'progress'; stage: Parameters<FitProgress>[0]; done: number; total: number }
  | { type: 'done'; meta: FitResult['meta']; vectors: Float32Array; dim: number }
  | { type: 'error'; kind: ErrorKind | null; message: string };

/** Runs fitBank for `job` on a new worker thread; resolves with the bank, rejects with its error. */
export function fitInWorker(job: FitJob, onProgress?: FitProgress): Promise<FitResult> {
  const worker = startWorker(__filename, 'fit-worker', job);
  return new Promise((resolve, reject) => {
    let settled = false;
    worker.on('message', (msg: WorkerMessage) => {
      if (msg.type === 'progress') onProgress?.(msg.stage, msg.done, msg.total);
      else if (msg.type === 'done') {
        settled = true;
        resolve({ meta: msg.meta, vectors: msg.vectors, dim: msg.dim });
      } else {
        settled = true;
        reject(msg.kind ? new SpiError(msg.kind, msg.message) : new Error(msg.message));
      }
    });
    worker.on('error', (err) => {
      settled = true;
      reject(err);
    });
    worker.on('exit', (code) => {
      if (!settled) reject(new Error(`bank fitting worker exited with code ${code}`));
    });
  });
}

async function runJob(job: FitJob): Promise<void> {
  const post = (msg: WorkerMessage, transfer: ArrayBuffer[] = []) => parentPort!.postMessage(msg, transfer);
  const pool = new BackbonePool();
  try {
    const images = job.images.map((im) => ({ path: im.path, read: async () => im.data }));
    const onProgress = (stage: string, done: number, total: number) =>
      post({ type: 'progress', stage: stage as Parameters<FitProgress>[0], done, total });
    const fitted = job.add
      ? await addToBank(await extractorForBank(pool, job.add.meta), job.add, images, {
          onProgress,
          reason: job.add.reason,
          version: job.settings.version,
        })
      : job.auto
        ? await autoFitSingle(pool, images, job.settings, job.auto, onProgress)
        : await fitBank(
            await createExtractor(pool, {
              model: job.model,
              view: job.settings.view,
              projectionDim: job.settings.projectionDim,
              projectionSeed: job.settings.projectionSeed,
            }),
            images,
            job.settings,
            { onProgress, keepHeldOutMaps: job.head !== undefined },
          );
    if (job.head && !job.add)
      await inlineHead(pool, fitted as FittedBank, images, job.settings, job.head, onProgress);
    const vectors = fitted.vectors.slice();
    post({ type: 'done', meta: fitted.meta, vectors, dim: fitted.dim }, [vectors.buffer as ArrayBuffer]);
  } catch (err) {
    post({
      type: 'error',
      kind: err instanceof SpiError ? err.kind : null,
      message: err instanceof Error ? err.message : String(err),
    });
  } finally {
    await pool.close();
  }
}

async function autoFitSingle(
  pool: BackbonePool,
  images: ImageSource[],
  settings: FitSettings,
  auto: NonNullable<FitJob['auto']>,
  onProgress: (stage: string, done: number, total: number) => void,
): Promise<FittedBank> {
  const result = await autoFit(images, settings, { pool, ...auto, fusion: false, onProgress });
  if (result.kind !== 'single') throw new Error('the automatic fit chose a fused bank with fusion off');
  return result.fitted;
}

if (!isMainThread && parentPort && (workerData as FitJob | undefined)?.settings) {
  void runJob(workerData as FitJob);
}
