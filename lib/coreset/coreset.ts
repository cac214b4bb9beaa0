/**
 * Memory-bank subsampling behind one interface. "greedy" is PatchCore's approximate greedy k-center
 * coreset: on a fixed random projection, repeatedly take the patch farthest from everything taken so
 * far, keeping each patch's distance to its nearest taken patch up to date. "random" is uniform
 * subsampling (the seed's method), kept for comparison.
 *
 * Speed: exact greedy needs one pass over all N patches per pick (N*M*d). We pick in small batches:
 * from the 4B farthest candidates an exact greedy picks B, then one faiss search updates the N
 * distances for the whole batch (BLAS instead of a JS loop), skipping the rows that no new centre can
 * come nearer to (their own centre is too far from every new one: updateMinDistances). B = 1 is
 * exact greedy.
 *
 * The greedy costs about N*M*d however it is batched. With `perImage` > 0 it first runs a greedy
 * inside each image (rows grouped per image by the caller) keeping that fraction of the image's
 * patches, then the global greedy over the survivors: every dropped patch lies within its image's
 * own covering radius of a kept one, and N shrinks by the fraction (a 56x56 grid or a tiled board
 * gets a 10 % bank in a fraction of the time).
 */
import { IndexFlatL2, pairwiseL2 } from '../knn/faiss';
import { gaussianMatrix, sampleIndices } from '../util/random';
import { project } from '../embed/patch-embed';
import { OutlierFilterConfig, OutlierResult, filterOutliers } from './outliers';
import { gatherRows } from '../util/rows';

export type CoresetMethod = 'greedy' | 'random' | 'none';

export interface CoresetConfig {
  method: CoresetMethod;
  /** Fraction of patches kept (used when `size` is 0). */
  ratio: number;
  /** Absolute number of patches kept; overrides `ratio` when > 0. */
  size: number;
  /** Width of the random projection the greedy search runs on (0 = full width). */
  projectDim: number;
  /** Picks per distance update; 0 = automatic (about 200 updates in all). 1 = exact greedy. */
  batch: number;
  seed: number;
  /**
   * Fraction of each image's patches kept by a per-image greedy before the global greedy
   * (0 or absent = one global greedy). Only used when the caller passes the per-image row counts.
   */
  perImage?: number;
}

export const DEFAULT_CORESET: CoresetConfig = {
  method: 'greedy',
  ratio: 0.1,
  size: 0,
  projectDim: 128,
  batch: 0,
  seed: 0,
};

export type Progress = (done: number, total: number) => void;

/** Number of patches the config keeps out of n. */
export function coresetSize(n: number, config: CoresetConfig): number {
  if (config.method === 'none') return n;
  const want = config.size > 0 ? config.size : Math.round(n * config.ratio);
  return Math.max(1, Math.min(n, want));
}

/** Chooses bank rows; returns their indices in ascending order. */
export function selectCoreset(
  vectors: Float32Array,
  dim: number,
  config: CoresetConfig,
  onProgress?: Progress,
  /** Rows per image, in order (sums to the row count); enables `perImage`. */
  groups?: ArrayLike<number>,
): Int32Array {
  return selectFiltered(vectors, dim, config, undefined, onProgress, groups).rows;
}

export interface CoresetSelection {
  /** Chosen rows, ascending. */
  rows: Int32Array;
  /** What the outlier filter did (absent when it was off). */
  outliers?: Omit<OutlierResult, 'keep' | 'scores'> & { considered: number; dropped: number };
}

/**
 * `selectCoreset` with the patch-level outlier filter (coreset/outliers.ts) in front: the candidates
 * (every row, or the per-image greedy's survivors) lose their most isolated `filter.fraction`
 * (isolation measured against other images, on the same projection the greedy uses), then the
 * method chooses among the rest. The bank size stays what the config asks of all rows.
 */
export function selectFiltered(
  vectors: Float32Array,
  dim: number,
  config: CoresetConfig,
  filter: OutlierFilterConfig | undefined,
  onProgress?: Progress,
  groups?: ArrayLike<number>,
): CoresetSelection {
  const n = vectors.length / dim;
  const m = coresetSize(n, config);
  const filtering = !!filter && filter.fraction > 0 && !!groups && groups.length > 1;
  if (!filtering) {
    if (config.method === 'none' || m >= n) return { rows: Int32Array.from({ length: n }, (_, i) => i) };
    if (config.method === 'random') return { rows: sampleIndices(n, m, config.seed) };
  }
  checkMethod(config);
  const { reduced, d } = reduce(vectors, dim, config);
  return choose(reduced, d, m, config, groups, filtering ? filter : undefined, undefined, onProgress);
}

