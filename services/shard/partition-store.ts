/**
 * The shard's core, without gRPC: partitions of bank versions held as faiss indexes, persisted in a
 * data dir and announced to the cluster. gRPC handlers (server.ts) only translate messages.
 */
import * as fs from 'node:fs';
import { createHash, Hash } from 'node:crypto';
import { buildIndex } from '../../lib/knn/build-worker';
import { KnnIndex, resolveKnn } from '../../lib/knn/index';
import { SpiError, invalid } from '../../lib/errors';
import { sha256 } from '../../lib/bank/bank-store';
import { Announcer, PartitionRef, checkRef, refString } from '../../lib/cluster/types';
import { partitionKey } from '../../lib/cluster/keys';
import { Logger, createLogger } from '../../lib/util/log';
import {
  PARTITION_FORMAT,
  PartitionFileHeader,
  listPartitionFiles,
  partitionFile,
  quarantine,
  readPartitionFile,
  removePartitionFile,
  vectorsFile,
  writePartitionFile,
  writeVectorsFile,
} from './partition-file';
import { gatherRows } from '../../lib/util/rows';

export interface LoadHeader {
  ref: PartitionRef;
  dim: number;
  rows: number;
  /** Bank row of the partition's first row; labels are reported as global rows. */
  rowOffset: number;
  /** faiss factory string ("" = Flat). */
  index: string;
  nprobe: number;
  /** sha256 (hex) of the float32 LE vector bytes. */
  sha256: string;
}

export interface PartitionSummary {
  ref: PartitionRef;
  rows: number;
  dim: number;
  rowOffset: number;
  index: string;
  nprobe: number;
}

export interface ShardSearchResult {
  /** Euclidean, [queries x k], ascending per row. */
  distances: Float32Array;
  /** Global bank rows, -1 where faiss found fewer than k. */
  labels: Int32Array;
  k: number;
}

export interface PartitionStoreOptions {
  /** Persist partitions here and reload them on open; undefined = memory only. */
  dataDir?: string;
  /** Name used in messages ("partition x is not loaded on shard <name>"). */
  name?: string;
  /** Largest partition accepted, in vector bytes (default 4 GiB). */
  maxPartitionBytes?: number;
  /** Largest k a search may ask for. */
  maxK?: number;
  log?: Logger;
}

interface Partition extends PartitionSummary {
  knn: KnnIndex;
  /** The vectors as loaded, for ReadPartition, when the store has no data dir (else on disk). */
  vectors?: Float32Array;
}

const INT32_MAX = 0x7fffffff;
/** Rows one ReadRows may ask for (a neighbourhood is a handful). */
export const MAX_READ_ROWS = 4096;
const SHA256_HEX = /^[0-9a-f]{64}$/;

export class PartitionStore {
  private readonly partitions = new Map<string, Partition>();
  /** Per-partition queue, so two loads (or a load and a drop) of one partition never interleave. */
  private readonly locks = new Map<string, Promise<unknown>>();
  private announcer: Announcer | null = null;
  private readonly log: Logger;
  /** Used in messages; the server sets it once its id is known. */
  name: string;
  private readonly maxBytes: number;
  private readonly maxK: number;

  private constructor(private readonly options: PartitionStoreOptions) {
    this.log = options.log ?? createLogger('shard');
    this.name = options.name ?? 'shard';
    this.maxBytes = options.maxPartitionBytes ?? 4 * 1024 ** 3;
    this.maxK = options.maxK ?? 4096;
  }

  /** Opens the store, reloading every partition persisted in the data dir. */
  static open(options: PartitionStoreOptions = {}): PartitionStore {
    const store = new PartitionStore(options);
    if (options.dataDir) store.reload(options.dataDir);
    return store;
  }

  private reload(dataDir: string): void {
    for (const file of listPartitionFiles(dataDir)) {
      try {
        const { header, index } = readPartitionFile(file);
        const ref = checkRef({ bank: header.bank, version: header.version, partition: header.partition });
        if (partitionFile(dataDir, ref) !== file)
          throw new SpiError('DATA_LOSS', `${file} holds ${refString(ref)}`);
        const knn = KnnIndex.deserialize(index, { factory: header.index, nprobe: header.nprobe });
        if (knn.dim !== header.dim || knn.size !== header.rows) {
          throw new SpiError(
            'DATA_LOSS',
            `${file}: index has ${knn.size}x${knn.dim}, header says ${header.rows}x${header.dim}`,
          );
        }
        this.partitions.set(partitionKey(ref), { ...summaryOf(header), knn });
        this.log.info('partition reloaded from disk', { partition: refString(ref), rows: header.rows });
      } catch (err) {
        // One bad file must not keep the shard from serving the others; the admin re-sends it.
        const moved = quarantine(file);
        this.log.error('partition file unreadable; moved aside', { file, movedTo: moved, err });
      }
    }
  }

