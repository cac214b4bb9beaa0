/**
 * The registry against an etcd that serves TLS only, requires client certificates and has user auth
 * on: it works with the right CA, certificate and password, and fails with a clear error otherwise.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Etcd3 } from 'etcd3';
import { Registry } from '../../lib/cluster/registry';
import { BankVersionRecord } from '../../lib/cluster/types';
import { Logger } from '../../lib/util/log';
import { etcdConnectionFrom } from '../../services/common/etcd-flags';
import { TestPki, createTestPki } from '../../services/local/certs';
import { TestEtcd, enableEtcdAuth, startEtcd } from '../helpers/etcd';
import { TEST_TMP } from '../helpers/processes';

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };

const record = (bank: string): BankVersionRecord => ({
  bank,
  version: 1,
  state: 'ready',
  createdAt: new Date().toISOString(),
  meta: { model: 'test' },
  partitions: [{ partition: 0, rowOffset: 0, rows: 10, shards: ['s1'] }],
  index: 'Flat',
  nprobe: 8,
});

describe('etcd with TLS, client certificates and user auth', function () {
  this.timeout(30_000);
  let dir: string;
  let pki: TestPki;
  let etcd: TestEtcd;
  const registries: Registry[] = [];
  const open = (options: Partial<ConstructorParameters<typeof Registry>[0]>) => {
    const r = new Registry({
      endpoints: [etcd.endpoint],
      prefix: '/spi/',
      callTimeoutMs: 3000,
      dialTimeoutMs: 2000,
      log: quiet,
      ...options,
    });
    registries.push(r);
    return r;
  };

  before(async () => {
    fs.mkdirSync(TEST_TMP, { recursive: true });
    dir = fs.mkdtempSync(path.join(TEST_TMP, 'etcd-tls-'));
    pki = createTestPki(dir);
    const credentials = {
      rootCertificate: fs.readFileSync(pki.ca.cert),
      certChain: fs.readFileSync(pki.gateway.cert),
      privateKey: fs.readFileSync(pki.gateway.key),
    };
    etcd = await startEtcd({
      tls: { cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert, clientCertAuth: true },
      probe: { credentials },
    });
    const root = new Etcd3({ hosts: etcd.url, credentials });
    try {
      await enableEtcdAuth(root, 'root-secret', [{ name: 'spi', password: 'spi-secret', prefix: '/spi/' }]);
    } finally {
      root.close();
    }
    fs.writeFileSync(path.join(dir, 'etcd-password'), 'spi-secret\n');
  });

  after(async () => {
    await Promise.all(registries.map((r) => r.close().catch(() => undefined)));
    await etcd?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('works with the CA, a client certificate and the user from flags', async () => {
    const connection = etcdConnectionFrom(
      {
        'etcd-ca': pki.ca.cert,
        'etcd-cert': pki.gateway.cert,
        'etcd-key': pki.gateway.key,
        'etcd-username': 'spi',
        'etcd-password-file': path.join(dir, 'etcd-password'),
      },
      {},
    );
    const registry = open(connection);
    await registry.putVersion(record('secure-job'));
    await registry.activate('secure-job', 1);
    assert.deepEqual(await registry.listBanks(), ['secure-job']);
    assert.equal(await registry.getActive('secure-job'), 1);
    const view = await registry.readView();
    assert.equal(view.active.get('secure-job'), 1);
  });

  it('fails clearly with a wrong password, without a user, without a client certificate, or plaintext', async () => {
    const tls = { etcdCa: pki.ca.cert, etcdCert: pki.gateway.cert, etcdKey: pki.gateway.key };
    const cases: [string, Registry, RegExp][] = [
      [
        'wrong password',
        open({ ...tls, etcdUsername: 'spi', etcdPassword: 'nope' }),
        /authentication failed, invalid user ID or password/,
      ],
      // etcd takes the client certificate's CN (spi-gateway) as the user: no such user, no rights.
      ['no user', open(tls), /PERMISSION_DENIED: etcdserver: permission denied/],
      [
        'no client certificate',
        open({ etcdCa: pki.ca.cert, etcdUsername: 'spi', etcdPassword: 'spi-secret' }),
        // etcd ends the handshake: the client sees no connection.
        /UNAVAILABLE: No connection established/,
      ],
      ['plaintext', open({ etcdUsername: 'spi', etcdPassword: 'spi-secret' }), /UNAVAILABLE/],
    ];
    for (const [what, registry, pattern] of cases) {
      await assert.rejects(registry.listBanks(), (err: Error) => {
        assert.match(err.message, pattern, `${what}: ${err.message}`);
        return true;
      });
    }
  });

  it('checks the flags before any call: a cert without key, a user without password', () => {
    assert.throws(
      () => etcdConnectionFrom({ 'etcd-ca': pki.ca.cert, 'etcd-cert': pki.gateway.cert }, {}),
      /go together/,
    );
    assert.throws(() => etcdConnectionFrom({}, { SPI_ETCD_USERNAME: 'spi' }), /needs a password/);
    assert.throws(
      () => etcdConnectionFrom({ 'etcd-ca': '/nope/ca.pem' }, {}),
      /--etcd-ca \/nope\/ca.pem: cannot read/,
    );
  });
});
