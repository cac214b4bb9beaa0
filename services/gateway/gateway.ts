/**
 * The gateway process: Inspector and BankAdmin over gRPC, a live view of the cluster from etcd,
 * backbones shared per model. Stateless: any number of gateways can serve the same cluster.
 */
import { Registry } from '../../lib/cluster/registry';
import { ClusterRegistry } from '../../lib/cluster/cluster-registry';
import { BackbonePool } from '../../lib/patchcore/engine';
import { Logger, createLogger } from '../common/log';
import { serviceDefinition } from '../common/proto';
import { startGrpcServer } from '../common/grpc-server';
import { AdminDefaults, DEFAULT_ADMIN, adminHandlers } from './admin-service';
import { BankBuilder } from './bank-builder';
import { BankCatalog } from './bank-catalog';
import { DEFAULT_FAN_OUT, FanOutSettings } from './cluster-searcher';
import { inspectorHandlers } from './inspector-service';
import { WatchedShardDirectory } from './shard-directory';

export interface GatewayOptions {
  host?: string;
  port?: number;
  /** etcd endpoints of the cluster's registry... */
  etcd: string[];
  /** ...or a registry given directly (the embedded single-process mode). */
  registry?: ClusterRegistry;
  etcdPrefix?: string;
  fanOut?: FanOutSettings;
  admin?: AdminDefaults;
  /** Grace before an old version is dropped after a rotation (ms). */
  drainMs?: number;
  maxMessageBytes?: number;
  log?: Logger;
}

export interface RunningGateway {
  port: number;
  registry: ClusterRegistry;
  /** Resolves once the first view of the cluster was read. */
  ready: Promise<void>;
  close(graceMs?: number): Promise<void>;
}

export async function startGateway(options: GatewayOptions): Promise<RunningGateway> {
  const log = options.log ?? createLogger('gateway');
  const registry: ClusterRegistry =
    options.registry ?? new Registry({ endpoints: options.etcd, prefix: options.etcdPrefix, log });
  // The directory reads the watcher's latest view lazily; the watcher prunes both on every change.
  const directory: WatchedShardDirectory = new WatchedShardDirectory(() => watcher.view);
  const backbones = new BackbonePool();
  const catalog = new BankCatalog(directory, backbones, options.fanOut ?? DEFAULT_FAN_OUT);
  const watcher = registry.watchView((view) => {
    directory.prune(view);
    catalog.prune();
  });
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
    services: [
      { definition: serviceDefinition('Inspector'), implementation: inspectorHandlers(catalog, log) },
      {
        definition: serviceDefinition('BankAdmin'),
        implementation: adminHandlers(builder, registry, options.admin ?? DEFAULT_ADMIN, log),
      },
    ],
  });
  let closing: Promise<void> | undefined;
  return {
    port: server.port,
    registry,
    ready: watcher.ready,
    close: (graceMs = 10_000) =>
      (closing ??= (async () => {
        await server.shutdown(graceMs);
        await watcher.close();
        directory.close();
        await registry.close();
        await backbones.close();
      })()),
  };
}