  /**
   * Announces every partition held now, and each later load and drop, through `announcer`.
   * Resolves when the current ones are announced (or the first attempt failed: it keeps retrying).
   */
  async setAnnouncer(announcer: Announcer): Promise<void> {
    this.announcer = announcer;
    const all = [...this.partitions.values()];
    await Promise.all(all.map((p) => this.announceLoaded(p)));
  }

  list(): PartitionSummary[] {
    return [...this.partitions.values()].map(({ knn: _knn, vectors: _v, ...summary }) => summary);
  }

  get(ref: PartitionRef): PartitionSummary | undefined {
    const p = this.partitions.get(partitionKey(ref));
    if (!p) return undefined;
    const { knn: _knn, vectors: _v, ...summary } = p;
    return summary;
  }

  /**
   * A partition's vectors as loaded (ReadPartition: the next version of an incremental bank is
   * built on them). From memory, or from the file beside the partition's on disk.
   */
  readVectors(ref: PartitionRef): Float32Array {
    checkRef(ref);
    const p = this.partitions.get(partitionKey(ref));
    if (!p) throw new SpiError('NOT_FOUND', `${this.name} does not hold ${refString(ref)}`);
    if (p.vectors) return p.vectors;
    const file = this.options.dataDir ? vectorsFile(partitionFile(this.options.dataDir, ref)) : '';
    if (!file || !fs.existsSync(file))
      throw new SpiError(
        'FAILED_PRECONDITION',
        `${refString(ref)} on ${this.name} was loaded before shards kept partition vectors: rebuild the bank instead of adding to it`,
      );
    const bytes = fs.readFileSync(file);
    if (bytes.length !== p.rows * p.dim * 4)
      throw new SpiError('DATA_LOSS', `${file} holds ${bytes.length} bytes, not ${p.rows}x${p.dim} float32`);
    return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
  }

  /**
   * A few vectors of a partition by their global bank rows (the re-weighted image score), in the
   * order asked: from memory, or read row by row from the file beside the partition's.
   */
  readRows(ref: PartitionRef, rows: readonly number[]): Float32Array {
    checkRef(ref);
    const p = this.partitions.get(partitionKey(ref));
    if (!p) throw new SpiError('NOT_FOUND', `${this.name} does not hold ${refString(ref)}`);
    if (rows.length > MAX_READ_ROWS)
      throw invalid(`at most ${MAX_READ_ROWS} rows per ReadRows, got ${rows.length}`);
    const local = rows.map((row) => {
      const r = row - p.rowOffset;
      if (!Number.isInteger(r) || r < 0 || r >= p.rows)
        throw invalid(
          `row ${row} is not in ${refString(ref)} (rows ${p.rowOffset}..${p.rowOffset + p.rows - 1})`,
        );
      return r;
    });
    if (p.vectors) return gatherRows(p.vectors, p.dim, local);
    const out = new Float32Array(local.length * p.dim);
    const file = this.options.dataDir ? vectorsFile(partitionFile(this.options.dataDir, ref)) : '';
    if (!file || !fs.existsSync(file))
      throw new SpiError(
        'FAILED_PRECONDITION',
        `${refString(ref)} on ${this.name} was loaded before shards kept partition vectors: rebuild the bank`,
      );
    const rowBytes = p.dim * 4;
    const bytes = new Uint8Array(out.buffer);
    const fd = fs.openSync(file, 'r');
    try {
      local.forEach((r, i) => {
        const read = fs.readSync(fd, bytes, i * rowBytes, rowBytes, r * rowBytes);
        if (read !== rowBytes) throw new SpiError('DATA_LOSS', `${file} ends before row ${r}`);
      });
    } finally {
      fs.closeSync(fd);
    }
    return out;
  }

  /** Starts receiving a partition's vectors; `finish()` checks, builds, persists and swaps it in. */
  beginLoad(header: LoadHeader): PartitionUpload {
    const h = this.checkHeader(header);
    return new PartitionUpload(h, h.rows * h.dim * 4, (vectors) => this.install(h, vectors));
  }

  /** Whole-array convenience over beginLoad (embedded use, tests). */
  async load(header: LoadHeader, vectors: Float32Array): Promise<PartitionSummary> {
    const upload = this.beginLoad(header);
    upload.write(new Uint8Array(vectors.buffer, vectors.byteOffset, vectors.byteLength));
    return upload.finish();
  }

