/**
 * What one gRPC hop costs on this machine, to read the cluster's overhead against: a trivial unary
 * call (ListPartitions) and one image's Search (784 x 96 queries, float16 on the wire as the gateway
 * sends them) to a real shard process on loopback, against the same search on the same vectors in
 * this process, and against a bare grpc-js call of the Search's request and reply bytes between the
 * same two processes (lib/rpc/bare-echo.ts), interleaved.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ShardClient } from '../lib/cluster/shard-client';
import { WireQueries, encodingMsg } from '../lib/cluster/vector-encoding';
import { BareEchoClient } from '../lib/rpc/bare-echo';
import { serviceDefinition } from '../lib/rpc/proto';
import { KnnIndex } from '../lib/knn/index';
import { mulberry32 } from '../lib/util/random';
import { SHARD_MEMORY_ENV, TEST_TMP, spawnNodeService } from '../services/local/processes';
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
  /** SearchRequest and SearchResponse bytes as grpc serialises them. */
  requestBytes: number;
  replyBytes: number;
  /** A bare grpc-js call of those bytes to the same shard process. */
  bareCallMs: number;
  /** hopMs / bareCallMs (target at most 1.3). */
  hopVsBare: number;
  runs: number;
}

const SEARCH = serviceDefinition('BankShard').Search;

export async function benchHop(
  runs = 250,
  bankRows = 1500,
  queries = 784,
  dim = 96,
  warmup = 100,
): Promise<HopResult> {
  fs.mkdirSync(TEST_TMP, { recursive: true });
  const dir = fs.mkdtempSync(path.join(TEST_TMP, 'hop-'));
  const shard = spawnNodeService('services/shard/main.ts', {
    env: SHARD_MEMORY_ENV,
    name: 'hop-shard',
    args: [
      ...['--host', '127.0.0.1', '--port', '0', '--id', 'hop', '--data-dir', dir, '--metrics-port', 'off'],
      '--bench-echo',
    ],
  });
  const address = await shard
    .waitForLine('shard ready', 30_000)
    .then((r) => `127.0.0.1:${Number(r.fields.port)}`);
  const client = new ShardClient(address);
  const bare = new BareEchoClient(address);
  try {
    const rand = mulberry32(5);
    const vectors = Float32Array.from({ length: bankRows * dim }, () => rand());
    const q = Float32Array.from({ length: queries * dim }, () => rand());
    const ref = { bank: 'hop', version: 1, partition: 0 };
    await client.loadPartition({ ref, dim, rowOffset: 0 }, vectors);
    const local = KnnIndex.build(vectors, dim);
    // Packed once, as the gateway packs an image's queries once for all the partitions it asks.
    const wire = new WireQueries(q);
    const payload = wire.payload('f16');
    const requestBytes = SEARCH.requestSerialize({
      partition: ref,
      queries: payload.bytes,
      dim,
      k: 1,
      encoding: encodingMsg(payload.encoding),
    }).length;
    const answer = await client.search(ref, wire, dim, 1, { encoding: 'f16' });
    const replyBytes = SEARCH.responseSerialize({
      distances: Buffer.from(
        answer.distances.buffer,
        answer.distances.byteOffset,
        answer.distances.byteLength,
      ),
      labels: Buffer.from(answer.labels.buffer, answer.labels.byteOffset, answer.labels.byteLength),
      k: answer.k,
    }).length;
    const echo = bare.request(requestBytes, replyBytes);
    const t = {
      trivial: [] as number[],
      remote: [] as number[],
      local: [] as number[],
      bare: [] as number[],
    };
    const time = async (into: number[], fn: () => Promise<unknown>) => {
      const t0 = performance.now();
      await fn();
      into.push(performance.now() - t0);
    };
    for (let i = 0; i < runs + warmup; i++) {
      // The first calls warm up channels, caches, threads and the JIT: a shard's Search handler and
      // the client's path run compiled only after some dozens of calls (60 samples after 5 warm-up
      // calls read 1.7-1.9x, 250 after them 1.3-1.7x on the same code), and a serving shard is warm.
      const sample = i >= warmup;
      const skip: number[] = [];
      await time(sample ? t.trivial : skip, () => client.listPartitions());
      await time(sample ? t.remote : skip, () => client.search(ref, wire, dim, 1, { encoding: 'f16' }));
      await time(sample ? t.bare : skip, () => bare.call(echo));
      await time(sample ? t.local : skip, () => local.search(q, 1));
    }
    const p50 = (v: number[]) => round(percentile(v, 50), 2);
    const hopMs = round(p50(t.remote) - p50(t.local), 2);
    return {
      bankRows,
      queries,
      dim,
      queryKiB: round((queries * dim * 4) / 1024, 0),
      trivialCallMs: p50(t.trivial),
      searchRemoteMs: p50(t.remote),
      searchLocalMs: p50(t.local),
      hopMs,
      requestBytes,
      replyBytes,
      bareCallMs: p50(t.bare),
      hopVsBare: round(hopMs / p50(t.bare), 2),
      runs,
    };
  } finally {
    client.close();
    bare.close();
    await shard.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
