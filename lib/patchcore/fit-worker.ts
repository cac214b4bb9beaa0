/**
 * Bank fitting on a worker thread. Fitting is long and partly synchronous (coreset selection, the
 * embedding maths); on its own thread it never stalls the gRPC event loop of the process that
 * serves inspections meanwhile (a gateway rotating a bank under load).
 */
import * as fs from 'node:fs';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { BackbonePool, createExtractor, extractorForBank } from './engine';
import { AddOptions, addToBank } from './incremental';
import { FusedBase, addToFused } from './incremental-fused';
import type { StoredBank } from '../bank/bank-store';
import { startWorker } from '../util/worker';
import { FitProgress, FitSettings, FittedBank, ImageSource, fitBank, fittedInspector } from './fit';
import { autoFit } from '../autoconfig/auto-fit';
import { ErrorKind, SpiError } from '../errors';
import { ExtractorSettings } from './extractor-settings';
import { FittedFusion, FusedMeta, MemberFit, fitFused, fusedInspector } from './fusion';
import { HeadRequest, inlineFusedHead, inlineHead } from '../head/head-bank';
import { carryHeadInto } from '../head/head-growth';
import type { FeatureExtractor } from './feature-extractor';

export interface FitJob {
  model: string;
  settings: FitSettings;
  /** Each image's bytes, or the file the worker reads them from when the fit needs them. */
  images: JobImage[];
  /**
   * Let the automatic fit choose backbone, stages, view, reference and fusion (lib/autoconfig)
   * among these models; `fusion: false` leaves fused banks out.
   */
  auto?: { models: string[]; budgetMs: number; seed: number; fusion?: boolean };
  /**
   * A fused bank by hand (patchcore/fusion.ts): a member with the model's default stages and one
   * with these, on the same settings.
   */
  fuse?: { stages: string[] };
  /**
   * Build the next version of this bank from it plus `images` (patchcore/incremental.ts, a fused
   * bank's every member: incremental-fused.ts): only the images are embedded; `settings` give the
   * version number, the rest comes from the bank.
   */
  add?: AddBase & { reason?: string };
  /**
   * Train a discriminator head beside the bank (a fused bank: on its first member's embeddings),
   * inline in its metadata (lib/head/; not with `add`).
   */
  head?: HeadRequest;
}

export type JobImage = { path: string; data: Uint8Array } | { path: string; file: string };

/** A job's image for the worker: a file stays a file (read there, once per pass), bytes are sent. */
export async function jobImage(source: ImageSource): Promise<JobImage> {
  return source.file
    ? { path: source.path, file: source.file }
    : { path: source.path, data: await source.read() };
}

/** The bank an added version grows: a single one, or a fused one's metadata and members. */
export type AddBase = ({ kind: 'single' } & StoredBank) | ({ kind: 'fused' } & FusedBase);

export type FitResult = Omit<FittedBank, 'index'>;

/** What a job gives: one bank, or a fused bank's metadata and its members. */
export type FitOutcome =
  | ({ kind: 'single' } & FitResult)
  | { kind: 'fused'; meta: FusedMeta; members: FitResult[] };

type Done = { meta: FitResult['meta']; vectors: Float32Array; dim: number };

type WorkerMessage =
  | { type: 'progress'; stage: Parameters<FitProgress>[0]; done: number; total: number }
  | ({ type: 'done' } & Done)
  | { type: 'done-fused'; meta: FusedMeta; members: Done[] }
  | { type: 'error'; kind: ErrorKind | null; message: string };