/**
 * The streaming greedy update of an existing bank (an incremental version): `m` more rows chosen
 * among `vectors` (new images' patches, grouped per image), each new pick the candidate farthest from
 * the existing bank and from the picks so far, as if the greedy had gone on with these patches in its
 * pool. The outlier filter, when on, compares the new patches with the other new images and with the
 * bank. Returns rows of `vectors` only; the existing rows all stay.
 */
export function extendCoreset(
  existing: Float32Array,
  vectors: Float32Array,
  dim: number,
  config: CoresetConfig,
  m: number,
  filter?: OutlierFilterConfig,
  onProgress?: Progress,
  groups?: ArrayLike<number>,
): CoresetSelection {
  const n = vectors.length / dim;
  checkMethod(config);
  const { reduced, d } = reduce(vectors, dim, config);
  const fixed = reduce(existing, dim, config).reduced;
  const filtering = !!filter && filter.fraction > 0;
  if (!filtering && (config.method === 'none' || m >= n))
    return { rows: Int32Array.from({ length: n }, (_, i) => i) };
  return choose(
    reduced,
    d,
    Math.min(m, n),
    config,
    groups,
    filtering ? filter : undefined,
    fixed,
    onProgress,
  );
}

function checkMethod(config: CoresetConfig): void {
  if (!['greedy', 'random', 'none'].includes(config.method))
    throw new Error(`unknown coreset method "${String(config.method)}"`);
}

/** The rows on the greedy's random projection (or as they are, at full width). */
function reduce(
  vectors: Float32Array,
  dim: number,
  config: CoresetConfig,
): { reduced: Float32Array; d: number } {
  const projector = coresetProjector(dim, config);
  return { reduced: projector.project(vectors), d: projector.d };
}

/** The greedy's projection of rows of width `dim`, made once for many calls (one per image). */
export function coresetProjector(dim: number, config: CoresetConfig) {
  const narrow = config.projectDim > 0 && config.projectDim < dim;
  if (!narrow) return { d: dim, project: (rows: Float32Array) => rows };
  const matrix = gaussianMatrix(dim, config.projectDim, config.seed + 1);
  return {
    d: config.projectDim,
    project: (rows: Float32Array) => project(rows, dim, matrix, config.projectDim),
  };
}

/** Candidates, filter, then the method; `fixed` = rows already in the bank (projected). */
function choose(
  reduced: Float32Array,
  d: number,
  m: number,
  config: CoresetConfig,
  groups: ArrayLike<number> | undefined,
  filter: OutlierFilterConfig | undefined,
  fixed: Float32Array | undefined,
  onProgress?: Progress,
): CoresetSelection {
  const n = reduced.length / d;
  const batchFor = (picks: number) => (config.batch > 0 ? config.batch : Math.max(1, Math.ceil(picks / 200)));
  const perImage = config.perImage ?? 0;
  const usePool = config.method === 'greedy' && perImage > 0 && perImage < 1 && !!groups && groups.length > 1;
  let candidates: Int32Array | undefined = usePool
    ? preReduce(reduced, d, groups!, perImage, config, m)
    : undefined;
  let outliers: CoresetSelection['outliers'];
  if (filter) {
    const rows = candidates ?? Int32Array.from({ length: n }, (_, i) => i);
    const candidateGroups = groups ? countPerGroup(rows, groups) : [rows.length];
    const r = filterOutliers(gatherRows(reduced, d, rows), d, candidateGroups, filter, config.seed, fixed);
    candidates = r.keep.map((i) => rows[i]);
    outliers = {
      droppedPerGroup: r.droppedPerGroup,
      candidatesPerGroup: r.candidatesPerGroup,
      cutoff: r.cutoff,
      considered: rows.length,
      dropped: rows.length - r.keep.length,
    };
  }
  const pool = candidates ?? Int32Array.from({ length: n }, (_, i) => i);
  const done = (rows: Int32Array): CoresetSelection => ({ rows, ...(outliers ? { outliers } : {}) });
  if (config.method === 'none' || pool.length <= m) return done(pool);
  if (config.method === 'random') return done(sampleIndices(pool.length, m, config.seed).map((i) => pool[i]));
  const x = candidates ? gatherRows(reduced, d, pool) : reduced;
  const chosen = greedyKCenter(x, d, m, batchFor(m), config.seed, onProgress, fixed);
  return done(candidates ? chosen.map((i) => pool[i]).sort() : chosen);
}

