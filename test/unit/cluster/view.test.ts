import assert from 'node:assert/strict';
import { keyLayout } from '../../../lib/cluster/keys';
import { BankVersionRecord } from '../../../lib/cluster/types';
import {
  activeRecord,
  applyChanges,
  emptyView,
  missingPartitions,
  replicasOf,
  viewFromKvs,
} from '../../../lib/cluster/view';

const P = '/spi/';
const k = keyLayout(P);
const shard = (id: string) => ({
  key: k.shard(id),
  value: JSON.stringify({ id, address: `${id}:1`, startedAt: 't' }),
});
const loaded = (bank: string, version: number, partition: number, id: string) => ({
  key: k.loaded({ bank, version, partition }, id),
  value: JSON.stringify({ rows: 10, dim: 4, index: 'Flat' }),
});
const record = (
  bank: string,
  version: number,
  state: BankVersionRecord['state'] = 'ready',
): BankVersionRecord => ({
  bank,
  version,
  state,
  createdAt: 't',
  meta: {},
  partitions: [
    { partition: 0, rowOffset: 0, rows: 10, shards: ['a', 'b'] },
    { partition: 1, rowOffset: 10, rows: 10, shards: ['b', 'c'] },
  ],
  index: 'Flat',
  nprobe: 8,
});

describe('cluster/view: ClusterView updates', () => {
  const base = viewFromKvs(
    P,
    [
      shard('a'),
      shard('b'),
      loaded('bank', 1, 0, 'a'),
      loaded('bank', 1, 0, 'b'),
      loaded('bank', 1, 1, 'b'),
      { key: k.version('bank', 1), value: JSON.stringify(record('bank', 1)) },
      { key: k.active('bank'), value: '1' },
      { key: '/spi/unrelated', value: 'x' },
    ],
    42,
  );

  it('builds from a range read', () => {
    assert.equal(base.revision, 42);
    assert.equal(base.connected, true);
    assert.deepEqual([...base.shards.keys()], ['a', 'b']);
    assert.deepEqual([...(base.loaded.get('bank/1/0') ?? [])], ['a', 'b']);
    assert.equal(base.active.get('bank'), 1);
    assert.equal(activeRecord(base, 'bank')?.version, 1);
    assert.deepEqual(
      replicasOf(base, { bank: 'bank', version: 1, partition: 0 }).map((s) => s.address),
      ['a:1', 'b:1'],
    );
  });

  it('applies puts and deletes copy-on-write', () => {
    const next = applyChanges(
      base,
      P,
      [
        { type: 'delete', key: k.shard('a') },
        { type: 'delete', key: k.loaded({ bank: 'bank', version: 1, partition: 1 }, 'b') },
        { type: 'put', key: k.active('bank'), value: '2' },
        { type: 'put', ...loaded('bank', 2, 0, 'c') },
      ],
      50,
    );
    // The old snapshot is untouched.
    assert.deepEqual([...base.shards.keys()], ['a', 'b']);
    assert.ok(base.loaded.has('bank/1/1'));
    assert.equal(base.active.get('bank'), 1);
    // The new one has the changes; an emptied partition entry disappears.
    assert.equal(next.revision, 50);
    assert.deepEqual([...next.shards.keys()], ['b']);
    assert.equal(next.loaded.has('bank/1/1'), false);
    assert.deepEqual([...(next.loaded.get('bank/2/0') ?? [])], ['c']);
    assert.equal(next.active.get('bank'), 2);
    // A loaded key whose shard is gone is not a replica.
    assert.deepEqual(
      replicasOf(next, { bank: 'bank', version: 1, partition: 0 }).map((s) => s.id),
      ['b'],
    );
    assert.deepEqual(missingPartitions(next, record('bank', 1)), [1]);
  });

  it('drops entries whose value does not decode rather than keep stale ones', () => {
    const next = applyChanges(base, P, [
      { type: 'put', key: k.version('bank', 1), value: '{not json' },
      { type: 'put', key: k.active('bank'), value: 'abc' },
      { type: 'put', key: k.version('bank', 2), value: JSON.stringify(record('other', 2)) },
    ]);
    assert.equal(next.versions.size, 0);
    assert.equal(next.active.has('bank'), false);
  });

  it('starts empty and disconnected', () => {
    const v = emptyView();
    assert.equal(v.connected, false);
    assert.equal(v.shards.size + v.loaded.size + v.versions.size + v.active.size, 0);
  });
});
