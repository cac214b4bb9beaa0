/**
 * One request id from the line controller to the shards: the client sends `x-request-id` metadata
 * (the typed client makes one per call if the caller gives none), the gateway takes it (or makes
 * one), logs it, hands it to every shard Search in the same metadata, and returns it in the response
 * headers. Inside the gateway the id travels with the request's async context, so the fan-out code
 * needs no extra parameter; so does the caller's cancellation, which cancels the shard calls made
 * for a request its caller has given up on.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';

export const REQUEST_ID_KEY = 'x-request-id';

/** Longest id accepted from a caller; anything longer or with odd characters gets a fresh id. */
const VALID = /^[\x21-\x7e]{1,128}$/;

const storage = new AsyncLocalStorage<{ requestId: string; signal?: AbortSignal }>();

/** Runs `fn` with `requestId` as the current request's id and `signal` as its cancellation. */
export function withRequestId<T>(requestId: string, fn: () => T, signal?: AbortSignal): T {
  return storage.run({ requestId, signal }, fn);
}

/** The current request's id, if inside `withRequestId`. */
export function currentRequestId(): string | undefined {
  return storage.getStore()?.requestId;
}

/** The current request's cancellation, if inside `withRequestId` with one. */
export function currentRequestSignal(): AbortSignal | undefined {
  return storage.getStore()?.signal;
}

export function newRequestId(): string {
  return randomUUID();
}

/** The caller's id from metadata, if it sent a usable one. */
export function requestIdOf(metadata: grpc.Metadata | undefined): string | undefined {
  const v = metadata?.get(REQUEST_ID_KEY)[0];
  return typeof v === 'string' && VALID.test(v) ? v : undefined;
}

/** Metadata carrying `requestId` (when there is one). */
export function requestMetadata(requestId: string | undefined = currentRequestId()): grpc.Metadata {
  const md = new grpc.Metadata();
  if (requestId) md.set(REQUEST_ID_KEY, requestId);
  return md;
}

/**
 * Server interceptor: makes sure every call's metadata has a usable `x-request-id` (the caller's, or
 * a new one) before the handler sees it, and sends it back in the response headers.
 */
export const requestIdInterceptor: grpc.ServerInterceptor = (_def, call) => {
  let id: string | undefined;
  return new grpc.ServerInterceptingCall(call, {
    start: (next) =>
      next({
        onReceiveMetadata: (metadata, nextMetadata) => {
          id = requestIdOf(metadata) ?? newRequestId();
          metadata.set(REQUEST_ID_KEY, id);
          nextMetadata(metadata);
        },
      }),
    sendMetadata: (metadata, next) => {
      if (id) metadata.set(REQUEST_ID_KEY, id);
      next(metadata);
    },
  });
};