/** Candidates per image, for rows (ascending) of images laid out by `groups`. */
function countPerGroup(rows: Int32Array, groups: ArrayLike<number>): number[] {
  const counts = new Array<number>(groups.length).fill(0);
  let g = 0;
  let end = groups[0];
  for (const r of rows) {
    while (r >= end) end += groups[++g];
    counts[g]++;
  }
  return counts;
}

/** Per-image greedy: the rows (ascending) surviving in each image, `fraction` of it, at least m/groups. */
function preReduce(
  x: Float32Array,
  dim: number,
  groups: ArrayLike<number>,
  fraction: number,
  config: CoresetConfig,
  m: number,
): Int32Array {
  let total = 0;
  for (let g = 0; g < groups.length; g++) total += groups[g];
  if (total !== x.length / dim) throw new Error(`coreset groups cover ${total} rows, not ${x.length / dim}`);
  const floor = Math.ceil(m / groups.length);
  const kept: Int32Array[] = [];
  let offset = 0;
  for (let g = 0; g < groups.length; g++) {
    const n = groups[g];
    const rows = x.subarray(offset * dim, (offset + n) * dim);
    const base = offset;
    kept.push(preReduceImage(rows, dim, fraction, floor, config.seed + g).map((i) => base + i));
    offset += n;
  }
  const out = new Int32Array(kept.reduce((s, k) => s + k.length, 0));
  let o = 0;
  for (const k of kept) {
    out.set(k, o);
    o += k.length;
  }
  return out;
}

/**
 * One image's rows (on the greedy's projection) that the per-image greedy keeps, ascending: `fraction`
 * of them, at least `floor`. Exported for the bounded-memory fit, which reduces each image as it is
 * embedded, with the same seed (`config.seed` + the image's position) as the in-memory fit.
 */
export function preReduceImage(
  x: Float32Array,
  dim: number,
  fraction: number,
  floor: number,
  seed: number,
): Int32Array {
  const n = x.length / dim;
  const want = Math.min(n, Math.max(floor, Math.ceil(n * fraction)));
  if (want >= n) return Int32Array.from({ length: n }, (_, i) => i);
  // About 25 distance updates per image: a few hundred picks each, cheap next to the global pass.
  return greedyKCenter(x, dim, want, Math.max(1, Math.ceil(want / 25)), seed);
}

/**
 * The greedy's coverage of the rows: each row's squared distance to its nearest centre (picked, or
 * a row of an existing bank) and that centre's number, and the centres' vectors. Knowing each row's
 * centre lets an update skip the rows no new centre can come nearer to (updateMinDistances).
 */
class Coverage {
  readonly minDist: Float32Array;
  /** Number of each row's nearest centre; -1 before any. */
  readonly owner: Int32Array;
  private vectors: Float32Array;
  count = 0;

  constructor(
    n: number,
    private readonly dim: number,
    capacity: number,
    readonly skip = true,
    readonly stats?: GreedyStats,
  ) {
    this.minDist = new Float32Array(n).fill(Infinity);
    this.owner = new Int32Array(n).fill(-1);
    this.vectors = new Float32Array(Math.max(1, capacity) * dim);
  }

  /** Appends centres (rows x dim); returns the first one's number. */
  add(block: Float32Array): number {
    const first = this.count;
    const need = (first * this.dim + block.length) | 0;
    if (need > this.vectors.length) {
      const grown = new Float32Array(Math.max(need, 2 * this.vectors.length));
      grown.set(this.vectors.subarray(0, first * this.dim));
      this.vectors = grown;
    }
    this.vectors.set(block, first * this.dim);
    this.count += block.length / this.dim;
    return first;
  }

