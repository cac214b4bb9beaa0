/**
 * Gateway node: `spi serve --port 50051 --etcd host:2379`. Flags win over environment variables
 * (SPI_GATEWAY_PORT, SPI_GATEWAY_HOST, SPI_ETCD, SPI_ETCD_PREFIX, SPI_MODELS_DIR, SPI_METRICS_PORT;
 * TLS: SPI_TLS_*, SPI_SHARD_TLS_* in lib/rpc/tls.ts; admin: SPI_ADMIN_TOKEN_FILE,
 * SPI_ADMIN_IDENTITIES in common/auth.ts; etcd: SPI_ETCD_CA, ... in common/etcd-flags.ts;
 * SPI_EMBED_WORKERS: threads that embed images off the event loop, a number or "auto", default 0;
 * SPI_MAX_IN_FLIGHT, SPI_MAX_QUEUE: admission control, see admission.ts; SPI_WIRE_ENCODING: f16 or f32
 * queries to the shards, see lib/cluster/vector-encoding.ts; SPI_FIT_MAX_MEMORY: the memory budget of
 * the bank builds it runs).
 * On a non-loopback host the admin API needs a token file or admin identities (or --insecure-admin).
 * Logs {"msg":"gateway ready","port":N,"metricsPort":M} once it serves; /metrics, /healthz and /readyz
 * answer on the metrics port (default 9464; 0 = any free port, "off" = none). SIGTERM turns
 * readiness off, waits --shutdown-delay-ms, drains in-flight calls (--shutdown-grace-ms) and exits 0.
 */
import { ParseArgsConfig, parseArgs } from 'node:util';
import { createLogger } from '../../lib/util/log';
import { DEFAULT_GATEWAY_METRICS_PORT, metricsPortSetting, startOpsServerIfEnabled } from '../common/http';
import { collectProcessMetrics } from '../common/metrics';
import { startGateway } from './gateway';
import { invalid } from '../../lib/errors';
import { intFlag } from '../common/numeric-flags';
import { embedWorkersSetting } from '../../lib/patchcore/embed-pool';
import { AdmissionSettings, DEFAULT_ADMISSION } from './admission';
import { DEFAULT_ADMIN, fitMemoryBudget } from './admin-service';
import { MemoryBudget, formatBytes, parseBytes } from '../../lib/patchcore/memory-budget';
import { DEFAULT_WIRE_ENCODING, parseWireEncoding } from '../../lib/cluster/vector-encoding';
import {
  SERVER_TLS_FLAGS,
  SERVER_TLS_USAGE,
  SHARD_CLIENT_TLS_FLAGS,
  SHARD_CLIENT_TLS_USAGE,
  serverTlsFrom,
  shardClientTlsFrom,
} from '../../lib/rpc/tls';
import { ADMIN_AUTH_FLAGS, ADMIN_AUTH_USAGE, adminAuthFrom } from '../common/auth';
import { ETCD_SECURITY_FLAGS, ETCD_SECURITY_USAGE, etcdConnectionFrom } from '../common/etcd-flags';

/** The flags of `spi serve` (exported so the Kubernetes manifest tests check args against them). */
export const GATEWAY_FLAGS = {
  help: { type: 'boolean', short: 'h' },
  port: { type: 'string' },
  host: { type: 'string' },
  etcd: { type: 'string' },
  'etcd-prefix': { type: 'string' },
  'deadline-ms': { type: 'string', default: '5000' },
  'hedge-ms': { type: 'string', default: '150' },
  'drain-ms': { type: 'string', default: '2000' },
  'max-message-mb': { type: 'string', default: '64' },
  embedded: { type: 'boolean', default: false },
  'data-dir': { type: 'string', default: 'spi-data' },
  shards: { type: 'string', default: '2' },
  'metrics-port': { type: 'string' },
  'embed-workers': { type: 'string' },
  'ready-wait-ms': { type: 'string', default: '30000' },
  'max-in-flight': { type: 'string' },
  'max-queue': { type: 'string' },
  'max-client-share': { type: 'string' },
  'wire-encoding': { type: 'string' },
  'fit-max-memory': { type: 'string' },
  'build-dir': { type: 'string' },
  'shutdown-delay-ms': { type: 'string', default: '0' },
  'shutdown-grace-ms': { type: 'string', default: '10000' },
  ...SERVER_TLS_FLAGS,
  ...SHARD_CLIENT_TLS_FLAGS,
  ...ADMIN_AUTH_FLAGS,
  ...ETCD_SECURITY_FLAGS,
} satisfies NonNullable<ParseArgsConfig['options']>;

const D = Object.fromEntries(
  Object.entries(GATEWAY_FLAGS).flatMap(([k, v]) => ('default' in v ? [[k, String(v.default)]] : [])),
);

