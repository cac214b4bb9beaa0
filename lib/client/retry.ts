/**
 * When the typed client tries a failed Inspect again: UNAVAILABLE (a gateway restarting, a network
 * blip) after a short exponential back-off, and RESOURCE_EXHAUSTED only when the server said when
 * (`retry-after-ms`: an overloaded gateway; an image over the pixel limit carries no hint and is
 * final), never before that hint. Every delay is jittered, so clients refused together do not come
 * back together.
 */
import * as grpc from '@grpc/grpc-js';
import { retryAfterOf } from '../rpc/status';

const BASE_MS = 50;
const MAX_BACKOFF_MS = 500;

/** How long to wait before attempt `attempt + 1` (0-based), or undefined when not worth retrying. */
export function retryDelayMs(
  err: Partial<grpc.ServiceError>,
  attempt: number,
  random: () => number = Math.random,
): number | undefined {
  const backoff = Math.min(BASE_MS * 2 ** attempt, MAX_BACKOFF_MS);
  if (err.code === grpc.status.UNAVAILABLE) return Math.round(backoff * (0.5 + random()));
  const hint = err.code === grpc.status.RESOURCE_EXHAUSTED ? retryAfterOf(err.metadata) : undefined;
  if (hint === undefined) return undefined;
  return Math.round(Math.max(hint, backoff) * (1 + 0.5 * random()));
}
