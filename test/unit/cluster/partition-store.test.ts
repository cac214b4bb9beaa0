import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sha256, vectorBytes } from '../../../lib/bank/bank-store';
import { KnnIndex } from '../../../lib/knn/index';
import { mulberry32 } from '../../../lib/util/random';
import { SpiError } from '../../../lib/errors';
import { LoadHeader, PartitionStore } from '../../../services/shard/partition-store';
import { listPartitionFiles, partitionFile } from '../../../services/shard/partition-file';
import { Logger } from '../../../lib/util/log';

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };

function randomVectors(rows: number, dim: number, seed: number): Float32Array {
  const rand = mulberry32(seed);
  return Float32Array.from({ length: rows * dim }, () => rand() * 2 - 1);
}

function header(vectors: Float32Array, dim: number, over: Partial<LoadHeader> = {}): LoadHeader {
  return {
    ref: { bank: 'b', version: 1, partition: 0 },
    dim,
    rows: vectors.length / dim,
    rowOffset: 100,
    index: 'Flat',
    nprobe: 0,
    sha256: sha256(vectorBytes(vectors)),
    ...over,
  };
}

async function rejectsKind(p: Promise<unknown>, kind: string, re?: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof SpiError, String(err));
    assert.equal(err.kind, kind, err.message);
    if (re) assert.match(err.message, re);
    return true;
  });
}

