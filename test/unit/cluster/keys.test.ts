import assert from 'node:assert/strict';
import { keyLayout, normalizePrefix, parseKey } from '../../../lib/cluster/keys';
import { checkBankName, checkShardId } from '../../../lib/cluster/types';
import { SpiError } from '../../../lib/errors';

describe('cluster/keys: etcd layout', () => {
  const k = keyLayout('/spi');
  const ref = { bank: 'label-a.v2', version: 3, partition: 1 };

  it('builds every key under the normalised prefix', () => {
    assert.equal(normalizePrefix('/x'), '/x/');
    assert.equal(k.shard('s-1'), '/spi/shards/s-1');
    assert.equal(k.loaded(ref, 's-1'), '/spi/loaded/label-a.v2/3/1/s-1');
    assert.equal(k.version('b', 7), '/spi/banks/b/versions/7');
    assert.equal(k.active('b'), '/spi/banks/b/active');
  });

  it('parses what it builds', () => {
    assert.deepEqual(parseKey('/spi/', k.shard('h-50051')), { kind: 'shard', shardId: 'h-50051' });
    assert.deepEqual(parseKey('/spi/', k.loaded(ref, 's:1')), { kind: 'loaded', ref, shardId: 's:1' });
    assert.deepEqual(parseKey('/spi/', k.version('b', 12)), { kind: 'version', bank: 'b', version: 12 });
    assert.deepEqual(parseKey('/spi/', k.active('b')), { kind: 'active', bank: 'b' });
  });

  it('ignores keys outside the layout', () => {
    for (const key of [
      '/other/shards/a',
      '/spi/shards/',
      '/spi/shards/a/b',
      '/spi/loaded/b/1/0',
      '/spi/loaded/b/x/0/s',
      '/spi/loaded/b/01/0/s',
      '/spi/banks/b/versions/-1',
      '/spi/banks/b/other',
      '/spi/unknown/thing',
    ]) {
      assert.equal(parseKey('/spi/', key), null, key);
    }
  });

  it('refuses names that would break the layout', () => {
    assert.throws(() => checkBankName('a/b'), SpiError);
    assert.throws(() => checkBankName('..'), SpiError);
    assert.throws(() => checkBankName('x'.repeat(65)), SpiError);
    assert.equal(checkBankName('Job_42.front-side'), 'Job_42.front-side');
    assert.throws(() => checkShardId('a/b'), SpiError);
    assert.equal(checkShardId('host-1:50051'), 'host-1:50051');
  });
});