  centres(): Float32Array {
    return this.vectors.subarray(0, this.count * this.dim);
  }
}

/** How much of the rows the distance updates searched (tests, benchmarks). */
export interface GreedyStats {
  /** Rows searched against new centres, summed over the updates. */
  searched: number;
  /** What searching every row in every update would have been. */
  rows: number;
}

/** The greedy k-center on x (rows x dim), m picks, `batch` per update; ascending rows. */
export function greedyKCenter(
  x: Float32Array,
  dim: number,
  m: number,
  batch: number,
  seed: number,
  onProgress?: Progress,
  /** Rows picked before (an existing bank, same width); the first pick is then the farthest from them. */
  fixed?: Float32Array,
  /** skip: false searches every row in every update (the reference the skipping is tested against). */
  options: { skip?: boolean; stats?: GreedyStats } = {},
): Int32Array {
  const n = x.length / dim;
  const fixedRows = fixed ? fixed.length / dim : 0;
  const coverage = new Coverage(n, dim, fixedRows + m, options.skip ?? true, options.stats);
  if (fixed && fixedRows > 0) updateMinDistances(x, dim, fixed, coverage);
  const picked = new Int32Array(m);
  let count = 0;
  const start = fixedRows > 0 ? argMax(coverage.minDist) : Math.floor(((seed * 2654435761) >>> 0) % n);
  let pending = [start];
  while (true) {
    pending.forEach((p, j) => {
      picked[count++] = p;
      coverage.minDist[p] = 0;
      coverage.owner[p] = coverage.count + j; // the number it gets as a centre just below
    });
    updateMinDistances(x, dim, gatherRows(x, dim, Int32Array.from(pending)), coverage);
    onProgress?.(count, m);
    if (count >= m) break;
    pending = pickBatch(x, dim, coverage.minDist, Math.min(batch, m - count));
  }
  return picked.sort();
}

/** Candidates from which the batch's mutual distances come from one BLAS call, not pair by pair. */
const PAIRWISE_MIN_CANDIDATES = 64;

/** Exact greedy among the 4B farthest patches, using distances among the candidates themselves. */
function pickBatch(x: Float32Array, dim: number, minDist: Float32Array, b: number): number[] {
  const candidates = topIndices(minDist, Math.min(minDist.length, 4 * b));
  const n = candidates.length;
  const local = Float32Array.from(candidates, (c) => minDist[c]);
  const pairs =
    n >= PAIRWISE_MIN_CANDIDATES
      ? pairwiseL2(gatherRows(x, dim, Int32Array.from(candidates)), dim)
      : undefined;
  const chosen: number[] = [];
  for (let round = 0; round < b; round++) {
    let best = 0;
    for (let i = 1; i < n; i++) if (local[i] > local[best]) best = i;
    if (!(local[best] > 0)) break; // every candidate already coincides with a picked patch
    const c = candidates[best];
    chosen.push(c);
    local[best] = 0;
    for (let i = 0; i < n; i++) {
      const dd = pairs ? Math.max(0, pairs[best * n + i]) : squaredDistance(x, dim, c, candidates[i]);
      if (dd < local[i]) local[i] = dd;
    }
  }
  if (chosen.length === 0) chosen.push(candidates[0]); // duplicates only: any patch will do
  return chosen;
}

/**
 * A safety margin on the skip test below: faiss' distances carry float rounding, so a row is
 * skipped only when the test holds by this much more.
 */
const SKIP_MARGIN = 1e-3;

/**
 * minDist[i] = min(minDist[i], |x_i - c|^2) over the new centres c (rows of `block`), and each
 * row's owner with it. A new centre c can come nearer to row x than x's own centre a only if
 * |a - c| < 2 |x - a| (triangle inequality), so rows whose centre lies at least twice their distance
 * from every new centre are skipped: one search of the centres against the new ones tells. Late in
 * the greedy, when the rows sit close to their centres, most rows are skipped (a 448 px bottle bank:
 * a quarter of the rows searched over a whole greedy); the picks are those of the full update.
 */
