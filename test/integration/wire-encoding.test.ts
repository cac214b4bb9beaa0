/**
 * Float16 queries over real gRPC on loopback: two in-process shards, one registered as this release
 * registers (advertising float16), one as an earlier release did (no `vectorEncodings`); the
 * gateway's fan-out sends each what it decodes, and the merged neighbours match an exact search.
 * Then the anomaly maps of real embeddings through the float16 packing against float32.
 */
import assert from 'node:assert/strict';
import { KnnIndex, KnnResult } from '../../lib/knn/index';
import { mulberry32 } from '../../lib/util/random';
import { ShardClient } from '../../lib/cluster/shard-client';
import { keyLayout } from '../../lib/cluster/keys';
import { BankVersionRecord } from '../../lib/cluster/types';
import { viewFromKvs } from '../../lib/cluster/view';
import { VectorEncoding } from '../../lib/cluster/vector-encoding';
import { Logger, LogFields } from '../../lib/util/log';
import { RunningShard, startShard } from '../../services/shard/server';
import { ClusterSearcher } from '../../services/gateway/cluster-searcher';
import { WatchedShardDirectory } from '../../services/gateway/shard-directory';
import { BackbonePool } from '../../lib/patchcore/engine';
import { DEFAULT_FIT } from '../../lib/patchcore/fit';
import { mapDifference } from '../../bench/wire-encoding';
import { PrintDataset, printDataset } from '../helpers/fixtures';

const DIM = 96;
const ROWS = 2000;

/** Records the encoding of every Search a shard serves (its debug line). */
function recordingLog(seen: string[]): Logger {
  const log: Logger = {
    debug: (msg: string, fields?: LogFields) => {
      if (msg === 'search') seen.push(String(fields?.encoding));
    },
    info() {},
    warn() {},
    error() {},
    child: () => log,
  };
  return log;
}

describe('float16 queries on the shard hop (real gRPC, loopback)', function () {
  this.timeout(30_000);
  const rand = mulberry32(3);
  const vectors = Float32Array.from({ length: ROWS * DIM }, () => rand() * 4 - 2);
  const queries = Float32Array.from({ length: 50 * DIM }, () => rand() * 4 - 2);
  const record: BankVersionRecord = {
    bank: 'job',
    version: 1,
    state: 'ready',
    createdAt: 't',
    meta: {},
    index: 'Flat',
    nprobe: 0,
    partitions: [
      { partition: 0, rowOffset: 0, rows: ROWS / 2, shards: ['new'] },
      { partition: 1, rowOffset: ROWS / 2, rows: ROWS / 2, shards: ['old'] },
    ],
  };
  const seen: Record<string, string[]> = { new: [], old: [] };
  const shards: RunningShard[] = [];
  let directory: (preferred: VectorEncoding) => WatchedShardDirectory;
  const exact = KnnIndex.build(vectors, DIM).searchSync(queries, 3);

  /** The same neighbours as one exact search over the whole bank, distances within `rel`. */
  function assertNear(got: KnnResult, rel: number): void {
    assert.deepEqual([...got.labels].map(Number), [...exact.labels].map(Number));
    for (let i = 0; i < exact.distances.length; i++) {
      const d = Math.abs(got.distances[i] - exact.distances[i]) / exact.distances[i];
      assert.ok(d < rel, `distance ${i}: ${got.distances[i]} vs ${exact.distances[i]}`);
    }
  }

  before(async () => {
    const keys = keyLayout('/spi/');
    const kvs: { key: string; value: string }[] = [];
    for (const [i, id] of ['new', 'old'].entries()) {
      const shard = await startShard({ host: '127.0.0.1', port: 0, id, log: recordingLog(seen[id]) });
      shards.push(shard);
      const p = record.partitions[i];
      const ref = { bank: 'job', version: 1, partition: p.partition };
      const client = new ShardClient(shard.address);
      const part = vectors.subarray(p.rowOffset * DIM, (p.rowOffset + p.rows) * DIM);
      await client.loadPartition({ ref, dim: DIM, rowOffset: p.rowOffset }, part);
      client.close();
      // The old shard's record as an earlier release wrote it: no vectorEncodings.
      const info = id === 'new' ? shard.info : { id, address: shard.address, startedAt: 't' };
      kvs.push({ key: keys.shard(id), value: JSON.stringify(info) });
      kvs.push({
        key: keys.loaded(ref, id),
        value: JSON.stringify({ rows: p.rows, dim: DIM, index: 'Flat' }),
      });
    }
    const view = viewFromKvs('/spi/', kvs, 1);
    directory = (preferred) => new WatchedShardDirectory(() => view, null, preferred);
  });

  after(async () => {
    await Promise.all(shards.map((s) => s.close(0)));
  });

  it('this release advertises float16 in its registration', () => {
    assert.deepEqual(shards[0].info.vectorEncodings, ['f32', 'f16']);
  });

  /** One fan-out through a gateway directory that prefers `preferred`: what it found, what each shard got. */
  async function fanOut(preferred: VectorEncoding): Promise<{ got: KnnResult; sent: typeof seen }> {
    seen.new.length = seen.old.length = 0;
    const dir = directory(preferred);
    try {
      return { got: await new ClusterSearcher(record, dir).search(queries, DIM, 3), sent: seen };
    } finally {
      dir.close();
    }
  }

  it('sends float16 to the shard that decodes it, float32 to the earlier one, and finds the same neighbours', async () => {
    const { got, sent } = await fanOut('f16');
    assert.deepEqual(sent, { new: ['VECTOR_ENCODING_FLOAT16'], old: ['VECTOR_ENCODING_FLOAT32'] });
    assertNear(got, 1e-3);
  });

  it('--wire-encoding f32 sends float32 to every shard, with the float32 distances', async () => {
    const { got, sent } = await fanOut('f32');
    assert.deepEqual(sent, { new: ['VECTOR_ENCODING_FLOAT32'], old: ['VECTOR_ENCODING_FLOAT32'] });
    // Not bit-equal: faiss' GEMM sums a partition in another order than the whole bank.
    assertNear(got, 1e-6);
  });
});

describe('anomaly maps through float16 queries (real backbone, generated prints)', function () {
  this.timeout(120_000);
  const pool = new BackbonePool();
  let data: PrintDataset;

  before(async () => {
    data = await printDataset();
  });
  after(() => pool.close());

  it('move by less than 1e-3 relative, per pixel and in the image score', async () => {
    const test = [...data.testGood, ...data.testDefective];
    const d = await mapDifference(pool, 'plain', data.root, data.train, test);
    assert.ok(d.maxPixelRelative < 1e-3, JSON.stringify(d));
    assert.ok(d.maxScoreRelative < 1e-3, JSON.stringify(d));
    assert.ok(d.maxAbsEmbedding < 65504, 'embeddings fit float16');
  });

  it('with a nominal reference, by less than 1e-3 of the map peak (pixels near zero have no relative error to speak of)', async () => {
    const test = [...data.testGood, ...data.testDefective];
    const d = await mapDifference(pool, 'framed', data.root, data.train, test, {
      score: { ...DEFAULT_FIT.score, reference: 'mean' },
      holdoutFraction: 0.3,
    });
    assert.ok(d.maxDiffOverPeak < 1e-3, JSON.stringify(d));
    assert.ok(d.maxScoreRelative < 1e-3, JSON.stringify(d));
  });
});
