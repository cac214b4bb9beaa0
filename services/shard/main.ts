/**
 * Bank-shard node: `spi shard ...` or `node --import tsx services/shard/main.ts --port 0 --data-dir DIR
 * --etcd host:2379`.
 * Flags win over environment variables (SPI_SHARD_*, SPI_ETCD, SPI_ETCD_PREFIX, SPI_LEASE_TTL,
 * SPI_METRICS_PORT, SPI_TLS_*, SPI_PEER_IDENTITIES, SPI_ETCD_CA/CERT/KEY/USERNAME/PASSWORD(_FILE)). Logs {"msg":"shard ready","port":N,"metricsPort":M} once it serves; its readiness
 * (grpc.health.v1, /readyz) turns SERVING once it is registered in etcd. SIGTERM turns readiness off,
 * deregisters, lets in-flight calls finish and exits 0.
 */
import * as os from 'node:os';
import { ParseArgsConfig, parseArgs } from 'node:util';
import { intFlag } from '../common/numeric-flags';
import { createLogger } from '../../lib/util/log';
import { DEFAULT_SHARD_METRICS_PORT, metricsPortSetting, startOpsServerIfEnabled } from '../common/http';
import { collectProcessMetrics } from '../common/metrics';
import { startShard } from './server';
import { SERVER_TLS_FLAGS, SERVER_TLS_USAGE, serverTlsFrom } from '../../lib/rpc/tls';
import { PEER_AUTH_FLAGS, PEER_AUTH_USAGE, peerIdentitiesFrom } from '../common/auth';
import { ETCD_SECURITY_FLAGS, ETCD_SECURITY_USAGE, etcdConnectionFrom } from '../common/etcd-flags';

const log = createLogger('shard');

/** What `spi shard --help` prints. */
export const SHARD_USAGE = `usage: spi shard [options]
  --port N            gRPC port, 0 = any free port (env SPI_SHARD_PORT; default 0)
  --host H            interface to listen on (env SPI_SHARD_HOST; default 0.0.0.0)
  --data-dir DIR      persist partitions here and reload them at start (env SPI_SHARD_DATA_DIR)
  --etcd A,B          etcd endpoints; without: run unregistered (env SPI_ETCD)
  --etcd-prefix P     etcd key prefix (env SPI_ETCD_PREFIX; default /spi/)
  --lease-ttl S       etcd lease TTL in seconds (env SPI_LEASE_TTL; default 5)
  --id ID             shard id (env SPI_SHARD_ID; default <hostname>-<port>)
  --advertise H:P     address gateways dial (env SPI_SHARD_ADVERTISE; default host:port)
  --max-message-mb N  largest gRPC message (default 64)
  --metrics-port N    HTTP port of /metrics, /healthz, /readyz; 0 = any free port, "off" = none
                      (env SPI_METRICS_PORT; default 9465)
  --shutdown-grace-ms N  how long in-flight calls may run on after SIGTERM (default 10000)
  --bench-echo        also serve a bare bytes-in, bytes-out method, for \`make bench\`'s hop figure (off)
${SERVER_TLS_USAGE}
${PEER_AUTH_USAGE}
${ETCD_SECURITY_USAGE}`;

/** The flags of \`spi shard\` (exported so the Kubernetes manifest tests check args against them). */
export const SHARD_FLAGS = {
  help: { type: 'boolean', short: 'h' },
  port: { type: 'string' },
  host: { type: 'string' },
  'data-dir': { type: 'string' },
  etcd: { type: 'string' },
  'etcd-prefix': { type: 'string' },
  'lease-ttl': { type: 'string' },
  id: { type: 'string' },
  advertise: { type: 'string' },
  'max-message-mb': { type: 'string' },
  'metrics-port': { type: 'string' },
  'shutdown-grace-ms': { type: 'string' },
  'bench-echo': { type: 'boolean' },
  ...SERVER_TLS_FLAGS,
  ...PEER_AUTH_FLAGS,
  ...ETCD_SECURITY_FLAGS,
} satisfies NonNullable<ParseArgsConfig['options']>;

/** Starts the shard and resolves once it is ready; it then runs until SIGTERM / SIGINT. */
export async function main(argv: string[] = process.argv.slice(2)): Promise<void> {
  const { values } = parseArgs({ args: argv, options: SHARD_FLAGS, strict: true });
  if (values.help) {
    console.log(SHARD_USAGE);
    return;
  }
  // A stray rejection (e.g. inside the etcd client while etcd restarts) must not take the shard down.
  process.on('unhandledRejection', (err) => log.error('unhandled rejection', { err }));
  const env = process.env;
  const etcd = (values.etcd ?? env.SPI_ETCD ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const metricsPort = metricsPortSetting(
    values['metrics-port'] ?? env.SPI_METRICS_PORT,
    DEFAULT_SHARD_METRICS_PORT,
  );
  const graceMs = intFlag('shutdown-grace-ms', values['shutdown-grace-ms'], 10_000);
  const host = values.host ?? env.SPI_SHARD_HOST ?? '0.0.0.0';
  const tls = serverTlsFrom(values, env);
  const peerIdentities = peerIdentitiesFrom(values, env, tls, log);
  const etcdConnection = etcdConnectionFrom(values, env);
  const shard = await startShard({
    port: intFlag('port', values.port ?? env.SPI_SHARD_PORT, 0),
    host,
    dataDir: values['data-dir'] ?? env.SPI_SHARD_DATA_DIR,
    etcd,
    etcdPrefix: values['etcd-prefix'] ?? env.SPI_ETCD_PREFIX,
    leaseTtlS: intFlag('lease-ttl', values['lease-ttl'] ?? env.SPI_LEASE_TTL, 5) || 5,
    id: values.id ?? env.SPI_SHARD_ID,
    advertise: values.advertise ?? env.SPI_SHARD_ADVERTISE,
    maxMessageBytes: intFlag('max-message-mb', values['max-message-mb'], 64) * 1024 * 1024,
    tls,
    peerIdentities,
    etcdConnection,
    benchEcho: values['bench-echo'] === true,
    log,
  });
  const ops = await startOpsServerIfEnabled(
    metricsPort,
    { host, registry: shard.metrics, health: shard.health },
    log,
  ).catch(async (err: unknown) => {
    await shard.close(0);
    throw err;
  });
  if (ops) collectProcessMetrics(shard.metrics);
  // Signal handlers before the ready line: a SIGTERM right after it must still drain.
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      log.warn('second signal: exiting now', { signal });
      process.exit(1);
    }
    stopping = true;
    log.info('shard stopping', { signal });
    shard
      .close(graceMs)
      .then(() => ops?.close())
      .then(
        () => {
          log.info('shard stopped');
          process.exit(0);
        },
        (err: unknown) => {
          log.error('shard stop failed', { err });
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  log.info('shard ready', {
    port: shard.port,
    metricsPort: ops?.port ?? null,
    id: shard.id,
    address: shard.address,
    partitions: shard.store.list().length,
    etcd: shard.registry !== null,
    tls: tls ? tls.clientAuth : 'off',
    registered: shard.registration?.registered ?? false,
    // OpenMP's threads per search (SPI_SEARCH_THREADS; its default is every core).
    searchThreads: Number(process.env.OMP_NUM_THREADS ?? os.availableParallelism()),
  });
}

if (require.main === module) {
  main().catch((err: unknown) => {
    log.error('shard failed to start', { err });
    process.exit(1);
  });
}
