import { strict as assert } from 'node:assert';
import { avgPool3x3, embedPatches, resizeBilinear, RandomProjection } from '../../../lib/embed/patch-embed';
import { anomalyMap, gaussianBlur, patchScores, stitchTiles } from '../../../lib/score/anomaly-map';
import { findRegions } from '../../../lib/score/regions';
import { tileGrid, DEFAULT_VIEW } from '../../../lib/image/views';
import { thresholdF1, thresholdFromNominal, manualThreshold } from '../../../lib/threshold/threshold';
import { mulberry32 } from '../../../lib/util/random';

const map = (c: number, h: number, w: number, f: (ch: number, y: number, x: number) => number) => {
  const data = new Float32Array(c * h * w);
  for (let ch = 0; ch < c; ch++)
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data[(ch * h + y) * w + x] = f(ch, y, x);
  return { data, channels: c, height: h, width: w };
};

describe('patch embedding', () => {
  it('3x3 average pools over valid neighbours only', () => {
    const pooled = avgPool3x3(map(1, 3, 3, (_c, y, x) => y * 3 + x));
    assert.equal(pooled.data[4], 4); // centre: mean of 0..8
    assert.equal(pooled.data[0], (0 + 1 + 3 + 4) / 4); // corner: 4 valid cells
  });

  it('bilinear resize keeps constants and matches align_corners=false sampling', () => {
    const constant = resizeBilinear(
      map(2, 2, 2, () => 3),
      4,
      4,
    );
    assert.ok(constant.data.every((v) => Math.abs(v - 3) < 1e-6));
    const ramp = resizeBilinear(
      map(1, 1, 2, (_c, _y, x) => x),
      1,
      4,
    );
    assert.deepEqual(Array.from(ramp.data), [0, 0.25, 0.75, 1]);
  });

  it('concatenates stages per patch with the deeper stage upsampled', () => {
    const e = embedPatches([map(2, 4, 4, (c) => c + 1), map(3, 2, 2, (c) => 10 * (c + 1))]);
    assert.equal(e.dim, 5);
    assert.equal(e.vectors.length, 16 * 5);
    assert.deepEqual(Array.from(e.vectors.subarray(5 * 5, 6 * 5)), [1, 2, 10, 20, 30]);
  });

  it('random projection is seeded and roughly preserves distances', () => {
    const a = new RandomProjection(64, 32, 3);
    assert.deepEqual(a.matrix, new RandomProjection(64, 32, 3).matrix);
    const full = embedPatches([map(64, 6, 6, (c, y, x) => Math.sin(c * 7 + y * 3 + x * x))]);
    const e = embedPatches([map(64, 6, 6, (c, y, x) => Math.sin(c * 7 + y * 3 + x * x))], a);
    assert.equal(e.dim, 32);
    // Distances between patches survive the projection within a loose Johnson-Lindenstrauss bound.
    const dist = (v: Float32Array, d: number, i: number, j: number) =>
      Math.hypot(...Array.from({ length: d }, (_, k) => v[i * d + k] - v[j * d + k]));
    for (const [i, j] of [
      [0, 1],
      [0, 3],
      [1, 2],
    ]) {
      const ratio = dist(e.vectors, 32, i, j) / dist(full.vectors, 64, i, j);
      assert.ok(ratio > 0.5 && ratio < 1.5, `patches ${i},${j}: distance ratio ${ratio}`);
    }
  });
});

