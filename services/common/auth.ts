/**
 * Who may call what, as one grpc-js server interceptor. BankAdmin needs an authenticated admin: a
 * bearer token (`authorization: Bearer <token>` metadata) listed in --admin-token-file, or a verified
 * client certificate whose identity (CN or a SAN) is in --admin-identities. BankShard (the gateways'
 * internal hop) needs, when --peer-identities is set, a verified client certificate with one of those
 * identities. Inspector, health and reflection stay open to anyone the TLS layer let in.
 *
 * No credentials: UNAUTHENTICATED. Bad token: UNAUTHENTICATED. A valid identity that is not allowed
 * (an Inspect-only line controller certificate calling an admin RPC): PERMISSION_DENIED.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { invalid } from '../../lib/errors';
import { Logger } from '../../lib/util/log';
import { ServerTlsSettings, WatchedFile, identitiesOf, isLoopback } from '../../lib/rpc/tls';

export const ADMIN_SERVICE = 'spi.v1.BankAdmin';
export const SHARD_SERVICE = 'spi.v1.BankShard';

/** Flags of the gateway's admin protection. */
export const ADMIN_AUTH_FLAGS = {
  'admin-token-file': { type: 'string' },
  'admin-identities': { type: 'string' },
  'insecure-admin': { type: 'boolean', default: false },
} as const;

/** Flag of the shard's caller check. */
export const PEER_AUTH_FLAGS = {
  'peer-identities': { type: 'string' },
} as const;

/** --help lines of ADMIN_AUTH_FLAGS (the gateway's). */
export const ADMIN_AUTH_USAGE = `admin API (BankAdmin; beyond loopback it needs a token file or admin identities):
  --admin-token-file F  bearer tokens, one a line (# comments), re-read when the file changes
                      (env SPI_ADMIN_TOKEN_FILE)
  --admin-identities A,B  client certificate names (CN or SAN) allowed to call BankAdmin
                      (env SPI_ADMIN_IDENTITIES; needs --tls-ca and --tls-client-auth request or require)
  --insecure-admin    leave the admin API open to any caller on a non-loopback host`;

/** --help lines of PEER_AUTH_FLAGS (the shard's; they continue its TLS section). */
export const PEER_AUTH_USAGE = `  --peer-identities A,B  client certificate names (CN or SAN) allowed to call BankShard, e.g. the
                      gateways' (env SPI_PEER_IDENTITIES; needs --tls-ca)`;

/** Tokens of a token file: one per line; blank lines and lines starting with # are ignored. */
export class TokenFile {
  private readonly file: WatchedFile;
  private parsedFrom: Buffer | null = null;
  private digests: Buffer[] = [];

  constructor(readonly path: string) {
    this.file = new WatchedFile(path, 1000, '--admin-token-file');
    if (this.current().length === 0) throw invalid(`--admin-token-file ${path} holds no token`);
  }

  private current(): Buffer[] {
    const content = this.file.read();
    if (content !== this.parsedFrom) {
      this.digests = content
        .toString('utf8')
        .split(/\r?\n/)
        .map((l) => l.trim())
        .filter((l) => l && !l.startsWith('#'))
        .map(digest);
      this.parsedFrom = content;
    }
    return this.digests;
  }