/** What `spi serve --help` prints; the defaults come from GATEWAY_FLAGS. */
export const GATEWAY_USAGE = `usage: spi serve --etcd A,B [options]   or   spi serve --embedded [options]
  --port N            gRPC port (env SPI_GATEWAY_PORT; default 50051)
  --host H            interface to listen on (env SPI_GATEWAY_HOST; default 0.0.0.0, 127.0.0.1 with --embedded)
  --etcd A,B          etcd endpoints of the cluster; required without --embedded (env SPI_ETCD)
  --etcd-prefix P     etcd key prefix (env SPI_ETCD_PREFIX; default /spi/)
  --deadline-ms N     deadline of a search fanned out to the shards when the caller sets none
                      (default ${D['deadline-ms']})
  --hedge-ms N        ask the next replica too when one has not answered after N ms (default ${D['hedge-ms']})
  --drain-ms N        grace before a rotated-out bank version is dropped (default ${D['drain-ms']})
  --max-message-mb N  largest gRPC message (default ${D['max-message-mb']})
  --ready-wait-ms N   how long readiness waits for every active bank to have a live replica
                      (default ${D['ready-wait-ms']})
  --embed-workers N   threads that embed images off the event loop, a number or "auto"
                      (env SPI_EMBED_WORKERS; default 0 = on the event loop)
  --max-in-flight N   inspections running at once; more wait in the queue (env SPI_MAX_IN_FLIGHT;
                      default ${DEFAULT_ADMISSION.maxInFlight})
  --max-queue N       inspections waiting for a slot; past that RESOURCE_EXHAUSTED with a
                      retry-after-ms hint (env SPI_MAX_QUEUE; default ${DEFAULT_ADMISSION.maxQueue})
  --max-client-share F  share (0-1] of the slots one client (connection) may hold, running or
                      waiting, while another is active; 1 = no cap (env SPI_MAX_CLIENT_SHARE;
                      default ${DEFAULT_ADMISSION.clientShare})
  --wire-encoding E   query embeddings on the hop to the shards: f16 (half the bytes; sent only to
                      shards that decode it, float32 to the others) or f32 (env SPI_WIRE_ENCODING;
                      default ${DEFAULT_WIRE_ENCODING})
  --fit-max-memory SIZE  memory budget of each bank build (CreateBank, RotateBank), e.g. 2GiB:
                      beyond it the candidate patches spill to disk; a build whose bank cannot fit
                      is refused (env SPI_FIT_MAX_MEMORY; default half the machine's RAM or the
                      container's memory limit, 1 to 16 GiB: ${formatBytes(DEFAULT_ADMIN.fitMemory.maxBytes)} here)
  --build-dir DIR     where a bank build's uploaded images wait on disk and its patches spill beyond
                      --fit-max-memory, removed after it; size it for the largest good folder
                      (env SPI_BUILD_DIR; default ${DEFAULT_ADMIN.buildDir} here)
  --metrics-port N    HTTP port of /metrics, /healthz, /readyz; 0 = any free port, "off" = none
                      (env SPI_METRICS_PORT; default ${DEFAULT_GATEWAY_METRICS_PORT})
  --shutdown-delay-ms N  after SIGTERM, how long it stays up unready before draining (default ${D['shutdown-delay-ms']})
  --shutdown-grace-ms N  how long in-flight calls may then run on (default ${D['shutdown-grace-ms']})
  (env SPI_MODELS_DIR: where model ids are looked up; default build/models)
single machine, no etcd:
  --embedded          run the shards in this process, the bank registry kept under --data-dir
  --data-dir DIR      where the registry and the embedded shards' partitions live (default ${D['data-dir']})
  --shards N          number of embedded shards (default ${D.shards})
${SERVER_TLS_USAGE}
${SHARD_CLIENT_TLS_USAGE}
${ADMIN_AUTH_USAGE}
${ETCD_SECURITY_USAGE}`;

