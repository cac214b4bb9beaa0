import { strict as assert } from 'node:assert';
import { KnnIndex } from '../../../lib/knn/index';
import { mulberry32 } from '../../../lib/util/random';
import { mergeTopK } from '../../../services/gateway/merge-topk';

describe('merging per-partition top-k', () => {
  it('equals one exact search over the whole bank', () => {
    const rand = mulberry32(11);
    const dim = 8;
    const bank = Float32Array.from({ length: 900 * dim }, () => rand());
    const queries = Float32Array.from({ length: 40 * dim }, () => rand());
    const whole = KnnIndex.build(bank, dim, { factory: 'Flat' }).searchSync(queries, 3);
    // Three partitions of unequal size; labels shifted to global rows as the shards report them.
    const cuts = [0, 200, 650, 900];
    const parts = cuts.slice(0, -1).map((start, i) => {
      const r = KnnIndex.build(bank.subarray(start * dim, cuts[i + 1] * dim), dim, {
        factory: 'Flat',
      }).searchSync(queries, 3);
      return { ...r, labels: r.labels.map((l) => l + start) };
    });
    const merged = mergeTopK(parts, 40, 3);
    assert.deepEqual(Array.from(merged.labels), Array.from(whole.labels));
    for (let i = 0; i < merged.distances.length; i++)
      assert.ok(Math.abs(merged.distances[i] - whole.distances[i]) < 1e-5);
  });

  it('copes with partitions smaller than k', () => {
    const a = { distances: Float32Array.from([1]), labels: Float64Array.from([7]), k: 1 };
    const b = { distances: Float32Array.from([0.5, 2]), labels: Float64Array.from([3, 4]), k: 2 };
    const merged = mergeTopK([a, b], 1, 3);
    assert.deepEqual(Array.from(merged.labels), [3, 7, 4]);
  });
});
