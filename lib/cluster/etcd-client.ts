/**
 * An etcd3 client tuned for a cluster that must ride out etcd restarts: every unary call has a
 * deadline (a stopped etcd must not hang a request forever), no per-host circuit breaker (etcd3's
 * default keeps a host "open" for 5 s after it comes back, which only delays re-registration), and
 * short gRPC reconnect backoff.
 */
import { Etcd3, IOptions } from 'etcd3';

export interface EtcdClientOptions {
  endpoints: string[];
  dialTimeoutMs?: number;
  /** Deadline of each unary etcd call (not of watch / keepalive streams). */
  callTimeoutMs?: number;
}

type HostPolicy = ReturnType<NonNullable<NonNullable<IOptions['faultHandling']>['host']>>;

const noDispose = () => ({ dispose: () => undefined });

/** A policy that just runs the call (the shape etcd3 expects from cockatiel). */
const passthrough = {
  onSuccess: noDispose,
  onFailure: noDispose,
  execute<T>(fn: (ctx: { signal: AbortSignal }) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T> {
    return Promise.resolve().then(() => fn({ signal: signal ?? new AbortController().signal }));
  },
} as unknown as HostPolicy;

export function createEtcdClient(options: EtcdClientOptions): Etcd3 {
  if (options.endpoints.length === 0) throw new Error('no etcd endpoints given');
  const callTimeoutMs = options.callTimeoutMs ?? 5000;
  return new Etcd3({
    hosts: options.endpoints.map((e) => (/^https?:\/\//.test(e) ? e : `http://${e}`)),
    dialTimeout: options.dialTimeoutMs ?? 3000,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
    faultHandling: { host: () => passthrough },
    grpcOptions: {
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 1000,
    },
  });
}