export async function main(argv: string[] = process.argv.slice(2)): Promise<void> {
  const { values } = parseArgs({ args: argv, options: GATEWAY_FLAGS, strict: true });
  if (values.help) {
    console.log(GATEWAY_USAGE);
    return;
  }
  const env = process.env;
  const log = createLogger('gateway');
  const etcd = (values.etcd ?? env.SPI_ETCD ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const metricsPort = metricsPortSetting(
    values['metrics-port'] ?? env.SPI_METRICS_PORT,
    DEFAULT_GATEWAY_METRICS_PORT,
  );
  const tls = serverTlsFrom(values, env);
  // Every number up front: a typo stops the start with the flag's name.
  const port = intFlag('port', values.port ?? env.SPI_GATEWAY_PORT, 50051);
  const drainMs = intFlag('drain-ms', values['drain-ms'], 2000);
  const maxMessageBytes = intFlag('max-message-mb', values['max-message-mb'], 64) * 1024 * 1024;
  const fanOut = {
    deadlineMs: intFlag('deadline-ms', values['deadline-ms'], 5000),
    hedgeMs: intFlag('hedge-ms', values['hedge-ms'], 150),
  };
  const readyWaitMs = intFlag('ready-wait-ms', values['ready-wait-ms'], 30_000);
  const shutdownDelayMs = intFlag('shutdown-delay-ms', values['shutdown-delay-ms'], 0);
  const shutdownGraceMs = intFlag('shutdown-grace-ms', values['shutdown-grace-ms'], 10_000);
  const embedWorkers = embedWorkersSetting(values['embed-workers'] ?? env.SPI_EMBED_WORKERS ?? '0');
  const admission = admissionFrom(values, env);
  const wireEncoding = parseWireEncoding(values['wire-encoding'] ?? env.SPI_WIRE_ENCODING);
  const admin = {
    ...DEFAULT_ADMIN,
    fitMemory: fitMemoryFrom(values['fit-max-memory'] ?? env.SPI_FIT_MAX_MEMORY),
    buildDir: values['build-dir'] ?? env.SPI_BUILD_DIR ?? DEFAULT_ADMIN.buildDir,
  };
  if (values.embedded) {
    const { runEmbedded } = require('./embedded') as typeof import('./embedded');
    const host = values.host ?? env.SPI_GATEWAY_HOST ?? '127.0.0.1';
    return runEmbedded(
      {
        host,
        port,
        dataDir: values['data-dir']!,
        shards: intFlag('shards', values.shards, 2),
        drainMs,
        maxMessageBytes,
        metricsPort,
        tls,
        adminAuth: adminAuthFrom(values, env, host, tls, log),
        embedWorkers,
        admission,
        wireEncoding,
        admin,
      },
      log,
    );
  }
  if (etcd.length === 0)
    throw invalid(
      "--etcd (or SPI_ETCD) is required; use --embedded for a single machine without etcd (see 'spi serve --help')",
    );
  const host = values.host ?? env.SPI_GATEWAY_HOST ?? '0.0.0.0';
  const adminAuth = adminAuthFrom(values, env, host, tls, log);
  const gateway = await startGateway({
    host,
    port,
    etcd,
    etcdPrefix: values['etcd-prefix'] ?? env.SPI_ETCD_PREFIX,
    fanOut,
    drainMs,
    maxMessageBytes,
    readyWaitMs,
    embedWorkers,
    admission,
    wireEncoding,
    admin,
    tls,
    shardTls: shardClientTlsFrom(values, env),
    adminAuth,
    etcdConnection: etcdConnectionFrom(values, env),
    log,
  });
  const ops = await startOpsServerIfEnabled(
    metricsPort,
    { host, registry: gateway.metrics, health: gateway.health },
    log,
  ).catch(async (err: unknown) => {
    await gateway.close(0);
    throw err;
  });
  if (ops) collectProcessMetrics(gateway.metrics);
  // Signal handlers before the ready line: a SIGTERM right after it must still drain.
  let stopping = false;
  const stopped = new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      stopping = true;
      log.info('gateway stopping', { signal });
      // Unready at once, so load balancers and probes move away while calls still succeed.
      gateway.health.shutdown();
      new Promise((r) => setTimeout(r, shutdownDelayMs))
        .then(() => gateway.close(shutdownGraceMs))
        .then(resolve, resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  await Promise.race([gateway.ready, stopped]);
  if (!stopping)
    log.info('gateway ready', {
      port: gateway.port,
      metricsPort: ops?.port ?? null,
      tls: tls ? tls.clientAuth : 'off',
      adminAuth: adminAuth ? 'on' : 'off',
    });
  await stopped;
  await ops?.close();
  log.info('gateway stopped');
}

/** --fit-max-memory SIZE (or SPI_FIT_MAX_MEMORY): absent = half the machine's RAM or container limit. */
function fitMemoryFrom(raw: string | undefined): MemoryBudget {
  if (raw === undefined) return DEFAULT_ADMIN.fitMemory;
  const maxBytes = parseBytes(raw);
  if (!maxBytes) throw invalid(`--fit-max-memory must be a size such as 2GiB or 800MiB, got "${raw}"`);
  return fitMemoryBudget(maxBytes);
}

/** --max-in-flight / --max-queue / --max-client-share (flags win over their SPI_ variables). */
function admissionFrom(
  values: { 'max-in-flight'?: string; 'max-queue'?: string; 'max-client-share'?: string },
  env: NodeJS.ProcessEnv,
): AdmissionSettings {
  const maxInFlight = intFlag(
    'max-in-flight',
    values['max-in-flight'] ?? env.SPI_MAX_IN_FLIGHT,
    DEFAULT_ADMISSION.maxInFlight,
  );
  if (maxInFlight < 1) throw invalid('--max-in-flight must be at least 1');
  return {
    maxInFlight,
    maxQueue: intFlag('max-queue', values['max-queue'] ?? env.SPI_MAX_QUEUE, DEFAULT_ADMISSION.maxQueue),
    clientShare: shareFlag(values['max-client-share'] ?? env.SPI_MAX_CLIENT_SHARE),
  };
}

function shareFlag(raw: string | undefined): number | undefined {
  if (raw === undefined) return DEFAULT_ADMISSION.clientShare;
  const share = Number(raw);
  if (!(share > 0 && share <= 1))
    throw invalid(`--max-client-share must be a number above 0 and at most 1, got "${raw}"`);
  return share;
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      createLogger('gateway').error('gateway failed', { err });
      process.exit(1);
    },
  );
}
