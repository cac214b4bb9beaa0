/**
 * An etcd3 client tuned for a cluster that must ride out etcd restarts: every unary call has a
 * deadline (a stopped etcd must not hang a request forever), no per-host circuit breaker (etcd3's
 * default keeps a host "open" for 5 s after it comes back, which only delays re-registration), and
 * short gRPC reconnect backoff.
 */
import * as fs from 'node:fs';
import { Etcd3, IOptions } from 'etcd3';
import { invalid } from '../errors';

/** How to reach a secured etcd: TLS (CA, optional client certificate) and a user. */
export interface EtcdConnection {
  /** CA bundle of etcd's server certificate; enables TLS (https endpoints). */
  etcdCa?: string;
  /** Client certificate and key, for etcd's --client-cert-auth. */
  etcdCert?: string;
  etcdKey?: string;
  /** etcd user (etcd auth enabled); the password from etcdPassword. */
  etcdUsername?: string;
  etcdPassword?: string;
}

export interface EtcdClientOptions extends EtcdConnection {
  endpoints: string[];
  dialTimeoutMs?: number;
  /** Deadline of each unary etcd call (not of watch / keepalive streams). */
  callTimeoutMs?: number;
}

type HostPolicy = ReturnType<NonNullable<NonNullable<IOptions['faultHandling']>['host']>>;

const noDispose = () => ({ dispose: () => undefined });

/** A policy that just runs the call (the shape etcd3 expects from cockatiel). */
const passthrough = {
  onSuccess: noDispose,
  onFailure: noDispose,
  execute<T>(fn: (ctx: { signal: AbortSignal }) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T> {
    return Promise.resolve().then(() => fn({ signal: signal ?? new AbortController().signal }));
  },
} as unknown as HostPolicy;

function readPem(file: string, what: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw invalid(`${what} ${file}: cannot read it (${(err as Error).message})`);
  }
}

/** etcd3's credentials and auth options for a connection; plaintext and no user when empty. */
export function etcdSecurity(c: EtcdConnection): Pick<IOptions, 'credentials' | 'auth'> {
  const out: Pick<IOptions, 'credentials' | 'auth'> = {};
  if (!c.etcdCa && (c.etcdCert || c.etcdKey))
    throw invalid('--etcd-cert / --etcd-key need --etcd-ca (the CA of the etcd server certificate)');
  if (!c.etcdCert !== !c.etcdKey) throw invalid('--etcd-cert and --etcd-key go together');
  if (c.etcdCa) {
    out.credentials = {
      rootCertificate: readPem(c.etcdCa, '--etcd-ca'),
      ...(c.etcdCert && c.etcdKey
        ? { certChain: readPem(c.etcdCert, '--etcd-cert'), privateKey: readPem(c.etcdKey, '--etcd-key') }
        : {}),
    };
  }
  if (c.etcdUsername) {
    if (c.etcdPassword === undefined)
      throw invalid('an etcd user needs a password (SPI_ETCD_PASSWORD or --etcd-password-file)');
    out.auth = { username: c.etcdUsername, password: c.etcdPassword };
  } else if (c.etcdPassword !== undefined) {
    throw invalid('an etcd password was given without a user (--etcd-username / SPI_ETCD_USERNAME)');
  }
  return out;
}

export function createEtcdClient(options: EtcdClientOptions): Etcd3 {
  if (options.endpoints.length === 0) throw new Error('no etcd endpoints given');
  const callTimeoutMs = options.callTimeoutMs ?? 5000;
  const security = etcdSecurity(options);
  const scheme = security.credentials ? 'https' : 'http';
  return new Etcd3({
    ...security,
    hosts: options.endpoints.map((e) => (/^https?:\/\//.test(e) ? e : `${scheme}://${e}`)),
    dialTimeout: options.dialTimeoutMs ?? 3000,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
    faultHandling: { host: () => passthrough },
    grpcOptions: {
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 1000,
    },
  });
}
