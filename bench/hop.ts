/**
 * What one gRPC hop costs on this machine, to read the cluster's overhead against: a trivial unary
 * call (ListPartitions) and one image's Search (784 x 96 float32 queries) to a real shard process on
 * loopback, against the same search on the same vectors in this process, interleaved.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ShardClient } from '../lib/cluster/shard-client';
import { KnnIndex } from '../lib/knn/index';
import { mulberry32 } from '../lib/util/random';
import { TEST_TMP, spawnNodeService } from '../services/local/processes';
import { percentile, round } from './stats';

export interface HopResult {
  bankRows: number;
  queries: number;
  dim: number;
  queryKiB: number;
  /** p50 ms of each. */
  trivialCallMs: number;
  searchRemoteMs: number;
  searchLocalMs: number;
  /** searchRemoteMs - searchLocalMs: what the hop adds to one image's search. */
  hopMs: number;
  runs: number;
}

export async function benchHop(runs = 60, bankRows = 1500, queries = 784, dim = 96): Promise<HopResult> {
  fs.mkdirSync(TEST_TMP, { recursive: true });
  const dir = fs.mkdtempSync(path.join(TEST_TMP, 'hop-'));
  const shard = spawnNodeService('services/shard/main.ts', {
    name: 'hop-shard',
    args: ['--host', '127.0.0.1', '--port', '0', '--id', 'hop', '--data-dir', dir, '--metrics-port', 'off'],
  });
  const client = await shard
    .waitForLine('shard ready', 30_000)
    .then((ready) => new ShardClient(`127.0.0.1:${Number(ready.fields.port)}`));
  try {
    const rand = mulberry32(5);
    const vectors = Float32Array.from({ length: bankRows * dim }, () => rand());
    const q = Float32Array.from({ length: queries * dim }, () => rand());
    const ref = { bank: 'hop', version: 1, partition: 0 };
    await client.loadPartition({ ref, dim, rowOffset: 0 }, vectors);
    const local = KnnIndex.build(vectors, dim);
    const t = { trivial: [] as number[], remote: [] as number[], local: [] as number[] };
    const time = async (into: number[], fn: () => Promise<unknown>) => {
      const t0 = performance.now();
      await fn();
      into.push(performance.now() - t0);
    };
    for (let i = 0; i < runs + 5; i++) {
      const sample = i >= 5; // the first few warm up channels, caches and threads
      const skip: number[] = [];
      await time(sample ? t.trivial : skip, () => client.listPartitions());
      await time(sample ? t.remote : skip, () => client.search(ref, q, dim, 1));
      await time(sample ? t.local : skip, () => local.search(q, 1));
    }
    const p50 = (v: number[]) => round(percentile(v, 50), 2);
    return {
      bankRows,
      queries,
      dim,
      queryKiB: round((queries * dim * 4) / 1024, 0),
      trivialCallMs: p50(t.trivial),
      searchRemoteMs: p50(t.remote),
      searchLocalMs: p50(t.local),
      hopMs: round(p50(t.remote) - p50(t.local), 2),
      runs,
    };
  } finally {
    client.close();
    await shard.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