function updateMinDistances(x: Float32Array, dim: number, block: Float32Array, coverage: Coverage): void {
  const { minDist, owner } = coverage;
  const n = minDist.length;
  const added = block.length / dim;
  if (added * n < 200_000) {
    const first = coverage.add(block);
    for (let c = 0; c < added; c++) {
      for (let i = 0; i < n; i++) {
        let dd = 0;
        for (let k = 0; k < dim; k++) {
          const t = x[i * dim + k] - block[c * dim + k];
          dd += t * t;
        }
        if (dd < minDist[i]) {
          minDist[i] = dd;
          owner[i] = first + c;
        }
      }
    }
    return;
  }
  const index = new IndexFlatL2(dim);
  index.addBuffer(block);
  // Squared distance from each existing centre to its nearest new one.
  const near = new Float32Array(coverage.count);
  forEachChunk(coverage.centres(), dim, (rows, first) =>
    near.set(index.searchBuffer(rows, 1).distances, first),
  );
  const first = coverage.add(block);
  const step = Math.max(1, Math.floor(SEARCH_CHUNK_BYTES / (4 * dim)));
  const rows = new Int32Array(step);
  let filled = 0;
  // The rows are gathered natively (searchRows): a copy row by row here cost more than it saved.
  const flush = () => {
    const { distances, labels } = index.searchRows(x, rows.subarray(0, filled), 1);
    for (let j = 0; j < filled; j++) {
      const i = rows[j];
      const dd = Math.max(0, distances[j]);
      if (dd < minDist[i]) {
        minDist[i] = dd;
        owner[i] = first + labels[j];
      }
    }
    filled = 0;
  };
  let searched = 0;
  for (let i = 0; i < n; i++) {
    const a = owner[i];
    if (coverage.skip && a >= 0 && near[a] >= 4 * minDist[i] * (1 + SKIP_MARGIN)) continue;
    searched++;
    rows[filled] = i;
    if (++filled === step) flush();
  }
  if (filled > 0) flush();
  if (coverage.stats) {
    coverage.stats.searched += searched;
    coverage.stats.rows += n;
  }
}

/**
 * Rows searched at most this many at a time, so each call's results (and searchRows' gather buffer)
 * stay a few MiB that the heap reuses: a 590k-row call per greedy update allocated hundreds of MiB,
 * mapped and zero-filled by the kernel each time (the greedy of 150k rows: 145 s, 66 s of it system
 * time, when faiss-node still copied every call's queries).
 */
const SEARCH_CHUNK_BYTES = 4 * 1024 * 1024;

/** Calls `fn` on consecutive blocks of x's rows (views, no copy) with the first row's number. */
export function forEachChunk(
  x: Float32Array,
  dim: number,
  fn: (rows: Float32Array, first: number) => void,
  chunkBytes = SEARCH_CHUNK_BYTES,
): void {
  const n = x.length / dim;
  const step = Math.max(1, Math.floor(chunkBytes / (4 * dim)));
  for (let first = 0; first < n; first += step)
    fn(x.subarray(first * dim, Math.min(n, first + step) * dim), first);
}

function argMax(values: Float32Array): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

function squaredDistance(x: Float32Array, dim: number, a: number, b: number): number {
  let s = 0;
  const ao = a * dim;
  const bo = b * dim;
  for (let k = 0; k < dim; k++) {
    const t = x[ao + k] - x[bo + k];
    s += t * t;
  }
  return s;
}

/** Indices of the k largest values (any order), by quickselect on a copy. */
export function topIndices(values: Float32Array, k: number): number[] {
  if (k >= values.length) return Array.from({ length: values.length }, (_, i) => i);
  const copy = Float32Array.from(values);
  const threshold = kthLargest(copy, k);
  const out: number[] = [];
  for (let i = 0; i < values.length && out.length < k; i++) if (values[i] > threshold) out.push(i);
  for (let i = 0; i < values.length && out.length < k; i++) if (values[i] === threshold) out.push(i);
  return out;
}

function kthLargest(a: Float32Array, k: number): number {
  let lo = 0;
  let hi = a.length - 1;
  const target = k - 1; // position in descending order
  while (lo < hi) {
    const pivot = a[(lo + hi) >> 1];
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i] > pivot) i++;
      while (a[j] < pivot) j--;
      if (i <= j) {
        const t = a[i];
        a[i] = a[j];
        a[j] = t;
        i++;
        j--;
      }
    }
    if (target <= j) hi = j;
    else if (target >= i) lo = i;
    else break;
  }
  return a[target];
}
