/**
 * The gateway process: Inspector and BankAdmin over gRPC, a live view of the cluster from etcd,
 * backbones shared per model. Stateless: any number of gateways can serve the same cluster.
 */
import { Registry as MetricsRegistry } from 'prom-client';
import { Registry } from '../../lib/cluster/registry';
import { ClusterRegistry } from '../../lib/cluster/cluster-registry';
import { BackbonePool } from '../../lib/patchcore/engine';
import { Logger, createLogger } from '../../lib/util/log';
import { serviceDefinition } from '../../lib/rpc/proto';
import { startGrpcServer } from '../../lib/rpc/grpc-server';
import { GATEWAY_HEALTH_SERVICES, ServingHealth } from '../common/health';
import { GatewayReadiness } from './readiness';
import { GrpcServerMetrics, newMetricsRegistry, registerHealthMetrics } from '../common/metrics';
import { registerAdmissionMetrics, registerInspectMetrics, registerViewMetrics } from './metrics';
import { HEALTH_SERVICE, reflectionBindings } from '../common/reflection';
import { AdminDefaults, DEFAULT_ADMIN, adminHandlers } from './admin-service';
import { BankBuilder } from './bank-builder';
import { BankCatalog } from './bank-catalog';
import { DEFAULT_FAN_OUT, FanOutSettings } from './cluster-searcher';
import { inspectorHandlers } from './inspector-service';
import { Admission, AdmissionSettings, DEFAULT_ADMISSION } from './admission';
import { admissionInterceptor } from './admission-interceptor';
import { WatchedShardDirectory } from './shard-directory';
import { VectorEncoding } from '../../lib/cluster/vector-encoding';
import { ClientTlsSettings, ServerTlsSettings, peerVerifier } from '../../lib/rpc/tls';
import { AuthPolicy, authInterceptor } from '../common/auth';
import { requestIdInterceptor } from '../../lib/rpc/request-id';
import { EtcdConnection } from '../../lib/cluster/etcd-client';
import { blockUnlistedLoaders } from '../../lib/image/formats';

export interface GatewayOptions {
  host?: string;
  port?: number;
  /** etcd endpoints of the cluster's registry... */
  etcd: string[];
  /** ...or a registry given directly (the embedded single-process mode). */
  registry?: ClusterRegistry;
  etcdPrefix?: string;
  fanOut?: FanOutSettings;
  /** Grace before an old version is dropped after a rotation (ms). */
  drainMs?: number;
  maxMessageBytes?: number;
  /** How long readiness waits for every active bank to have a live replica (ms, default 30 s). */
  readyWaitMs?: number;
  /** Worker threads that embed images (0 = on the event loop; see lib/patchcore/embed-pool.ts). */
  embedWorkers?: number;
  /** Bounds on inspections running and waiting (./admission.ts). */
  admission?: AdmissionSettings;
  /** TLS of the gRPC server (null = plaintext). */
  tls?: ServerTlsSettings | null;
  /** TLS of the hop to the shards (null = plaintext). */
  shardTls?: ClientTlsSettings | null;
  /** Query encoding on the hop to the shards: f16 (default) where a shard decodes it, or f32. */
  wireEncoding?: VectorEncoding;
  admin?: AdminDefaults;
  /** Who may call BankAdmin (null = anyone: loopback development only). */
  adminAuth?: AuthPolicy['admin'];
  /** etcd TLS and user (see etcd-client.ts). */
  etcdConnection?: EtcdConnection;
  log?: Logger;
}

export interface RunningGateway {
  port: number;
  registry: ClusterRegistry;
  /** Resolves once the first view of the cluster was read. */
  ready: Promise<void>;
  /** grpc.health.v1 statuses; the overall one is the readiness main.ts serves on /readyz. */
  health: ServingHealth;
  /** Prometheus metrics of this gateway (main.ts serves them on /metrics). */
  metrics: MetricsRegistry;
  close(graceMs?: number): Promise<void>;
}

export async function startGateway(options: GatewayOptions): Promise<RunningGateway> {
  const log = options.log ?? createLogger('gateway');
  // Callers send the images: only the accepted formats' libvips loaders stay on (lib/image/formats.ts).
  blockUnlistedLoaders();
  const registry: ClusterRegistry =
    options.registry ??
    new Registry({ endpoints: options.etcd, prefix: options.etcdPrefix, log, ...options.etcdConnection });
  // The directory reads the watcher's latest view lazily; the watcher prunes both on every change.
  const directory: WatchedShardDirectory = new WatchedShardDirectory(
    () => watcher.view,
    options.shardTls,
    options.wireEncoding,
  );
  const backbones = new BackbonePool(undefined, { embedWorkers: options.embedWorkers ?? 0 });
  const catalog = new BankCatalog(directory, backbones, options.fanOut ?? DEFAULT_FAN_OUT);
  const health = new ServingHealth(GATEWAY_HEALTH_SERVICES);
  const readiness = new GatewayReadiness(health, log, options.readyWaitMs);
  const grpcMetrics = new GrpcServerMetrics(newMetricsRegistry());
  const watcher = registry.watchView((view) => {
    directory.prune(view);
    catalog.prune();
    readiness.update(view);
  });
  readiness.follow(watcher);
  registerViewMetrics(grpcMetrics.registry, () => watcher.view);
  registerInspectMetrics(grpcMetrics);
  const admission = new Admission(options.admission ?? DEFAULT_ADMISSION);
  registerAdmissionMetrics(grpcMetrics.registry, admission);
  registerHealthMetrics(grpcMetrics.registry, health);
  const builder = new BankBuilder(
    registry,
    directory,
    { drainMs: options.drainMs ?? 2000, loadTimeoutMs: 120_000 },
    log,
  );
  const server = await startGrpcServer({
    host: options.host,
    port: options.port,
    maxMessageBytes: options.maxMessageBytes,
    channelOptions: grpcMetrics.serverOptions(),
    tls: options.tls,
    interceptors: [
      requestIdInterceptor,
      authInterceptor({ admin: options.adminAuth, verifyPeer: peerVerifier(options.tls) }, log),
      admissionInterceptor(admission),
    ],
    log,
    services: [
      {
        definition: serviceDefinition('Inspector'),
        implementation: inspectorHandlers(catalog, admission, log, registry),
      },
      {
        definition: serviceDefinition('BankAdmin'),
        implementation: adminHandlers(builder, registry, options.admin ?? DEFAULT_ADMIN, log),
      },
      health.binding(),
      ...reflectionBindings(['spi.v1.Inspector', 'spi.v1.BankAdmin', HEALTH_SERVICE]),
    ],
  });
  let closing: Promise<void> | undefined;
  return {
    port: server.port,
    registry,
    ready: watcher.ready,
    health,
    metrics: grpcMetrics.registry,
    close: (graceMs = 10_000) =>
      (closing ??= (async () => {
        // Not ready first (probes, health watchers), then drain in-flight calls.
        health.shutdown();
        readiness.close();
        await server.shutdown(graceMs);
        await watcher.close();
        directory.close();
        await registry.close();
        await backbones.close();
      })()),
  };
}
