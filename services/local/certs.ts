/**
 * Test certificates made with the `openssl` CLI (Debian package openssl): a CA, certificates it
 * signs, and a second, unrelated CA (the "wrong" one). EC P-256 keys, so a whole set takes well under
 * a second. Every certificate carries SANs and both serverAuth and clientAuth usages, so one file can
 * serve a server and a client (as a gateway's certificate does towards shards).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const OPENSSL_BIN = process.env.SPI_OPENSSL_BIN ?? 'openssl';

export interface CertFiles {
  cert: string;
  key: string;
}

export interface Ca extends CertFiles {
  name: string;
  dir: string;
  /** Issues a certificate with this CN and SANs (e.g. ['DNS:localhost', 'IP:127.0.0.1']). */
  issue(name: string, opts?: { cn?: string; san?: string[]; days?: number }): CertFiles;
}

/** `openssl req` arguments for a fresh unencrypted P-256 key. */
const NEW_EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function openssl(args: string[], cwd: string): void {
  execFileSync(OPENSSL_BIN, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A new self-signed CA under `dir` (files `<name>.pem`, `<name>.key`). */
export function createCa(dir: string, name: string): Ca {
  fs.mkdirSync(dir, { recursive: true });
  const cert = path.join(dir, `${name}.pem`);
  const key = path.join(dir, `${name}.key`);
  openssl(
    [
      'req',
      '-x509',
      ...NEW_EC_KEY,
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  );
  let serial = 1;
  return {
    name,
    dir,
    cert,
    key,
    issue(leaf, opts = {}) {
      const out = { cert: path.join(dir, `${leaf}.pem`), key: path.join(dir, `${leaf}.key`) };
      const csr = path.join(dir, `${leaf}.csr`);
      const ext = path.join(dir, `${leaf}.ext`);
      const san = opts.san ?? [`DNS:${opts.cn ?? leaf}`];
      fs.writeFileSync(
        ext,
        [
          'basicConstraints=critical,CA:FALSE',
          'keyUsage=critical,digitalSignature,keyEncipherment',
          'extendedKeyUsage=serverAuth,clientAuth',
          `subjectAltName=${san.join(',')}`,
        ].join('\n') + '\n',
      );
      openssl(
        ['req', '-new', ...NEW_EC_KEY, '-keyout', out.key, '-out', csr, '-subj', `/CN=${opts.cn ?? leaf}`],
        dir,
      );
      openssl(
        [
          'x509',
          '-req',
          '-in',
          csr,
          '-CA',
          cert,
          '-CAkey',
          key,
          '-set_serial',
          String(serial++),
          '-days',
          String(opts.days ?? 2),
          '-extfile',
          ext,
          '-out',
          out.cert,
        ],
        dir,
      );
      fs.rmSync(csr);
      fs.rmSync(ext);
      return out;
    },
  };
}

/** SANs of a certificate for services on this machine. */
export const LOOPBACK_SAN = ['DNS:localhost', 'IP:127.0.0.1'];

export interface TestPki {
  dir: string;
  ca: Ca;
  /** Server certificate for gateways and shards on loopback (CN spi-server). */
  server: CertFiles;
  /** The gateway's client certificate towards shards (CN spi-gateway). */
  gateway: CertFiles;
  /** An operator's certificate (CN spi-admin). */
  admin: CertFiles;
  /** A line controller's certificate: may inspect, may not administer (CN line-controller). */
  inspect: CertFiles;
  /** Another CA, and an "spi-admin" certificate it signed: same name, wrong issuer. */
  otherCa: Ca;
  wrong: CertFiles;
}

/** The certificates the TLS tests use, under `dir`. */
export function createTestPki(dir: string): TestPki {
  const ca = createCa(dir, 'ca');
  const otherCa = createCa(path.join(dir, 'other'), 'other-ca');
  return {
    dir,
    ca,
    server: ca.issue('server', { cn: 'spi-server', san: LOOPBACK_SAN }),
    gateway: ca.issue('gateway', { cn: 'spi-gateway', san: ['DNS:spi-gateway', ...LOOPBACK_SAN] }),
    admin: ca.issue('admin', { cn: 'spi-admin' }),
    inspect: ca.issue('inspect', { cn: 'line-controller' }),
    otherCa,
    wrong: otherCa.issue('wrong', { cn: 'spi-admin', san: ['DNS:spi-admin', ...LOOPBACK_SAN] }),
  };
}
