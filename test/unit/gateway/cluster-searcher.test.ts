import { strict as assert } from 'node:assert';
import * as grpc from '@grpc/grpc-js';
import { ShardClient } from '../../../lib/cluster/shard-client';
import { BankVersionRecord, PartitionAssignment } from '../../../lib/cluster/types';
import { ClusterView } from '../../../lib/cluster/view';
import { RunningServer, startGrpcServer } from '../../../lib/rpc/grpc-server';
import { serviceDefinition } from '../../../lib/rpc/proto';
import { ClusterSearcher, FanOutSettings, ShardDirectory } from '../../../services/gateway/cluster-searcher';
import { withRequestId } from '../../../lib/rpc/request-id';
import { quietLog } from '../../helpers/quiet-log';
import { SpiError } from '../../../lib/errors';

/** Version 1 of bank "b", ready, over these partitions. */
function versionRecord(partitions: PartitionAssignment[]): BankVersionRecord {
  return {
    bank: 'b',
    version: 1,
    state: 'ready',
    createdAt: '',
    meta: {},
    partitions,
    index: 'Flat',
    nprobe: 1,
  };
}

/** A shard's Search over loopback gRPC: answers at once (one row, distance 1), or never ("paused"). */
async function shardServer(paused: boolean, seen: { cancelled: boolean; calls: number }) {
  return startGrpcServer({
    host: '127.0.0.1',
    port: 0,
    log: quietLog,
    services: [
      {
        definition: serviceDefinition('BankShard'),
        implementation: {
          search: (
            call: grpc.ServerUnaryCall<{ queries: Buffer; dim: number }, unknown>,
            cb: grpc.sendUnaryData<unknown>,
          ) => {
            seen.calls++;
            call.on('cancelled', () => (seen.cancelled = true));
            if (paused) return;
            const rows = call.request.queries.length / 4 / call.request.dim;
            cb(null, {
              distances: Buffer.from(new Float32Array(rows).fill(1).buffer),
              labels: Buffer.from(new Int32Array(rows).buffer),
              k: 1,
            });
          },
        },
      },
    ],
  });
}

describe('the gateway fan-out (real loopback gRPC)', () => {
  const servers: RunningServer[] = [];
  const clients: ShardClient[] = [];
  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(servers.map((s) => s.shutdown(0)));
  });

  /** A searcher over one partition held by the given servers (ids sorted as listed). */
  function searcherOver(ids: string[], settings: FanOutSettings = { deadlineMs: 10_000, hedgeMs: 50 }) {
    const byId = new Map(
      ids.map((id, i) => [id, new ShardClient(`127.0.0.1:${servers[servers.length - ids.length + i].port}`)]),
    );
    clients.push(...byId.values());
    const record = versionRecord([{ partition: 0, rowOffset: 0, rows: 1, shards: ids }]);
    const view = {
      shards: new Map(ids.map((id) => [id, {}])),
      loaded: new Map([['b/1/0', new Set(ids)]]),
    } as unknown as ClusterView;
    const directory: ShardDirectory = {
      view: () => view,
      client: (id) => byId.get(id),
      encodingOf: () => 'f32',
    };
    return new ClusterSearcher(record, directory, settings);
  }

  const eventually = async (what: () => boolean, ms = 2000) => {
    const until = Date.now() + ms;
    while (!what() && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    return what();
  };

  it('cancels the hedged replica that did not answer once another has', async () => {
    const paused = { cancelled: false, calls: 0 };
    // (grpc-js reports every closed server call as cancelled, so only the paused one is checked.)
    const live = { cancelled: false, calls: 0 };
    servers.push(await shardServer(true, paused), await shardServer(false, live));
    const searcher = searcherOver(['a-paused', 'b-live']);
    // Turn 0 asks the paused replica first (ids sorted), the live one after the hedge.
    const t0 = Date.now();
    const result = await searcher.search(new Float32Array(4 * 2), 2, 1);
    assert.deepEqual(Array.from(result.distances), [1, 1, 1, 1]);
    assert.ok(Date.now() - t0 < 5000, 'answered by the hedge, not at the deadline');
    assert.deepEqual([paused.calls, live.calls], [1, 1]);
    // The paused replica's call is cancelled at once, not left open until the 10 s deadline.
    assert.ok(
      await eventually(() => paused.cancelled),
      'the paused replica was told the search is no longer wanted',
    );
  });

  it("cancels a request's searches when its caller gives up (the request's signal)", async () => {
    const seen = [
      { cancelled: false, calls: 0 },
      { cancelled: false, calls: 0 },
    ];
    servers.push(await shardServer(true, seen[0]), await shardServer(true, seen[1]));
    const searcher = searcherOver(['p1', 'p2']);
    const caller = new AbortController();
    const searching = withRequestId('r-1', () => searcher.search(new Float32Array(2), 2, 1), caller.signal);
    assert.ok(await eventually(() => seen[0].calls + seen[1].calls === 2), 'both replicas asked (hedged)');
    const t0 = Date.now();
    caller.abort();
    await assert.rejects(searching, /every replica failed.*[Cc]ancelled/);
    assert.ok(Date.now() - t0 < 2000, 'given up at once, not at the 10 s deadline');
    assert.ok(await eventually(() => seen.every((s) => s.cancelled)), 'both shards told');
  });

  it('asks a replica that let a hedge fire last for slowMs, then first again on its turn', async () => {
    const paused = { cancelled: false, calls: 0 };
    const live = { cancelled: false, calls: 0 };
    servers.push(await shardServer(true, paused), await shardServer(false, live));
    const searcher = searcherOver(['a-paused', 'b-live'], { deadlineMs: 10_000, hedgeMs: 100, slowMs: 600 });
    const timed = async () => {
      const t0 = Date.now();
      await searcher.search(new Float32Array(2), 2, 1);
      return Date.now() - t0;
    };
    // Turn 0 asks the paused replica first: answered after the hedge.
    assert.ok((await timed()) >= 100);
    assert.equal(paused.calls, 1);
    // Turns 1-4 (2 and 4 would start with the paused one): the live replica at once, no hedge.
    for (let i = 0; i < 4; i++) assert.ok((await timed()) < 100, 'no hedge delay');
    assert.equal(paused.calls, 1, 'the slow replica was not asked');
    // After slowMs it is asked first on its turn again (and hedged again while it stays paused).
    await new Promise((r) => setTimeout(r, 650));
    await timed(); // turn 5: live first
    assert.ok((await timed()) >= 100); // turn 6: paused first
    assert.equal(paused.calls, 2);
  });
});