  /** `queries`: float32 values, or float16 bit patterns as the hop carries them (widened natively). */
  async search(
    ref: PartitionRef,
    queries: Float32Array | Uint16Array,
    dim: number,
    k: number,
  ): Promise<ShardSearchResult> {
    const p = this.partitions.get(partitionKey(ref));
    if (!p) {
      throw new SpiError(
        'NOT_FOUND',
        `partition ${refString(ref)} (bank/version/partition) is not loaded on ${this.name}`,
      );
    }
    if (dim !== p.dim) throw invalid(`queries have dim ${dim}, partition ${refString(ref)} has dim ${p.dim}`);
    if (!Number.isInteger(k) || k < 1 || k > this.maxK)
      throw invalid(`k must be from 1 to ${this.maxK}, got ${k}`);
    if (queries.length % dim !== 0) {
      throw invalid(`queries hold ${queries.length} values, not a multiple of dim ${dim}`);
    }
    if (queries.length === 0)
      return { distances: new Float32Array(0), labels: new Int32Array(0), k: Math.min(k, p.rows) };
    const res = await p.knn.search(queries, k);
    const labels = new Int32Array(res.labels.length);
    for (let i = 0; i < labels.length; i++) {
      const l = res.labels[i];
      labels[i] = l < 0 ? -1 : l + p.rowOffset;
    }
    return { distances: res.distances, labels, k: res.k };
  }

  /** Removes a partition from the cluster's view, memory and disk. Idempotent: false if absent. */
  drop(ref: PartitionRef): Promise<boolean> {
    checkRef(ref);
    return this.serial(ref, async () => {
      // Unannounce first, so gateways stop routing here before we stop answering.
      if (this.announcer) {
        await this.announcer.markDropped(ref).catch((err: Error) =>
          this.log.warn('could not unannounce partition in etcd (will retry)', {
            partition: refString(ref),
            err: err.message,
          }),
        );
      }
      const inMemory = this.partitions.delete(partitionKey(ref));
      const onDisk = this.options.dataDir ? removePartitionFile(this.options.dataDir, ref) : false;
      if (inMemory || onDisk) this.log.info('partition dropped', { partition: refString(ref) });
      return inMemory || onDisk;
    });
  }

  private checkHeader(h: LoadHeader): LoadHeader {
    checkRef(h.ref);
    if (!Number.isInteger(h.dim) || h.dim < 1 || h.dim > 65536)
      throw invalid(`dim must be from 1 to 65536, got ${h.dim}`);
    if (!Number.isInteger(h.rows) || h.rows < 1)
      throw invalid(`rows must be a positive integer, got ${h.rows}`);
    if (!Number.isInteger(h.rowOffset) || h.rowOffset < 0 || h.rowOffset + h.rows - 1 > INT32_MAX) {
      throw invalid(
        `rows ${h.rowOffset}..${h.rowOffset + h.rows - 1} do not fit the int32 labels of SearchResponse`,
      );
    }
    const bytes = h.rows * h.dim * 4;
    if (bytes > this.maxBytes) {
      throw new SpiError(
        'RESOURCE_EXHAUSTED',
        `partition of ${bytes} bytes exceeds this shard's limit of ${this.maxBytes}`,
      );
    }
    const sha = h.sha256.toLowerCase();
    if (!SHA256_HEX.test(sha)) throw invalid('header sha256 must be 64 hex characters');
    // `auto` becomes Flat or HNSW by this partition's rows, and is recorded as what was built.
    const factory = resolveKnn({ factory: h.index.trim() || 'Flat', nprobe: 0 }, h.rows).factory;
    const cells = /^IVF(\d+)/.exec(factory);
    if (cells && h.rows < Number(cells[1])) {
      throw new SpiError(
        'FAILED_PRECONDITION',
        `index ${factory} needs at least ${cells[1]} vectors to train, partition ${refString(h.ref)} has ${h.rows}: use fewer IVF cells or Flat`,
      );
    }
    const nprobe = h.nprobe > 0 ? h.nprobe : 8;
    return { ...h, sha256: sha, index: factory, nprobe };
  }

