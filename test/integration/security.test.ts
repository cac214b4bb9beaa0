/**
 * TLS, mutual TLS and who may call what, with certificates the test makes itself (openssl):
 * - a gRPC server with mutual TLS lets a client certificate of its CA in and refuses no certificate,
 *   a certificate of another CA and plaintext at the handshake; rotated certificate files are served
 *   without a restart;
 * - a gateway guards BankAdmin: no credentials or a bad token -> UNAUTHENTICATED, an Inspect-only
 *   certificate -> PERMISSION_DENIED, an admin certificate or the token (re-read when the file
 *   changes) -> allowed; Inspect stays open; it refuses to start beyond loopback without credentials;
 * - a whole local cluster over mutual TLS (etcd with TLS and auth too): a bank is built and
 *   inspected, the request id shows up in the gateway's and the shards' logs, and only the gateway's
 *   certificate may call the shards.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Etcd3 } from 'etcd3';
import { InspectionClient } from '../../lib/client/inspection-client';
import { MemoryRegistry } from '../../lib/cluster/memory-registry';
import { ShardClient } from '../../lib/cluster/shard-client';
import { SpiError } from '../../lib/errors';
import { Logger } from '../../lib/util/log';
import { GATEWAY_HEALTH_SERVICES, ServingHealth, newHealthClient } from '../../services/common/health';
import { RunningServer, startGrpcServer } from '../../lib/rpc/grpc-server';
import { REQUEST_ID_KEY } from '../../lib/rpc/request-id';
import { ClientTlsSettings, ServerTlsSettings, channelCredentials, serverTlsFrom } from '../../lib/rpc/tls';
import { TokenFile, adminAuthFrom } from '../../services/common/auth';
import { clientConstructor } from '../../lib/rpc/proto';
import { RunningGateway, startGateway } from '../../services/gateway/gateway';
import { LOOPBACK_SAN, TestPki, createTestPki } from '../../services/local/certs';
import { LocalCluster, startLocalCluster } from '../../services/local/cluster';
import { enableEtcdAuth } from '../helpers/etcd';
import { TEST_TMP, waitUntil } from '../helpers/processes';
import { printDataset, upload } from '../helpers/fixtures';

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };

/** One health Check on a fresh channel: the status, or the gRPC error code. */
async function probe(address: string, creds: grpc.ChannelCredentials): Promise<string | grpc.status> {
  const client = newHealthClient(address, creds);
  try {
    return await new Promise((resolve) =>
      client.check({ service: '' }, { deadline: Date.now() + 3000 }, (err, res) =>
        resolve(err ? err.code : (res?.status ?? '')),
      ),
    );
  } finally {
    client.close();
  }
}

function clientTls(ca: string, cert?: { cert: string; key: string }): ClientTlsSettings {
  return { caFile: ca, certFile: cert?.cert, keyFile: cert?.key, reloadMs: 60_000 };
}

async function rejectsWith(p: Promise<unknown>, kind: string, message?: RegExp): Promise<void> {
  await assert.rejects(p, (err: SpiError) => {
    assert.equal(err.kind, kind, `${err.kind}: ${err.message}`);
    if (message) assert.match(err.message, message);
    return true;
  });
}

