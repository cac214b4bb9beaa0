/**
 * TLS for every gRPC hop: server credentials (TLS, optionally mutual), channel credentials for the
 * hops a node dials (gateway -> shard, the typed client), and what a server needs to trust a client
 * certificate's identity. Certificates come from PEM files that grpc-js's own
 * FileWatcherCertificateProvider re-reads every `reloadMs`, so rotated files (cert-manager, a
 * Kubernetes Secret update) are served without a restart: new connections get the new certificate,
 * open ones keep theirs.
 *
 * Flags (env): --tls-cert (SPI_TLS_CERT), --tls-key (SPI_TLS_KEY), --tls-ca (SPI_TLS_CA),
 * --tls-client-auth none|request|require (SPI_TLS_CLIENT_AUTH; default require when a CA is given),
 * --tls-reload-ms (SPI_TLS_RELOAD_MS, default 60000). The gateway dials shards with --shard-tls-ca,
 * --shard-tls-cert, --shard-tls-key, --shard-tls-server-name (SPI_SHARD_TLS_*).
 */
import * as fs from 'node:fs';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { invalid } from '../errors';

export const CLIENT_AUTH_MODES = ['none', 'request', 'require'] as const;
export type ClientAuth = (typeof CLIENT_AUTH_MODES)[number];

export const DEFAULT_TLS_RELOAD_MS = 60_000;

export interface ServerTlsSettings {
  /** PEM certificate (chain) the server presents. */
  certFile: string;
  keyFile: string;
  /** CA bundle that client certificates must chain to (needed unless clientAuth is none). */
  caFile?: string;
  /**
   * none: no client certificate asked; request: asked, optional, trusted only if it verifies against
   * the CA; require: a verified client certificate is needed to connect (mutual TLS).
   */
  clientAuth: ClientAuth;
  reloadMs: number;
}

export interface ClientTlsSettings {
  /** CA bundle the server's certificate must chain to. */
  caFile: string;
  /** Client certificate and key (mutual TLS); both or neither. */
  certFile?: string;
  keyFile?: string;
  /** Name to check the server certificate against instead of the dialled host. */
  serverName?: string;
  reloadMs: number;
}

/** Flags of the server side, shared by `spi serve` and `spi shard`. */
export const SERVER_TLS_FLAGS = {
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-ca': { type: 'string' },
  'tls-client-auth': { type: 'string' },
  'tls-reload-ms': { type: 'string' },
} as const;

/** --help lines of SERVER_TLS_FLAGS, shared by the shard's and the gateway's usage. */
export const SERVER_TLS_USAGE = `TLS (certificate files are re-read every --tls-reload-ms, so rotated files need no restart):
  --tls-cert F, --tls-key F   server certificate and key (env SPI_TLS_CERT, SPI_TLS_KEY); none = plaintext
  --tls-ca F          CA of client certificates (env SPI_TLS_CA)
  --tls-client-auth M none | request | require (env SPI_TLS_CLIENT_AUTH; default require with --tls-ca)
  --tls-reload-ms N   how often certificate files are re-read (env SPI_TLS_RELOAD_MS; default ${DEFAULT_TLS_RELOAD_MS})`;

/** Flags of the gateway's hop to the shards. */
export const SHARD_CLIENT_TLS_FLAGS = {
  'shard-tls-ca': { type: 'string' },
  'shard-tls-cert': { type: 'string' },
  'shard-tls-key': { type: 'string' },
  'shard-tls-server-name': { type: 'string' },
} as const;

/** --help lines of SHARD_CLIENT_TLS_FLAGS (the gateway's). */
export const SHARD_CLIENT_TLS_USAGE = `TLS to the shards (plaintext without --shard-tls-ca; files re-read every --tls-reload-ms):
  --shard-tls-ca F    CA of the shards' certificates: turns TLS on (env SPI_SHARD_TLS_CA)
  --shard-tls-cert F, --shard-tls-key F  client certificate for the shards' mutual TLS
                      (env SPI_SHARD_TLS_CERT, SPI_SHARD_TLS_KEY)
  --shard-tls-server-name N  name the shards' certificates are checked against instead of the
                      dialled host (env SPI_SHARD_TLS_SERVER_NAME)`;