/** Runs the job on a new worker thread; resolves with the bank(s), rejects with its error. */
export function fitInWorker(job: FitJob, onProgress?: FitProgress): Promise<FitOutcome> {
  const worker = startWorker(__filename, 'fit-worker', job);
  return new Promise((resolve, reject) => {
    let settled = false;
    worker.on('message', (msg: WorkerMessage) => {
      if (msg.type === 'progress') onProgress?.(msg.stage, msg.done, msg.total);
      else if (msg.type === 'done') {
        settled = true;
        resolve({ kind: 'single', meta: msg.meta, vectors: msg.vectors, dim: msg.dim });
      } else if (msg.type === 'done-fused') {
        settled = true;
        resolve({ kind: 'fused', meta: msg.meta, members: msg.members });
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
    const onProgress = (stage: string, done: number, total: number) =>
      post({ type: 'progress', stage: stage as Parameters<FitProgress>[0], done, total });
    const fitted = await fitJob(pool, job, onProgress);
    const done = (f: FitResult): Done => ({ meta: f.meta, vectors: f.vectors.slice(), dim: f.dim });
    if (fitted.kind === 'single') {
      const d = done(fitted);
      post({ type: 'done', ...d }, [d.vectors.buffer as ArrayBuffer]);
    } else {
      const members = fitted.members.map(done);
      post(
        { type: 'done-fused', meta: fitted.meta, members },
        members.map((m) => m.vectors.buffer as ArrayBuffer),
      );
    }
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

/** The job's fit, on this thread (the worker runs it; exported for tests that need its banks). */
export async function fitJob(
  pool: BackbonePool,
  job: FitJob,
  onProgress: (stage: string, done: number, total: number) => void,
): Promise<FitOutcome> {
  const images: ImageSource[] = job.images.map((im) =>
    'file' in im
      ? { path: im.path, file: im.file, read: () => fs.promises.readFile(im.file) }
      : { path: im.path, read: async () => im.data },
  );
  if (job.auto && !job.add) {
    const keepHeldOutMaps = job.head !== undefined;
    const result = await autoFit(images, job.settings, { pool, ...job.auto, onProgress, keepHeldOutMaps });
    if (result.kind === 'fused')
      return fused(result.fitted, result.extractors, images, result.settings, job, onProgress);
    return single(pool, result.fitted, images, job, onProgress, result.settings);
  }
  if (job.fuse && !job.add) {
    const members: MemberFit[] = [];
    for (const stages of [undefined, job.fuse.stages])
      members.push({
        extractor: await createExtractor(pool, extractorOf(job, stages)),
        settings: job.settings,
      });
    const fitted = await fitFused(images, members, job.settings, {
      onProgress,
      keepHeldOutMaps: job.head !== undefined,
    });
    const extractors = members.map((m) => m.extractor);
    return fused(fitted, extractors, images, job.settings, job, onProgress);
  }
  if (job.add?.kind === 'fused') {
    const extractors = [];
    for (const m of job.add.members) extractors.push(await extractorForBank(pool, m.meta));
    const fitted = await addToFused(extractors, job.add, images, addOptions(job, onProgress));
    // A head (inline in the fusion metadata) is carried over, its thresholds recalibrated.
    await carryHeadInto(pool, undefined, fusedInspector(fitted, extractors), fitted.meta, images);
    return { kind: 'fused', meta: fitted.meta, members: fitted.members };
  }
  if (job.add) {
    const extractor = await extractorForBank(pool, job.add.meta);
    const fitted = await addToBank(extractor, job.add, images, addOptions(job, onProgress));
    await carryHeadInto(pool, undefined, fittedInspector(fitted, extractor), fitted.meta, images);
    return single(pool, fitted, images, job, onProgress);
  }
  const fitted = await fitBank(await createExtractor(pool, extractorOf(job)), images, job.settings, {
    onProgress,
    keepHeldOutMaps: job.head !== undefined,
  });
  return single(pool, fitted, images, job, onProgress);
}

/** An addition's options: under the gateway's fit budget (--fit-max-memory), as its builds are. */
function addOptions(job: FitJob, onProgress: FitProgress): AddOptions {
  return { onProgress, reason: job.add?.reason, version: job.settings.version, memory: job.settings.memory };
}

/**
 * A single bank, with its head trained beside it when the job asks for one; `settings`: the
 * bank's own as fitted (the automatic fit's plan), whose held-out split the head shares.
 */
async function single(
  pool: BackbonePool,
  fitted: FittedBank,
  images: ImageSource[],
  job: FitJob,
  onProgress: (stage: string, done: number, total: number) => void,
  settings: FitSettings = job.settings,
): Promise<FitOutcome> {
  if (job.head && !job.add) await inlineHead(pool, fitted, images, settings, job.head, onProgress);
  return { kind: 'single', meta: fitted.meta, vectors: fitted.vectors, dim: fitted.dim };
}

/** A fused bank, with a head on its first member's embeddings when the job asks for one. */
async function fused(
  fitted: FittedFusion,
  extractors: FeatureExtractor[],
  images: ImageSource[],
  settings: FitSettings,
  job: FitJob,
  onProgress: (stage: string, done: number, total: number) => void,
): Promise<FitOutcome> {
  if (job.head) await inlineFusedHead(fitted, extractors, images, settings, job.head, onProgress);
  return { kind: 'fused', meta: fitted.meta, members: fitted.members };
}

function extractorOf(job: FitJob, stages?: string[]): ExtractorSettings {
  return {
    model: job.model,
    ...(stages ? { stages } : {}),
    view: job.settings.view,
    projectionDim: job.settings.projectionDim,
    projectionSeed: job.settings.projectionSeed,
  };
}

if (!isMainThread && parentPort && (workerData as FitJob | undefined)?.settings) {
  void runJob(workerData as FitJob);
}
