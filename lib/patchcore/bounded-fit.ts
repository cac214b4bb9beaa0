/**
 * The bank's rows chosen within a memory budget (#18): each image's embedding goes through the
 * per-image greedy (`coreset.perImage`) as soon as it is made, its survivors join the current chunk,
 * and a full chunk is spilled to disk (patch-spill.ts). When everything fits in one chunk nothing is
 * written and the choice is the in-memory fit's, row for row; otherwise the chunks are read back one at
 * a time for the two-stage coreset (coreset/chunked.ts). Memory is then the bank plus one chunk, and
 * the time is linear in the images.
 */
import { BankMeta } from '../bank/bank-meta';
import { OutlierFilterConfig } from '../coreset/outliers';
import {
  CoresetConfig,
  CoresetSelection,
  Progress,
  coresetProjector,
  coresetSize,
  preReduceImage,
  selectFiltered,
} from '../coreset/coreset';
import { selectChunked } from '../coreset/chunked';
import { ImageEmbedding } from './feature-extractor';
import { MemoryBudget, planChunks } from './memory-budget';
import { PatchSpill } from './patch-spill';
import { gatherRows } from '../util/rows';

export type MemoryRecord = NonNullable<BankMeta['memory']>;

export interface BoundedChoice {
  /** The bank's rows. */
  vectors: Float32Array;
  dim: number;
  /** Patches embedded, before any reduction. */
  inputPatches: number;
  outliers?: CoresetSelection['outliers'];
  memory: MemoryRecord;
}

export async function chooseBounded(
  embedded: AsyncIterable<{ index: number; embedding: ImageEmbedding }>,
  images: number,
  coreset: CoresetConfig,
  filter: OutlierFilterConfig | undefined,
  budget: MemoryBudget,
  onProgress?: Progress,
): Promise<BoundedChoice> {
  const fraction = coreset.perImage ?? 0;
  // As the in-memory fit (coreset.ts `choose`): the per-image greedy only with several images.
  const perImage = coreset.method === 'greedy' && fraction > 0 && fraction < 1 && images > 1;
  let spill: PatchSpill | undefined;
  let plan = { chunkRows: 0, residentBytes: 0 };
  let projector: ReturnType<typeof coresetProjector> | undefined;
  let dim = 0;
  let estimate = 0;
  let inputPatches = 0;
  const reference = filter && filter.fraction > 0 ? filter.reference : 0;
  let kept = 0;
  const replan = (resident: number) => {
    plan = planChunks(budget, resident, estimate, dim, projector!.d, kept, reference);
    if (spill) spill.chunkRows = plan.chunkRows;
  };
  // What the process holds besides the candidates (the current image's embedding counts as held).
  const beside = () => process.memoryUsage().rss - (spill?.pendingBytes ?? 0);
  try {
    for await (const { index, embedding } of embedded) {
      const rows = embedding.vectors.length / embedding.dim;
      if (!spill) {
        dim = embedding.dim;
        projector = coresetProjector(dim, coreset);
        // The bank's size from the first image (prints of one job share their size); checked again at the end.
        estimate = coresetSize(rows * images, coreset);
        const floor = Math.ceil(estimate / images);
        kept = perImage ? Math.min(rows, Math.max(floor, Math.ceil(rows * fraction))) : rows;
        replan(budget.residentBytes ?? beside());
        spill = new PatchSpill(dim, plan.chunkRows, budget.spillDir);
      } else if (budget.residentBytes === undefined && beside() > plan.residentBytes) replan(beside());
      if (embedding.dim !== dim)
        throw new Error(`image ${index} embeds to width ${embedding.dim}, not ${dim}`);
      inputPatches += rows;
      let vectors = embedding.vectors;
      if (perImage) {
        const floor = Math.ceil(estimate / images);
        const keep = preReduceImage(
          projector!.project(vectors),
          projector!.d,
          fraction,
          floor,
          coreset.seed + index,
        );
        vectors = gatherRows(vectors, dim, keep);
      }
      spill.add(vectors, index);
    }
    if (!spill) throw new Error('no images were embedded');
    const m = coresetSize(inputPatches, coreset);
    // Larger images than the first: the final bank must still fit.
    if (m > estimate) planChunks(budget, plan.residentBytes, m, dim, projector!.d, 0, reference);
    const memory: MemoryRecord = {
      maxBytes: budget.maxBytes,
      residentBytes: plan.residentBytes,
      chunkRows: plan.chunkRows,
      candidates: spill.rows,
      chunks: spill.chunks,
      spilled: spill.spilled,
      spilledBytes: 0,
    };
    const config = { ...coreset, perImage: 0, size: m };
    if (!spill.spilled) {
      const whole = spill.whole();
      const s = selectFiltered(whole.vectors, dim, config, filter, onProgress, whole.groups);
      return {
        vectors: gatherRows(whole.vectors, dim, s.rows),
        dim,
        inputPatches,
        outliers: s.outliers,
        memory,
      };
    }
    const totals = { chunks: spill.chunks, rows: spill.rows, images };
    const chosen = await selectChunked(spill.read(), totals, dim, config, m, filter, onProgress);
    memory.spilledBytes = spill.spilledBytes;
    return { ...chosen, dim, inputPatches, memory };
  } finally {
    spill?.close();
  }
}
