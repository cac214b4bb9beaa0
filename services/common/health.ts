/**
 * The standard grpc.health.v1 service (grpc-health-check from the grpc-node project), one status per
 * service name plus "" for the whole server. Everything starts NOT_SERVING; the role decides when it
 * is ready. `shutdown()` turns every name NOT_SERVING for good and ends open Watch streams, which
 * would otherwise hold a graceful server shutdown open until its grace timeout.
 */
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation, ServingStatus, service as healthService } from 'grpc-health-check';
import { ServiceBinding } from '../../lib/rpc/grpc-server';

/** The name that stands for the whole server in grpc.health.v1 (and for /readyz). */
export const OVERALL = '';

export const GATEWAY_HEALTH_SERVICES = [OVERALL, 'spi.v1.Inspector', 'spi.v1.BankAdmin'] as const;
export const SHARD_HEALTH_SERVICES = [OVERALL, 'spi.v1.BankShard'] as const;

type WatchCall = grpc.ServerWritableStream<{ service: string }, { status: ServingStatus }>;

export class ServingHealth {
  private readonly impl: HealthImplementation;
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly watches = new Set<WatchCall>();
  private stopping = false;

  constructor(readonly services: readonly string[]) {
    for (const name of services) this.statuses.set(name, 'NOT_SERVING');
    this.impl = new HealthImplementation(Object.fromEntries(this.statuses));
  }

  /** Sets one name (ignored once shutting down, so a late readiness check cannot flip it back). */
  set(service: string, serving: boolean): void {
    if (this.stopping) return;
    const status: ServingStatus = serving ? 'SERVING' : 'NOT_SERVING';
    if (this.statuses.get(service) === status) return;
    this.statuses.set(service, status);
    this.impl.setStatus(service, status);
  }

  setAll(serving: boolean): void {
    for (const name of this.services) this.set(name, serving);
  }

  isServing(service: string = OVERALL): boolean {
    return this.statuses.get(service) === 'SERVING';
  }

  get shuttingDown(): boolean {
    return this.stopping;
  }

  /** Current status of every name (for metrics and logs). */
  snapshot(): Record<string, ServingStatus> {
    return Object.fromEntries(this.statuses);
  }

  /** NOT_SERVING for every name from now on; Watch callers see that, then their stream ends. */
  shutdown(): void {
    this.setAll(false);
    this.stopping = true;
    for (const call of this.watches) call.end();
    this.watches.clear();
  }

  /** The service to hand to startGrpcServer. */
  binding(): ServiceBinding {
    let bound: ServiceBinding | undefined;
    // The package only offers addToServer(server); capture what it would add, and track Watch calls.
    this.impl.addToServer({
      addService: (definition, implementation) => {
        const watch = implementation.watch as unknown as (call: WatchCall) => void;
        bound = {
          definition: definition as grpc.ServiceDefinition,
          implementation: {
            ...implementation,
            watch: (call: WatchCall) => {
              if (this.stopping) {
                call.write({ status: 'NOT_SERVING' });
                call.end();
                return;
              }
              this.watches.add(call);
              call.once('cancelled', () => this.watches.delete(call));
              call.once('finish', () => this.watches.delete(call));
              watch(call);
            },
          },
        };
      },
    });
    if (!bound) throw new Error('grpc-health-check did not register its service');
    return bound;
  }
}

/** A grpc.health.v1.Health client, typed (tests, tools). */
export type HealthClient = grpc.Client & {
  check(
    req: { service: string },
    options: grpc.CallOptions,
    cb: (err: grpc.ServiceError | null, res?: { status: string }) => void,
  ): void;
  watch(req: { service: string }): grpc.ClientReadableStream<{ status: string }>;
};

export function newHealthClient(
  address: string,
  credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
): HealthClient {
  const Ctor = grpc.makeGenericClientConstructor(
    healthService as unknown as grpc.ServiceDefinition,
    'grpc.health.v1.Health',
  );
  return new Ctor(address, credentials) as unknown as HealthClient;
}
