/**
 * Nearest-neighbour search over a memory bank, behind one interface built from a faiss factory
 * string ("Flat", "IVF256,Flat", "HNSW32,Flat"): changing the index is a config change, nothing
 * else moves. The string may end with search-time parameters in faiss' ParameterSpace syntax
 * ("HNSW32,Flat,efSearch=32"), so they travel wherever the factory string does (bank metadata,
 * BuildSpec, the shards' partitions); a few presets name the choices the bench measured ("hnsw").
 * Distances returned are Euclidean (faiss returns squared L2; we take the root once, here).
 */
import { Index } from './faiss';
import { invalid } from '../errors';

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

export const DEFAULT_KNN: KnnConfig = { factory: 'Flat', nprobe: 8 };

/**
 * Short names for factory strings (`--index hnsw`), resolved when a bank is fitted so its metadata
 * holds the full string. `hnsw`: a 32-link graph over the raw vectors, searched with efSearch
 * candidates per query (bench/search-options.ts measures it against Flat; docs/sizing.md).
 */
export const INDEX_PRESETS: Readonly<Record<string, string>> = {
  flat: 'Flat',
  hnsw: 'HNSW32,Flat,efSearch=64',
};

/** A factory string split into what faiss' index_factory builds and the search parameters after it. */
export interface ParsedFactory {
  factory: string;
  params: { name: string; value: number }[];
}

/** "HNSW32,Flat,efSearch=48" -> factory "HNSW32,Flat", params [efSearch 48]; presets expanded. */
export function parseFactory(spec: string): ParsedFactory {
  const full = INDEX_PRESETS[spec.trim().toLowerCase()] ?? spec.trim();
  const parts = full.split(',').map((p) => p.trim());
  const params: ParsedFactory['params'] = [];
  const factory: string[] = [];
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
    params.push({ name, value });
  }
  if (factory.length === 0 || factory.some((p) => p === ''))
    throw invalid(`index "${spec}" has no faiss factory string`);
  return { factory: factory.join(','), params };
}

/** The config with a preset name replaced by its full factory string (what a bank records). */
export function resolveKnn(config: KnnConfig): KnnConfig {
  const preset = INDEX_PRESETS[config.factory.trim().toLowerCase()];
  return preset ? { ...config, factory: preset } : config;
}

export class KnnIndex {
  private constructor(
    private readonly index: Index,
    readonly dim: number,
    private settings: KnnConfig,
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
    const { factory } = parseFactory(config.factory);
    const ivfCells = /^IVF(\d+)/.exec(factory);
    if (ivfCells && rows < Number(ivfCells[1])) {
      throw new Error(`${config.factory} needs at least ${ivfCells[1]} bank vectors to train, got ${rows}`);
    }
    const index = Index.fromFactory(dim, factory);
    if (!index.isTrained()) index.trainBuffer(vectors);
    index.addBuffer(vectors);
    return KnnIndex.wrap(index, config);
  }

  /** Restores an index written by `serialize`. */
  static deserialize(bytes: Buffer, config: KnnConfig): KnnIndex {
    return KnnIndex.wrap(Index.fromBuffer(bytes), config);
  }

  private static wrap(index: Index, config: KnnConfig): KnnIndex {
    const { factory, params } = parseFactory(config.factory);
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
    return new KnnIndex(index, index.getDimension(), config);
  }

  get size(): number {
    return this.index.ntotal();
  }

  serialize(): Buffer {
    return this.index.toBuffer();
  }

  /** Synchronous search: for the in-process engine and tests. */
  searchSync(queries: Float32Array, k: number): KnnResult {
    const kk = this.clampK(k);
    return toEuclidean(this.index.searchBuffer(queries, kk), kk);
  }

  /** Search on the libuv pool, so a shard serves other requests meanwhile. */
  async search(queries: Float32Array, k: number): Promise<KnnResult> {
    const kk = this.clampK(k);
    return toEuclidean(await this.index.searchAsync(queries, kk), kk);
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
