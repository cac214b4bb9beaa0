/**
 * Real bank-shard processes and a real etcd on loopback: load over gRPC, search against an in-process
 * exact index, refusals, restart from the data dir, etcd restarts, lease loss, SIGTERM.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { KnnIndex } from '../../lib/knn/index';
import { mulberry32 } from '../../lib/util/random';
import { SpiError } from '../../lib/errors';
import { Registry } from '../../lib/cluster/registry';
import { ShardClient } from '../../lib/cluster/shard-client';
import { PartitionRef } from '../../lib/cluster/types';
import { Logger } from '../../lib/util/log';
import { TestEtcd, startEtcd } from '../helpers/etcd';
import { ManagedProcess, TEST_TMP, killAll, spawnNodeService, waitUntil } from '../helpers/processes';

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };
const DIM = 32;
const TTL_S = 2;

function randomVectors(rows: number, seed: number): Float32Array {
  const rand = mulberry32(seed);
  return Float32Array.from({ length: rows * DIM }, () => rand() * 2 - 1);
}

async function rejectsKind(p: Promise<unknown>, kind: string, re?: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof SpiError, String(err));
    assert.equal(err.kind, kind, err.message);
    if (re) assert.match(err.message, re);
    return true;
  });
}

describe('bank shard process (real etcd, real shard)', function () {
  this.timeout(30_000);
  const id = 'shard-a';
  const vectors = randomVectors(3000, 1);
  const queries = randomVectors(64, 2);
  const flat: PartitionRef = { bank: 'job', version: 1, partition: 0 };
  let etcd: TestEtcd;
  let registry: Registry;
  let dataDir: string;
  let shard: ManagedProcess;
  let client: ShardClient;

  async function startShard(): Promise<void> {
    shard = spawnNodeService('services/shard/main.ts', {
      name: id,
      args: [
        '--host',
        '127.0.0.1',
        '--port',
        '0',
        '--data-dir',
        dataDir,
        '--etcd',
        etcd.endpoint,
        '--id',
        id,
      ],
      env: { SPI_LEASE_TTL: String(TTL_S) },
    });
    const ready = await shard.waitForLine('shard ready', 20_000);
    client?.close();
    client = new ShardClient(`127.0.0.1:${ready.fields.port as number}`);
  }

  const shardListed = async () => (await registry.listShards()).some((s) => s.id === id);
  const loadedHere = async (ref: PartitionRef) =>
    (await registry.listLoaded(ref.bank, ref.version)).some(
      (e) => e.ref.partition === ref.partition && e.shardId === id,
    );

  before(async () => {
    etcd = await startEtcd();
    registry = new Registry({ endpoints: [etcd.endpoint], log: quiet });
    fs.mkdirSync(TEST_TMP, { recursive: true });
    dataDir = fs.mkdtempSync(path.join(TEST_TMP, 'shard-'));
    await startShard();
  });

  after(async () => {
    client?.close();
    await shard?.stop();
    await registry?.close();
    await etcd?.stop();
    await killAll();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('registers itself in etcd with the address it serves on', async () => {
    await waitUntil(shardListed, 'the shard key');
    const info = (await registry.listShards()).find((s) => s.id === id);
    assert.equal(info?.address, client.address);
  });

  it('loads a Flat partition and answers like an in-process exact index (global rows)', async () => {
    const info = await client.loadPartition(
      { ref: flat, dim: DIM, rowOffset: 5000, index: 'Flat' },
      vectors,
      {
        chunkBytes: 64 * 1024,
      },
    );
    assert.deepEqual(info, { partition: flat, rows: 3000, dim: DIM, index: 'Flat' });
    assert.ok(await loadedHere(flat), 'announced in etcd when LoadPartition answers');

    const want = KnnIndex.build(vectors, DIM).searchSync(queries, 5);
    // Many at once: they run on the libuv pool; every answer must be the exact one.
    const replies = await Promise.all(Array.from({ length: 16 }, () => client.search(flat, queries, DIM, 5)));
    for (const got of replies) {
      assert.equal(got.k, 5);
      assert.deepEqual(
        [...got.labels],
        [...want.labels].map((l) => l + 5000),
      );
      got.distances.forEach((d, i) => assert.ok(Math.abs(d - want.distances[i]) < 1e-4, `distance ${i}`));
    }
    // A view into a larger array (the shard copies only if grpc hands it unaligned bytes).
    const one = await client.search(flat, queries.subarray(DIM, 2 * DIM), DIM, 1);
    assert.equal(one.labels[0], want.labels[5] + 5000);
  });

  it('builds IVF indexes, and refuses IVF with too few rows', async () => {
    const ref = { bank: 'job', version: 1, partition: 1 };
    const rows = vectors.subarray(0, 2000 * DIM);
    await client.loadPartition({ ref, dim: DIM, rowOffset: 0, index: 'IVF16,Flat', nprobe: 16 }, rows);
    // nprobe = all cells: IVF must agree with exact search.
    const want = KnnIndex.build(rows, DIM).searchSync(queries, 3);
    const got = await client.search(ref, queries, DIM, 3);
    assert.deepEqual([...got.labels], [...want.labels]);
    await rejectsKind(
      client.loadPartition(
        { ref: { ...ref, partition: 2 }, dim: DIM, rowOffset: 0, index: 'IVF256,Flat' },
        vectors.subarray(0, 100 * DIM),
      ),
      'FAILED_PRECONDITION',
      /IVF256.*256/,
    );
  });

  it('refuses a partition whose bytes do not match the header checksum, replacing nothing', async () => {
    const other = randomVectors(3000, 9);
    await rejectsKind(
      client.loadPartition({ ref: flat, dim: DIM, rowOffset: 5000, sha256: 'f'.repeat(64) }, other),
      'DATA_LOSS',
      /sha256/,
    );
    const got = await client.search(flat, queries, DIM, 1);
    const want = KnnIndex.build(vectors, DIM).searchSync(queries, 1);
    assert.deepEqual(
      [...got.labels],
      [...want.labels].map((l) => l + 5000),
    );
  });

  it('answers NOT_FOUND naming the partition, and INVALID_ARGUMENT for a wrong dim', async () => {
    await rejectsKind(
      client.search({ bank: 'nope', version: 3, partition: 7 }, queries, DIM, 1),
      'NOT_FOUND',
      /nope\/3\/7/,
    );
    await rejectsKind(client.search(flat, queries.subarray(0, 16 * 4), 16, 1), 'INVALID_ARGUMENT', /dim/);
  });

  it('drops partitions from memory, disk and etcd, idempotently', async () => {
    const ref = { bank: 'job', version: 1, partition: 1 };
    assert.equal(await client.dropPartition(ref), true);
    assert.equal(await client.dropPartition(ref), false);
    assert.equal(await loadedHere(ref), false);
    await rejectsKind(client.search(ref, queries, DIM, 1), 'NOT_FOUND');
    assert.deepEqual(
      (await client.listPartitions()).map((p) => p.partition),
      [flat],
    );
  });

  it('on SIGTERM deregisters at once and exits 0; restarted on its data dir it serves without a re-send', async () => {
    const exit = await shard.stop(10_000);
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.equal(await shardListed(), false, 'shard key gone by the time the process exits');
    assert.equal(await loadedHere(flat), false);

    await startShard();
    assert.ok(await shardListed());
    assert.ok(await loadedHere(flat), 're-announced before "shard ready"');
    const got = await client.search(flat, queries, DIM, 5);
    const want = KnnIndex.build(vectors, DIM).searchSync(queries, 5);
    assert.deepEqual(
      [...got.labels],
      [...want.labels].map((l) => l + 5000),
    );
  });

  it('stays registered across an etcd restart, and registers again after etcd lost its data', async () => {
    await etcd.restart({ downMs: 500 });
    // Search never depended on etcd.
    await client.search(flat, queries, DIM, 1);
    await waitUntil(shardListed, 'the shard key after the restart', 5000);
    // Still there after the TTL ran out twice: keepalives resumed (or it re-registered).
    await new Promise((r) => setTimeout(r, 2 * TTL_S * 1000 + 200));
    assert.ok(await shardListed());
    assert.ok(await loadedHere(flat));

    await etcd.restart({ wipe: true });
    await waitUntil(
      async () => (await shardListed()) && (await loadedHere(flat)),
      'the shard to re-register',
      10_000,
    );
  });

  it('re-registers after being frozen past its lease TTL (SIGSTOP / SIGCONT)', async () => {
    shard.pause();
    try {
      await waitUntil(
        async () => !(await shardListed()),
        'the lease of the frozen shard to expire',
        4 * TTL_S * 1000,
      );
    } finally {
      shard.resume();
    }
    await waitUntil(
      async () => (await shardListed()) && (await loadedHere(flat)),
      'the shard to come back',
      10_000,
    );
    await client.search(flat, queries, DIM, 1);
  });
});
