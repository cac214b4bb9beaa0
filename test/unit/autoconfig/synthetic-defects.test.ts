import assert from 'node:assert/strict';
import {
  defectSizeRange,
  injectSyntheticDefect,
  MASK_THRESHOLD,
  type SyntheticDefect,
  SYNTHETIC_DEFECT_KINDS,
  type SyntheticDefectKind,
} from '../../../lib/autoconfig/synthetic-defects';
import { buildValidationSet, validationSummary } from '../../../lib/autoconfig/validation-set';
import type { RgbImage } from '../../../lib/image/decode';
import { Rng } from '../../../lib/synth/prng';
import { makeSample } from '../../../lib/synth/sample';

const SIZE = 160;

function fromPixels(width: number, height: number, rgb: (x: number, y: number) => number[]): RgbImage {
  const data = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 3;
      rgb(x, y).forEach((v, c) => (data[o + c] = Math.max(0, Math.min(255, Math.round(v)))));
    }
  }
  return { data, width, height };
}

/** A print from the synth artwork: text, halftones, barcode on light paper. */
function printImage(size = SIZE, index = 0): RgbImage {
  return { data: makeSample(3, index, { size }).rgb, width: size, height: size };
}

/** Photo-like: smooth colour gradients with sensor noise. */
function photoImage(size = SIZE): RgbImage {
  const rng = Rng.of('photo', size);
  return fromPixels(size, size, (x, y) => {
    const base = 60 + (120 * x) / size + 40 * Math.sin(y / 9);
    return [base + rng.normal() * 6, base * 0.8 + 30 + rng.normal() * 6, 200 - base * 0.5 + rng.normal() * 6];
  });
}

/** DeepPCB-like: binarised, mostly black with white tracks. */
function pcbImage(size = SIZE): RgbImage {
  return fromPixels(size, size, (x, y) =>
    Array(3).fill(Math.floor(x / 12) % 3 === 0 || y % 40 < 5 ? 255 : 0),
  );
}

function flatImage(size = 64, grey = 128): RgbImage {
  return fromPixels(size, size, () => [grey, grey, grey]);
}

/** Max channel difference per pixel. */
function changes(a: RgbImage, b: RgbImage): Uint8Array {
  const d = new Uint8Array(a.width * a.height);
  for (let i = 0; i < d.length; i++) {
    for (let c = 0; c < 3; c++) d[i] = Math.max(d[i], Math.abs(a.data[3 * i + c] - b.data[3 * i + c]));
  }
  return d;
}

function inject(image: RgbImage, kind: SyntheticDefectKind, seed: number | string, donor?: RgbImage) {
  return injectSyntheticDefect(image, kind, Rng.of(seed), {
    ...defectSizeRange(image.width, image.height),
    donor,
  });
}

/** The mask is what changed: 0/255, consistent with area and bbox, covering every visibly changed pixel. */
function assertMaskMatchesChange(original: RgbImage, d: SyntheticDefect, what: string): void {
  const { width, height } = original;
  assert.equal(d.mask.length, width * height, what);
  assert.ok(d.area > 0, `${what}: empty mask`);
  const diff = changes(original, d.image);
  let area = 0;
  let strong = 0;
  for (let i = 0; i < d.mask.length; i++) {
    assert.ok(d.mask[i] === 0 || d.mask[i] === 255, `${what}: mask value ${d.mask[i]}`);
    if (diff[i] > MASK_THRESHOLD)
      assert.equal(d.mask[i], 255, `${what}: changed pixel ${i} outside the mask`);
    if (!d.mask[i]) continue;
    area++;
    if (diff[i] > MASK_THRESHOLD) strong++;
    const x = i % width;
    const y = Math.floor(i / width);
    assert.ok(
      x >= d.bbox.x0 && x < d.bbox.x1 && y >= d.bbox.y0 && y < d.bbox.y1,
      `${what}: pixel outside bbox`,
    );
  }
  assert.equal(area, d.area, what);
  assert.ok(strong >= 0.5 * area, `${what}: only ${strong} of ${area} mask pixels really changed`);
}

