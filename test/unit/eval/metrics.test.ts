import assert from 'node:assert/strict';
import {
  confusion,
  f1AtThreshold,
  f1Max,
  pixelAuroc,
  pixelAurocDetailed,
  pro,
  rocAuc,
  rocCurve,
} from '../../../lib/eval/metrics';

/** Deterministic PRNG (mulberry32) so failures reproduce. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** O(n^2) definition of AUROC, the reference for the fast one. */
function bruteAuc(scores: number[], labels: number[]): number {
  let sum = 0;
  let pairs = 0;
  for (let i = 0; i < scores.length; i++) {
    if (labels[i] !== 1) continue;
    for (let j = 0; j < scores.length; j++) {
      if (labels[j] !== 0) continue;
      pairs++;
      sum += scores[i] > scores[j] ? 1 : scores[i] === scores[j] ? 0.5 : 0;
    }
  }
  return sum / pairs;
}

describe('eval/metrics: rocAuc', () => {
  it('matches hand-computed values', () => {
    assert.equal(rocAuc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]), 0.75);
    assert.equal(rocAuc([1, 2, 3, 4], [0, 0, 1, 1]), 1, 'perfect');
    assert.equal(rocAuc([4, 3, 2, 1], [0, 0, 1, 1]), 0, 'inverted');
  });

  it('counts ties as one half', () => {
    // pos {1, 2} vs neg {1, 2}: 0.5 + 0 + 1 + 0.5 = 2 of 4 pairs
    assert.equal(rocAuc([1, 1, 2, 2], [0, 1, 0, 1]), 0.5);
    // pos {0.5, 0.9} vs neg {0.5, 0.5}: 0.5 + 0.5 + 1 + 1 = 3 of 4
    assert.equal(rocAuc([0.5, 0.5, 0.5, 0.9], [0, 1, 0, 1]), 0.75);
    assert.equal(rocAuc([3, 3, 3, 3, 3], [0, 1, 0, 1, 1]), 0.5, 'all tied');
  });

  it('is NaN without both classes and rejects bad input', () => {
    assert.ok(Number.isNaN(rocAuc([1, 2], [1, 1])));
    assert.ok(Number.isNaN(rocAuc([], [])));
    assert.throws(() => rocAuc([1, 2], [1]), RangeError);
    assert.throws(() => rocAuc([1, NaN], [1, 0]), RangeError);
  });

  it('equals the O(n^2) definition on random data with many ties', () => {
    const r = rng(7);
    for (let trial = 0; trial < 20; trial++) {
      const n = 50 + Math.floor(r() * 200);
      const labels = Array.from({ length: n }, () => (r() < 0.3 ? 1 : 0));
      const scores = labels.map((l) => Math.round((r() + 0.4 * l) * 20) / 20);
      assert.ok(Math.abs(rocAuc(scores, labels) - bruteAuc(scores, labels)) < 1e-12);
    }
  });

  it('accepts typed arrays', () => {
    assert.equal(rocAuc(new Float32Array([0.2, 0.9]), new Uint8Array([0, 1])), 1);
  });
});

describe('eval/metrics: rocCurve', () => {
  it('runs from (0,0) to (1,1), monotone, and its area is the AUROC', () => {
    const r = rng(3);
    const labels = Array.from({ length: 300 }, () => (r() < 0.5 ? 1 : 0));
    const scores = labels.map((l) => Math.round((r() + 0.5 * l) * 40) / 40);
    const c = rocCurve(scores, labels, 100000);
    assert.deepEqual([c.fpr[0], c.tpr[0]], [0, 0]);
    assert.deepEqual([c.fpr.at(-1), c.tpr.at(-1)], [1, 1]);
    let area = 0;
    for (let i = 1; i < c.fpr.length; i++) {
      assert.ok(c.fpr[i] >= c.fpr[i - 1] && c.tpr[i] >= c.tpr[i - 1]);
      assert.ok(c.thresholds[i] < c.thresholds[i - 1]);
      area += ((c.fpr[i] - c.fpr[i - 1]) * (c.tpr[i] + c.tpr[i - 1])) / 2;
    }
    assert.ok(Math.abs(area - rocAuc(scores, labels)) < 1e-12);
  });

  it('thins large inputs to about maxPoints', () => {
    const r = rng(11);
    const labels = Array.from({ length: 100000 }, () => (r() < 0.5 ? 1 : 0));
    const scores = labels.map((l) => r() + 0.3 * l);
    const c = rocCurve(scores, labels);
    assert.ok(c.fpr.length <= 502 && c.fpr.length > 250, `${c.fpr.length} points`);
    assert.deepEqual([c.fpr.at(-1), c.tpr.at(-1)], [1, 1]);
  });
});

