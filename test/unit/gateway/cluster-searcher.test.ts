import { strict as assert } from 'node:assert';
import * as grpc from '@grpc/grpc-js';
import { ShardClient } from '../../../lib/cluster/shard-client';
import { BankVersionRecord } from '../../../lib/cluster/types';
import { ClusterView } from '../../../lib/cluster/view';
import { RunningServer, startGrpcServer } from '../../../lib/rpc/grpc-server';
import { serviceDefinition } from '../../../lib/rpc/proto';
import { ClusterSearcher, ShardDirectory } from '../../../services/gateway/cluster-searcher';
import { quietLog } from '../../helpers/quiet-log';

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

  it('cancels the hedged replica that did not answer once another has', async () => {
    const paused = { cancelled: false, calls: 0 };
    // (grpc-js reports every closed server call as cancelled, so only the paused one is checked.)
    const live = { cancelled: false, calls: 0 };
    servers.push(await shardServer(true, paused), await shardServer(false, live));
    const byId = new Map(
      ['a-paused', 'b-live'].map((id, i) => [id, new ShardClient(`127.0.0.1:${servers[i].port}`)]),
    );
    clients.push(...byId.values());
    const record: BankVersionRecord = {
      bank: 'b',
      version: 1,
      state: 'ready',
      createdAt: '',
      meta: {},
      partitions: [{ partition: 0, rowOffset: 0, rows: 1, shards: ['a-paused', 'b-live'] }],
      index: 'Flat',
      nprobe: 1,
    };
    const view = {
      shards: new Map([...byId.keys()].map((id) => [id, {}])),
      loaded: new Map([['b/1/0', new Set(byId.keys())]]),
    } as unknown as ClusterView;
    const directory: ShardDirectory = {
      view: () => view,
      client: (id) => byId.get(id),
      encodingOf: () => 'f32',
    };
    const searcher = new ClusterSearcher(record, directory, { deadlineMs: 10_000, hedgeMs: 50 });
    // Turn 0 asks the paused replica first (ids sorted), the live one after the hedge.
    const t0 = Date.now();
    const result = await searcher.search(new Float32Array(4 * 2), 2, 1);
    assert.deepEqual(Array.from(result.distances), [1, 1, 1, 1]);
    assert.ok(Date.now() - t0 < 5000, 'answered by the hedge, not at the deadline');
    assert.deepEqual([paused.calls, live.calls], [1, 1]);
    // The paused replica's call is cancelled at once, not left open until the 10 s deadline.
    const until = Date.now() + 2000;
    while (!paused.cancelled && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    assert.ok(paused.cancelled, 'the paused replica was told the search is no longer wanted');
  });
});
