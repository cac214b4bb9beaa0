/**
 * How query embeddings travel on the shard hop (SearchRequest.encoding), and the negotiation that
 * keeps mixed releases working: a shard lists what it decodes in its registration
 * (`ShardInfo.vectorEncodings`; shards of earlier releases list nothing, i.e. float32 only), and the
 * gateway sends float16 only to shards that list it. Distances are always computed in float32: the
 * shard widens float16 queries before faiss, so only the queries are rounded (2^-11 relative).
 */
import { invalid } from '../errors';
import { VectorEncodingMsg } from '../rpc/proto';
import { bytesOf, float32View, uint16View } from './bytes';
import { allFinite16, fromFloat16, toFloat16 } from './float16';

export type VectorEncoding = 'f32' | 'f16';

/** What shards of this release decode; they advertise it in their registration. */
export const SHARD_VECTOR_ENCODINGS: readonly VectorEncoding[] = ['f32', 'f16'];

/** The gateway's preference when nothing is configured: float16 wherever the shard decodes it. */
export const DEFAULT_WIRE_ENCODING: VectorEncoding = 'f16';

const MSG: Record<VectorEncoding, VectorEncodingMsg> = {
  f32: 'VECTOR_ENCODING_FLOAT32',
  f16: 'VECTOR_ENCODING_FLOAT16',
};

/** `--wire-encoding` / SPI_WIRE_ENCODING. */
export function parseWireEncoding(value: string | undefined): VectorEncoding {
  if (value === undefined || value === '') return DEFAULT_WIRE_ENCODING;
  if (value === 'f32' || value === 'f16') return value;
  throw invalid(`--wire-encoding must be f32 or f16, got ${JSON.stringify(value)}`);
}

/** The encoding a gateway that prefers `preferred` uses towards a shard advertising `advertised`. */
export function encodingFor(
  advertised: readonly string[] | undefined,
  preferred: VectorEncoding,
): VectorEncoding {
  return preferred === 'f16' && Array.isArray(advertised) && advertised.includes('f16') ? 'f16' : 'f32';
}

/** What goes into one SearchRequest: the packed queries and the encoding field. */
export interface WirePayload {
  encoding: VectorEncoding;
  bytes: Buffer;
}

/**
 * The queries of one search, packed at most once per encoding: the partitions of a bank and a
 * hedged second replica share the same bytes.
 */
export class WireQueries {
  private f16?: WirePayload;

  constructor(readonly vectors: Float32Array) {}

  /**
   * Float16 when asked, unless a value does not fit a half (|x| >= 65520 or not finite): then
   * float32, so a rare outlier costs bytes, never a wrong distance.
   */
  payload(encoding: VectorEncoding): WirePayload {
    if (encoding === 'f16') {
      if (!this.f16) {
        const halves = toFloat16(this.vectors);
        this.f16 = allFinite16(halves)
          ? { encoding: 'f16', bytes: bytesOf(halves) }
          : { encoding: 'f32', bytes: bytesOf(this.vectors) };
      }
      return this.f16;
    }
    return { encoding: 'f32', bytes: bytesOf(this.vectors) };
  }
}

/** The request's encoding field. */
export const encodingMsg = (encoding: VectorEncoding): VectorEncodingMsg => MSG[encoding];

/**
 * Float32 buffers for widened queries, reused across searches: writing into fresh multi-megabyte
 * memory costs a page fault per 4 KiB (widening a sheet's 2.7M halves took ~48 ms into new memory,
 * ~5 ms into reused memory, on the 2-core machine). Only buffers it handed out go back.
 */
export class QueryBuffers {
  private readonly free: Float32Array[] = [];
  private readonly mine = new WeakSet<Float32Array>();

  constructor(private readonly keep = 4) {}

  acquire(length: number): Float32Array {
    const i = this.free.findIndex((b) => b.length === length);
    if (i >= 0) return this.free.splice(i, 1)[0];
    const buf = new Float32Array(length);
    this.mine.add(buf);
    return buf;
  }

  /** After the search that read it has finished; a view on a request's bytes is ignored. */
  release(buf: Float32Array): void {
    if (!this.mine.has(buf)) return;
    if (this.free.length >= this.keep) this.free.shift(); // the oldest size makes way
    this.free.push(buf);
  }
}

/**
 * On the shard: the queries as float32, whatever their wire encoding (absent = float32): a view on
 * the request's bytes, or widened from float16 into a buffer from `buffers` (release it after the
 * search).
 */
export function decodeQueries(
  bytes: Uint8Array,
  encoding: VectorEncodingMsg | undefined,
  buffers?: QueryBuffers,
): Float32Array {
  if (encoding === undefined || encoding === MSG.f32) return float32View(bytes);
  if (encoding === MSG.f16) {
    const halves = uint16View(bytes);
    return fromFloat16(halves, buffers?.acquire(halves.length));
  }
  throw invalid(`query encoding ${String(encoding)} is not one this shard decodes (float32, float16)`);
}
