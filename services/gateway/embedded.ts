/**
 * `spi serve --embedded`: a gateway with in-process bank shards and no etcd, for one machine (a
 * developer, a single inspection PC). Same gateway, same shards, same gRPC API; the registry is an
 * in-memory one saved under --data-dir, and shards persist their partitions there too. The shards
 * listen on loopback only; the gateway serves /metrics, /healthz and /readyz on --metrics-port and
 * takes the same TLS and admin flags as a cluster gateway.
 */
import * as path from 'node:path';
import { MemoryRegistry } from '../../lib/cluster/memory-registry';
import { Logger } from '../../lib/util/log';
import { MetricsPortSetting, startOpsServerIfEnabled } from '../common/http';
import { collectProcessMetrics } from '../common/metrics';
import { ServerTlsSettings } from '../../lib/rpc/tls';
import { AuthPolicy } from '../common/auth';
import { RunningShard, startShard } from '../shard/server';
import { startGateway } from './gateway';
import { AdmissionSettings } from './admission';
import type { AdminDefaults } from './admin-service';
import { VectorEncoding } from '../../lib/cluster/vector-encoding';

export interface EmbeddedOptions {
  host: string;
  port: number;
  dataDir: string;
  shards: number;
  drainMs: number;
  maxMessageBytes: number;
  metricsPort: MetricsPortSetting;
  tls?: ServerTlsSettings | null;
  adminAuth?: AuthPolicy['admin'];
  embedWorkers?: number;
  admission?: AdmissionSettings;
  /** Defaults of the admin API, the fit's memory budget among them (admin-service.ts). */
  admin?: AdminDefaults;
  wireEncoding?: VectorEncoding;
}

export async function runEmbedded(options: EmbeddedOptions, log: Logger): Promise<void> {
  const registry = new MemoryRegistry(path.join(options.dataDir, 'registry.json'));
  const shards: RunningShard[] = [];
  for (let i = 0; i < options.shards; i++) {
    const shard = await startShard({
      host: '127.0.0.1',
      port: 0,
      id: `embedded-${i}`,
      dataDir: path.join(options.dataDir, `shard-${i}`),
      log: log.child({ shard: `embedded-${i}` }),
    });
    await shard.store.setAnnouncer(registry.addShard(shard.info));
    shards.push(shard);
  }
  const gateway = await startGateway({
    host: options.host,
    port: options.port,
    etcd: [],
    registry,
    drainMs: options.drainMs,
    maxMessageBytes: options.maxMessageBytes,
    tls: options.tls,
    adminAuth: options.adminAuth,
    embedWorkers: options.embedWorkers,
    admission: options.admission,
    admin: options.admin,
    wireEncoding: options.wireEncoding,
    log,
  });
  const ops = await startOpsServerIfEnabled(
    options.metricsPort,
    { host: options.host, registry: gateway.metrics, health: gateway.health },
    log,
  ).catch(async (err: unknown) => {
    await gateway.close(0);
    await Promise.all(shards.map((s) => s.close(0)));
    throw err;
  });
  if (ops) collectProcessMetrics(gateway.metrics);
  await gateway.ready;
  log.info('gateway ready', {
    port: gateway.port,
    metricsPort: ops?.port ?? null,
    tls: options.tls ? options.tls.clientAuth : 'off',
    adminAuth: options.adminAuth ? 'on' : 'off',
    embedded: true,
    shards: shards.length,
    dataDir: options.dataDir,
  });
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info('gateway stopping', { signal });
      resolve();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  await gateway.close(10_000);
  await Promise.all(shards.map((s) => s.close(5_000)));
  await ops?.close();
}
