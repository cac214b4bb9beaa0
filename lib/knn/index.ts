/**
 * Nearest-neighbour search over a memory bank, behind one interface built from a faiss factory
 * string ("Flat", "IVF256,Flat", "HNSW32,Flat"): changing the index is a config change, nothing
 * else moves. The string may end with search-time parameters in faiss' ParameterSpace syntax
 * ("HNSW32,Flat,efSearch=32"), so they travel wherever the factory string does (bank metadata,
 * BuildSpec, the shards' partitions); a few presets name the choices the bench measured ("hnsw").
 * One parameter is ours, not faiss': `rerank=F` searches the fraction F of the queries with the
 * highest approximate distances again, exactly, on a Flat copy of the bank. An approximate index
 * only ever overestimates a distance (a missed neighbour), and the image score is the map's
 * maximum: over a sheet's 28k patches a few misses land at the top; re-ranking the top puts the
 * exact distances where the score and the regions are read.
 * Distances returned are Euclidean (faiss returns squared L2; we take the root once, here).
 */
import { Index, ompThreads } from './faiss';
import { invalid } from '../errors';
import { fromFloat16 } from '../util/float16';

export interface KnnConfig {
  /** faiss factory string: "Flat" (exact) or e.g. "IVF1024,Flat". */
  factory: string;
  /** IVF cells visited per query; ignored by Flat. */
  nprobe?: number;
}

export interface KnnResult {
  /** Euclidean distances, row-major [queries x k], ascending per row. */
  distances: Float32Array;
  /** Bank row of each neighbour (faiss gives float64 rows, shards send int32: no copy either way). */
  labels: Float64Array | Int32Array;
  /** Neighbours per query: the k asked for, or fewer when the index holds fewer rows. */
  k: number;
}

export const DEFAULT_KNN: KnnConfig = { factory: 'auto', nprobe: 8 };

/**
 * `--index auto`, the default: exact search (Flat) for banks under this many rows, the `hnsw`
 * preset from it on, resolved when the index is built (on a shard: by its partition's rows). HNSW
 * pays only on large banks: with 2,117 rows it searched a sheet in 1.9x Flat's CPU time, with 8,467
 * in 0.8x, with 14.7-17k in 0.33-0.36x (README, Print sheets at press speed; the synthetic sheets
 * and bottle's 224 px frame), while the exact re-rank keeps the image scores exact.
 */
export const AUTO_HNSW_MIN_ROWS = 10_000;

/**
 * Short names for factory strings (`--index hnsw`), resolved when a bank is fitted so its metadata
 * holds the full string. `hnsw`: a 16-link graph over the raw vectors, 32 candidates per query,
 * and the 2 % of queries farthest from the bank re-ranked exactly. On 2048 px synthetic print
 * sheets (bench/search-options.ts, 17k-patch bank, width 96) it spent 2.1x less CPU than Flat per
 * sheet with recall@1 0.998 and every image score equal to Flat's; without the re-rank, misses
 * moved image scores by up to 77 % (docs/sizing.md).
 */
export const INDEX_PRESETS: Readonly<Record<string, string>> = {
  flat: 'Flat',
  hnsw: 'HNSW16,Flat,efSearch=32,rerank=0.02',
};

/** A factory string split into what faiss' index_factory builds and the search parameters after it. */
export interface ParsedFactory {
  factory: string;
  /** faiss ParameterSpace parameters (efSearch, nprobe, ...). */
  params: { name: string; value: number }[];
  /** Fraction of the queries searched again exactly (0 = none). */
  rerank: number;
}

/** "HNSW32,Flat,efSearch=48" -> factory "HNSW32,Flat", params [efSearch 48]; presets expanded. */
export function parseFactory(spec: string): ParsedFactory {
  const full = INDEX_PRESETS[spec.trim().toLowerCase()] ?? spec.trim();
  const parts = full.split(',').map((p) => p.trim());
  const params: ParsedFactory['params'] = [];
  const factory: string[] = [];
  let rerank = 0;
  for (const part of parts) {
    const eq = part.indexOf('=');
    if (eq < 0) {
      if (params.length > 0) throw invalid(`index "${spec}": search parameters go after the factory string`);
      factory.push(part);
      continue;
    }
    const name = part.slice(0, eq).trim();
    const value = Number(part.slice(eq + 1));
    if (!/^[A-Za-z_]\w*$/.test(name) || !Number.isFinite(value))
      throw invalid(`index "${spec}": "${part}" is not a search parameter (name=number)`);
    if (name === 'rerank') {
      if (!(value > 0 && value <= 1)) throw invalid(`index "${spec}": rerank is a fraction in (0, 1]`);
      rerank = value;
    } else params.push({ name, value });
  }
  if (factory.length === 0 || factory.some((p) => p === ''))
    throw invalid(`index "${spec}" has no faiss factory string`);
  return { factory: factory.join(','), params, rerank };
}

