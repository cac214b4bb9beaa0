/**
 * The operations HTTP server beside each gRPC server: /metrics for Prometheus, /healthz (liveness:
 * the process answers) and /readyz (readiness: the grpc.health.v1 overall status is SERVING) for
 * Kubernetes probes, which speak HTTP more simply than gRPC. Plain node:http, nothing else.
 */
import * as http from 'node:http';
import { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { invalid } from '../../lib/errors';
import { ServingHealth } from './health';
import { Logger } from '../../lib/util/log';

export const METRICS_PATH = '/metrics';
export const LIVENESS_PATH = '/healthz';
export const READINESS_PATH = '/readyz';

export const DEFAULT_GATEWAY_METRICS_PORT = 9464;
export const DEFAULT_SHARD_METRICS_PORT = 9465;

/** The word that turns the server off (0 means "any free port", as --port 0 does). */
export const METRICS_OFF = 'off';

export interface MetricsPortSetting {
  /** null = disabled. */
  port: number | null;
  /** False when the default applies: a default port already taken only costs a warning. */
  explicit: boolean;
}

/** Reads --metrics-port / SPI_METRICS_PORT: a port, 0 (any free port) or "off". */
export function metricsPortSetting(raw: string | undefined, fallback: number): MetricsPortSetting {
  if (raw === undefined || raw === '') return { port: fallback, explicit: false };
  if (raw.toLowerCase() === METRICS_OFF) return { port: null, explicit: true };
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw invalid(`--metrics-port must be a port number, 0 (any free port) or "off", got ${raw}`);
  return { port: n, explicit: true };
}

export interface OpsServerOptions {
  host: string;
  port: number;
  registry: Registry;
  health: ServingHealth;
}

export interface OpsServer {
  port: number;
  close(): Promise<void>;
}

function reply(
  res: http.ServerResponse,
  code: number,
  body: string,
  type = 'text/plain; charset=utf-8',
): void {
  res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

export async function startOpsServer(options: OpsServerOptions): Promise<OpsServer> {
  const { registry, health } = options;
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(res, 405, 'method not allowed\n');
    switch (path) {
      case LIVENESS_PATH:
        return reply(res, 200, 'ok\n');
      case READINESS_PATH:
        return health.isServing()
          ? reply(res, 200, 'ready\n')
          : reply(res, 503, health.shuttingDown ? 'shutting down\n' : 'not ready\n');
      case METRICS_PATH:
        registry.metrics().then(
          (text) => reply(res, 200, text, registry.contentType),
          (err: Error) => reply(res, 500, `metrics failed: ${err.message}\n`),
        );
        return;
      default:
        return reply(res, 404, 'not found\n');
    }
  });
  // Probes and scrapes are short; do not let an idle keep-alive socket delay the process exit.
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  let closing: Promise<void> | undefined;
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      })),
  };
}

/**
 * Starts the ops server as configured. A port set explicitly must bind (else the error goes up); the
 * default port may be taken when several nodes run on one machine, so that only logs a warning.
 */
export async function startOpsServerIfEnabled(
  setting: MetricsPortSetting,
  options: Omit<OpsServerOptions, 'port'>,
  log: Logger,
): Promise<OpsServer | null> {
  if (setting.port === null) return null;
  try {
    return await startOpsServer({ ...options, port: setting.port });
  } catch (err) {
    if (setting.explicit || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    log.warn('default metrics port in use: no /metrics, /healthz, /readyz (set --metrics-port)', {
      port: setting.port,
    });
    return null;
  }
}