describe('the gateway reading bank rows from the shards (ReadRows, real loopback gRPC)', () => {
  const dim = 2;
  const servers: RunningServer[] = [];
  const clients: ShardClient[] = [];
  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(servers.map((s) => s.shutdown(0)));
  });

  /** A shard whose row r is [r, -r]; `mode` fail answers UNAVAILABLE, old has no ReadRows at all. */
  async function rowServer(mode: 'ok' | 'fail' | 'old', calls: number[][]) {
    const readRows = (
      call: grpc.ServerUnaryCall<{ rows: number[] }, unknown>,
      cb: grpc.sendUnaryData<unknown>,
    ) => {
      calls.push(call.request.rows);
      if (mode === 'fail') return cb({ code: grpc.status.UNAVAILABLE, details: 'disk gone' });
      const v = Float32Array.from(call.request.rows.flatMap((r) => [r, -r]));
      cb(null, { vectors: Buffer.from(v.buffer), dim });
    };
    const server = await startGrpcServer({
      host: '127.0.0.1',
      port: 0,
      log: quietLog,
      services: [
        {
          definition: serviceDefinition('BankShard'),
          implementation: mode === 'old' ? {} : { readRows },
        },
      ],
    });
    servers.push(server);
    const client = new ShardClient(`127.0.0.1:${server.port}`);
    clients.push(client);
    return client;
  }

  /** Rows 0-9 in partition 0 (replicas a, b), rows 10-19 in partition 1 (replica c). */
  function searcherOver(byId: Map<string, ShardClient>) {
    const record = versionRecord([
      { partition: 0, rowOffset: 0, rows: 10, shards: ['a', 'b'] },
      { partition: 1, rowOffset: 10, rows: 10, shards: ['c'] },
    ]);
    const view = {
      shards: new Map([...byId.keys()].map((id) => [id, {}])),
      loaded: new Map([
        ['b/1/0', new Set(['a', 'b'])],
        ['b/1/1', new Set(['c'])],
      ]),
    } as unknown as ClusterView;
    return new ClusterSearcher(record, {
      view: () => view,
      client: (id) => byId.get(id),
      encodingOf: () => 'f32',
    });
  }

  it('reads each row from the partition that holds it, in the order asked, past a failing replica', async () => {
    const calls = { a: [] as number[][], b: [] as number[][], c: [] as number[][] };
    const searcher = searcherOver(
      new Map([
        ['a', await rowServer('fail', calls.a)],
        ['b', await rowServer('ok', calls.b)],
        ['c', await rowServer('ok', calls.c)],
      ]),
    );
    const rows = await searcher.bankRows([12, 3, 15, 3], dim);
    assert.deepEqual(Array.from(rows), [12, -12, 3, -3, 15, -15, 3, -3]);
    // One call per partition: partition 0 failed on a and was read from b; partition 1 from c.
    assert.deepEqual(calls.a, [[3, 3]]);
    assert.deepEqual(calls.b, [[3, 3]]);
    assert.deepEqual(calls.c, [[12, 15]]);
    await assert.rejects(searcher.bankRows([20], dim), (err: SpiError) => err.kind === 'INVALID_ARGUMENT');
  });

  it('says plainly that shards of an earlier release cannot serve the rows', async () => {
    const old = await rowServer('old', []);
    const searcher = searcherOver(
      new Map([
        ['a', old],
        ['b', old],
        ['c', old],
      ]),
    );
    await assert.rejects(
      searcher.bankRows([1], dim),
      (err: SpiError) => err.kind === 'FAILED_PRECONDITION' && /upgrade/.test(err.message),
    );
  });
});