describe('anomaly map and regions', () => {
  it('averages the k nearest distances into a patch score', () => {
    assert.deepEqual(Array.from(patchScores(Float32Array.from([1, 3, 2, 4]), 2, 1)), [1, 2]);
    assert.deepEqual(Array.from(patchScores(Float32Array.from([1, 3, 2, 4]), 2, 2)), [2, 3]);
  });

  it('stitches overlapping tiles by their mean', () => {
    const tiles = tileGrid(6, 4, { ...DEFAULT_VIEW, tile: 4, overlap: 2 });
    assert.deepEqual(
      tiles.map((t) => t.left),
      [0, 2],
    );
    const out = stitchTiles([new Float32Array(4).fill(1), new Float32Array(4).fill(3)], 2, 2, tiles, 6, 4);
    assert.equal(out[0], 1);
    assert.equal(out[3], 2); // covered by both tiles
    assert.equal(out[5], 3);
  });

  it('Gaussian smoothing keeps the mass and spreads a peak symmetrically', () => {
    const m = new Float32Array(41 * 41);
    m[20 * 41 + 20] = 1;
    const s = gaussianBlur(m, 41, 41, 2);
    const total = s.reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(total - 1) < 1e-4);
    assert.ok(Math.abs(s[20 * 41 + 18] - s[20 * 41 + 22]) < 1e-7);
    assert.ok(s[20 * 41 + 20] > s[20 * 41 + 21]);
  });

  it('Gaussian smoothing equals a direct 2-D convolution with reflected borders', () => {
    const w = 13;
    const h = 9;
    const sigma = 1.5;
    const m = Float32Array.from({ length: w * h }, (_, i) => Math.sin(i * 1.7) + (i % 5));
    const r = Math.ceil(4 * sigma);
    const g = (d: number) => Math.exp((-d * d) / (2 * sigma * sigma));
    let norm = 0;
    for (let d = -r; d <= r; d++) norm += g(d);
    const refl = (i: number, n: number) => {
      while (i < 0 || i >= n) i = i < 0 ? -i - 1 : 2 * n - i - 1;
      return i;
    };
    const got = gaussianBlur(m, w, h, sigma);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        let s = 0;
        for (let dy = -r; dy <= r; dy++)
          for (let dx = -r; dx <= r; dx++) s += g(dx) * g(dy) * m[refl(y + dy, h) * w + refl(x + dx, w)];
        assert.ok(Math.abs(got[y * w + x] - s / (norm * norm)) < 1e-4, `(${x},${y})`);
      }
    }
  });

  it('the fused map of one whole-canvas tile equals upsampling, then blurring', () => {
    // Square 224 from 28, non-square with a grid that does not divide the canvas, a kernel wider
    // than the canvas (reflection more than once), and a 1-cell grid.
    const cases = [
      { gh: 28, gw: 28, w: 224, h: 224, sigma: 4 },
      { gh: 7, gw: 11, w: 61, h: 37, sigma: 2.5 },
      { gh: 3, gw: 4, w: 9, h: 7, sigma: 4 },
      { gh: 1, gw: 1, w: 5, h: 5, sigma: 1 },
    ];
    // Cells spread evenly, and placed as Keras' stride-8 layers put them (s(i + 1) - 0.5).
    const placements = [undefined, { x: { scale: 8, offset: 7.5 }, y: { scale: 8, offset: 7.5 } }];
    for (const [{ gh, gw, w, h, sigma }, placement] of cases.flatMap((c) =>
      placements.map((p) => [c, p] as const),
    )) {
      const grid = Float32Array.from(
        { length: gh * gw },
        (_, i) => Math.abs(Math.sin(i * 2.3)) * 3 + (i % 4),
      );
      const tiles = [{ left: 0, top: 0, width: w, height: h }];
      const want = gaussianBlur(stitchTiles([grid], gh, gw, tiles, w, h, placement), w, h, sigma);
      const got = anomalyMap([grid], gh, gw, tiles, w, h, sigma, placement);
      assert.equal(got.length, want.length);
      for (let i = 0; i < want.length; i++)
        assert.ok(
          Math.abs(got[i] - want[i]) < 1e-5,
          `${w}x${h} sigma ${sigma} at ${i}: ${got[i]} vs ${want[i]}`,
        );
    }
  });

  it('the composed map: sums over the non-zero taps equal the band sums bit for bit', () => {
    // A grid with an infinite cell takes the band sums everywhere; rows of the map beyond the
    // kernel's reach of that cell must equal, bit for bit, the same map of the finite grid. A whole
    // frame (6 taps per pixel) and a tiled canvas (up to 12 in the overlaps, far apart in the band).
    const size = 256;
    const tiled = tileGrid(size, size, { ...DEFAULT_VIEW, resize: 0, tile: 64, overlap: 16 });
    for (const [gh, tiles] of [
      [32, [{ left: 0, top: 0, width: size, height: size }]],
      [8, tiled],
    ] as const) {
      const grids = tiles.map((_, t) =>
        Float32Array.from({ length: gh * gh }, (_, i) => (Math.sin((t + 1) * i * 1.7) - 0.3) * 5),
      );
      const fast = anomalyMap(grids, gh, gh, [...tiles], size, size, 4);
      const withInf = grids.map((g) => Float32Array.from(g));
      // The bottom right cell of the bottom right tile.
      const last = tiles.findIndex((t) => t.left + t.width === size && t.top + t.height === size);
      withInf[last][gh * gh - 1] = Infinity;
      const slow = anomalyMap(withInf, gh, gh, [...tiles], size, size, 4);
      for (let i = 0; i < (size / 2) * size; i++)
        assert.equal(fast[i], slow[i], `${tiles.length} tiles, pixel ${i}`);
      assert.ok(!Number.isFinite(slow[slow.length - 1]));
    }
  });

  it('the composed map of a tiled canvas equals stitching at full resolution, then blurring', () => {
    // tileGrid's layouts (overlapping, the last tile flush with the edge, non-square canvas, tiles in
    // any order), and a layout that is not a grid (the full-resolution path, unchanged).
    const placement = { x: { scale: 8, offset: 7.5 }, y: { scale: 8, offset: 7.5 } };
    const view = { ...DEFAULT_VIEW, resize: 0, tile: 40, overlap: 8 };
    const grid = tileGrid(150, 110, view);
    const shuffled = [...grid].reverse();
    const irregular = [
      { left: 0, top: 0, width: 40, height: 40 },
      { left: 30, top: 5, width: 40, height: 40 },
    ];
    for (const [tiles, p] of [
      [grid, undefined],
      [grid, placement],
      [shuffled, placement],
      [irregular, undefined],
    ] as const) {
      const gh = 5;
      const gw = 5;
      const grids = tiles.map((_, t) =>
        Float32Array.from({ length: gh * gw }, (_, i) => Math.abs(Math.sin((t + 1) * i * 1.3)) * 2 + (i % 3)),
      );
      const want = gaussianBlur(stitchTiles(grids, gh, gw, [...tiles], 150, 110, p), 150, 110, 3);
      const got = anomalyMap(grids, gh, gw, [...tiles], 150, 110, 3, p);
      let worst = 0;
      for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
      assert.ok(worst < 1e-5, `${tiles.length} tiles: largest difference ${worst}`);
    }
  });

  it('finds every 8-connected region of random maps, and none (with nothing allocated) under the threshold', () => {
    const rand = mulberry32(9);
    for (let trial = 0; trial < 20; trial++) {
      const w = 40;
      const h = 30;
      const m = Float32Array.from({ length: w * h }, () => rand());
      const t = 0.8;
      // Reference: label components with a union-find over 8-neighbours.
      const parent = Int32Array.from({ length: w * h }, (_, i) => i);
      const find = (i: number): number => (parent[i] === i ? i : (parent[i] = find(parent[i])));
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++) {
          if (!(m[y * w + x] >= t)) continue;
          for (const [dx, dy] of [
            [1, 0],
            [-1, 1],
            [0, 1],
            [1, 1],
          ]) {
            const nx = x + dx;
            const ny = y + dy;
            if (nx >= 0 && nx < w && ny < h && m[ny * w + nx] >= t)
              parent[find(ny * w + nx)] = find(y * w + x);
          }
        }
      const areas = new Map<number, number>();
      for (let i = 0; i < w * h; i++) if (m[i] >= t) areas.set(find(i), (areas.get(find(i)) ?? 0) + 1);
      const got = findRegions(m, w, h, t);
      assert.equal(got.length, areas.size, `trial ${trial}`);
      assert.deepEqual(
        got.map((r) => r.area).sort((a, b) => a - b),
        [...areas.values()].sort((a, b) => a - b),
      );
    }
    assert.deepEqual(findRegions(new Float32Array(100), 10, 10, 0.5), []);
  });

  it('finds connected regions with boxes and peaks, scaled to the image', () => {
    const w = 10;
    const m = new Float32Array(100);
    m[11] = m[12] = m[22] = 5; // one 8-connected blob
    m[77] = 9; // another
    const regions = findRegions(m, w, 10, 1, { scaleX: 2, scaleY: 2, offsetX: 0, offsetY: 0 });
    assert.equal(regions.length, 2);
    assert.deepEqual(regions[0], { x: 14, y: 14, width: 2, height: 2, area: 4, peakScore: 9 });
    assert.deepEqual({ ...regions[1] }, { x: 2, y: 2, width: 4, height: 4, area: 12, peakScore: 5 });
  });
});

