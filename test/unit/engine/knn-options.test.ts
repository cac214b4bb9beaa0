import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sha256, vectorBytes } from '../../../lib/bank/bank-store';
import { Logger } from '../../../lib/util/log';
import { fromFloat16, toFloat16 } from '../../../lib/util/float16';
import { PartitionStore } from '../../../services/shard/partition-store';
import { DEFAULT_ADMIN, toBuildRequest } from '../../../services/gateway/admin-service';
import { buildSpec } from '../../../lib/rpc/messages';
import {
  AUTO_HNSW_MIN_ROWS,
  DEFAULT_KNN,
  INDEX_PRESETS,
  KnnIndex,
  parseFactory,
  resolveKnn,
} from '../../../lib/knn/index';
import { buildIndex } from '../../../lib/knn/build-worker';
import { ompThreads } from '../../../lib/knn/faiss';
import { mulberry32 } from '../../../lib/util/random';

/** Points around a few hundred centres (the same centres for every seed), like patch embeddings. */
function clustered(n: number, dim: number, seed: number): Float32Array {
  const centreRand = mulberry32(99);
  const centres = Float32Array.from({ length: 200 * dim }, () => centreRand());
  const rand = mulberry32(seed);
  const out = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) {
    const c = Math.floor(rand() * 200);
    for (let k = 0; k < dim; k++) out[i * dim + k] = centres[c * dim + k] + 0.3 * (rand() - 0.5);
  }
  return out;
}

/** Share of queries whose nearest distance equals the exact one. */
function recallAt1(got: Float32Array, exact: Float32Array): number {
  let hits = 0;
  for (let i = 0; i < exact.length; i++) if (Math.abs(got[i] - exact[i]) <= 1e-5 * exact[i] + 1e-6) hits++;
  return hits / exact.length;
}