/** The config with a preset name replaced by its full factory string (what a bank records). */
export function resolveKnn(config: KnnConfig, rows?: number): KnnConfig {
  const name = config.factory.trim().toLowerCase();
  if (name === 'auto') {
    if (rows === undefined) return { ...config, factory: 'auto' };
    return { ...config, factory: rows >= AUTO_HNSW_MIN_ROWS ? INDEX_PRESETS.hnsw : 'Flat' };
  }
  const preset = INDEX_PRESETS[name];
  return preset ? { ...config, factory: preset } : config;
}

export class KnnIndex {
  private constructor(
    private readonly index: Index,
    readonly dim: number,
    private settings: KnnConfig,
    /** Exact copy of the bank for `rerank` (absent without it). */
    private readonly exact?: { index: Index; fraction: number },
  ) {}

  get config(): KnnConfig {
    return this.settings;
  }

  /**
   * IVF cells visited per query, changeable on a built index: the speed/recall knob an operator
   * turns without rebuilding the bank. Flat indexes have none and refuse it.
   */
  setNprobe(nprobe: number): void {
    const cells = /^IVF(\d+)/.exec(this.settings.factory);
    if (!cells) throw invalid(`a ${this.settings.factory} index has no nprobe (only IVF indexes do)`);
    if (!Number.isInteger(nprobe) || nprobe < 1 || nprobe > Number(cells[1]))
      throw new Error(
        `nprobe must be an integer from 1 to ${cells[1]} for ${this.settings.factory}, got ${nprobe}`,
      );
    this.index.setNprobe(nprobe);
    this.settings = { ...this.settings, nprobe };
  }

  /** Builds and fills an index; IVF indexes are trained on the same vectors. */
  static build(vectors: Float32Array, dim: number, config: KnnConfig = DEFAULT_KNN): KnnIndex {
    if (vectors.length === 0 || vectors.length % dim !== 0) {
      throw new Error(`bank has ${vectors.length} values, not a non-empty multiple of its width ${dim}`);
    }
    const rows = vectors.length / dim;
    config = resolveKnn(config, rows);
    const { factory } = parseFactory(config.factory);
    const ivfCells = /^IVF(\d+)/.exec(factory);
    if (ivfCells && rows < Number(ivfCells[1])) {
      throw new Error(`${config.factory} needs at least ${ivfCells[1]} bank vectors to train, got ${rows}`);
    }
    const { rerank } = parseFactory(config.factory);
    const index = Index.fromFactory(dim, factory);
    if (!index.isTrained()) index.trainBuffer(vectors);
    if (/^HNSW/.test(factory)) addOnOneThread(index, vectors);
    else index.addBuffer(vectors);
    let exact: Index | undefined;
    if (rerank > 0) {
      exact = Index.fromFactory(dim, 'Flat');
      exact.addBuffer(vectors);
    }
    return KnnIndex.wrap(index, config, exact);
  }

  /** Restores an index written by `serialize`. */
  static deserialize(bytes: Buffer, config: KnnConfig): KnnIndex {
    const rerank = parseFactory(config.factory).rerank > 0;
    if (!isPair(bytes)) {
      if (rerank)
        throw invalid('index bytes hold no exact copy for rerank: rebuild the index with its rerank setting');
      return KnnIndex.wrap(Index.fromBuffer(bytes), config);
    }
    // Bytes written with rerank serve without it too (the exact copy is then left unread).
    const [main, exact] = unpackPair(bytes);
    return KnnIndex.wrap(Index.fromBuffer(main), config, rerank ? Index.fromBuffer(exact) : undefined);
  }

  private static wrap(index: Index, config: KnnConfig, exact?: Index): KnnIndex {
    const { factory, params, rerank } = parseFactory(config.factory);
    if (/^IVF/.test(factory)) index.setNprobe(config.nprobe ?? DEFAULT_KNN.nprobe!);
    for (const { name, value } of params) {
      try {
        index.setParameter(name, value);
      } catch (err) {
        throw invalid(
          `index "${config.factory}": faiss cannot set ${name} on a ${factory} index (${firstLine(err)})`,
        );
      }
    }
    const copy = exact && rerank > 0 ? { index: exact, fraction: rerank } : undefined;
    return new KnnIndex(index, index.getDimension(), config, copy);
  }

  get size(): number {
    return this.index.ntotal();
  }

  serialize(): Buffer {
    const main = this.index.toBuffer();
    return this.exact ? packPair(main, this.exact.index.toBuffer()) : main;
  }

  /** Synchronous search: for the in-process engine and tests. */
  searchSync(queries: Float32Array, k: number): KnnResult {
    const kk = this.clampK(k);
    const found = this.index.searchBuffer(queries, kk);
    if (this.exact) {
      const top = this.topQueries(found.distances, kk, queries);
      if (top) mergeRows(found, this.exact.index.searchBuffer(top.queries, kk), top.rows, kk);
    }
    return toEuclidean(found, kk);
  }

  /**
   * Search on the libuv pool, so a shard serves other requests meanwhile. Queries may be float32, or
   * float16 bit patterns (a Uint16Array, as the shard hop carries them): those are widened natively
   * on the pool thread, off the event loop. Leave `queries` unchanged until the promise settles.
   */
  async search(queries: Float32Array | Uint16Array, k: number): Promise<KnnResult> {
    const kk = this.clampK(k);
    const found = await (queries instanceof Uint16Array
      ? this.index.searchHalfAsync(queries, kk)
      : this.index.searchAsync(queries, kk));
    if (this.exact) {
      const top = this.topQueries(found.distances, kk, queries);
      if (top) mergeRows(found, await this.exact.index.searchAsync(top.queries, kk), top.rows, kk);
    }
    return toEuclidean(found, kk);
  }