type FlagValues = Record<string, string | boolean | undefined>;

function str(v: string | boolean | undefined): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function reloadMsOf(values: FlagValues, env: NodeJS.ProcessEnv): number {
  const raw = str(values['tls-reload-ms']) ?? env.SPI_TLS_RELOAD_MS;
  if (raw === undefined || raw === '') return DEFAULT_TLS_RELOAD_MS;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 100)
    throw invalid(`--tls-reload-ms must be an integer of at least 100 (ms), got ${raw}`);
  return n;
}

/** A readable PEM file with at least one certificate; the flag's name goes into the message. */
function checkCertFile(file: string, flag: string): X509Certificate[] {
  let pem: string;
  try {
    pem = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw invalid(`${flag} ${file}: cannot read it (${(err as Error).message})`);
  }
  const certs = splitPem(pem).map((block) => {
    try {
      return new X509Certificate(block);
    } catch (err) {
      throw invalid(`${flag} ${file}: not a PEM certificate (${(err as Error).message})`);
    }
  });
  if (certs.length === 0) throw invalid(`${flag} ${file}: no PEM certificate in it`);
  return certs;
}

function checkKeyPair(certFile: string, keyFile: string, certFlag: string, keyFlag: string): void {
  const [leaf] = checkCertFile(certFile, certFlag);
  let key;
  try {
    key = createPrivateKey(fs.readFileSync(keyFile));
  } catch (err) {
    throw invalid(`${keyFlag} ${keyFile}: not a readable PEM private key (${(err as Error).message})`);
  }
  if (!leaf.checkPrivateKey(key))
    throw invalid(`${keyFlag} ${keyFile} is not the private key of ${certFlag} ${certFile}`);
}

