/**
 * How gateways and shards reach a secured etcd, from flags or the environment: --etcd-ca
 * (SPI_ETCD_CA) turns TLS on, --etcd-cert / --etcd-key (SPI_ETCD_CERT, SPI_ETCD_KEY) add a client
 * certificate for etcd's --client-cert-auth, --etcd-username (SPI_ETCD_USERNAME) with the password
 * from --etcd-password-file (SPI_ETCD_PASSWORD_FILE) or SPI_ETCD_PASSWORD logs in when etcd has auth
 * enabled. Nothing set: plaintext, no user (etcd fenced by network policy).
 */
import * as fs from 'node:fs';
import { invalid } from '../../lib/errors';
import { EtcdConnection, etcdSecurity } from '../../lib/cluster/etcd-client';

export const ETCD_SECURITY_FLAGS = {
  'etcd-ca': { type: 'string' },
  'etcd-cert': { type: 'string' },
  'etcd-key': { type: 'string' },
  'etcd-username': { type: 'string' },
  'etcd-password-file': { type: 'string' },
} as const;

/** --help lines of ETCD_SECURITY_FLAGS, shared by the shard's and the gateway's usage. */
export const ETCD_SECURITY_USAGE = `etcd security:
  --etcd-ca F         CA of etcd's certificate: TLS to etcd (env SPI_ETCD_CA)
  --etcd-cert F, --etcd-key F  client certificate for etcd (env SPI_ETCD_CERT, SPI_ETCD_KEY)
  --etcd-username U   etcd user (env SPI_ETCD_USERNAME); password from --etcd-password-file F
                      (env SPI_ETCD_PASSWORD_FILE) or env SPI_ETCD_PASSWORD`;

type FlagValues = Record<string, string | boolean | undefined>;

function str(v: string | boolean | undefined): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

export function etcdConnectionFrom(values: FlagValues, env: NodeJS.ProcessEnv): EtcdConnection {
  const passwordFile = str(values['etcd-password-file']) ?? str(env.SPI_ETCD_PASSWORD_FILE);
  let etcdPassword = str(env.SPI_ETCD_PASSWORD);
  if (passwordFile) {
    try {
      etcdPassword = fs.readFileSync(passwordFile, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw invalid(`--etcd-password-file ${passwordFile}: cannot read it (${(err as Error).message})`);
    }
  }
  const connection: EtcdConnection = {
    etcdCa: str(values['etcd-ca']) ?? str(env.SPI_ETCD_CA),
    etcdCert: str(values['etcd-cert']) ?? str(env.SPI_ETCD_CERT),
    etcdKey: str(values['etcd-key']) ?? str(env.SPI_ETCD_KEY),
    etcdUsername: str(values['etcd-username']) ?? str(env.SPI_ETCD_USERNAME),
    etcdPassword,
  };
  etcdSecurity(connection); // fails now, with the flag's name, rather than at the first etcd call
  return connection;
}
