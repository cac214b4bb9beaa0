/**
 * Errors the engine raises on purpose, each with a kind that the gRPC layer maps to a status code in
 * one place (lib/rpc/status.ts). The message is written for the person who reads it.
 */
export type ErrorKind =
  | 'INVALID_ARGUMENT' // bad image, wrong size, bad parameter
  | 'NOT_FOUND' // unknown bank, version or model
  | 'ALREADY_EXISTS'
  | 'RESOURCE_EXHAUSTED' // too many pixels, message too large, disk full
  | 'FAILED_PRECONDITION' // bank built with another backbone, version not ready
  | 'UNAVAILABLE' // no replica left for a partition
  | 'DEADLINE_EXCEEDED'
  | 'DATA_LOSS' // a stored file failed its checksum
  | 'UNAUTHENTICATED' // no or bad credentials (admin RPCs, shard calls)
  | 'PERMISSION_DENIED' // a known caller that may not call this
  | 'INTERNAL';

export class SpiError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    /** When to try again (an overloaded gateway's hint; travels as `retry-after-ms` metadata). */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'SpiError';
  }
}

export const invalid = (message: string): SpiError => new SpiError('INVALID_ARGUMENT', message);
export const notFound = (message: string): SpiError => new SpiError('NOT_FOUND', message);