  /**
   * The queries whose approximate (squared) distance to their k-th neighbour is among the highest
   * `fraction`, gathered for the exact search.
   */
  private topQueries(
    squared: Float32Array,
    k: number,
    queries: Float32Array | Uint16Array,
  ): { rows: Int32Array; queries: Float32Array } | null {
    const n = squared.length / k;
    const count = Math.min(n, Math.max(RERANK_MIN_QUERIES, Math.ceil(this.exact!.fraction * n)));
    if (count === 0) return null;
    // The count-th largest distance by a native numeric sort of a copy (a comparator sort of the
    // row numbers took 80-250 ms for a sheet's 28k queries), then the rows at or above it.
    const last = new Float32Array(n);
    for (let i = 0; i < n; i++) last[i] = squared[i * k + k - 1];
    const level = last.slice().sort()[n - count];
    const rows = new Int32Array(count);
    let found = 0;
    for (let i = 0; i < n && found < count; i++) if (last[i] > level) rows[found++] = i;
    for (let i = 0; i < n && found < count; i++) if (last[i] === level) rows[found++] = i;
    const out =
      queries instanceof Uint16Array ? new Uint16Array(count * this.dim) : new Float32Array(count * this.dim);
    for (let i = 0; i < count; i++)
      out.set(queries.subarray(rows[i] * this.dim, (rows[i] + 1) * this.dim), i * this.dim);
    return { rows, queries: out instanceof Uint16Array ? fromFloat16(out) : out };
  }

  private clampK(k: number): number {
    if (!Number.isInteger(k) || k < 1) throw new Error(`k must be a positive integer, got ${k}`);
    return Math.min(k, this.size);
  }
}

function toEuclidean(result: { distances: Float32Array; labels: Float64Array }, k: number): KnnResult {
  const d = result.distances;
  // Squared L2 can come out slightly negative from float rounding in faiss' BLAS path.
  for (let i = 0; i < d.length; i++) d[i] = Math.sqrt(Math.max(0, d[i]));
  return { distances: d, labels: result.labels, k };
}

function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return (message.split('\n')[0].split(': ').pop() ?? message).trim();
}

/** The exact answers of some queries written over their approximate ones (squared distances). */
function mergeRows(
  into: { distances: Float32Array; labels: Float64Array },
  exact: { distances: Float32Array; labels: Float64Array },
  rows: Int32Array,
  k: number,
): void {
  for (let i = 0; i < rows.length; i++) {
    into.distances.set(exact.distances.subarray(i * k, (i + 1) * k), rows[i] * k);
    into.labels.set(exact.labels.subarray(i * k, (i + 1) * k), rows[i] * k);
  }
}

/**
 * faiss searches a Flat index with BLAS from 20 queries on (distance_compute_blas_threshold) and
 * pair by pair below: 16 queries against 16k patches took 12 CPU ms, 20 took 2.9. So a re-rank
 * takes at least 20 queries (a 224 px image's 2 % is 16).
 */
const RERANK_MIN_QUERIES = 20;

const PAIR_MAGIC = Buffer.from('SPIKNN2\0');

/** Two serialised indexes in one buffer: magic, the first's length (uint64 LE), both. */
function packPair(a: Buffer, b: Buffer): Buffer {
  const head = Buffer.alloc(PAIR_MAGIC.length + 8);
  PAIR_MAGIC.copy(head);
  head.writeBigUInt64LE(BigInt(a.length), PAIR_MAGIC.length);
  return Buffer.concat([head, a, b]);
}

function isPair(bytes: Buffer): boolean {
  return bytes.length >= PAIR_MAGIC.length + 8 && bytes.subarray(0, PAIR_MAGIC.length).equals(PAIR_MAGIC);
}

function unpackPair(bytes: Buffer): [Buffer, Buffer] {
  const at = PAIR_MAGIC.length + 8;
  const first = Number(bytes.readBigUInt64LE(PAIR_MAGIC.length));
  if (at + first > bytes.length) throw invalid('index bytes are truncated');
  return [bytes.subarray(at, at + first), bytes.subarray(at + first)];
}

/**
 * An HNSW graph built on one thread. faiss inserts a batch's vectors on all its threads at once, and
 * the graph then depends on which thread got where first: two builds of the same bank (two shard
 * replicas, or the same bank reloaded) answered 4 of 2,000 queries with different neighbours, so one
 * sheet could score differently on each replica. On one thread the graph is the same on every build,
 * for about twice the build time (off the event loop: build-worker). The thread count is the calling
 * thread's own (OpenMP's), restored after.
 */
function addOnOneThread(index: Index, vectors: Float32Array): void {
  const before = ompThreads(1);
  try {
    index.addBuffer(vectors);
  } finally {
    ompThreads(before);
  }
}
