/**
 * Gateway node: `spi serve --port 50051 --etcd host:2379`. Flags win over environment variables
 * (SPI_GATEWAY_PORT, SPI_GATEWAY_HOST, SPI_ETCD, SPI_ETCD_PREFIX, SPI_MODELS_DIR). Logs
 * {"msg":"gateway ready","port":N} once it serves; SIGTERM drains in-flight calls and exits 0.
 */
import { parseArgs } from 'node:util';
import { createLogger } from '../common/log';
import { startGateway } from './gateway';
import { invalid } from '../../lib/errors';

export async function main(argv: string[] = process.argv.slice(2)): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
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
    },
    strict: true,
  });
  const env = process.env;
  const log = createLogger('gateway');
  const etcd = (values.etcd ?? env.SPI_ETCD ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (values.embedded) {
    const { runEmbedded } = require('./embedded') as typeof import('./embedded');
    return runEmbedded(
      {
        host: values.host ?? env.SPI_GATEWAY_HOST ?? '127.0.0.1',
        port: Number(values.port ?? env.SPI_GATEWAY_PORT ?? 50051),
        dataDir: values['data-dir']!,
        shards: Number(values.shards),
        drainMs: Number(values['drain-ms']),
        maxMessageBytes: Number(values['max-message-mb']) * 1024 * 1024,
      },
      log,
    );
  }
  if (etcd.length === 0)
    throw invalid('--etcd (or SPI_ETCD) is required; use --embedded for a single machine without etcd');
  const gateway = await startGateway({
    host: values.host ?? env.SPI_GATEWAY_HOST ?? '0.0.0.0',
    port: Number(values.port ?? env.SPI_GATEWAY_PORT ?? 50051),
    etcd,
    etcdPrefix: values['etcd-prefix'] ?? env.SPI_ETCD_PREFIX,
    fanOut: { deadlineMs: Number(values['deadline-ms']), hedgeMs: Number(values['hedge-ms']) },
    drainMs: Number(values['drain-ms']),
    maxMessageBytes: Number(values['max-message-mb']) * 1024 * 1024,
    log,
  });
  await gateway.ready;
  log.info('gateway ready', { port: gateway.port });
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info('gateway stopping', { signal });
      gateway.close(10_000).then(resolve, resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  log.info('gateway stopped');
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