describe('services/shard/partition-store (no gRPC)', function () {
  const dim = 8;
  const vectors = randomVectors(300, dim, 1);
  const queries = randomVectors(5, dim, 2);
  let dir: string;

  beforeEach(() => {
    fs.mkdirSync(path.resolve('.test-tmp'), { recursive: true });
    dir = fs.mkdtempSync(path.resolve('.test-tmp/store-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('loads, searches with global rows, and reloads from disk', async () => {
    const store = PartitionStore.open({ dataDir: dir, log: quiet });
    const announced: string[] = [];
    await store.setAnnouncer({
      markLoaded: async (ref) => void announced.push(`+${ref.bank}/${ref.version}/${ref.partition}`),
      markDropped: async (ref) => void announced.push(`-${ref.bank}/${ref.version}/${ref.partition}`),
    });
    const info = await store.load(header(vectors, dim), vectors);
    assert.equal(info.rows, 300);
    const want = KnnIndex.build(vectors, dim).searchSync(queries, 3);
    const got = await store.search(info.ref, queries, dim, 3);
    assert.deepEqual(
      [...got.labels],
      [...want.labels].map((l) => l + 100),
    );
    assert.deepEqual([...got.distances], [...want.distances]);

    const again = PartitionStore.open({ dataDir: dir, log: quiet });
    assert.deepEqual(again.list(), store.list());
    const after = await again.search(info.ref, queries, dim, 3);
    assert.deepEqual([...after.labels], [...got.labels]);

    assert.equal(await store.drop(info.ref), true);
    assert.equal(await store.drop(info.ref), false);
    assert.deepEqual(announced, ['+b/1/0', '-b/1/0', '-b/1/0']);
    assert.deepEqual(listPartitionFiles(dir), []);
  });

  it('refuses bad uploads with the right kind and replaces nothing', async () => {
    const store = PartitionStore.open({ dataDir: dir, log: quiet });
    await store.load(header(vectors, dim), vectors);
    const other = randomVectors(300, dim, 3);
    await rejectsKind(
      store.load(header(other, dim, { sha256: 'ab'.repeat(32) }), other),
      'DATA_LOSS',
      /sha256/,
    );
    await rejectsKind(store.load(header(other, dim, { rows: 299 }), other), 'INVALID_ARGUMENT', /more than/);
    await rejectsKind(store.load(header(other, dim, { rows: 301 }), other), 'INVALID_ARGUMENT', /received/);
    await rejectsKind(
      store.load(header(other, dim, { index: 'IVF512,Flat' }), other),
      'FAILED_PRECONDITION',
      /IVF512/,
    );
    await rejectsKind(store.load(header(other, dim, { index: 'Bogus' }), other), 'INVALID_ARGUMENT', /Bogus/);
    const still = await store.search({ bank: 'b', version: 1, partition: 0 }, queries, dim, 1);
    const want = KnnIndex.build(vectors, dim).searchSync(queries, 1);
    assert.deepEqual(
      [...still.labels],
      [...want.labels].map((l) => l + 100),
    );
  });

  it('replaces a partition loaded again, on disk too', async () => {
    const store = PartitionStore.open({ dataDir: dir, log: quiet });
    await store.load(header(vectors, dim), vectors);
    const other = randomVectors(50, dim, 4);
    await store.load(header(other, dim, { rowOffset: 0 }), other);
    const want = KnnIndex.build(other, dim).searchSync(queries, 2);
    for (const s of [store, PartitionStore.open({ dataDir: dir, log: quiet })]) {
      assert.deepEqual(
        s.list().map((p) => p.rows),
        [50],
      );
      const got = await s.search({ bank: 'b', version: 1, partition: 0 }, queries, dim, 2);
      assert.deepEqual([...got.labels], [...want.labels]);
    }
    assert.equal(listPartitionFiles(dir).length, 1);
  });

  it('answers NOT_FOUND and INVALID_ARGUMENT for bad searches', async () => {
    const store = PartitionStore.open({ log: quiet });
    await store.load(header(vectors, dim), vectors);
    await rejectsKind(
      store.search({ bank: 'b', version: 2, partition: 0 }, queries, dim, 1),
      'NOT_FOUND',
      /b\/2\/0/,
    );
    await rejectsKind(
      store.search({ bank: 'b', version: 1, partition: 0 }, queries, 4, 1),
      'INVALID_ARGUMENT',
      /dim/,
    );
    await rejectsKind(
      store.search({ bank: 'b', version: 1, partition: 0 }, queries, dim, 0),
      'INVALID_ARGUMENT',
      /k/,
    );
  });

  it('moves a corrupt file aside on reload and keeps serving the rest', async () => {
    const store = PartitionStore.open({ dataDir: dir, log: quiet });
    await store.load(header(vectors, dim), vectors);
    await store.load(header(vectors, dim, { ref: { bank: 'b', version: 1, partition: 1 } }), vectors);
    const file = partitionFile(dir, { bank: 'b', version: 1, partition: 1 });
    const bytes = fs.readFileSync(file);
    bytes[bytes.length - 10] ^= 0xff;
    fs.writeFileSync(file, bytes);
    const again = PartitionStore.open({ dataDir: dir, log: quiet });
    assert.deepEqual(
      again.list().map((p) => p.ref.partition),
      [0],
    );
    assert.equal(fs.existsSync(file), false);
    assert.equal(fs.readdirSync(path.dirname(file)).filter((f) => f.includes('.corrupt-')).length, 1);
  });

  it('gives back the vectors it loaded (ReadPartition), from memory, from disk and after a reload', async () => {
    const ref = { bank: 'b', version: 1, partition: 0 };
    const memory = PartitionStore.open({ log: quiet });
    await memory.load(header(vectors, dim), vectors);
    assert.deepEqual(memory.readVectors(ref), vectors);
    assert.equal('vectors' in memory.list()[0], false, 'summaries do not carry the vectors');
    const disk = PartitionStore.open({ dataDir: dir, log: quiet });
    await disk.load(header(vectors, dim), vectors);
    assert.deepEqual(PartitionStore.open({ dataDir: dir, log: quiet }).readVectors(ref), vectors);
    await rejectsKind(
      Promise.resolve().then(() => disk.readVectors({ ...ref, partition: 5 })),
      'NOT_FOUND',
    );
    // A partition persisted before shards kept vectors cannot be added to: a clear refusal.
    fs.rmSync(`${partitionFile(dir, ref)}.f32`);
    await rejectsKind(
      Promise.resolve().then(() => disk.readVectors(ref)),
      'FAILED_PRECONDITION',
      /rebuild/,
    );
    await disk.load(header(vectors, dim), vectors);
    await disk.drop(ref);
    assert.equal(fs.existsSync(path.join(dir, 'partitions', 'b')), false, 'nothing left behind');
  });

  it('reads a few rows by their global bank row (ReadRows), from memory and from disk', async () => {
    const ref = { bank: 'b', version: 1, partition: 0 };
    const rows = [100 + 7, 100 + 0, 100 + 299, 100 + 7];
    const want = new Float32Array(rows.length * dim);
    rows.forEach((r, i) => want.set(vectors.subarray((r - 100) * dim, (r - 99) * dim), i * dim));
    const memory = PartitionStore.open({ log: quiet });
    await memory.load(header(vectors, dim), vectors);
    assert.deepEqual(memory.readRows(ref, rows), want);
    const disk = PartitionStore.open({ dataDir: dir, log: quiet });
    await disk.load(header(vectors, dim), vectors);
    assert.deepEqual(PartitionStore.open({ dataDir: dir, log: quiet }).readRows(ref, rows), want);
    // Rows are global: the partition starts at row 100 and holds 300.
    for (const row of [99, 400, 1.5])
      await rejectsKind(
        Promise.resolve().then(() => disk.readRows(ref, [row])),
        'INVALID_ARGUMENT',
        /100\.\.399/,
      );
    await rejectsKind(
      Promise.resolve().then(() => disk.readRows({ ...ref, partition: 5 }, [100])),
      'NOT_FOUND',
    );
  });
});