describe('autoconfig/synthetic-defects', () => {
  const images: Record<string, RgbImage> = { print: printImage(), photo: photoImage(), pcb: pcbImage() };

  it("sizes defects from a few pixels up to a square of a tenth of the frame's area", () => {
    assert.deepEqual(defectSizeRange(900, 900), { minSize: 5, maxSize: 285 });
    assert.deepEqual(defectSizeRange(640, 640), { minSize: 3, maxSize: 202 });
    assert.deepEqual(defectSizeRange(1280, 640), { minSize: 3, maxSize: 286 });
    assert.deepEqual(defectSizeRange(20, 20), { minSize: 3, maxSize: 6 });
    assert.deepEqual(defectSizeRange(900, 900, 0.01), { minSize: 5, maxSize: 90 });
    assert.throws(() => defectSizeRange(900, 900, 0), /fraction of the frame/);
  });

  for (const [name, image] of Object.entries(images)) {
    it(`places every kind visibly on the ${name} image, masked by what changed, leaving the source alone`, () => {
      const before = Buffer.from(image.data);
      const { minSize, maxSize } = defectSizeRange(SIZE, SIZE);
      for (const kind of SYNTHETIC_DEFECT_KINDS) {
        for (const seed of [1, 2, 3]) {
          const d = inject(image, kind, seed);
          const what = `${name} ${kind} seed ${seed}`;
          assert.equal(d.kind, kind);
          assert.ok(d.size >= minSize && d.size <= maxSize, `${what}: size ${d.size}`);
          assert.equal(d.image.width, SIZE);
          assert.equal(d.image.data.length, image.data.length);
          assertMaskMatchesChange(image, d, what);
        }
      }
      assert.ok(image.data.equals(before), 'the source image was modified');
    });
  }

  it('is byte-identical for the same seed and differs for another', () => {
    for (const kind of SYNTHETIC_DEFECT_KINDS) {
      const a = inject(images.print, kind, 'same');
      const b = inject(images.print, kind, 'same');
      assert.ok(a.image.data.equals(b.image.data), kind);
      assert.deepEqual(a.mask, b.mask, kind);
      assert.equal(a.size, b.size, kind);
      assert.ok(!a.image.data.equals(inject(images.print, kind, 'other').image.data), kind);
    }
  });

  it('keeps mask extents within about half the smallest to twice the largest size, spanning both', () => {
    const image = printImage(240);
    const { minSize, maxSize } = defectSizeRange(240, 240);
    for (const kind of SYNTHETIC_DEFECT_KINDS) {
      const sides = Array.from({ length: 24 }, (_, s) => {
        const { bbox } = inject(image, kind, `extent-${s}`);
        return Math.max(bbox.x1 - bbox.x0, bbox.y1 - bbox.y0);
      });
      const lo = Math.min(...sides);
      const hi = Math.max(...sides);
      assert.ok(lo >= minSize / 2 && hi <= 2 * maxSize, `${kind}: long sides ${lo}..${hi}`);
      assert.ok(hi >= 2.5 * lo && hi >= maxSize / 2, `${kind}: long sides only ${lo}..${hi}`);
    }
  });

  it('takes cutpaste and scar patches from the donor', () => {
    const donor = fromPixels(SIZE, SIZE, () => [250, 0, 0]);
    for (const kind of ['cutpaste', 'scar'] as const) {
      const d = inject(images.pcb, kind, 7, donor);
      // The grey source has R = G; blending in the donor's red raises R - G (anti-aliased edges included).
      let redder = 0;
      for (let i = 0; i < d.mask.length; i++) {
        const o = 3 * i;
        if (d.mask[i] && d.image.data[o] - d.image.data[o + 1] > MASK_THRESHOLD) redder++;
      }
      assert.ok(redder >= 0.8 * d.area, `${kind}: ${redder} of ${d.area} mask pixels from the donor`);
    }
  });

  it('refuses what cannot show: blur and contrast on a flat image (a colour shift still shows)', () => {
    for (const kind of ['blur', 'contrast', 'cutpaste'] as const) {
      assert.throws(
        () => inject(flatImage(), kind, 1),
        /could not place a visible \w+ defect .* 64x64 image/,
      );
    }
    assertMaskMatchesChange(flatImage(), inject(flatImage(), 'colour', 1), 'flat colour');
  });

  it('rejects bad sizes, kinds and buffers', () => {
    const rng = Rng.of(1);
    assert.throws(
      () => injectSyntheticDefect(images.print, 'blur', rng, { minSize: 9, maxSize: 4 }),
      /minSize/,
    );
    assert.throws(
      () =>
        injectSyntheticDefect(images.print, 'dent' as SyntheticDefectKind, rng, { minSize: 3, maxSize: 9 }),
      /unknown synthetic defect kind "dent"/,
    );
    const short = { ...images.print, data: images.print.data.subarray(3) };
    assert.throws(
      () => injectSyntheticDefect(short, 'blur', rng, { minSize: 3, maxSize: 9 }),
      /expected 160x160x3/,
    );
  });
});