/** The PEM certificate blocks of a bundle. */
export function splitPem(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/**
 * Server TLS from flags, else the environment; null when neither --tls-cert nor --tls-key is set
 * (plaintext). The files are checked now, so a typo fails at start with the flag's name.
 */
export function serverTlsFrom(values: FlagValues, env: NodeJS.ProcessEnv): ServerTlsSettings | null {
  const certFile = str(values['tls-cert']) ?? env.SPI_TLS_CERT;
  const keyFile = str(values['tls-key']) ?? env.SPI_TLS_KEY;
  const caFile = str(values['tls-ca']) ?? env.SPI_TLS_CA;
  const mode = str(values['tls-client-auth']) ?? env.SPI_TLS_CLIENT_AUTH;
  if (!certFile && !keyFile) {
    if (caFile || mode)
      throw invalid('--tls-ca / --tls-client-auth need --tls-cert and --tls-key (the server certificate)');
    return null;
  }
  if (!certFile || !keyFile) throw invalid('--tls-cert and --tls-key go together');
  if (mode !== undefined && !(CLIENT_AUTH_MODES as readonly string[]).includes(mode))
    throw invalid(`--tls-client-auth must be one of ${CLIENT_AUTH_MODES.join(', ')}, got ${mode}`);
  const clientAuth = (mode as ClientAuth | undefined) ?? (caFile ? 'require' : 'none');
  if (clientAuth !== 'none' && !caFile)
    throw invalid(`--tls-client-auth ${clientAuth} needs --tls-ca (the CA client certificates chain to)`);
  checkKeyPair(certFile, keyFile, '--tls-cert', '--tls-key');
  if (caFile) checkCertFile(caFile, '--tls-ca');
  return { certFile, keyFile, caFile, clientAuth, reloadMs: reloadMsOf(values, env) };
}

/** The gateway's TLS towards the shards; null = plaintext. */
export function shardClientTlsFrom(values: FlagValues, env: NodeJS.ProcessEnv): ClientTlsSettings | null {
  const caFile = str(values['shard-tls-ca']) ?? env.SPI_SHARD_TLS_CA;
  const certFile = str(values['shard-tls-cert']) ?? env.SPI_SHARD_TLS_CERT;
  const keyFile = str(values['shard-tls-key']) ?? env.SPI_SHARD_TLS_KEY;
  const serverName = str(values['shard-tls-server-name']) ?? env.SPI_SHARD_TLS_SERVER_NAME;
  if (!caFile) {
    if (certFile || keyFile || serverName)
      throw invalid('--shard-tls-cert / --shard-tls-key / --shard-tls-server-name need --shard-tls-ca');
    return null;
  }
  checkCertFile(caFile, '--shard-tls-ca');
  if (!certFile !== !keyFile) throw invalid('--shard-tls-cert and --shard-tls-key go together');
  if (certFile && keyFile) checkKeyPair(certFile, keyFile, '--shard-tls-cert', '--shard-tls-key');
  return { caFile, certFile, keyFile, serverName, reloadMs: reloadMsOf(values, env) };
}

/**
 * Insecure without settings; else TLS from watched files (mutual when clientAuth is not none).
 * Resolves once the files were read: a server bound before that drops connections.
 */
export async function serverCredentials(
  tls: ServerTlsSettings | null | undefined,
): Promise<grpc.ServerCredentials> {
  if (!tls) return grpc.ServerCredentials.createInsecure();
  const identity = new grpc.experimental.FileWatcherCertificateProvider({
    certificateFile: tls.certFile,
    privateKeyFile: tls.keyFile,
    refreshIntervalMs: tls.reloadMs,
  });
  const ca =
    tls.clientAuth === 'none' || !tls.caFile
      ? null
      : new grpc.experimental.FileWatcherCertificateProvider({
          caCertificateFile: tls.caFile,
          refreshIntervalMs: tls.reloadMs,
        });
  await Promise.all([primeIdentity(identity), ca ? primeCa(ca) : undefined]);
  // grpc-js 1.14.3 declares (ca, identity, require) but its implementation takes (identity, ca,
  // require): the server presents the first provider's certificate and asks clients for one only
  // when the second is set. The integration tests check which certificate is served.
  return grpc.experimental.createCertificateProviderServerCredentials(
    identity,
    ca,
    tls.clientAuth === 'require',
  );
}

/**
 * Reads a provider's files once (it keeps the result for the next listener, the server's), so the
 * server has its certificate from the first connection on.
 */
function primeIdentity(p: grpc.experimental.FileWatcherCertificateProvider): Promise<void> {
  return new Promise((resolve) => {
    const listener = () => {
      p.removeIdentityCertificateListener(listener);
      resolve();
    };
    p.addIdentityCertificateListener(listener);
  });
}

function primeCa(p: grpc.experimental.FileWatcherCertificateProvider): Promise<void> {
  return new Promise((resolve) => {
    const listener = () => {
      p.removeCaCertificateListener(listener);
      resolve();
    };
    p.addCaCertificateListener(listener);
  });
}

/** Channel credentials from watched files; insecure without settings. */
export function channelCredentials(tls: ClientTlsSettings | null | undefined): grpc.ChannelCredentials {
  if (!tls) return grpc.credentials.createInsecure();
  const ca = new grpc.experimental.FileWatcherCertificateProvider({
    caCertificateFile: tls.caFile,
    refreshIntervalMs: tls.reloadMs,
  });
  const identity =
    tls.certFile && tls.keyFile
      ? new grpc.experimental.FileWatcherCertificateProvider({
          certificateFile: tls.certFile,
          privateKeyFile: tls.keyFile,
          refreshIntervalMs: tls.reloadMs,
        })
      : null;
  return grpc.experimental.createCertificateProviderChannelCredentials(ca, identity);
}

/** Channel options a client needs besides its credentials (the server name override). */
export function channelOptionsOf(tls: ClientTlsSettings | null | undefined): grpc.ChannelOptions {
  return tls?.serverName ? { 'grpc.ssl_target_name_override': tls.serverName } : {};
}

/**
 * A small file read again when it changes (mtime, size or inode; checked at most every
 * `checkEveryMs`). If a changed file cannot be read, the last good content stays in use.
 */
export class WatchedFile {
  private content: Buffer;
  private stamp: string;
  private checkedAt = Date.now();

  constructor(
    readonly file: string,
    private readonly checkEveryMs = 1000,
    what = 'file',
  ) {
    try {
      this.stamp = stampOf(fs.statSync(file));
      this.content = fs.readFileSync(file);
    } catch (err) {
      throw invalid(`${what} ${file}: cannot read it (${(err as Error).message})`);
    }
  }

  /** The current content; `changed` is true when it differs from the previous call's file. */
  read(): Buffer {
    const now = Date.now();
    if (now - this.checkedAt < this.checkEveryMs) return this.content;
    this.checkedAt = now;
    try {
      const stamp = stampOf(fs.statSync(this.file));
      if (stamp !== this.stamp) {
        this.content = fs.readFileSync(this.file);
        this.stamp = stamp;
      }
    } catch {
      // Mid-rotation (file briefly missing): keep the last good content.
    }
    return this.content;
  }
}

function stampOf(st: fs.Stats): string {
  return `${st.ino}:${st.size}:${st.mtimeMs}`;
}

/**
 * Whether a client certificate chains to the CA: needed in `request` mode, where the TLS layer lets
 * unverified certificates through (grpc-js's auth context shows them all). Checks a certificate
 * issued directly by one of the CA bundle's certificates, and its validity period.
 */
export function peerVerifier(tls: ServerTlsSettings | null | undefined): (cert: PeerCertificate) => boolean {
  if (!tls || tls.clientAuth === 'none' || !tls.caFile) return () => false;
  // require: the TLS handshake already refused certificates that do not verify.
  if (tls.clientAuth === 'require') return (cert) => Boolean(cert.raw);
  const bundle = new WatchedFile(tls.caFile, 1000, '--tls-ca');
  let parsedFrom: Buffer | null = null;
  let cas: X509Certificate[] = [];
  return (cert) => {
    const pem = bundle.read();
    if (pem !== parsedFrom) {
      cas = splitPem(pem.toString('utf8')).flatMap((b) => {
        try {
          return [new X509Certificate(b)];
        } catch {
          return [];
        }
      });
      parsedFrom = pem;
    }
    if (!cert.raw) return false;
    let x509: X509Certificate;
    try {
      x509 = new X509Certificate(cert.raw);
    } catch {
      return false;
    }
    const now = Date.now();
    if (now < Date.parse(x509.validFrom) || now > Date.parse(x509.validTo)) return false;
    return cas.some((ca) => x509.checkIssued(ca) && x509.verify(ca.publicKey));
  };
}

/**
 * The names a certificate identifies its holder by: the subject CN and the subjectAltName DNS, URI
 * and email entries (what --admin-identities and --peer-identities list).
 */
export function identitiesOf(cert: PeerCertificate | undefined): string[] {
  if (!cert?.raw) return [];
  const out = new Set<string>();
  const cn = cert.subject?.CN as string | string[] | undefined;
  for (const c of Array.isArray(cn) ? cn : cn ? [cn] : []) out.add(c);
  for (const entry of (cert.subjectaltname ?? '').split(/,\s*/)) {
    const m = /^(DNS|URI|email):(.+)$/.exec(entry.trim());
    if (m) out.add(m[2]);
  }
  return [...out];
}

const LOOPBACK = /^(localhost|127\.\d+\.\d+\.\d+|::1|\[::1\])$/i;

/** True for hosts only this machine reaches (localhost, 127.0.0.0/8, ::1). */
export function isLoopback(host: string): boolean {
  return LOOPBACK.test(host);
}
