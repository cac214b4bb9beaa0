/**
 * When an Inspect's metadata reached the gateway, carried from the admission interceptor to the
 * handler in the call's metadata: the answer's queue_ms then counts the whole wait on the gateway
 * (the image's upload and the admission queue), not only the part after the image was in.
 */
import * as grpc from '@grpc/grpc-js';

/** Set by the gateway itself on every admitted call (overwriting any a client sent). */
const ARRIVED_KEY = 'spi-gateway-arrived-ms';

export function markArrival(metadata: grpc.Metadata, at = performance.now()): void {
  metadata.set(ARRIVED_KEY, at.toFixed(3));
}

/** The mark's time (this process's performance.now() clock), or undefined when there is none. */
export function arrivalOf(metadata: grpc.Metadata): number | undefined {
  const at = Number(metadata.get(ARRIVED_KEY)[0]);
  return Number.isFinite(at) && at > 0 ? at : undefined;
}
