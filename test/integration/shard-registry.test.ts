/** Registry against a real etcd: records, the active-version transaction, shard leases, the live view. */
import assert from 'node:assert/strict';
import { Etcd3 } from 'etcd3';
import { Registry } from '../../lib/cluster/registry';
import { BankVersionRecord } from '../../lib/cluster/types';
import { ClusterView } from '../../lib/cluster/view';
import { SpiError } from '../../lib/errors';
import { Logger } from '../../lib/util/log';
import { TestEtcd, startEtcd } from '../helpers/etcd';
import { killAll, waitUntil } from '../helpers/processes';

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };

const record = (bank: string, version: number, state: BankVersionRecord['state']): BankVersionRecord => ({
  bank,
  version,
  state,
  createdAt: new Date().toISOString(),
  meta: { model: 'test' },
  partitions: [{ partition: 0, rowOffset: 0, rows: 10, shards: ['s1'] }],
  index: 'Flat',
  nprobe: 8,
});

async function rejectsKind(p: Promise<unknown>, kind: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => err instanceof SpiError && err.kind === kind);
}

describe('cluster registry (real etcd)', function () {
  this.timeout(30_000);
  let etcd: TestEtcd;
  let admin: Registry;

  before(async () => {
    etcd = await startEtcd();
    admin = new Registry({ endpoints: [etcd.endpoint], prefix: '/reg-test/', log: quiet });
  });
  after(async () => {
    await admin?.close();
    await etcd?.stop();
    await killAll();
  });

  it('refuses a version record larger than etcd takes with RESOURCE_EXHAUSTED naming the bank, writing nothing', async () => {
    // A nominal reference of a big tiled job: one value per patch cell, ~1.8 MB as JSON.
    const huge = {
      ...record('job-big', 1, 'building'),
      meta: { reference: { values: new Array(150_000).fill(0.123456789) } },
    };
    for (const write of [() => admin.createVersion(huge), () => admin.putVersion(huge)]) {
      await assert.rejects(write(), (err: unknown) => {
        assert.ok(err instanceof SpiError, String(err));
        assert.equal(err.kind, 'RESOURCE_EXHAUSTED');
        assert.match(
          err.message,
          /bank job-big v1: its record \(\d+ KiB of metadata\) is more than etcd takes/,
        );
        return true;
      });
    }
    assert.equal(await admin.getVersion('job-big', 1), null);
  });

  it('stores version records and switches the active version in one transaction', async () => {
    await admin.putVersion(record('job-1', 1, 'ready'));
    await admin.createVersion(record('job-1', 2, 'building'));
    await rejectsKind(admin.createVersion(record('job-1', 2, 'building')), 'ALREADY_EXISTS');
    assert.deepEqual(await admin.listBanks(), ['job-1']);
    assert.deepEqual(
      (await admin.listVersions('job-1')).map((r) => [r.version, r.state]),
      [
        [1, 'ready'],
        [2, 'building'],
      ],
    );
    assert.equal((await admin.getVersion('job-1', 2))?.state, 'building');
    assert.equal(await admin.getVersion('job-1', 9), null);

    await rejectsKind(admin.activate('job-1', 9), 'NOT_FOUND');
    await rejectsKind(admin.activate('job-1', 2), 'FAILED_PRECONDITION');
    assert.equal(await admin.getActive('job-1'), null);
    await admin.activate('job-1', 1);
    assert.equal(await admin.getActive('job-1'), 1);

    await admin.putVersion({ ...record('job-1', 2, 'ready') });
    await admin.activate('job-1', 2);
    assert.equal(await admin.getActive('job-1'), 2);
    await rejectsKind(admin.deleteVersion('job-1', 2), 'FAILED_PRECONDITION');
    assert.equal(await admin.deleteVersion('job-1', 1), true);
    assert.equal(await admin.deleteVersion('job-1', 1), false);
    assert.deepEqual(await admin.deleteBank('job-1'), [2]);
    assert.deepEqual(await admin.listBanks(), []);
    await rejectsKind(admin.putVersion(record('bad/name', 1, 'ready')), 'INVALID_ARGUMENT');
  });

  it('keeps a shard registered, announces partitions, and removes everything on close', async () => {
    const shard = new Registry({
      endpoints: [etcd.endpoint],
      prefix: '/reg-test/',
      leaseTtlS: 2,
      log: quiet,
    });
    const reg = await shard.registerShard({ id: 's1', address: '127.0.0.1:1111', startedAt: 'now' });
    assert.equal(reg.registered, true);
    const ref = { bank: 'job-2', version: 1, partition: 0 };
    await shard.markLoaded(ref, { rows: 10, dim: 4, index: 'Flat' });
    assert.deepEqual(await admin.listShards(), [{ id: 's1', address: '127.0.0.1:1111', startedAt: 'now' }]);
    assert.deepEqual(await admin.listLoaded('job-2'), [
      { ref, shardId: 's1', info: { rows: 10, dim: 4, index: 'Flat' } },
    ]);
    await shard.markDropped(ref);
    assert.deepEqual(await admin.listLoaded(), []);
    await shard.markLoaded(ref, { rows: 10, dim: 4, index: 'Flat' });
    await shard.close();
    assert.deepEqual(await admin.listShards(), []);
    assert.deepEqual(await admin.listLoaded(), []);
  });

  it('registers again when its lease is revoked behind its back', async () => {
    const shard = new Registry({
      endpoints: [etcd.endpoint],
      prefix: '/reg-test/',
      leaseTtlS: 2,
      log: quiet,
    });
    try {
      await shard.registerShard({ id: 's2', address: '127.0.0.1:2222', startedAt: 'now' });
      await shard.markLoaded({ bank: 'job-3', version: 1, partition: 4 }, { rows: 1, dim: 1, index: 'Flat' });
      const raw = new Etcd3({ hosts: etcd.url });
      try {
        const kv = (await raw.get('/reg-test/shards/s2').exec()).kvs[0];
        await raw.leaseClient.leaseRevoke({ ID: kv.lease });
        assert.equal(await raw.get('/reg-test/shards/s2').string(), null);
      } finally {
        raw.close();
      }
      await waitUntil(
        async () => (await admin.listShards()).some((s) => s.id === 's2'),
        'the shard key to return',
        8000,
      );
      await waitUntil(
        async () => (await admin.listLoaded('job-3')).length === 1,
        'the loaded key to return',
        8000,
      );
    } finally {
      await shard.close();
    }
  });

  it('starts while etcd is down and registers once it is up', async () => {
    await etcd.halt();
    const shard = new Registry({
      endpoints: [etcd.endpoint],
      prefix: '/reg-test/',
      leaseTtlS: 2,
      log: quiet,
    });
    try {
      const reg = await shard.registerShard({ id: 's4', address: '127.0.0.1:4444', startedAt: 'now' });
      assert.equal(reg.registered, false);
      const announced = shard.markLoaded(
        { bank: 'job-5', version: 1, partition: 0 },
        { rows: 1, dim: 1, index: 'Flat' },
      );
      announced.catch(() => undefined); // rejects while etcd is down; the loop retries
      await etcd.start();
      await waitUntil(() => reg.registered, 'the registration to go through', 10_000);
      assert.ok((await admin.listShards()).some((s) => s.id === 's4'));
      assert.equal((await admin.listLoaded('job-5')).length, 1);
    } finally {
      await shard.close();
    }
  });

  it('keeps the last view while etcd is down and resyncs after a restart, even from empty', async () => {
    const shard = new Registry({
      endpoints: [etcd.endpoint],
      prefix: '/reg-test/',
      leaseTtlS: 2,
      log: quiet,
    });
    const views: ClusterView[] = [];
    const watcher = admin.watchView((v) => views.push(v));
    try {
      await watcher.ready;
      await admin.putVersion(record('job-4', 1, 'ready'));
      await admin.activate('job-4', 1);
      await shard.registerShard({ id: 's3', address: '127.0.0.1:3333', startedAt: 'now' });
      await shard.markLoaded(
        { bank: 'job-4', version: 1, partition: 0 },
        { rows: 10, dim: 4, index: 'Flat' },
      );
      await waitUntil(
        () => watcher.view.loaded.get('job-4/1/0')?.has('s3'),
        'the view to show the loaded partition',
      );
      assert.equal(watcher.view.active.get('job-4'), 1);

      await etcd.halt();
      await waitUntil(() => !watcher.view.connected, 'the view to notice etcd is gone');
      // Gateways keep serving on the last view.
      assert.ok(watcher.view.shards.has('s3'));
      assert.equal(watcher.view.active.get('job-4'), 1);

      await etcd.start();
      await waitUntil(() => watcher.view.connected, 'the view to reconnect');
      await admin.putVersion(record('job-4', 2, 'building'));
      await waitUntil(() => watcher.view.versions.has('job-4/2'), 'a change after the restart to show up');

      // etcd loses everything: the view follows, and the shard puts itself back.
      await etcd.restart({ wipe: true });
      await waitUntil(
        () => watcher.view.connected && !watcher.view.versions.has('job-4/1'),
        'the view to resync',
      );
      await waitUntil(
        () => watcher.view.shards.has('s3') && watcher.view.loaded.get('job-4/1/0')?.has('s3'),
        'the shard to re-register after the wipe',
        10_000,
      );
      assert.ok(views.some((v) => !v.connected));
    } finally {
      await shard.close();
      await watcher.close();
    }
  });
});
