/**
 * Prometheus metrics common to gateway and shard: one prom-client Registry per server (never the
 * global one, so an embedded gateway and its in-process shards do not collide), and a grpc-js server
 * interceptor that counts and times every call by service, method and status code. The metric names
 * follow go-grpc-prometheus so existing gRPC dashboards work unchanged.
 */
import * as grpc from '@grpc/grpc-js';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { ServingHealth } from './health';

/** Seconds; from a cache-hot shard search to a bank build streamed over minutes. */
export const LATENCY_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300,
];

export function newMetricsRegistry(): Registry {
  return new Registry();
}

/** Process metrics (CPU, memory, event-loop lag, GC): once per process, on the registry it serves. */
export function collectProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
}

/** "/spi.v1.Inspector/Inspect" -> ["spi.v1.Inspector", "Inspect"]. */
export function splitMethodPath(path: string): [string, string] {
  const parts = path.split('/');
  return parts.length === 3 ? [parts[1], parts[2]] : ['unknown', path];
}

function grpcType(def: grpc.ServerMethodDefinition<unknown, unknown>): string {
  if (def.requestStream) return def.responseStream ? 'bidi_stream' : 'client_stream';
  return def.responseStream ? 'server_stream' : 'unary';
}

/** Looks at each response message of a method before it is serialised (e.g. Inspect timings). */
export type ResponseObserver = (message: unknown) => void;

export class GrpcServerMetrics {
  private readonly started: Counter<'grpc_service' | 'grpc_method' | 'grpc_type'>;
  private readonly handled: Counter<'grpc_service' | 'grpc_method' | 'grpc_type' | 'grpc_code'>;
  private readonly seconds: Histogram<'grpc_service' | 'grpc_method' | 'grpc_type' | 'grpc_code'>;
  private readonly observers = new Map<string, ResponseObserver>();

  constructor(readonly registry: Registry) {
    const labelNames = ['grpc_service', 'grpc_method', 'grpc_type'] as const;
    this.started = new Counter({
      name: 'grpc_server_started_total',
      help: 'RPCs started on the server.',
      labelNames,
      registers: [registry],
    });
    this.handled = new Counter({
      name: 'grpc_server_handled_total',
      help: 'RPCs completed on the server, by status code.',
      labelNames: [...labelNames, 'grpc_code'],
      registers: [registry],
    });
    this.seconds = new Histogram({
      name: 'grpc_server_handling_seconds',
      help: 'Time from the start of an RPC to its status, by status code.',
      labelNames: [...labelNames, 'grpc_code'],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    });
  }

  /** Calls `observer` with each response message of the method at `path` ("/pkg.Service/Method"). */
  observeResponses(path: string, observer: ResponseObserver): void {
    this.observers.set(path, observer);
  }

  /**
   * The interceptor for the server's `interceptors` option. Sees every call's final status, also
   * those grpc-js itself produces (message too large, deadline), unlike a wrapper around handlers.
   */
  readonly interceptor: grpc.ServerInterceptor = (def, call) => {
    const [service, method] = splitMethodPath(def.path);
    const labels = { grpc_service: service, grpc_method: method, grpc_type: grpcType(def) };
    const t0 = process.hrtime.bigint();
    let done = false;
    const finish = (code: grpc.status) => {
      if (done) return;
      done = true;
      const all = { ...labels, grpc_code: grpc.status[code] ?? String(code) };
      this.handled.inc(all);
      this.seconds.observe(all, Number(process.hrtime.bigint() - t0) / 1e9);
    };
    this.started.inc(labels);
    const observer = this.observers.get(def.path);
    return new grpc.ServerInterceptingCall(call, {
      start: (next) => next({ onCancel: () => finish(grpc.status.CANCELLED) }),
      sendMessage: (message, next) => {
        if (observer) {
          try {
            observer(message);
          } catch {
            // metrics must never fail a call
          }
        }
        next(message);
      },
      sendStatus: (status, next) => {
        finish(status.code);
        next(status);
      },
    });
  };

  /** Server options that install the interceptor (startGrpcServer passes channelOptions through). */
  serverOptions(): grpc.ChannelOptions {
    return { interceptors: [this.interceptor] };
  }
}

/** spi_health_serving{service}: 1 while the grpc.health.v1 name is SERVING (readiness, as a series). */
export function registerHealthMetrics(registry: Registry, health: ServingHealth): void {
  new Gauge({
    name: 'spi_health_serving',
    help: '1 while the grpc.health.v1 service name is SERVING ("" = the whole server).',
    labelNames: ['service'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [service, status] of Object.entries(health.snapshot()))
        this.set({ service }, status === 'SERVING' ? 1 : 0);
    },
  });
}

/** Times a unary handler (the handler's own work, without (de)serialisation) into `histogram`. */
export function timedUnary<Req, Res>(
  handler: grpc.handleUnaryCall<Req, Res>,
  histogram: Histogram,
): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    const end = histogram.startTimer();
    handler(call, (err, ...rest) => {
      end();
      callback(err, ...rest);
    });
  };
}