describe('threshold', () => {
  it('is the largest held-out score when too few images are held out to certify 5 %', () => {
    const t = thresholdFromNominal([1, 1.1, 0.9, 1.05]);
    assert.equal(t.method, 'nominal');
    assert.equal(t.value, 1.1);
    assert.equal(t.nominal!.rank, 4);
    assert.equal(t.nominal!.falseRejectBound, 0.2);
    // One outlying held-out score no longer drags the threshold to mean + 3 std (here 2.9).
    const few = thresholdFromNominal([23.6, 23.6, 24.5, 24.7, 26.2, 26.3, 29.5]);
    assert.equal(few.value, 29.5);
    assert.ok(few.nominal!.mean + 3 * few.nominal!.std > 31);
  });

  it('takes the conformal order statistic with enough held-out images', () => {
    // 39 scores 1..39 in shuffled order: k = ceil(40 * 0.95) = 38.
    const scores = Array.from({ length: 39 }, (_, i) => ((i * 17) % 39) + 1);
    const t = thresholdFromNominal(scores);
    assert.equal(t.value, 38);
    assert.equal(t.nominal!.rank, 38);
    assert.equal(t.nominal!.falseRejectBound, 0.05);
    assert.equal(thresholdFromNominal(scores, 0.25).value, 30);
    // The guarantee, checked empirically: a fresh exchangeable nominal score exceeds it <= 5 %.
    const rand = mulberry32(11);
    let exceed = 0;
    const trials = 2000;
    for (let r = 0; r < trials; r++) {
      const draw = Array.from({ length: 20 }, () => rand());
      if (rand() >= thresholdFromNominal(draw).value) exceed++;
    }
    assert.ok(exceed / trials <= 0.05 + 0.015, `exceeded ${exceed} of ${trials}`);
    assert.ok(exceed / trials > 0.02, `exceeded ${exceed} of ${trials}`);
  });

  it('finds the F1-optimal cut between labelled scores', () => {
    const t = thresholdF1([0.1, 0.2, 0.3, 0.8, 0.9], [0, 0, 0, 1, 1]);
    assert.equal(t.f1, 1);
    assert.ok(t.value > 0.3 && t.value <= 0.8); // score >= threshold is defective
  });

  it('refuses a non-finite manual threshold', () => {
    assert.throws(() => manualThreshold(NaN), /finite/);
  });
});
