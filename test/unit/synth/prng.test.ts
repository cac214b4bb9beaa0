import assert from 'node:assert/strict';
import { hashSeed, Rng } from '../../../lib/synth/prng';

describe('synth/prng', () => {
  it('repeats a stream for the same key and differs for another', () => {
    const draw = (r: Rng) => Array.from({ length: 50 }, () => r.float());
    assert.deepEqual(draw(Rng.of(1, 'a', 3)), draw(Rng.of(1, 'a', 3)));
    assert.notDeepEqual(draw(Rng.of(1, 'a', 3)), draw(Rng.of(1, 'a', 4)));
    assert.notEqual(hashSeed(1, 'x'), hashSeed('1', 'x'));
  });

  it('draws within range with a plausible spread', () => {
    const r = new Rng(42);
    let sum = 0;
    for (let i = 0; i < 10000; i++) {
      const f = r.float();
      assert.ok(f >= 0 && f < 1);
      const k = r.int(3, 5);
      assert.ok(k >= 3 && k <= 5 && Number.isInteger(k));
      sum += f;
    }
    assert.ok(Math.abs(sum / 10000 - 0.5) < 0.02);
  });
});