describe('autoconfig/validation-set', () => {
  const goods = [0, 1, 2].map((i) => ({ name: `good-${i}`, image: printImage(128, i) }));

  it('holds every good image and enough defective copies of them, all kinds represented', () => {
    const items = buildValidationSet(goods, { seed: 4 });
    const good = items.filter((i) => i.label === 0);
    const bad = items.filter((i) => i.label === 1);
    assert.equal(good.length, 3);
    assert.equal(bad.length, 24, 'ceil(24 / 3) = 8 copies per image');
    good.forEach((item, i) => {
      assert.equal(item.image, goods[i].image);
      assert.equal(item.mask, null);
      assert.equal(item.source, i);
    });
    for (const item of bad) {
      const source = goods[item.source];
      assert.match(item.name, new RegExp(`^${source.name}#${item.kind}-[0-7]$`));
      assert.equal(item.mask?.length, 128 * 128);
      assert.ok(item.mask?.includes(255));
      assert.ok(!item.image.data.equals(source.image.data));
    }
    const summary = validationSummary(items);
    assert.equal(summary.good, 3);
    assert.equal(summary.defective, 24);
    assert.deepEqual(Object.keys(summary.byKind).sort(), [...SYNTHETIC_DEFECT_KINDS].sort());
    for (const n of Object.values(summary.byKind)) assert.ok(n === 2 || n === 3, `uneven kinds ${n}`);
    // Each image gets different kinds.
    for (let g = 0; g < 3; g++) {
      const kinds = bad.filter((i) => i.source === g).map((i) => i.kind);
      assert.equal(new Set(kinds).size, 8, `image ${g}: ${kinds}`);
    }
  });

  it('is deterministic in the seed', () => {
    const a = buildValidationSet(goods, { seed: 4, copiesPerImage: 2 });
    const b = buildValidationSet(goods, { seed: 4, copiesPerImage: 2 });
    const c = buildValidationSet(goods, { seed: 5, copiesPerImage: 2 });
    assert.equal(a.length, 3 + 6);
    assert.deepEqual(
      a.map((i) => i.name),
      b.map((i) => i.name),
    );
    a.forEach((item, i) => assert.ok(item.image.data.equals(b[i].image.data), item.name));
    assert.ok(a.slice(3).some((item, i) => !item.image.data.equals(c[i + 3].image.data)));
  });

  it('takes the kinds asked for, and the next kind where one cannot show', () => {
    const items = buildValidationSet(goods, { seed: 1, copiesPerImage: 3, kinds: ['void', 'blur'] });
    assert.deepEqual(validationSummary(items).byKind, { void: 5, blur: 4 });
    const flats = [
      { name: 'flat-a', image: flatImage(64, 100) },
      { name: 'flat-b', image: flatImage(64, 160) },
    ];
    const fallback = buildValidationSet(flats, { seed: 1, copiesPerImage: 2, kinds: ['blur', 'colour'] });
    assert.deepEqual(validationSummary(fallback).byKind, { colour: 4 });
    assert.throws(
      () => buildValidationSet(flats, { seed: 1, kinds: ['blur'] }),
      /no synthetic defect could be placed on "flat-a": blur: could not place/,
    );
  });

  it('works with goods of different sizes (patches then come from the image itself)', () => {
    const mixed = [
      { name: 'small', image: printImage(128) },
      { name: 'large', image: photoImage(160) },
    ];
    const items = buildValidationSet(mixed, { seed: 2, copiesPerImage: 5, kinds: ['cutpaste', 'scar'] });
    assert.equal(items.length, 12);
    for (const item of items.filter((i) => i.label === 1)) {
      assert.equal(item.mask?.length, mixed[item.source].image.width * mixed[item.source].image.height);
    }
  });

  it('refuses fewer than 2 good images and bad options', () => {
    assert.throws(() => buildValidationSet(goods.slice(0, 1), { seed: 1 }), /at least 2 good images, got 1/);
    assert.throws(() => buildValidationSet(goods, { seed: 1, copiesPerImage: 0 }), /copiesPerImage/);
    assert.throws(() => buildValidationSet(goods, { seed: 1, kinds: [] }), /validation defect kinds/);
  });
});