  /** Constant-time per token (equal-length digests, no early exit over the list). */
  accepts(token: string): boolean {
    const d = digest(token);
    let ok = false;
    for (const t of this.current()) ok = timingSafeEqual(d, t) || ok;
    return ok;
  }
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

export interface AuthPolicy {
  /** BankAdmin protection; null/undefined = open (loopback development, embedded demo). */
  admin?: { tokens?: TokenFile | null; identities?: string[] } | null;
  /** Identities allowed to call BankShard; null/undefined = any caller the TLS layer let in. */
  peerIdentities?: string[] | null;
  /** Whether a client certificate in the auth context was verified against the CA. */
  verifyPeer: (cert: PeerCertificate) => boolean;
}

export function splitList(raw: string | undefined): string[] {
  return (raw ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

type Verdict = { ok: true } | { ok: false; code: grpc.status; details: string };

const allow: Verdict = { ok: true };

function deny(code: grpc.status, details: string): Verdict {
  return { ok: false, code, details };
}

function bearerOf(metadata: grpc.Metadata): string | null | undefined {
  const values = metadata.get('authorization');
  if (values.length === 0) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(String(values[0]));
  return m ? m[1] : null;
}

export function decide(
  policy: AuthPolicy,
  service: string,
  metadata: grpc.Metadata,
  cert: PeerCertificate | undefined,
): Verdict & { who?: string[] } {
  const verified = cert?.raw && policy.verifyPeer(cert) ? identitiesOf(cert) : [];
  if (service === ADMIN_SERVICE && policy.admin) {
    const { tokens, identities = [] } = policy.admin;
    const bearer = bearerOf(metadata);
    if (bearer === null)
      return deny(grpc.status.UNAUTHENTICATED, 'authorization metadata must be "Bearer <token>"');
    if (bearer !== undefined) {
      if (!tokens) return deny(grpc.status.UNAUTHENTICATED, 'this gateway accepts no bearer tokens');
      return tokens.accepts(bearer)
        ? allow
        : deny(grpc.status.UNAUTHENTICATED, 'invalid bearer token for the admin API');
    }
    if (verified.length === 0)
      return deny(
        grpc.status.UNAUTHENTICATED,
        'admin RPCs need credentials: a bearer token or an admin client certificate',
      );
    if (verified.some((id) => identities.includes(id))) return { ...allow, who: verified };
    return {
      ...deny(
        grpc.status.PERMISSION_DENIED,
        `client ${verified.join('/')} may not call the admin API (not in --admin-identities)`,
      ),
      who: verified,
    };
  }
  if (service === SHARD_SERVICE && policy.peerIdentities && policy.peerIdentities.length > 0) {
    if (verified.length === 0)
      return deny(grpc.status.UNAUTHENTICATED, 'BankShard needs a gateway client certificate');
    if (verified.some((id) => policy.peerIdentities!.includes(id))) return allow;
    return deny(
      grpc.status.PERMISSION_DENIED,
      `client ${verified.join('/')} may not call BankShard (not in --peer-identities)`,
    );
  }
  return allow;
}

/** The interceptor enforcing `policy` (install it outside the metrics one so refusals are counted). */
export function authInterceptor(policy: AuthPolicy, log: Logger): grpc.ServerInterceptor {
  return (def, call) => {
    const service = def.path.split('/')[1] ?? '';
    const guarded =
      (service === ADMIN_SERVICE && policy.admin) ||
      (service === SHARD_SERVICE && policy.peerIdentities && policy.peerIdentities.length > 0);
    if (!guarded) return new grpc.ServerInterceptingCall(call);
    return new grpc.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, nextMetadata) => {
            const verdict = decide(policy, service, metadata, call.getAuthContext().sslPeerCertificate);
            if (verdict.ok) return nextMetadata(metadata);
            log.warn('call refused', {
              method: def.path,
              code: grpc.status[verdict.code],
              reason: verdict.details,
              peer: call.getPeer(),
              ...(verdict.who ? { identities: verdict.who } : {}),
            });
            call.sendStatus({ code: verdict.code, details: verdict.details, metadata: new grpc.Metadata() });
          },
        }),
    });
  };
}

type FlagValues = Record<string, string | boolean | undefined>;

/**
 * The gateway's admin protection from --admin-token-file (SPI_ADMIN_TOKEN_FILE) and
 * --admin-identities (SPI_ADMIN_IDENTITIES). Without either, the admin API is open: allowed on a
 * loopback host (development, the embedded demo) or with --insecure-admin, refused elsewhere.
 */
export function adminAuthFrom(
  values: FlagValues,
  env: NodeJS.ProcessEnv,
  host: string,
  tls: ServerTlsSettings | null,
  log: Logger,
): AuthPolicy['admin'] {
  const tokenFile = (values['admin-token-file'] as string | undefined) || env.SPI_ADMIN_TOKEN_FILE;
  const identities = splitList(
    (values['admin-identities'] as string | undefined) ?? env.SPI_ADMIN_IDENTITIES,
  );
  if (identities.length > 0 && (!tls || tls.clientAuth === 'none'))
    throw invalid(
      '--admin-identities needs client certificates: --tls-cert, --tls-key, --tls-ca and --tls-client-auth request or require',
    );
  if (tokenFile || identities.length > 0)
    return { tokens: tokenFile ? new TokenFile(tokenFile) : null, identities };
  if (!isLoopback(host)) {
    if (values['insecure-admin'] !== true)
      throw invalid(
        `the gateway listens on ${host}, beyond this machine, so the admin API needs credentials: ` +
          'set --admin-token-file or --admin-identities (or --insecure-admin to leave it open)',
      );
    log.warn('admin API open to any caller (--insecure-admin)', { host });
  }
  return null;
}

/** The shard's BankShard callers from --peer-identities (SPI_PEER_IDENTITIES). */
export function peerIdentitiesFrom(
  values: FlagValues,
  env: NodeJS.ProcessEnv,
  tls: ServerTlsSettings | null,
  log: Logger,
): string[] | null {
  const ids = splitList((values['peer-identities'] as string | undefined) ?? env.SPI_PEER_IDENTITIES);
  if (ids.length > 0 && (!tls || tls.clientAuth === 'none'))
    throw invalid(
      '--peer-identities needs client certificates: --tls-cert, --tls-key, --tls-ca and --tls-client-auth request or require',
    );
  if (ids.length === 0 && tls && tls.clientAuth !== 'none')
    log.warn('mutual TLS without --peer-identities: any certificate of the CA may call BankShard');
  return ids.length > 0 ? ids : null;
}
