import assert from 'node:assert/strict';
import { DEFECT_TYPES } from '../../../lib/synth/defects';
import { decodePng, sampleToPng } from '../../../lib/synth/png';
import { makeSample, type Sample } from '../../../lib/synth/sample';

const SIZE = 384;

/** Per-pixel mean absolute RGB difference. */
function pixelDiff(a: Sample, b: Sample): Float32Array {
  const d = new Float32Array(a.width * a.height);
  for (let i = 0; i < d.length; i++) {
    d[i] =
      (Math.abs(a.rgb[3 * i] - b.rgb[3 * i]) +
        Math.abs(a.rgb[3 * i + 1] - b.rgb[3 * i + 1]) +
        Math.abs(a.rgb[3 * i + 2] - b.rgb[3 * i + 2])) /
      3;
  }
  return d;
}

/** Mean absolute differences of block means (what a patch-level model sees), one per block. */
function blockDiffs(a: Sample, b: Sample, block: number): number[] {
  const out: number[] = [];
  for (let by = 0; by + block <= a.height; by += block) {
    for (let bx = 0; bx + block <= a.width; bx += block) {
      let d = 0;
      for (let c = 0; c < 3; c++) {
        let sa = 0;
        let sb = 0;
        for (let y = by; y < by + block; y++) {
          for (let x = bx; x < bx + block; x++) {
            sa += a.rgb[(y * a.width + x) * 3 + c];
            sb += b.rgb[(y * a.width + x) * 3 + c];
          }
        }
        d += Math.abs(sa - sb) / (block * block * 3);
      }
      out.push(d);
    }
  }
  return out;
}

const mean = (v: ArrayLike<number>) => Array.from(v).reduce((s, x) => s + x, 0) / v.length;

describe('synth/sample', () => {
  it('is byte-identical for the same (seed, index) and differs otherwise', () => {
    const a = makeSample(5, 2, { size: SIZE, defect: 'ink_spot' });
    const b = makeSample(5, 2, { size: SIZE, defect: 'ink_spot' });
    assert.equal(a.rgb.length, SIZE * SIZE * 3);
    assert.equal(a.mask?.length, SIZE * SIZE);
    assert.ok(a.rgb.equals(b.rgb));
    assert.ok(a.mask?.equals(b.mask!));
    assert.ok(!a.rgb.equals(makeSample(6, 2, { size: SIZE, defect: 'ink_spot' }).rgb));
    assert.ok(!a.rgb.equals(makeSample(5, 3, { size: SIZE, defect: 'ink_spot' }).rgb));
    const good = makeSample(5, 2, { size: SIZE });
    assert.equal(good.mask, undefined);
    assert.equal(good.defect, undefined);
  });

  it('varies good prints only slightly', () => {
    const g0 = makeSample(1, 0, { size: SIZE });
    const g1 = makeSample(1, 1, { size: SIZE });
    assert.ok(!g0.rgb.equals(g1.rgb), 'good prints should not be identical');
    // Block means (16x16) of two prints of the same job agree closely; what moves is mostly hard edges
    // under the sub-pixel placement shift and the illumination jitter...
    const same = mean(blockDiffs(g0, g1, 16));
    assert.ok(same < 8, `good prints differ by ${same.toFixed(2)} per 16x16 block on average`);
    // ...and pixel by pixel too, once the placement shift is taken out.
    const still = { maxShift: 0 };
    const d = pixelDiff(
      makeSample(1, 0, { size: SIZE, variation: still }),
      makeSample(1, 1, { size: SIZE, variation: still }),
    );
    assert.ok(mean(d) < 5, `unshifted good prints differ by ${mean(d).toFixed(2)} on average`);
    // Another job is a different picture.
    const other = mean(blockDiffs(g0, makeSample(2, 0, { size: SIZE }), 16));
    assert.ok(
      other > 3 * same,
      `another job differs by ${other.toFixed(2)}, a good print by ${same.toFixed(2)}`,
    );
    for (const v of g0.variation.shift) assert.ok(Math.abs(v) <= 1.5);
  });

  for (const defect of DEFECT_TYPES) {
    it(`${defect}: mask is non-empty and marks where the pixels changed`, () => {
      for (let index = 0; index < 3; index++) {
        const bad = makeSample(11, index, { size: SIZE, defect });
        const good = makeSample(11, index, { size: SIZE });
        assert.equal(bad.defect, defect);
        const mask = bad.mask!;
        assert.ok(
          mask.every((v) => v === 0 || v === 255),
          'mask must be 0/255',
        );
        const d = pixelDiff(bad, good);
        let inSum = 0;
        let inN = 0;
        let outSum = 0;
        let outN = 0;
        for (let i = 0; i < d.length; i++) {
          if (mask[i]) {
            inSum += d[i];
            inN++;
          } else {
            outSum += d[i];
            outN++;
          }
        }
        assert.ok(inN >= 8, `index ${index}: mask has ${inN} px`);
        assert.equal(bad.defectInfo?.area, inN);
        const inside = inSum / inN;
        const outside = outSum / outN;
        assert.ok(
          inside > 8 && inside > 50 * outside,
          `index ${index}: inside ${inside.toFixed(2)} vs outside ${outside.toFixed(4)}`,
        );
        const { x0, y0, x1, y1 } = bad.defectInfo!.bbox;
        assert.ok(x1 > x0 && y1 > y0 && x0 >= 0 && y0 >= 0 && x1 <= SIZE && y1 <= SIZE);
      }
    });
  }

  it('honours the defect size range', () => {
    const small = makeSample(3, 0, {
      size: SIZE,
      defect: 'ink_spot',
      defectOptions: { minSize: 6, maxSize: 8 },
    });
    const large = makeSample(3, 0, {
      size: SIZE,
      defect: 'ink_spot',
      defectOptions: { minSize: 36, maxSize: 40 },
    });
    assert.ok(small.defectInfo!.area < 120, `small spot covers ${small.defectInfo!.area} px`);
    assert.ok(large.defectInfo!.area > 400, `large spot covers ${large.defectInfo!.area} px`);
  });

  it('encodes to PNGs that decode to the same pixels', async () => {
    const s = makeSample(2, 0, { size: 256, defect: 'void' });
    const png = await sampleToPng(s);
    const img = await decodePng(png.image);
    assert.deepEqual([img.width, img.height, img.channels], [256, 256, 3]);
    assert.ok(img.data.equals(s.rgb));
    const mask = await decodePng(png.mask!);
    assert.equal(mask.channels, 1);
    assert.ok(mask.data.equals(s.mask!));
  });

  it('makes a 512 px sample well under 100 ms', () => {
    makeSample(9, 0, { size: 512 }); // artwork, cached per job
    const t0 = performance.now();
    for (let i = 0; i < 5; i++) makeSample(9, i + 1, { size: 512, defect: DEFECT_TYPES[i] });
    const ms = (performance.now() - t0) / 5;
    assert.ok(ms < 100, `${ms.toFixed(1)} ms per sample`);
  });
});