/** Random test set: images with rectangular defects whose pixels score higher on average. */
function randomMaps(seed: number, count: number, w: number, h: number) {
  const r = rng(seed);
  const maps: Float32Array[] = [];
  const masks: Uint8Array[] = [];
  for (let k = 0; k < count; k++) {
    const mask = new Uint8Array(w * h);
    if (k % 3 !== 0) {
      const x0 = Math.floor(r() * (w - 10));
      const y0 = Math.floor(r() * (h - 10));
      for (let y = y0; y < y0 + 3 + Math.floor(r() * 7); y++)
        for (let x = x0; x < x0 + 3 + Math.floor(r() * 7); x++) mask[y * w + x] = 1;
    }
    const map = new Float32Array(w * h);
    for (let i = 0; i < map.length; i++) map[i] = r() + (mask[i] ? 0.6 * r() : 0);
    maps.push(map);
    masks.push(mask);
  }
  return { maps, masks };
}

function concat<T extends Float32Array | Uint8Array>(parts: T[], make: (n: number) => T): T {
  const out = make(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

describe('eval/metrics: pixelAuroc', () => {
  it('equals the exact AUROC on random maps within its error bound', () => {
    const { maps, masks } = randomMaps(5, 12, 64, 64);
    const exact = rocAuc(
      concat(maps, (n) => new Float32Array(n)),
      concat(masks, (n) => new Uint8Array(n)),
    );
    const d = pixelAurocDetailed(maps, masks);
    assert.ok(Math.abs(d.auroc - exact) < 1e-5, `${d.auroc} vs ${exact}`);
    assert.ok(Math.abs(d.auroc - exact) <= d.maxError + 1e-12);
    assert.equal(d.positives + d.negatives, 12 * 64 * 64);
    // A coarse histogram is further off but still inside its own bound.
    const coarse = pixelAurocDetailed(maps, masks, 64);
    assert.ok(Math.abs(coarse.auroc - exact) <= coarse.maxError + 1e-12);
    assert.ok(coarse.maxError > d.maxError);
  });

  it('handles perfect, constant and one-class inputs', () => {
    const mask = new Uint8Array([0, 0, 1, 1]);
    assert.equal(pixelAuroc([new Float32Array([0, 0.1, 0.5, 0.9])], [mask]), 1);
    assert.equal(pixelAuroc([new Float32Array([2, 2, 2, 2])], [mask]), 0.5);
    assert.ok(Number.isNaN(pixelAuroc([new Float32Array(4)], [new Uint8Array(4)])));
    assert.throws(() => pixelAuroc([new Float32Array(4)], [new Uint8Array(3)]), RangeError);
  });

  it('handles 90 maps of 224x224 quickly', function () {
    this.timeout(20000);
    const { maps, masks } = randomMaps(9, 90, 224, 224);
    const t0 = performance.now();
    const v = pixelAuroc(maps, masks);
    const ms = performance.now() - t0;
    assert.ok(v > 0.6 && v < 1);
    assert.ok(ms < 5000, `${ms} ms`);
  });
});

/**
 * Reference PRO straight from the definition: every distinct score as a threshold, mean region
 * overlap and FPR per threshold, (0,0) and (1,1) added, trapezoid to maxFpr with interpolation.
 */
function referencePro(maps: Float32Array[], regionsOf: Int32Array[][], masks: Uint8Array[], maxFpr: number) {
  const thresholds = [...new Set(maps.flatMap((m) => [...m]))].sort((a, b) => b - a);
  const pts: [number, number][] = [[0, 0]];
  const good = masks.reduce((a, m) => a + m.filter((v) => v === 0).length, 0);
  const nRegions = regionsOf.reduce((a, r) => a + r.length, 0);
  for (const t of thresholds) {
    let fp = 0;
    let overlap = 0;
    maps.forEach((map, k) => {
      map.forEach((s, i) => {
        if (s >= t && masks[k][i] === 0) fp++;
      });
      for (const region of regionsOf[k]) overlap += region.filter((i) => map[i] >= t).length / region.length;
    });
    pts.push([fp / good, overlap / nRegions]);
  }
  pts.push([1, 1]);
  let area = 0;
  for (let i = 1; i < pts.length; i++) {
    const [x0, y0] = pts[i - 1];
    const [x1, y1] = pts[i];
    if (x1 >= maxFpr) {
      const y = x1 > x0 ? y0 + ((y1 - y0) * (maxFpr - x0)) / (x1 - x0) : y1;
      return (area + ((maxFpr - x0) * (y0 + y)) / 2) / maxFpr;
    }
    area += ((x1 - x0) * (y0 + y1)) / 2;
  }
  return area / maxFpr;
}

describe('eval/metrics: pro', () => {
  // 8x8 image with two regions: a 4x4 square and a 2x2 square.
  const W = 8;
  const square = (x0: number, y0: number, s: number): number[] => {
    const idx: number[] = [];
    for (let y = y0; y < y0 + s; y++) for (let x = x0; x < x0 + s; x++) idx.push(y * W + x);
    return idx;
  };
  const big = square(0, 0, 4);
  const small = square(5, 5, 2);
  const mask = new Uint8Array(W * W);
  for (const i of [...big, ...small]) mask[i] = 1;
  const goodMask = new Uint8Array(W * W);

  it('is 1 for a perfect map', () => {
    const map = Float32Array.from(mask);
    assert.equal(pro([map, new Float32Array(W * W)], [mask, goodMask]), 1);
  });

  it('is lower for a map covering half of each region', () => {
    const map = new Float32Array(W * W);
    for (const i of [...big.slice(0, 8), ...small.slice(0, 2)]) map[i] = 1;
    const v = pro([map, new Float32Array(W * W)], [mask, goodMask]);
    // Curve (0,0) -> (0,0.5) -> (1,1): area to 0.3 is 0.3*(0.5+0.65)/2, normalised 0.575.
    assert.ok(Math.abs(v - 0.575) < 1e-9, String(v));
  });

  it('weights regions equally, not by area', () => {
    // Only the 2x2 region found: PRO at FPR 0 is 0.5 although it is 4 of 20 defect pixels.
    const map = new Float32Array(W * W);
    for (const i of small) map[i] = 1;
    assert.ok(Math.abs(pro([map], [mask]) - 0.575) < 1e-9);
  });

  it('matches the definition on random maps, including non-square ones', () => {
    const r = rng(21);
    const w = 12;
    const h = 9;
    const maps: Float32Array[] = [];
    const masks: Uint8Array[] = [];
    const regions: Int32Array[][] = [];
    for (let k = 0; k < 4; k++) {
      const m = new Uint8Array(w * h);
      const rs: Int32Array[] = [];
      for (let q = 0; q < k; q++) {
        const x0 = 1 + q * 4;
        const y0 = 1 + Math.floor(r() * 4);
        const idx: number[] = [];
        for (let y = y0; y < y0 + 3; y++)
          for (let x = x0; x < x0 + 2; x++) {
            idx.push(y * w + x);
            m[y * w + x] = 1;
          }
        rs.push(Int32Array.from(idx));
      }
      // Scores on a 1/50 grid so the reference's distinct thresholds are few and exact.
      maps.push(Float32Array.from(m, (v) => Math.round((r() + 0.5 * v) * 50) / 50));
      masks.push(m);
      regions.push(rs);
    }
    for (const maxFpr of [0.05, 0.3, 1]) {
      const ours = pro(maps, masks, maxFpr, { width: w });
      const ref = referencePro(maps, regions, masks, maxFpr);
      assert.ok(Math.abs(ours - ref) < 1e-6, `maxFpr ${maxFpr}: ${ours} vs ${ref}`);
    }
  });

  it('needs the width of non-square maps and is NaN without regions', () => {
    assert.throws(() => pro([new Float32Array(12)], [new Uint8Array(12)]), /width/);
    assert.ok(Number.isNaN(pro([new Float32Array(16)], [new Uint8Array(16)])));
  });
});

describe('eval/metrics: confusion and F1', () => {
  const scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4];
  const labels = [1, 1, 0, 1, 0, 0];

  it('counts with score >= threshold as defective', () => {
    assert.deepEqual(confusion(scores, labels, 0.6), { tp: 3, fp: 1, tn: 2, fn: 0 });
    assert.deepEqual(confusion(scores, labels, 0.7), { tp: 2, fp: 1, tn: 2, fn: 1 });
    assert.deepEqual(confusion(scores, labels, 1), { tp: 0, fp: 0, tn: 3, fn: 3 });
  });

  it('computes F1 at a threshold', () => {
    const r = f1AtThreshold(scores, labels, 0.65);
    assert.ok(Math.abs(r.f1 - 2 / 3) < 1e-12);
    assert.ok(Math.abs(r.precision - 2 / 3) < 1e-12 && Math.abs(r.recall - 2 / 3) < 1e-12);
    assert.deepEqual(f1AtThreshold(scores, labels, 2), { f1: 0, threshold: 2, precision: 0, recall: 0 });
  });

  it('finds the best F1 over thresholds', () => {
    // t = 0.6: tp 3, fp 1, fn 0 -> F1 6/7 (t = 0.8 gives 0.8, t = 0.5 gives 0.75).
    const r = f1Max(scores, labels);
    assert.ok(Math.abs(r.f1 - 6 / 7) < 1e-12);
    assert.equal(r.threshold, 0.6);
    assert.equal(r.precision, 0.75);
    assert.equal(r.recall, 1);
    assert.equal(f1Max([1, 2], [0, 0]).f1, 0);
  });
});
