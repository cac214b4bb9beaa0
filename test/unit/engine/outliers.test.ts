import { strict as assert } from 'node:assert';
import { DEFAULT_CORESET, extendCoreset, selectCoreset, selectFiltered } from '../../../lib/coreset/coreset';
import {
  DEFAULT_OUTLIER_FILTER,
  filterOutliers,
  isolationScores,
  suspectImages,
} from '../../../lib/coreset/outliers';
import { mulberry32 } from '../../../lib/util/random';
import { gatherRows } from '../../../lib/util/rows';

const DIM = 8;

/**
 * `images` images of `perImage` patches each: every image has the same "artwork" (patch j sits near
 * centre j % 16, some centres far from the rest: rare but genuine features), plus noise. The images
 * in `defective` get `spots` extra far-away patches at random places (a defect).
 */
function prints(images: number, perImage: number, defective: number[] = [], spots = 6, seed = 1) {
  const art = mulberry32(100); // the same artwork on every print, whatever the noise seed
  const centres = Array.from({ length: 16 }, (_, c) =>
    Array.from({ length: DIM }, () => art() * 4 + (c >= 14 ? 12 : 0)),
  );
  const rand = mulberry32(seed);
  const x = new Float32Array(images * perImage * DIM);
  for (let g = 0; g < images; g++) {
    for (let j = 0; j < perImage; j++) {
      const row = g * perImage + j;
      for (let k = 0; k < DIM; k++) x[row * DIM + k] = centres[j % 16][k] + (rand() - 0.5) * 0.3;
    }
    if (defective.includes(g)) {
      const at = 3 + Math.floor(rand() * (perImage - spots - 3));
      const shift = Array.from({ length: DIM }, () => (rand() - 0.5) * 12);
      for (let j = at; j < at + spots; j++)
        for (let k = 0; k < DIM; k++) x[(g * perImage + j) * DIM + k] += shift[k] + (rand() - 0.5) * 0.3;
    }
  }
  return { x, groups: new Array<number>(images).fill(perImage) };
}

describe('outlier filter', () => {
  const config = { ...DEFAULT_OUTLIER_FILTER, fraction: 0.05 };

  it('does not call a patch next to exact duplicates (flat paper) isolated, and still finds a defect', () => {
    const { x, groups } = prints(12, 64, [4]);
    // Rows 0-15 of every image: the same blank patch exactly, but one of them a hair off.
    const blank = Array.from({ length: DIM }, (_, k) => 20 + k);
    for (let g = 0; g < 12; g++)
      for (let j = 0; j < 16; j++) for (let k = 0; k < DIM; k++) x[(g * 64 + j) * DIM + k] = blank[k];
    const hair = 7 * 64 + 3;
    x[hair * DIM] += 0.05;
    const scores = isolationScores(x, DIM, groups, config);
    assert.ok(
      Number.isFinite(scores[hair]) && scores[hair] < DEFAULT_OUTLIER_FILTER.minRatio,
      `${scores[hair]}`,
    );
    const { keep } = filterOutliers(x, DIM, groups, config);
    assert.ok([...keep].includes(hair), 'the near-duplicate is kept');
    assert.ok(keep.length < x.length / DIM, 'the defect is still dropped');
  });

  it('scores a defect far above the rare but genuine features, measured against other images', () => {
    const { x, groups } = prints(12, 64, [4]);
    const scores = isolationScores(x, DIM, groups, config);
    const perImage = 64;
    let defectMin = Infinity;
    let goodMax = 0;
    for (let i = 0; i < scores.length; i++) {
      const g = Math.floor(i / perImage);
      // The defect's rows are those of image 4 that differ from the same position in image 0.
      let d = 0;
      for (let k = 0; k < DIM; k++) d += (x[i * DIM + k] - x[((i % perImage) + 0) * DIM + k]) ** 2;
      if (g === 4 && d > 4) defectMin = Math.min(defectMin, scores[i]);
      else goodMax = Math.max(goodMax, scores[i]);
    }
    assert.ok(defectMin > 2 * goodMax, `defect ${defectMin} vs good ${goodMax}`);
    assert.ok(goodMax < DEFAULT_OUTLIER_FILTER.minRatio, `good patches stay below the ratio: ${goodMax}`);
  });

  it('drops the defect patches and nothing else, and names the image they came from', () => {
    const { x, groups } = prints(12, 64, [4, 9]);
    const r = filterOutliers(x, DIM, groups, config);
    assert.equal(r.droppedPerGroup[4], 6);
    assert.equal(r.droppedPerGroup[9], 6);
    assert.equal(x.length / DIM - r.keep.length, 12, 'only the two defects');
    const suspects = suspectImages(r).map((s) => s.group);
    assert.deepEqual(suspects.sort(), [4, 9]);
  });

  it('drops nothing from a clean set, and at most `fraction` whatever the scores', () => {
    const clean = prints(12, 64);
    assert.equal(filterOutliers(clean.x, DIM, clean.groups, config).keep.length, 12 * 64);
    const dirty = prints(12, 64, [1, 2, 3, 4, 5, 6]);
    const capped = filterOutliers(dirty.x, DIM, dirty.groups, { ...config, fraction: 0.02 });
    assert.equal(12 * 64 - capped.keep.length, Math.floor(12 * 64 * 0.02));
  });

  it('never drops with a single image and nothing to compare against, nor when off', () => {
    const one = prints(1, 64, [0]);
    assert.equal(filterOutliers(one.x, DIM, one.groups, config).keep.length, 64);
    const two = prints(6, 64, [2]);
    assert.equal(filterOutliers(two.x, DIM, two.groups, { ...config, fraction: 0 }).keep.length, 6 * 64);
  });

  it('keeps a defect out of the coreset that the greedy would otherwise take first', () => {
    const { x, groups } = prints(12, 64, [4]);
    const coreset = { ...DEFAULT_CORESET, size: 24, projectDim: 0 };
    const isDefect = (row: number) => Math.floor(row / 64) === 4 && defectRows(x, 4, 64).has(row);
    const plain = selectCoreset(x, DIM, coreset, undefined, groups);
    assert.ok([...plain].some(isDefect), 'without the filter the greedy picks the defect');
    const filtered = selectFiltered(x, DIM, coreset, config, undefined, groups);
    assert.ok(![...filtered.rows].some(isDefect));
    assert.equal(filtered.rows.length, 24, 'the bank keeps its size');
    assert.equal(filtered.outliers?.dropped, 6);
    assert.equal(filtered.outliers?.considered, 12 * 64);
    // With the per-image pre-reduction the filter runs on its survivors.
    const pooled = selectFiltered(x, DIM, { ...coreset, perImage: 0.25 }, config, undefined, groups);
    assert.ok(![...pooled.rows].some(isDefect));
    assert.ok(pooled.outliers!.considered < 12 * 64);
  });
});