  private install(h: LoadHeader, vectors: Float32Array): Promise<PartitionSummary> {
    return this.serial(h.ref, async () => {
      let knn: KnnIndex;
      try {
        knn = await buildIndex(vectors, h.dim, { factory: h.index, nprobe: h.nprobe });
      } catch (err) {
        // faiss prefixes its messages with the C++ location; the caller needs the reason.
        const reason = (err as Error).message.replace(/^Error in .*? at \S+:\d+: /, '');
        throw invalid(`cannot build index '${h.index}' for ${refString(h.ref)}: ${reason}`);
      }
      const partition: Partition = { ...summaryOf({ ...h, ...h.ref }), knn };
      if (!this.options.dataDir) partition.vectors = vectors;
      if (this.options.dataDir) {
        writeVectorsFile(
          partitionFile(this.options.dataDir, h.ref),
          new Uint8Array(vectors.buffer, vectors.byteOffset, vectors.byteLength),
        );
        const index = knn.serialize();
        const header: PartitionFileHeader = {
          format: PARTITION_FORMAT,
          ...h.ref,
          dim: h.dim,
          rows: h.rows,
          rowOffset: h.rowOffset,
          index: h.index,
          nprobe: h.nprobe,
          vectorsSha256: h.sha256,
          indexSha256: sha256(index),
          loadedAt: new Date().toISOString(),
        };
        writePartitionFile(partitionFile(this.options.dataDir, h.ref), header, index);
      }
      // The swap is one Map.set: searches see the old index or the new one, never a gap.
      this.partitions.set(partitionKey(h.ref), partition);
      this.log.info('partition loaded', {
        partition: refString(h.ref),
        rows: h.rows,
        dim: h.dim,
        index: h.index,
      });
      await this.announceLoaded(partition);
      const { knn: _knn, vectors: _v, ...summary } = partition;
      return summary;
    });
  }

  private async announceLoaded(p: Partition): Promise<void> {
    if (!this.announcer) return;
    try {
      await this.announcer.markLoaded(p.ref, { rows: p.rows, dim: p.dim, index: p.index });
    } catch (err) {
      // The partition is loaded and persisted; the registration keeps retrying the announcement.
      this.log.warn('partition loaded but not yet announced in etcd', {
        partition: refString(p.ref),
        err: (err as Error).message,
      });
    }
  }

  private serial<T>(ref: PartitionRef, fn: () => Promise<T>): Promise<T> {
    const key = partitionKey(ref);
    const prev = this.locks.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.locks.set(key, tail);
    void tail.then(() => {
      if (this.locks.get(key) === tail) this.locks.delete(key);
    });
    return next;
  }
}

function summaryOf(h: Omit<LoadHeader, 'ref' | 'sha256'> & PartitionRef): PartitionSummary {
  return {
    ref: { bank: h.bank, version: h.version, partition: h.partition },
    rows: h.rows,
    dim: h.dim,
    rowOffset: h.rowOffset,
    index: h.index,
    nprobe: h.nprobe,
  };
}

/**
 * Vector bytes of one partition as they arrive: copied into one preallocated, aligned buffer and
 * hashed on the way, so nothing is held twice and nothing is re-read for the checksum.
 */
export class PartitionUpload {
  private buffer: Uint8Array | null = null;
  private received = 0;
  private readonly hash: Hash = createHash('sha256');

  constructor(
    readonly header: LoadHeader,
    readonly expectedBytes: number,
    private readonly complete: (vectors: Float32Array) => Promise<PartitionSummary>,
  ) {}

  write(chunk: Uint8Array): void {
    if (this.received + chunk.byteLength > this.expectedBytes) {
      throw invalid(
        `partition ${refString(this.header.ref)}: more than the ${this.expectedBytes} bytes its header announces ` +
          `(${this.header.rows} rows x ${this.header.dim} dims x 4)`,
      );
    }
    // Allocated on the first chunk, so a header that is never followed by data costs nothing.
    this.buffer ??= new Uint8Array(this.expectedBytes);
    this.buffer.set(chunk, this.received);
    this.received += chunk.byteLength;
    this.hash.update(chunk);
  }

  async finish(): Promise<PartitionSummary> {
    const ref = refString(this.header.ref);
    if (this.received !== this.expectedBytes) {
      throw invalid(
        `partition ${ref}: received ${this.received} bytes, header announces ${this.expectedBytes} ` +
          `(${this.header.rows} rows x ${this.header.dim} dims x 4)`,
      );
    }
    const actual = this.hash.digest('hex');
    if (actual !== this.header.sha256) {
      throw new SpiError(
        'DATA_LOSS',
        `partition ${ref}: the received vectors hash to sha256 ${actual}, the header says ${this.header.sha256}; ` +
          'the data was damaged on the way, nothing was replaced',
      );
    }
    const buf = this.buffer as Uint8Array;
    this.buffer = null;
    return this.complete(new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4));
  }
}
