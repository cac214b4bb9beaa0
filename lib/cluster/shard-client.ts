/**
 * Calling a bank shard: typed arrays in and out, SpiErrors (via the one status mapping) on failure.
 * Used by gateways (search) and the admin (load, drop).
 */
import * as grpc from '@grpc/grpc-js';
import { sha256 } from '../bank/bank-store';
import { BankShardGrpcClient, PartitionInfoMsg, newBankShardClient } from '../rpc/proto';
import { CLIENT_CHANNEL_OPTIONS } from '../rpc/grpc-server';
import { fromServiceError } from '../rpc/status';
import { requestMetadata } from '../rpc/request-id';
import { bytesOf, float32View, int32View } from './bytes';
import { PartitionRef } from './types';
import { VectorEncoding, WireQueries, encodingMsg } from './vector-encoding';

export interface ShardSearchReply {
  /** Euclidean, [queries x k], ascending per row. */
  distances: Float32Array;
  /** Global bank rows, -1 where fewer than k were found. */
  labels: Int32Array;
  k: number;
}

export interface PartitionUploadSpec {
  ref: PartitionRef;
  dim: number;
  rowOffset: number;
  /** faiss factory string (default Flat). */
  index?: string;
  nprobe?: number;
  /** Computed from the vectors when omitted. */
  sha256?: string;
}

export interface CallOptions {
  /** Milliseconds from now. */
  timeoutMs?: number;
}

export interface SearchOptions extends CallOptions {
  /** float32 unless the shard advertises another (./vector-encoding.ts). */
  encoding?: VectorEncoding;
  /** Cancels the call: its queries still waiting to be sent are dropped, the shard told to stop. */
  signal?: AbortSignal;
}

const DEFAULT_CHUNK_BYTES = 1024 * 1024;

export class ShardClient {
  private readonly client: BankShardGrpcClient;

  constructor(
    readonly address: string,
    options: grpc.ChannelOptions = {},
    credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
  ) {
    this.client = newBankShardClient(address, { ...CLIENT_CHANNEL_OPTIONS, ...options }, credentials);
  }

  /**
   * `opts.encoding` (default f32) must be one the shard advertises (./vector-encoding.ts); pass
   * WireQueries to share the packed bytes between calls.
   */
  search(
    ref: PartitionRef,
    queries: Float32Array | WireQueries,
    dim: number,
    k: number,
    opts: SearchOptions = {},
  ): Promise<ShardSearchReply> {
    const wire = queries instanceof WireQueries ? queries : new WireQueries(queries);
    const { encoding, bytes } = wire.payload(opts.encoding ?? 'f32');
    const { signal } = opts;
    return new Promise((resolve, reject) => {
      const cancel = () => call.cancel();
      const call = this.client.search(
        { partition: ref, queries: bytes, dim, k, encoding: encodingMsg(encoding) },
        // The request id of the Inspect this search serves (the gateway's async context).
        requestMetadata(),
        callOptions(opts),
        (err, res) => {
          signal?.removeEventListener('abort', cancel);
          if (err || !res) return reject(fromServiceError(err));
          try {
            resolve({ distances: float32View(res.distances), labels: int32View(res.labels), k: res.k });
          } catch (e) {
            reject(e);
          }
        },
      );
      if (signal?.aborted) cancel();
      else signal?.addEventListener('abort', cancel, { once: true });
    });
  }

  /** Streams a partition (header, then chunks); resolves once the shard has built and persisted it. */
  loadPartition(
    spec: PartitionUploadSpec,
    vectors: Float32Array,
    opts: CallOptions & { chunkBytes?: number } = {},
  ): Promise<PartitionInfoMsg> {
    const bytes = bytesOf(vectors);
    const chunkBytes = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    return new Promise((resolve, reject) => {
      const call = this.client.loadPartition(requestMetadata(), callOptions(opts), (err, res) =>
        err || !res ? reject(fromServiceError(err)) : resolve(res),
      );
      call.write({
        part: 'header',
        header: {
          partition: spec.ref,
          dim: spec.dim,
          rows: vectors.length / spec.dim,
          rowOffset: spec.rowOffset,
          index: spec.index ?? 'Flat',
          nprobe: spec.nprobe ?? 0,
          sha256: spec.sha256 ?? sha256(bytes),
        },
      });
      // Respect flow control: wait for 'drain' rather than buffering the whole partition in grpc.
      let offset = 0;
      const pump = (): void => {
        while (offset < bytes.length) {
          const chunk = bytes.subarray(offset, offset + chunkBytes);
          offset += chunk.length;
          if (!call.write({ part: 'chunk', chunk })) {
            call.once('drain', pump);
            return;
          }
        }
        call.end();
      };
      pump();
    });
  }

  dropPartition(ref: PartitionRef, opts: CallOptions = {}): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.client.dropPartition(ref, requestMetadata(), callOptions(opts), (err, res) =>
        err || !res ? reject(fromServiceError(err)) : resolve(res.dropped),
      );
    });
  }

  /** A partition's vectors as the shard loaded them (ReadPartition), for an incremental version. */
  readPartition(ref: PartitionRef, opts: CallOptions = {}): Promise<Float32Array> {
    return new Promise((resolve, reject) => {
      const call = this.client.readPartition(ref, requestMetadata(), callOptions(opts));
      const chunks: Buffer[] = [];
      call.on('data', (c: { data: Buffer }) => chunks.push(c.data));
      call.on('error', (err: grpc.ServiceError) => reject(fromServiceError(err)));
      call.on('end', () => {
        const bytes = Buffer.concat(chunks);
        // Copied into its own aligned buffer: the concatenation may sit at any offset of a pool.
        resolve(new Float32Array(new Uint8Array(bytes).buffer, 0, bytes.length / 4));
      });
    });
  }

  /** A few of a partition's vectors by global bank row (ReadRows), [rows x dim] in that order. */
  readRows(ref: PartitionRef, rows: readonly number[], opts: CallOptions = {}): Promise<Float32Array> {
    return new Promise((resolve, reject) => {
      this.client.readRows(
        { partition: ref, rows: [...rows] },
        requestMetadata(),
        callOptions(opts),
        (err, res) => {
          if (err || !res) return reject(fromServiceError(err));
          try {
            resolve(float32View(res.vectors));
          } catch (e) {
            reject(e);
          }
        },
      );
    });
  }

  listPartitions(opts: CallOptions = {}): Promise<PartitionInfoMsg[]> {
    return new Promise((resolve, reject) => {
      this.client.listPartitions({}, new grpc.Metadata(), callOptions(opts), (err, res) =>
        err || !res ? reject(fromServiceError(err)) : resolve(res.partitions),
      );
    });
  }

  close(): void {
    this.client.close();
  }
}

function callOptions(opts: CallOptions): Partial<grpc.CallOptions> {
  return opts.timeoutMs ? { deadline: Date.now() + opts.timeoutMs } : {};
}