describe('knn search options (HNSW, search parameters in the factory string)', () => {
  const dim = 24;
  const bank = clustered(3000, dim, 1);
  const queries = clustered(400, dim, 2);
  const exact = KnnIndex.build(bank, dim, { factory: 'Flat' }).searchSync(queries, 1).distances;

  it('splits a factory string from its search parameters and expands presets', () => {
    assert.deepEqual(parseFactory('HNSW32,Flat,efSearch=48,rerank=0.02'), {
      factory: 'HNSW32,Flat',
      params: [{ name: 'efSearch', value: 48 }],
      rerank: 0.02,
    });
    assert.deepEqual(parseFactory(' IVF64,Flat '), { factory: 'IVF64,Flat', params: [], rerank: 0 });
    assert.equal(parseFactory('hnsw').factory, 'HNSW16,Flat');
    assert.equal(parseFactory('hnsw').rerank, 0.02);
    assert.equal(resolveKnn({ factory: 'HNSW', nprobe: 8 }).factory, INDEX_PRESETS.hnsw);
    assert.deepEqual(resolveKnn({ factory: 'IVF64,Flat', nprobe: 4 }), { factory: 'IVF64,Flat', nprobe: 4 });
    assert.throws(() => parseFactory('efSearch=4,HNSW32'), /after the factory string/);
    assert.throws(() => parseFactory('HNSW32,Flat,efSearch=lots'), /not a search parameter/);
    assert.throws(() => parseFactory('efSearch=4'), /no faiss factory string/);
  });

  it('HNSW finds nearly every exact neighbour, more of them with a larger efSearch', () => {
    const low = KnnIndex.build(bank, dim, { factory: 'HNSW8,Flat,efSearch=1' });
    const high = KnnIndex.deserialize(low.serialize(), { factory: 'HNSW8,Flat,efSearch=128' });
    const lowRecall = recallAt1(low.searchSync(queries, 1).distances, exact);
    const highRecall = recallAt1(high.searchSync(queries, 1).distances, exact);
    assert.ok(highRecall >= 0.99, `efSearch 128: recall@1 ${highRecall}`);
    assert.ok(lowRecall < highRecall, `efSearch 1 (${lowRecall}) should miss more than 128 (${highRecall})`);
    // Stored vectors find themselves at distance 0.
    const self = high.searchSync(bank.subarray(0, 10 * dim), 1);
    for (let i = 0; i < 10; i++) assert.ok(self.distances[i] < 1e-3);
  });

  it('the preset builds on a worker thread, its efSearch restored with the index', async function () {
    this.timeout(30_000);
    const config = resolveKnn({ factory: 'hnsw' });
    const there = await buildIndex(bank, dim, config);
    assert.equal(there.size, 3000);
    assert.deepEqual(there.config, config);
    // faiss adds to an HNSW graph from several threads: the graph, hence a rare tie or miss, may differ
    // from one build to the next, so the test holds the answers to the exact ones, not to another build.
    const found = await there.search(queries, 2);
    const recall = recallAt1(
      found.distances.filter((_, i) => i % 2 === 0),
      exact,
    );
    assert.ok(recall >= 0.99, `recall@1 ${recall}`);
  });

  it('rerank: the queries farthest from the bank get their exact neighbours, on both search paths', async () => {
    // efSearch 1 on a sparse graph misses many neighbours; re-ranking 30 % fixes the worst of them.
    const config = { factory: 'HNSW4,Flat,efSearch=1,rerank=0.3' };
    const index = KnnIndex.build(bank, dim, config);
    const plain = KnnIndex.deserialize(index.serialize(), { factory: 'HNSW4,Flat,efSearch=1' }).searchSync(
      queries,
      1,
    );
    const fixed = index.searchSync(queries, 1);
    const asynchronous = await index.search(queries, 1);
    assert.deepEqual(Array.from(asynchronous.distances), Array.from(fixed.distances));
    // Float16 queries (as shards get them) are re-ranked on their widened values.
    const halves = toFloat16(queries);
    assert.deepEqual(
      Array.from((await index.search(halves, 1)).distances),
      Array.from(index.searchSync(fromFloat16(halves), 1).distances),
    );
    // The 30 % of queries with the largest approximate distances are exact now...
    const order = Array.from(plain.distances.keys()).sort((a, b) => plain.distances[b] - plain.distances[a]);
    for (const q of order.slice(0, Math.ceil((0.3 * queries.length) / dim)))
      assert.ok(Math.abs(fixed.distances[q] - exact[q]) <= 1e-5 * exact[q] + 1e-6, `query ${q}`);
    // ...the others untouched; an approximate distance is never below the exact one.
    for (const q of order.slice(Math.ceil((0.3 * queries.length) / dim)))
      assert.equal(fixed.distances[q], plain.distances[q]);
    fixed.distances.forEach((d, q) => assert.ok(d >= exact[q] - 1e-5, `query ${q}`));
    assert.ok(recallAt1(plain.distances, exact) < recallAt1(fixed.distances, exact));
    // Serialised with its exact copy; without the copy the bytes are refused.
    const restored = KnnIndex.deserialize(index.serialize(), config);
    assert.deepEqual(Array.from(restored.searchSync(queries, 1).distances), Array.from(fixed.distances));
    const bare = KnnIndex.build(bank, dim, { factory: 'HNSW4,Flat' }).serialize();
    assert.throws(() => KnnIndex.deserialize(bare, config), /no exact copy for rerank/);
    assert.throws(() => parseFactory('HNSW32,Flat,rerank=2'), /fraction/);
  });

  it('a shard partition with HNSW and rerank: built off-thread, searched, reloaded from its file', async function () {
    this.timeout(30_000);
    const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };
    fs.mkdirSync(path.resolve('.test-tmp'), { recursive: true });
    const dir = fs.mkdtempSync(path.resolve('.test-tmp/hnsw-store-'));
    try {
      const store = PartitionStore.open({ dataDir: dir, log: quiet });
      const factory = 'HNSW16,Flat,efSearch=64,rerank=0.05';
      const ref = { bank: 'b', version: 1, partition: 0 };
      const rows = bank.length / dim;
      const info = await store.load(
        { ref, dim, rows, rowOffset: 0, index: factory, nprobe: 0, sha256: sha256(vectorBytes(bank)) },
        bank,
      );
      assert.equal(info.rows, rows);
      const got = await store.search(ref, queries, dim, 1);
      const recall = recallAt1(got.distances, exact);
      assert.ok(recall >= 0.99, `recall@1 ${recall}`);
      const again = PartitionStore.open({ dataDir: dir, log: quiet });
      const after = await again.search(ref, queries, dim, 1);
      assert.deepEqual(Array.from(after.distances), Array.from(got.distances));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a BuildSpec naming the preset gives the cluster build (and so its shards) the full factory string', () => {
    const req = toBuildRequest(
      'create',
      buildSpec({ bank: 'b', index: 'hnsw', auto: 'off' }),
      [],
      DEFAULT_ADMIN,
    );
    assert.equal(req.settings.knn.factory, INDEX_PRESETS.hnsw);
    const plain = toBuildRequest('create', buildSpec({ bank: 'b', auto: 'off' }), [], DEFAULT_ADMIN);
    assert.equal(plain.settings.knn.factory, 'auto', 'each shard resolves it by its partition rows');
  });

  it('auto, the default: exact below the row bound, the hnsw preset from it, on every build path', async function () {
    this.timeout(30_000);
    assert.equal(DEFAULT_KNN.factory, 'auto');
    assert.equal(resolveKnn({ factory: 'auto' }).factory, 'auto', 'unresolved until the rows are known');
    assert.equal(resolveKnn({ factory: 'Auto' }, AUTO_HNSW_MIN_ROWS - 1).factory, 'Flat');
    assert.equal(resolveKnn({ factory: 'auto' }, AUTO_HNSW_MIN_ROWS).factory, INDEX_PRESETS.hnsw);
    assert.equal(KnnIndex.build(bank, dim, { factory: 'auto' }).config.factory, 'Flat');
    const large = clustered(AUTO_HNSW_MIN_ROWS, 4, 3);
    const built = await buildIndex(large, 4, { factory: 'auto' });
    assert.equal(built.config.factory, INDEX_PRESETS.hnsw);
    // A shard records what it built, so its file reloads the same index.
    const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };
    const store = PartitionStore.open({ log: quiet });
    const ref = { bank: 'b', version: 1, partition: 0 };
    const rows = bank.length / dim;
    const sha = sha256(vectorBytes(bank));
    const info = await store.load(
      { ref, dim, rows, rowOffset: 0, index: 'auto', nprobe: 0, sha256: sha },
      bank,
    );
    assert.equal(info.index, 'Flat');
  });

  it('an HNSW graph is the same on every build of the same bank (replicas answer alike)', () => {
    const dim = 16;
    const bank = clustered(12_000, dim, 5);
    const queries = clustered(1_000, dim, 6);
    const threads = ompThreads();
    const [a, b] = [0, 1].map(() => KnnIndex.build(bank, dim, { factory: 'HNSW16,Flat,efSearch=16' }));
    assert.equal(ompThreads(), threads, "the calling thread's OpenMP threads are restored after the build");
    assert.throws(() => ompThreads(0), /thread count >= 1/);
    const ra = a.searchSync(queries, 3);
    const rb = b.searchSync(queries, 3);
    assert.deepEqual([...ra.labels], [...rb.labels]);
    assert.deepEqual([...ra.distances], [...rb.distances]);
    assert.ok(a.serialize().equals(b.serialize()), 'the same graph, byte for byte');
  });

  it('refuses a parameter the index does not have, naming it', () => {
    assert.throws(
      () => KnnIndex.build(bank, dim, { factory: 'Flat,efSearch=16' }),
      /cannot set efSearch on a Flat index/,
    );
  });
});
