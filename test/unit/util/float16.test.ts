import assert from 'node:assert/strict';
import { fromFloat16, fromHalf, toFloat16, toHalf } from '../../../lib/util/float16';
import { mulberry32 } from '../../../lib/util/random';

/** The float32 next to x (by one unit in the last place) upwards or downwards, for x > 0. */
function nextFloat(x: number, dir: 1 | -1): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  u[0] += dir;
  return f[0];
}

describe('float16 conversion', () => {
  it('gives the exact bit patterns of known values', () => {
    const cases: [number, number][] = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3c00],
      [-2, 0xc000],
      [0.5, 0x3800],
      [65504, 0x7bff], // largest half
      [2 ** -14, 0x0400], // smallest normal
      [2 ** -24, 0x0001], // smallest subnormal
      [2 ** -14 - 2 ** -24, 0x03ff], // largest subnormal
      [1 / 3, 0x3555],
      [Infinity, 0x7c00],
      [-Infinity, 0xfc00],
    ];
    for (const [x, h] of cases) {
      assert.equal(toHalf(x), h, `toHalf(${x})`);
      assert.ok(Object.is(fromHalf(h), x === 1 / 3 ? 0.333251953125 : x), `fromHalf(${h.toString(16)})`);
    }
    assert.ok(Number.isNaN(fromHalf(toHalf(NaN))));
    assert.equal(toHalf(NaN) & 0x7e00, 0x7e00, 'a quiet NaN');
  });

  it('round-trips every finite half exactly', () => {
    for (let h = 0; h < 0x10000; h++) {
      if ((h & 0x7c00) === 0x7c00) continue;
      assert.equal(toHalf(fromHalf(h)), h, `half ${h.toString(16)}`);
    }
  });

  it('rounds to nearest, ties to even, across normals, subnormals and into the next binade', () => {
    for (let h = 0; h < 0x7bff; h++) {
      const lo = fromHalf(h);
      const hi = fromHalf(h + 1);
      const mid = (lo + hi) / 2; // exact in float32 (12 significant bits)
      const even = h % 2 === 0 ? h : h + 1;
      assert.equal(toHalf(mid), even, `tie between ${h.toString(16)} and ${(h + 1).toString(16)}`);
      assert.equal(toHalf(nextFloat(mid, -1)), h);
      assert.equal(toHalf(nextFloat(mid, 1)), h + 1);
      assert.equal(toHalf(-mid), even | 0x8000);
    }
  });

  it('flushes below half the smallest subnormal to signed zero and overflows to infinity', () => {
    assert.equal(toHalf(2 ** -25), 0x0000, 'exactly half: ties to the even zero');
    assert.equal(toHalf(nextFloat(2 ** -25, 1)), 0x0001);
    assert.equal(toHalf(-1e-10), 0x8000);
    assert.equal(toHalf(65519), 0x7bff, 'under the midpoint: the largest half');
    assert.equal(toHalf(65520), 0x7c00, 'the midpoint ties away from the odd 65504');
    assert.equal(toHalf(-1e6), 0xfc00);
    assert.equal(toHalf(3.4e38), 0x7c00);
  });

  it('converts arrays within 2^-11 relative error, into a given buffer or a new one', () => {
    const rand = mulberry32(7);
    const n = 784 * 96;
    const src = Float32Array.from({ length: n }, () => (rand() * 2 - 1) * 10 ** (rand() * 8 - 4));
    const halves = toFloat16(src);
    const back = fromFloat16(halves);
    let worst = 0;
    for (let i = 0; i < n; i++) {
      if (Math.abs(src[i]) < 2 ** -14) continue; // subnormals: absolute error <= 2^-25 instead
      worst = Math.max(worst, Math.abs(back[i] - src[i]) / Math.abs(src[i]));
    }
    assert.ok(worst <= 2 ** -11, `relative error ${worst}`);
    assert.ok(worst > 2 ** -12, 'the bound is tight on this many values');
    const out = new Uint16Array(n);
    assert.equal(toFloat16(src, out), out);
    assert.deepEqual(out, halves);
    // A subarray at an offset converts the same values.
    assert.deepEqual(toFloat16(src.subarray(5, 9)), halves.subarray(5, 9));
    assert.throws(() => toFloat16(src, new Uint16Array(3)), RangeError);
    assert.throws(() => fromFloat16(halves, new Float32Array(3)), RangeError);
  });
});