describe('security: TLS, mTLS, admin authorization, request ids', function () {
  this.timeout(60_000);
  let dir: string;
  let pki: TestPki;

  before(() => {
    fs.mkdirSync(TEST_TMP, { recursive: true });
    dir = fs.mkdtempSync(path.join(TEST_TMP, 'security-'));
    pki = createTestPki(path.join(dir, 'pki'));
  });

  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  describe('a gRPC server with mutual TLS', () => {
    let server: RunningServer | undefined;
    after(async () => server?.shutdown(0));

    it('lets a client certificate of its CA in; no certificate, another CA or plaintext fail at the handshake', async () => {
      server = await startGrpcServer({
        host: '127.0.0.1',
        port: 0,
        services: [new ServingHealth(GATEWAY_HEALTH_SERVICES).binding()],
        tls: serverTlsFrom(
          { 'tls-cert': pki.server.cert, 'tls-key': pki.server.key, 'tls-ca': pki.ca.cert },
          {},
        ),
        log: quiet,
      });
      const address = `127.0.0.1:${server.port}`;
      // Reaching the health service at all is the point: NOT_SERVING is its answer before readiness.
      assert.equal(
        await probe(address, channelCredentials(clientTls(pki.ca.cert, pki.inspect))),
        'NOT_SERVING',
      );
      assert.equal(await probe(address, channelCredentials(clientTls(pki.ca.cert))), grpc.status.UNAVAILABLE);
      assert.equal(
        await probe(address, channelCredentials(clientTls(pki.ca.cert, pki.wrong))),
        grpc.status.UNAVAILABLE,
      );
      assert.equal(await probe(address, grpc.credentials.createInsecure()), grpc.status.UNAVAILABLE);
      // A client that does not trust the server's CA refuses it.
      assert.equal(
        await probe(address, channelCredentials(clientTls(pki.otherCa.cert, pki.inspect))),
        grpc.status.UNAVAILABLE,
      );
    });

    it('rejects bad TLS flags at start with the flag in the message', () => {
      assert.throws(
        () => serverTlsFrom({ 'tls-cert': pki.server.cert }, {}),
        /--tls-cert and --tls-key go together/,
      );
      assert.throws(
        () => serverTlsFrom({ 'tls-cert': pki.server.cert, 'tls-key': pki.admin.key }, {}),
        /--tls-key .* is not the private key of --tls-cert/,
      );
      assert.throws(
        () =>
          serverTlsFrom(
            { 'tls-cert': pki.server.cert, 'tls-key': pki.server.key, 'tls-client-auth': 'require' },
            {},
          ),
        /needs --tls-ca/,
      );
      assert.throws(
        () => serverTlsFrom({}, { SPI_TLS_CERT: '/nope.pem', SPI_TLS_KEY: pki.server.key }),
        /--tls-cert \/nope.pem: cannot read it/,
      );
    });
  });

  it('serves rotated certificate files without a restart', async () => {
    const live = path.join(dir, 'live');
    fs.mkdirSync(live);
    const cert = path.join(live, 'tls.crt');
    const key = path.join(live, 'tls.key');
    fs.copyFileSync(pki.server.cert, cert);
    fs.copyFileSync(pki.server.key, key);
    const tls: ServerTlsSettings = { certFile: cert, keyFile: key, clientAuth: 'none', reloadMs: 200 };
    const server = await startGrpcServer({
      host: '127.0.0.1',
      port: 0,
      services: [new ServingHealth(GATEWAY_HEALTH_SERVICES).binding()],
      tls,
      log: quiet,
    });
    try {
      const address = `127.0.0.1:${server.port}`;
      const trustsOld = () => probe(address, channelCredentials(clientTls(pki.ca.cert)));
      const trustsNew = () => probe(address, channelCredentials(clientTls(pki.otherCa.cert)));
      assert.equal(await trustsOld(), 'NOT_SERVING');
      assert.equal(await trustsNew(), grpc.status.UNAVAILABLE);
      // Rotate: a certificate of the other CA, each file replaced in one rename (as kubelet does).
      const next = pki.otherCa.issue('server-next', { cn: 'spi-server', san: LOOPBACK_SAN });
      fs.copyFileSync(next.key, `${key}.new`);
      fs.copyFileSync(next.cert, `${cert}.new`);
      fs.renameSync(`${key}.new`, key);
      fs.renameSync(`${cert}.new`, cert);
      await waitUntil(
        async () => (await trustsNew()) === 'NOT_SERVING',
        'the new certificate served',
        5000,
        100,
      );
      assert.equal(await trustsOld(), grpc.status.UNAVAILABLE);
    } finally {
      await server.shutdown(0);
    }
  });

  describe('a gateway guarding its admin API (TLS, client certificates requested)', () => {
    let gateway: RunningGateway;
    let tokenFile: string;
    const clients: InspectionClient[] = [];
    const client = (options: ConstructorParameters<typeof InspectionClient>[1]) => {
      const c = new InspectionClient(`127.0.0.1:${gateway.port}`, {
        deadlineMs: 5000,
        retries: 0,
        ...options,
      });
      clients.push(c);
      return c;
    };

    before(async () => {
      tokenFile = path.join(dir, 'admin-token');
      fs.writeFileSync(tokenFile, '# operators\ns3cret-token-1\n');
      const tls = serverTlsFrom(
        {
          'tls-cert': pki.server.cert,
          'tls-key': pki.server.key,
          'tls-ca': pki.ca.cert,
          'tls-client-auth': 'request',
        },
        {},
      );
      gateway = await startGateway({
        host: '127.0.0.1',
        port: 0,
        etcd: [],
        registry: new MemoryRegistry(),
        tls,
        adminAuth: adminAuthFrom(
          { 'admin-token-file': tokenFile, 'admin-identities': 'spi-admin' },
          {},
          '127.0.0.1',
          tls,
          quiet,
        ),
        log: quiet,
      });
    });

    after(async () => {
      for (const c of clients) c.close();
      await gateway?.close(0);
    });

    it('refuses an admin call without credentials or with a bad token: UNAUTHENTICATED', async () => {
      const tls = { ca: pki.ca.cert };
      await rejectsWith(client({ tls }).listBanks(), 'UNAUTHENTICATED', /need credentials/);
      await rejectsWith(
        client({ tls, token: 'wrong' }).listBanks(),
        'UNAUTHENTICATED',
        /invalid bearer token/,
      );
      // A certificate of another CA is no identity, even with an admin's name in it.
      await rejectsWith(
        client({ tls: { ca: pki.ca.cert, cert: pki.wrong.cert, key: pki.wrong.key } }).listBanks(),
        'UNAUTHENTICATED',
      );
    });

    it('refuses an Inspect-only client certificate: PERMISSION_DENIED; lets it inspect', async () => {
      const inspector = client({ tls: { ca: pki.ca.cert, cert: pki.inspect.cert, key: pki.inspect.key } });
      await rejectsWith(
        inspector.listBanks(),
        'PERMISSION_DENIED',
        /line-controller may not call the admin API/,
      );
      await rejectsWith(inspector.createBank({ bank: 'nope' }, []), 'PERMISSION_DENIED');
      // Inspector is open: the call gets through to the bank lookup.
      await rejectsWith(inspector.inspect({ bank: 'no-such-bank', image: Buffer.from('x') }), 'NOT_FOUND');
    });

    it('lets an admin certificate or the token in, and sends the request id back', async () => {
      assert.deepEqual(
        await client({ tls: { ca: pki.ca.cert, cert: pki.admin.cert, key: pki.admin.key } }).listBanks(),
        [],
      );
      assert.deepEqual(await client({ tls: { ca: pki.ca.cert }, token: 's3cret-token-1' }).listBanks(), []);
      // The response headers carry the caller's x-request-id.
      const Admin = clientConstructor('BankAdmin');
      const raw = new Admin(`127.0.0.1:${gateway.port}`, channelCredentials(clientTls(pki.ca.cert)));
      try {
        const md = new grpc.Metadata();
        md.set('authorization', 'Bearer s3cret-token-1');
        md.set(REQUEST_ID_KEY, 'req-42');
        const headers = await new Promise<grpc.Metadata>((resolve, reject) => {
          const call = (
            raw as unknown as Record<string, (...a: unknown[]) => grpc.ClientUnaryCall>
          ).listBanks.call(raw, {}, md, (err: grpc.ServiceError | null) => err && reject(err));
          call.on('metadata', resolve);
        });
        assert.deepEqual(headers.get(REQUEST_ID_KEY), ['req-42']);
      } finally {
        raw.close();
      }
    });

    it('re-reads the token file when it changes', async () => {
      fs.writeFileSync(tokenFile, 's3cret-token-2\n');
      const fresh = client({ tls: { ca: pki.ca.cert }, token: 's3cret-token-2' });
      await waitUntil(() => fresh.listBanks().then(() => true), 'the new token accepted', 5000, 200);
      await rejectsWith(
        client({ tls: { ca: pki.ca.cert }, token: 's3cret-token-1' }).listBanks(),
        'UNAUTHENTICATED',
      );
    });

    it('will not run an open admin API beyond loopback, unless told so', () => {
      assert.throws(() => adminAuthFrom({}, {}, '0.0.0.0', null, quiet), /admin API needs credentials/);
      assert.equal(adminAuthFrom({ 'insecure-admin': true }, {}, '0.0.0.0', null, quiet), null);
      assert.equal(adminAuthFrom({}, {}, '127.0.0.1', null, quiet), null);
      assert.throws(
        () => adminAuthFrom({ 'admin-identities': 'spi-admin' }, {}, '0.0.0.0', null, quiet),
        /--admin-identities needs client certificates/,
      );
      const empty = path.join(dir, 'empty-token');
      fs.writeFileSync(empty, '\n# nothing\n');
      assert.throws(() => new TokenFile(empty), /holds no token/);
    });
  });

  describe('a local cluster over mutual TLS, etcd with TLS and auth', () => {
    let cluster: LocalCluster;

    before(async () => {
      const etcdTls = [
        '--etcd-ca',
        pki.ca.cert,
        '--etcd-cert',
        pki.gateway.cert,
        '--etcd-key',
        pki.gateway.key,
      ];
      const etcdUser = ['--etcd-username', 'spi'];
      const serverTls = ['--tls-cert', pki.server.cert, '--tls-key', pki.server.key, '--tls-ca', pki.ca.cert];
      cluster = await startLocalCluster({
        shards: 2,
        etcd: {
          tls: { cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert, clientCertAuth: true },
          probe: {
            credentials: {
              rootCertificate: fs.readFileSync(pki.ca.cert),
              certChain: fs.readFileSync(pki.gateway.cert),
              privateKey: fs.readFileSync(pki.gateway.key),
            },
          },
        },
        prepareEtcd: async (etcd) => {
          const root = new Etcd3({
            hosts: etcd.url,
            credentials: {
              rootCertificate: fs.readFileSync(pki.ca.cert),
              certChain: fs.readFileSync(pki.gateway.cert),
              privateKey: fs.readFileSync(pki.gateway.key),
            },
          });
          try {
            await enableEtcdAuth(root, 'root-pw', [{ name: 'spi', password: 'spi-pw', prefix: '/spi/' }]);
          } finally {
            root.close();
          }
        },
        env: { SPI_LOG_LEVEL: 'debug', SPI_ETCD_PASSWORD: 'spi-pw' },
        shardArgs: [...serverTls, '--peer-identities', 'spi-gateway', ...etcdTls, ...etcdUser],
        gatewayArgs: [
          ...serverTls,
          '--admin-identities',
          'spi-admin',
          '--shard-tls-ca',
          pki.ca.cert,
          '--shard-tls-cert',
          pki.gateway.cert,
          '--shard-tls-key',
          pki.gateway.key,
          ...etcdTls,
          ...etcdUser,
        ],
        clientDefaults: { deadlineMs: 20_000 },
      });
    });

    after(async () => {
      await cluster?.stop();
    });

    it('builds and inspects through mTLS hops; one request id in the gateway and shard logs', async () => {
      const data = await printDataset();
      const admin = cluster.client({ tls: { ca: pki.ca.cert, cert: pki.admin.cert, key: pki.admin.key } });
      const bank = await admin.createBank(
        { bank: 'secure', coresetRatio: 0.1, partitions: 2, replicas: 1 },
        upload(data.train.slice(0, 3)),
      );
      assert.equal(bank.activeVersion, 1);
      const line = cluster.client({ tls: { ca: pki.ca.cert, cert: pki.inspect.cert, key: pki.inspect.key } });
      const requestId = `sheet-${process.pid}-1`;
      const v = await line.inspect({ bank: 'secure', image: fs.readFileSync(data.testGood[0]), requestId });
      assert.equal(v.version, 1);
      assert.equal(v.requestId, requestId);
      const byId = (msg: string) => (f: Record<string, unknown>) =>
        f.msg === msg && f.requestId === requestId;
      const gw = await cluster.gateway.waitForLine(byId('inspect'), 5000);
      assert.equal(gw.fields.bank, 'secure');
      // Two partitions on two shards: both searched for this one request.
      for (const shard of cluster.shards) {
        const s = await shard.waitForLine(byId('search'), 5000);
        assert.equal(s.fields.bank, 'secure');
      }
      // A client generates an id when the caller gives none.
      const w = await line.inspect({ bank: 'secure', image: fs.readFileSync(data.testGood[0]) });
      assert.match(w.requestId, /^[0-9a-f-]{36}$/);
      await cluster.gateway.waitForLine((f) => f.msg === 'inspect' && f.requestId === w.requestId, 5000);
    });

    it('lets only the gateway certificate call the shards', async () => {
      const ready = await cluster.shards[0].waitForLine('shard ready');
      const address = `127.0.0.1:${Number(ready.fields.port)}`;
      const ref = { bank: 'secure', version: 1, partition: 0 };
      const as = (cert?: { cert: string; key: string }) =>
        new ShardClient(address, {}, channelCredentials(clientTls(pki.ca.cert, cert)));
      const cases: [string, ShardClient, string][] = [
        ['line controller', as(pki.inspect), 'PERMISSION_DENIED'],
        ['no certificate', as(), 'UNAVAILABLE'],
        ['other CA', as(pki.wrong), 'UNAVAILABLE'],
      ];
      try {
        for (const [, c, kind] of cases) await rejectsWith(c.listPartitions({ timeoutMs: 3000 }), kind);
        const gw = as(pki.gateway);
        try {
          const parts = await gw.listPartitions({ timeoutMs: 3000 });
          assert.ok(parts.some((p) => p.partition?.bank === ref.bank));
        } finally {
          gw.close();
        }
      } finally {
        for (const [, c] of cases) c.close();
      }
    });
  });
});
