/** Fused versions in the cluster without a cluster: BuildSpec.fuse, partition runs, member records. */
import { strict as assert } from 'node:assert';
import { DEFAULT_ADMIN, toBuildRequest } from '../../../services/gateway/admin-service';
import { assignPartitions } from '../../../services/gateway/bank-builder';
import { FusedVersionMeta, fusedMetaOf, memberRecord } from '../../../services/gateway/fused-version';
import { BankVersionRecord } from '../../../lib/cluster/types';
import { buildSpec } from '../../../lib/rpc/messages';
import { FUSED_BANK_FORMAT } from '../../../lib/patchcore/fusion';
import type { BankMeta } from '../../../lib/bank/bank-meta';

const images = Array.from({ length: 12 }, (_, i) => ({
  path: `${i}.png`,
  read: async () => new Uint8Array(),
}));

describe('fused versions in the cluster', () => {
  it('BuildSpec.fuse asks for a fused bank by hand; the automatic fit offers fused banks, with a head too', () => {
    const fused = toBuildRequest(
      'create',
      buildSpec({ bank: 'b', fuse: ' block_2_add, block_5_add ' }),
      images,
      DEFAULT_ADMIN,
    );
    assert.deepEqual(fused.fuse, { stages: ['block_2_add', 'block_5_add'] });
    assert.equal(fused.auto, undefined, 'fuse is a manual configuration');
    const auto = toBuildRequest('create', buildSpec({ bank: 'b' }), images, DEFAULT_ADMIN);
    assert.equal(auto.fuse, undefined);
    assert.equal(auto.auto?.fusion, true);
    const withHead = toBuildRequest('create', buildSpec({ bank: 'b', head: 'glass' }), images, DEFAULT_ADMIN);
    assert.equal(withHead.auto?.fusion, true);
    // A head beside a fused bank by hand: on the first member's embeddings (lib/head/head-base.ts).
    const fusedHead = toBuildRequest(
      'create',
      buildSpec({ bank: 'b', fuse: 'block_2_add', head: 'glass' }),
      images,
      DEFAULT_ADMIN,
    );
    assert.deepEqual(fusedHead.fuse, { stages: ['block_2_add'] });
    assert.equal(fusedHead.head?.mode, 'combined');
    // Adding to the active version keeps its configuration: fuse is ignored as the view fields are.
    const add = toBuildRequest(
      'rotate',
      buildSpec({ bank: 'b', fuse: 'block_2_add', addToActive: true }),
      images,
      DEFAULT_ADMIN,
    );
    assert.equal(add.fuse, undefined);
  });

  it('refuses fuse with several categories', () => {
    assert.throws(
      () =>
        toBuildRequest(
          'create',
          buildSpec({ bank: 'b', fuse: 'x', categories: ['p', 'q'] }),
          images.map((im, i) => ({ ...im, path: `${i % 2 ? 'p' : 'q'}/${im.path}` })),
          DEFAULT_ADMIN,
        ),
      /fuse: a fused bank covers one product/,
    );
  });

  it("numbers a later member's partitions after the earlier ones, its rows from 0, replicas spread on", () => {
    const shards = ['s0', 's1', 's2'];
    const first = assignPartitions(10, 2, 2, shards);
    const second = assignPartitions(7, 2, 2, shards, first.length);
    assert.deepEqual(
      second.map((p) => [p.partition, p.rowOffset, p.rows, p.shards]),
      [
        [2, 0, 3, ['s2', 's0']],
        [3, 3, 4, ['s0', 's1']],
      ],
    );
  });

  it("gives each member its own metadata and partitions; a single bank's record is not fused", () => {
    const member = (stages: string[]) => ({ model: { stages } }) as unknown as BankMeta;
    const meta = {
      format: FUSED_BANK_FORMAT,
      kind: 'fused',
      memberBanks: [
        { meta: member(['a']), partitions: { first: 0, count: 2 } },
        { meta: member(['b']), partitions: { first: 2, count: 1 } },
      ],
    } as unknown as FusedVersionMeta;
    const record: BankVersionRecord = {
      bank: 'b',
      version: 3,
      state: 'ready',
      createdAt: '',
      meta: meta as unknown as Record<string, unknown>,
      partitions: [0, 1, 2].map((p) => ({ partition: p, rowOffset: 0, rows: 1, shards: ['s0'] })),
      index: 'Flat',
      nprobe: 0,
    };
    const fused = fusedMetaOf(record)!;
    assert.ok(fused);
    const second = memberRecord(record, fused, 1);
    assert.deepEqual(
      second.partitions.map((p) => p.partition),
      [2],
    );
    assert.deepEqual((second.meta as unknown as BankMeta).model.stages, ['b']);
    assert.equal(memberRecord(record, fused, 0).partitions.length, 2);
    assert.equal(fusedMetaOf({ meta: { format: 2, model: { stages: ['a'] } } }), undefined);
  });
});
