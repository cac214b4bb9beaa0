/**
 * The fit's memory budget (#18 "bounded memory"): how many candidate patches one chunk of the coreset
 * may hold so that the whole process stays under `maxBytes`. What the fit keeps beside the patches
 * (the backbone, onnxruntime's arenas, one image's embedding) is measured, not guessed: the process's
 * resident size less the patches it holds, after every image (onnxruntime's arenas grow over the
 * first few). The rest, less a tenth for the collector's slack, goes to the final stage (the bank and
 * the chunk survivors it is chosen from, the searches) and to one chunk.
 */
import * as os from 'node:os';
import { invalid } from '../errors';
import { OVERSAMPLE } from '../coreset/chunked';
import type { FitMemoryRecord } from '../bank/bank-meta';

export interface MemoryBudget {
  /** Most resident bytes the fitting process may use. */
  maxBytes: number;
  /** Parent folder of the spill file (default: the system's temp folder). */
  spillDir?: string;
  /** Bytes in use besides the patches; default the process's RSS after the first image (tests fix it). */
  residentBytes?: number;
  /** Where the budget was set, for the message when it is too small (default "--max-memory"). */
  setting?: string;
}

export const MiB = 2 ** 20;
export const GiB = 2 ** 30;

/**
 * Half the machine's RAM, at least 1 GiB and at most 16 GiB. Half: the other half is for the system,
 * the page cache that reads the spill file back, and what else runs on an inspection PC (a gateway or
 * shard serving the line). 1 GiB: the backbone and runtime take about 300 MB, and a bank of 100k
 * patches x 96 with its chunks needs the rest. 16 GiB: a larger chunk makes no better bank, only a
 * longer greedy pass (a chunk's greedy grows with its rows squared).
 */
export function defaultMaxMemory(total = machineMemory()): number {
  return Math.min(16 * GiB, Math.max(GiB, Math.floor(total / 2 / MiB) * MiB));
}

/**
 * The memory this process may use: the machine's RAM, or the container's limit when it has a lower
 * one (a Kubernetes pod's memory limit is a cgroup limit; os.totalmem() reports the node's RAM).
 */
export function machineMemory(): number {
  const limit = process.constrainedMemory?.();
  const total = os.totalmem();
  return limit && limit > 0 && limit < total ? limit : total;
}

/**
 * Bytes one candidate row costs while its chunk's coreset is chosen: the full row twice (the chunk and
 * its gathered copy), three copies on the greedy's projection (projected, the filter's and the
 * greedy's gathers), and about 128 bytes of distances, labels and indices (faiss, the filter's sort).
 */
export function rowBytes(dim: number, coresetDim: number): number {
  return 4 * (2 * dim + 3 * coresetDim) + 128;
}

/** Bytes the final stage needs for a bank of m rows: its candidates, the bank and its index. */
export function finalBytes(m: number, dim: number, coresetDim: number): number {
  return OVERSAMPLE * m * rowBytes(dim, coresetDim) + 2 * m * dim * 4;
}

/**
 * Bytes of the searches beside the rows: faiss's blocked distance tables and BLAS buffers (about
 * 30 MB measured on a 30k x 20k search) and the outlier filter's reference sample (`reference` rows,
 * gathered and indexed).
 */
export function searchBytes(reference: number, coresetDim: number): number {
  return 32 * MiB + 2 * reference * coresetDim * 4;
}

export interface ChunkPlan {
  /** Most candidate rows one chunk holds (in memory while embedding, then on disk when spilled). */
  chunkRows: number;
  residentBytes: number;
}

/**
 * The chunk size for a bank of `m` rows of width `dim` (coreset on `coresetDim`), with `resident`
 * bytes already in use and an outlier filter searching `reference` rows; an error when not even the
 * bank and a chunk of two images (of `imageRows` candidates) fit.
 */
export function planChunks(
  budget: MemoryBudget,
  resident: number,
  m: number,
  dim: number,
  coresetDim: number,
  imageRows: number,
  reference = 0,
): ChunkPlan {
  const avail = budget.maxBytes * 0.9 - resident;
  const final = finalBytes(m, dim, coresetDim) + searchBytes(reference, coresetDim);
  const chunkRows = Math.floor((avail - final) / rowBytes(dim, coresetDim));
  if (chunkRows < 2 * imageRows) {
    const need = resident + final + 2 * imageRows * rowBytes(dim, coresetDim);
    throw invalid(
      `the memory budget (${budget.setting ?? '--max-memory'} ${formatBytes(budget.maxBytes)}) is too small: ` +
        `${formatBytes(resident)} are in use before any patch is kept (backbone, runtime), and a bank of ` +
        `${m} patches x ${dim} with the candidates of two images needs ${formatBytes(need - resident)} more ` +
        `(about ${formatBytes(need / 0.9)} in all); raise it or keep fewer patches (--ratio, --coreset-size)`,
    );
  }
  return { chunkRows, residentBytes: resident };
}

/** One line on a fit's memory: its budget, and what went to disk (fit summary, BankVersionInfo). */
export function describeFitMemory(m: FitMemoryRecord): string {
  // An addition (spi fit --add) never spills: its chunks extend the bank one after another.
  const where = m.spilled
    ? `spilled ${formatBytes(m.spilledBytes)} of candidates to disk in ${m.chunks} chunks (coreset in two stages)`
    : m.chunks > 1
      ? `held in ${m.chunks} chunks of at most ${m.chunkRows} patches, each added to the bank in turn`
      : 'nothing spilled';
  return `budget ${formatBytes(m.maxBytes)} (${formatBytes(m.residentBytes)} in use before the patches), ${m.candidates} candidate patches, ${where}`;
}

/** "1.5 GiB", "300 MiB": sizes for people. */
export function formatBytes(bytes: number): string {
  if (bytes >= GiB) return `${(bytes / GiB).toFixed(1)} GiB`;
  return `${Math.round(bytes / MiB)} MiB`;
}

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  kib: 2 ** 10,
  m: 1e6,
  mb: 1e6,
  mib: MiB,
  g: 1e9,
  gb: 1e9,
  gib: GiB,
  t: 1e12,
  tb: 1e12,
  tib: 2 ** 40,
};

/** "2GiB", "1.5 GB", "800MiB", "1000000" (bytes); undefined when it is not a size. */
export function parseBytes(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m ? UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) return undefined;
  return Math.round(Number(m[1]) * unit);
}
