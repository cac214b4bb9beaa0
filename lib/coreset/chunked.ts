/**
 * The coreset of a bounded-memory fit (#18): candidate rows come in chunks of whole images (read back
 * from the spill file one at a time), never all at once. Two stages, as composable coresets: each
 * chunk gets the outlier filter (isolation against the other images of the same chunk; its reference
 * sample is bounded anyway, see outliers.ts) and the method's choice of OVERSAMPLE times its share of
 * the bank; the final choice of `m` rows is made among the union of those survivors. Every candidate
 * is within its chunk's covering radius of a survivor, and the final greedy covers the survivors.
 * Cost: a chunk of R rows keeps about 2mR/N, so the first stage is R x 2m per chunk and 2mR over
 * all N rows, the second 2m x m, neither growing with the images for a fixed bank size (`size`).
 */
import { OutlierFilterConfig } from './outliers';
import { CoresetConfig, CoresetSelection, Progress, selectCoreset, selectFiltered } from './coreset';
import { gatherRows } from '../util/rows';

/** Chunk survivors per bank row that the final choice is made among. */
export const OVERSAMPLE = 2;

export interface RowChunk {
  vectors: Float32Array;
  /** Rows per image. */
  groups: number[];
  /** The images' positions among all (for the outlier record's per-image counts). */
  images: number[];
}

export interface ChunkedSelection {
  /** The bank's rows (full width). */
  vectors: Float32Array;
  outliers?: CoresetSelection['outliers'];
}

export async function selectChunked(
  chunks: Iterable<RowChunk>,
  totals: { chunks: number; rows: number; images: number },
  dim: number,
  config: CoresetConfig,
  m: number,
  filter?: OutlierFilterConfig,
  onProgress?: Progress,
): Promise<ChunkedSelection> {
  const survivors: Float32Array[] = [];
  const droppedPerGroup = new Int32Array(totals.images);
  const candidatesPerGroup = new Int32Array(totals.images);
  let considered = 0;
  let dropped = 0;
  let cutoff = Infinity;
  let filtered = false;
  const stages = totals.chunks + 1;
  let c = 0;
  const report = (d: number, t: number) => onProgress?.(Math.round((1000 * (c + d / t)) / stages), 1000);
  const perChunk: CoresetConfig = { ...config, perImage: 0 };
  for (const chunk of chunks) {
    const n = chunk.vectors.length / dim;
    const size = Math.max(1, Math.min(n, Math.ceil((OVERSAMPLE * m * n) / totals.rows)));
    const s = selectFiltered(chunk.vectors, dim, { ...perChunk, size }, filter, report, chunk.groups);
    survivors.push(gatherRows(chunk.vectors, dim, s.rows));
    if (s.outliers) {
      filtered = true;
      chunk.images.forEach((image, g) => {
        droppedPerGroup[image] += s.outliers!.droppedPerGroup[g];
        candidatesPerGroup[image] += s.outliers!.candidatesPerGroup[g];
      });
      considered += s.outliers.considered;
      dropped += s.outliers.dropped;
      cutoff = Math.min(cutoff, s.outliers.cutoff);
    }
    c++;
    report(0, 1);
    await released();
  }
  const union = concatRows(survivors);
  const rows = selectCoreset(union, dim, { ...perChunk, size: m }, report);
  c = stages;
  report(0, 1);
  return {
    vectors: gatherRows(union, dim, rows),
    ...(filtered ? { outliers: { droppedPerGroup, candidatesPerGroup, cutoff, considered, dropped } } : {}),
  };
}

/** The parts back to back; empties `parts`, so the survivors go once the union is made. */
function concatRows(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (let i = 0; i < parts.length; i++) {
    out.set(parts[i], o);
    o += parts[i].length;
  }
  parts.length = 0;
  return out;
}

/**
 * A turn of the event loop: faiss-node frees an index's native memory in a finalizer that runs after
 * the collection, on a later turn, so a synchronous run over many chunks would keep every chunk's
 * search indexes (the outlier filter's reference, 4 per chunk) until its end.
 */
function released(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
