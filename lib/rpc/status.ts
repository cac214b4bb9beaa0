/**
 * The one mapping between SpiError kinds and gRPC status codes, both ways. Servers wrap handlers with
 * `wrapUnary` / `wrapClientStream`; clients turn a failed call back into an SpiError with
 * `fromServiceError`, so a shard's NOT_FOUND reaches the gateway's caller as NOT_FOUND.
 */
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { ErrorKind, SpiError } from '../errors';
import { createLogger, Logger } from '../util/log';

const { status } = grpc;

const TO_STATUS: Record<ErrorKind, grpc.status> = {
  INVALID_ARGUMENT: status.INVALID_ARGUMENT,
  NOT_FOUND: status.NOT_FOUND,
  ALREADY_EXISTS: status.ALREADY_EXISTS,
  RESOURCE_EXHAUSTED: status.RESOURCE_EXHAUSTED,
  FAILED_PRECONDITION: status.FAILED_PRECONDITION,
  UNAVAILABLE: status.UNAVAILABLE,
  DEADLINE_EXCEEDED: status.DEADLINE_EXCEEDED,
  DATA_LOSS: status.DATA_LOSS,
  UNAUTHENTICATED: status.UNAUTHENTICATED,
  PERMISSION_DENIED: status.PERMISSION_DENIED,
  INTERNAL: status.INTERNAL,
};

const FROM_STATUS: Partial<Record<grpc.status, ErrorKind>> = {
  ...Object.fromEntries(Object.entries(TO_STATUS).map(([kind, code]) => [code, kind as ErrorKind])),
  [status.OUT_OF_RANGE]: 'INVALID_ARGUMENT',
  [status.ABORTED]: 'FAILED_PRECONDITION',
  // A call cut short (peer gone, channel closed) is worth retrying elsewhere, like UNAVAILABLE.
  [status.CANCELLED]: 'UNAVAILABLE',
};

export function statusOfKind(kind: ErrorKind): grpc.status {
  return TO_STATUS[kind];
}

export function kindOfStatus(code: grpc.status): ErrorKind {
  return FROM_STATUS[code] ?? 'INTERNAL';
}

const defaultLog = createLogger('grpc');

/** Trailing metadata of a refusal that says when to try again (ms), e.g. an overloaded gateway's. */
export const RETRY_AFTER_KEY = 'retry-after-ms';

/** The server's retry hint in a failed call's metadata, when it sent a sane one. */
export function retryAfterOf(metadata: grpc.Metadata | undefined): number | undefined {
  const raw = metadata?.get(RETRY_AFTER_KEY)[0];
  const ms = typeof raw === 'string' ? Number(raw) : NaN;
  return Number.isFinite(ms) && ms >= 0 ? ms : undefined;
}

function isServiceError(err: unknown): err is grpc.ServiceError {
  return (
    err instanceof Error &&
    typeof (err as Partial<grpc.ServiceError>).code === 'number' &&
    (err as Partial<grpc.ServiceError>).metadata instanceof grpc.Metadata
  );
}

/**
 * An error as the status a client sees. SpiErrors keep their message (written for the caller); a
 * downstream gRPC error keeps its code; anything else is a bug: INTERNAL with a generic message and a
 * reference, the stack goes to the log only.
 */
export function toServiceError(err: unknown, log: Logger = defaultLog): Partial<grpc.StatusObject> {
  if (err instanceof SpiError) {
    const status: Partial<grpc.StatusObject> = { code: TO_STATUS[err.kind], details: err.message };
    if (err.retryAfterMs !== undefined) {
      status.metadata = new grpc.Metadata();
      status.metadata.set(RETRY_AFTER_KEY, String(Math.round(err.retryAfterMs)));
    }
    return status;
  }
  if (isServiceError(err)) return { code: err.code, details: err.details };
  const errno = (err as NodeJS.ErrnoException | undefined)?.code;
  if (errno === 'ENOSPC' || errno === 'EDQUOT') {
    return { code: status.RESOURCE_EXHAUSTED, details: 'disk full on the server' };
  }
  const ref = randomBytes(4).toString('hex');
  log.error('unexpected error', { ref, err });
  return { code: status.INTERNAL, details: `internal error (server log reference ${ref})` };
}

/** A failed call as an SpiError of the matching kind (message = the server's details, retry hint). */
export function fromServiceError(err: unknown): SpiError {
  if (err instanceof SpiError) return err;
  if (isServiceError(err))
    return new SpiError(kindOfStatus(err.code), err.details || err.message, retryAfterOf(err.metadata));
  return new SpiError('INTERNAL', err instanceof Error ? err.message : String(err));
}

/** Unary handler from an async function; errors go through `toServiceError`. */
export function wrapUnary<Req, Res>(
  handler: (call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res>,
  log: Logger = defaultLog,
): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    handler(call).then(
      (res) => callback(null, res),
      (err: unknown) => callback(toServiceError(err, log)),
    );
  };
}

/** Client-streaming handler from an async function that consumes the stream and answers once. */
export function wrapClientStream<Req, Res>(
  handler: (call: grpc.ServerReadableStream<Req, Res>) => Promise<Res>,
  log: Logger = defaultLog,
): grpc.handleClientStreamingCall<Req, Res> {
  return (call, callback) => {
    handler(call).then(
      (res) => callback(null, res),
      (err: unknown) => callback(toServiceError(err, log)),
    );
  };
}