describe('streaming coreset update', () => {
  it('picks first the new patches farthest from the existing bank (a feature it lacks)', () => {
    const old = prints(8, 64, [], 0, 1);
    const coreset = { ...DEFAULT_CORESET, size: 16, projectDim: 0, batch: 1 };
    const bank = gatherRows(old.x, DIM, selectCoreset(old.x, DIM, coreset, undefined, old.groups));
    // New images: the same artwork (covered), one with a new genuine feature (not covered).
    const fresh = prints(4, 64, [], 0, 2);
    for (let j = 0; j < 64; j += 16) for (let k = 0; k < DIM; k++) fresh.x[(64 + j) * DIM + k] = 40 + k;
    const added = extendCoreset(bank, fresh.x, DIM, coreset, 4, undefined, undefined, fresh.groups);
    assert.equal(added.rows.length, 4);
    const newFeature = new Set([64, 80, 96, 112]);
    assert.ok(newFeature.has(added.rows[0]) || [...added.rows].some((r) => newFeature.has(r)));
    // With batch 1 the first pick is exactly the new patch farthest from the bank.
    const far = farthestFrom(bank, fresh.x);
    assert.ok(added.rows.includes(far));
  });

  it('filters a defect among the new images against the others and the bank', () => {
    const old = prints(8, 64);
    const bank = gatherRows(
      old.x,
      DIM,
      selectCoreset(old.x, DIM, { ...DEFAULT_CORESET, size: 32 }, undefined, old.groups),
    );
    const fresh = prints(3, 64, [1], 6, 5);
    const r = extendCoreset(
      bank,
      fresh.x,
      DIM,
      { ...DEFAULT_CORESET, projectDim: 0 },
      8,
      { ...DEFAULT_OUTLIER_FILTER, fraction: 0.05 },
      undefined,
      fresh.groups,
    );
    const defect = defectRows(fresh.x, 1, 64, old.x);
    assert.equal(r.outliers?.dropped, 6);
    assert.ok(![...r.rows].some((row) => defect.has(row)));
  });
});

/** Rows of image g that are far from the same position in the reference prints (the defect). */
function defectRows(x: Float32Array, g: number, perImage: number, reference = x): Set<number> {
  const out = new Set<number>();
  const refImage = g === 0 ? 1 : 0;
  for (let j = 0; j < perImage; j++) {
    let d = 0;
    for (let k = 0; k < DIM; k++)
      d += (x[(g * perImage + j) * DIM + k] - reference[(refImage * perImage + j) * DIM + k]) ** 2;
    if (d > 4) out.add(g * perImage + j);
  }
  return out;
}

function farthestFrom(bank: Float32Array, x: Float32Array): number {
  let best = -1;
  let bestD = -1;
  for (let i = 0; i < x.length / DIM; i++) {
    let nearest = Infinity;
    for (let b = 0; b < bank.length / DIM; b++) {
      let d = 0;
      for (let k = 0; k < DIM; k++) d += (x[i * DIM + k] - bank[b * DIM + k]) ** 2;
      nearest = Math.min(nearest, d);
    }
    if (nearest > bestD) {
      bestD = nearest;
      best = i;
    }
  }
  return best;
}
