import { strict as assert } from 'node:assert';
import { reweightFactor } from '../../../lib/score/reweight';

describe('PatchCore image-score re-weighting', () => {
  it('is 1 - 1/b when the b nearest bank patches are equally far (a dense neighbourhood)', () => {
    assert.ok(Math.abs(reweightFactor(new Array(9).fill(3)) - (1 - 1 / 9)) < 1e-12);
  });

  it('tends to 1 when the nearest patch stands alone, the others far away', () => {
    const w = reweightFactor([2, 40, 41, 42, 43, 44, 45, 46, 47]);
    assert.ok(w > 0.999999 && w <= 1);
  });

  it('grows with the gap between the nearest and the other neighbours, without overflow', () => {
    const close = reweightFactor([1000, 1000.1, 1000.2]);
    const apart = reweightFactor([1000, 1001, 1002]);
    assert.ok(Number.isFinite(close) && Number.isFinite(apart));
    assert.ok(apart > close);
    assert.equal(reweightFactor([5]), 0, 'one neighbour: nothing to weigh against');
  });
});
