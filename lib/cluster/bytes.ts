/**
 * Typed views over protobuf `bytes` fields without going through JS number arrays. A Buffer decoded
 * by grpc often sits at an odd offset inside a larger pooled allocation; a typed array needs an
 * offset aligned to its element size, so only then do we copy.
 */
import { invalid } from '../errors';

function view<T>(
  buf: Uint8Array,
  width: number,
  make: (ab: ArrayBufferLike, off: number, len: number) => T,
): T {
  if (buf.byteLength % width !== 0)
    throw invalid(`byte length ${buf.byteLength} is not a multiple of ${width}`);
  if (buf.byteOffset % width === 0) return make(buf.buffer, buf.byteOffset, buf.byteLength / width);
  const copy = new Uint8Array(buf.byteLength);
  copy.set(buf);
  return make(copy.buffer, 0, buf.byteLength / width);
}

export const float32View = (buf: Uint8Array): Float32Array =>
  view(buf, 4, (ab, off, len) => new Float32Array(ab, off, len));

export const uint16View = (buf: Uint8Array): Uint16Array =>
  view(buf, 2, (ab, off, len) => new Uint16Array(ab, off, len));

export const int32View = (buf: Uint8Array): Int32Array =>
  view(buf, 4, (ab, off, len) => new Int32Array(ab, off, len));

/** The bytes of a typed array, shared, not copied. */
export const bytesOf = (a: ArrayBufferView): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
