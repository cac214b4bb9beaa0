/**
 * A real, single-member etcd (/usr/bin/etcd) for the demo and integration tests: free loopback ports, a temporary
 * data dir, short election timeouts so it is up in about a second. `restart()` keeps the data dir and
 * ports (an etcd restart as operators do it); `restart({ wipe: true })` starts it empty (etcd lost its
 * state: leases and keys are gone, revisions start over). `startEtcd({ tls })` serves clients over
 * TLS (optionally requiring client certificates); `enableEtcdAuth` turns on etcd's user auth.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { Etcd3, IOptions } from 'etcd3';
import { ManagedProcess, TEST_TMP, onTestProcessExit, spawnProcess } from './processes';

export const ETCD_BIN = process.env.SPI_ETCD_BIN ?? '/usr/bin/etcd';

export interface EtcdTlsFiles {
  /** etcd's server certificate and key (SAN 127.0.0.1). */
  cert: string;
  key: string;
  /** CA of client certificates; with `clientCertAuth`, clients must present one it signed. */
  ca: string;
  clientCertAuth?: boolean;
}

export interface StartEtcdOptions {
  /** Serve clients over TLS (https client URL). */
  tls?: EtcdTlsFiles;
  /** etcd3 client options the health probe needs (e.g. credentials when TLS is on). */
  probe?: Pick<IOptions, 'credentials'>;
}

export interface TestEtcd {
  /** host:port of the client URL. */
  endpoint: string;
  /** http://host:port (https:// with TLS) */
  url: string;
  dataDir: string;
  process(): ManagedProcess | null;
  /** Stops it (SIGTERM) and removes the data dir. */
  stop(): Promise<void>;
  /** Stops and starts again on the same ports; same data unless `wipe`. Waits until healthy. */
  restart(opts?: { wipe?: boolean; downMs?: number }): Promise<void>;
  /** Stops it without removing anything (start it again with `start()`). */
  halt(signal?: NodeJS.Signals): Promise<void>;
  start(): Promise<void>;
  /** SIGKILL, data dir removed. */
  kill(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Resolves once a read against etcd succeeds. */
export async function waitForEtcd(
  endpoint: string,
  timeoutMs = 15_000,
  probe: Pick<IOptions, 'credentials'> = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    const scheme = probe.credentials ? 'https' : 'http';
    const client = new Etcd3({ ...probe, hosts: `${scheme}://${endpoint}`, dialTimeout: 1000 });
    try {
      await client
        .get('health-probe')
        .options({ deadline: Date.now() + 1000 })
        .string();
      return;
    } catch (err) {
      lastErr = err;
    } finally {
      client.close();
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`etcd at ${endpoint} not healthy after ${timeoutMs} ms: ${String(lastErr)}`);
}

export async function startEtcd(options: StartEtcdOptions = {}): Promise<TestEtcd> {
  fs.mkdirSync(TEST_TMP, { recursive: true });
  const dataDir = fs.mkdtempSync(path.join(TEST_TMP, 'etcd-'));
  const clientPort = await freePort();
  const peerPort = await freePort();
  const { tls } = options;
  const url = `${tls ? 'https' : 'http'}://127.0.0.1:${clientPort}`;
  const tlsArgs = tls
    ? [
        `--cert-file=${tls.cert}`,
        `--key-file=${tls.key}`,
        `--trusted-ca-file=${tls.ca}`,
        ...(tls.clientCertAuth ? ['--client-cert-auth'] : []),
      ]
    : [];
  const peer = `http://127.0.0.1:${peerPort}`;
  let proc: ManagedProcess | null = null;
  const cleanup = () => fs.rmSync(dataDir, { recursive: true, force: true });
  onTestProcessExit(cleanup);

  const start = async (): Promise<void> => {
    if (proc?.running) return;
    // A fresh data dir needs "new"; an existing one ignores the flag.
    proc = spawnProcess(
      ETCD_BIN,
      [
        '--name=test',
        `--data-dir=${dataDir}`,
        `--listen-client-urls=${url}`,
        `--advertise-client-urls=${url}`,
        `--listen-peer-urls=${peer}`,
        `--initial-advertise-peer-urls=${peer}`,
        `--initial-cluster=test=${peer}`,
        '--initial-cluster-state=new',
        '--heartbeat-interval=50',
        '--election-timeout=250',
        '--logger=zap',
        '--log-level=warn',
        ...tlsArgs,
      ],
      { name: 'etcd' },
    );
    const exited = proc.waitForExit().then((info) => {
      throw new Error(`etcd exited at start (${JSON.stringify(info)})\n${proc?.tail()}`);
    });
    exited.catch(() => undefined);
    await Promise.race([waitForEtcd(`127.0.0.1:${clientPort}`, 15_000, options.probe), exited]);
  };

  const halt = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    const p = proc;
    proc = null;
    if (!p) return;
    if (signal === 'SIGTERM') await p.stop(5000);
    else await p.kill(signal);
  };

  await start();
  return {
    endpoint: `127.0.0.1:${clientPort}`,
    url,
    dataDir,
    process: () => proc,
    start,
    halt,
    async stop() {
      await halt('SIGTERM');
      cleanup();
    },
    async restart(opts = {}) {
      await halt('SIGTERM');
      if (opts.wipe) cleanup(); // etcd creates the dir again, with the permissions it wants
      if (opts.downMs) await new Promise((r) => setTimeout(r, opts.downMs));
      await start();
    },
    async kill() {
      await halt('SIGKILL');
      cleanup();
    },
  };
}

/**
 * Turns on etcd's authentication: a root user (needed to enable it) and one user per entry, each with
 * a role granting read-write on its key prefix. `client` must be able to reach etcd (TLS set up).
 */
export async function enableEtcdAuth(
  client: Etcd3,
  rootPassword: string,
  users: { name: string; password: string; prefix: string }[],
): Promise<void> {
  await client.role('root').create();
  await client.user('root').create(rootPassword);
  await client.user('root').addRole('root');
  for (const u of users) {
    const role = client.role(`${u.name}-rw`);
    await role.create();
    await role.grant({ permission: 'Readwrite', range: client.range({ prefix: u.prefix }) });
    await client.user(u.name).create(u.password);
    await client.user(u.name).addRole(role);
  }
  await client.auth.authEnable();
}
