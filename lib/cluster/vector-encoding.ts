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
import { toHalves } from '../knn/faiss';

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
        // Natively: a sheet's 1.5M values took ~20 ms in JavaScript (toFloat16), ~1 ms so.
        const halves = new Uint16Array(this.vectors.length);
        this.f16 = toHalves(this.vectors, halves)
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
 * On the shard: the queries as they arrived, a view on the request's bytes, whatever their wire
 * encoding (absent = float32): float32 values, or float16 bit patterns, which the search widens
 * natively on its pool thread (KnnIndex.search), off the event loop and into memory that thread
 * reuses.
 */
export function shardQueries(
  bytes: Uint8Array,
  encoding: VectorEncodingMsg | undefined,
): Float32Array | Uint16Array {
  if (encoding === undefined || encoding === MSG.f32) return float32View(bytes);
  if (encoding === MSG.f16) return uint16View(bytes);
  throw invalid(`query encoding ${String(encoding)} is not one this shard decodes (float32, float16)`);
}
