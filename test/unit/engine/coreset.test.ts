import { strict as assert } from 'node:assert';
import {
  DEFAULT_CORESET,
  coresetSize,
  forEachChunk,
  greedyKCenter,
  selectCoreset,
  topIndices,
} from '../../../lib/coreset/coreset';
import { mulberry32 } from '../../../lib/util/random';

/** Clustered data: many points around a few centres, plus a few far outliers. */
function clustered(n: number, dim: number, seed: number): Float32Array {
  const rand = mulberry32(seed);
  const centres = Array.from({ length: 8 }, () => Array.from({ length: dim }, () => rand() * 10));
  const out = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) {
    const c = centres[i % 8];
    for (let k = 0; k < dim; k++) out[i * dim + k] = c[k] + (rand() - 0.5) * 0.5;
  }
  // Rare patterns (every 200th point far away): what random subsampling tends to miss.
  for (let i = 0; i < n; i += 200) for (let k = 0; k < dim; k++) out[i * dim + k] = 30 + rand() * 10;
  return out;
}

function coveringRadius(x: Float32Array, dim: number, picked: Int32Array): number {
  let worst = 0;
  for (let i = 0; i < x.length / dim; i++) {
    let best = Infinity;
    for (const p of picked) {
      let s = 0;
      for (let k = 0; k < dim; k++) s += (x[i * dim + k] - x[p * dim + k]) ** 2;
      best = Math.min(best, s);
    }
    worst = Math.max(worst, best);
  }
  return Math.sqrt(worst);
}

/** Textbook greedy k-center, the reference for batch = 1. */
function referenceGreedy(x: Float32Array, dim: number, m: number, start: number): number[] {
  const n = x.length / dim;
  const d = new Float64Array(n).fill(Infinity);
  const picked = [start];
  for (;;) {
    const c = picked[picked.length - 1];
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let k = 0; k < dim; k++) s += (x[i * dim + k] - x[c * dim + k]) ** 2;
      d[i] = Math.min(d[i], s);
    }
    if (picked.length === m) break;
    let best = 0;
    for (let i = 1; i < n; i++) if (d[i] > d[best]) best = i;
    picked.push(best);
  }
  return picked.sort((a, b) => a - b);
}

describe('coreset', () => {
  const dim = 8;
  const x = clustered(1200, dim, 3);

  it('computes the kept size from ratio or absolute size', () => {
    assert.equal(coresetSize(1000, { ...DEFAULT_CORESET, ratio: 0.1 }), 100);
    assert.equal(coresetSize(1000, { ...DEFAULT_CORESET, size: 42 }), 42);
    assert.equal(coresetSize(10, { ...DEFAULT_CORESET, size: 42 }), 10);
    assert.equal(coresetSize(1000, { ...DEFAULT_CORESET, method: 'none' }), 1000);
  });

  it('batch = 1 is exactly the textbook greedy k-center', () => {
    const cfg = { ...DEFAULT_CORESET, size: 40, batch: 1, projectDim: 0, seed: 5 };
    const got = Array.from(selectCoreset(x, dim, cfg));
    const start = Math.floor(((5 * 2654435761) >>> 0) % 1200);
    assert.deepEqual(got, referenceGreedy(x, dim, 40, start));
  });

  it('greedy covers the data far better than random subsampling at the same size', () => {
    const greedy = selectCoreset(x, dim, { ...DEFAULT_CORESET, size: 60, projectDim: 0 });
    const random = selectCoreset(x, dim, { ...DEFAULT_CORESET, method: 'random', size: 60 });
    assert.equal(greedy.length, 60);
    assert.equal(new Set(greedy).size, 60);
    assert.ok(coveringRadius(x, dim, greedy) < 0.8 * coveringRadius(x, dim, random));
  });

  it('batched greedy on a projection stays close to exact greedy', () => {
    const exact = coveringRadius(
      x,
      dim,
      selectCoreset(x, dim, { ...DEFAULT_CORESET, size: 80, batch: 1, projectDim: 0 }),
    );
    const fast = coveringRadius(
      x,
      dim,
      selectCoreset(x, dim, { ...DEFAULT_CORESET, size: 80, batch: 8, projectDim: 4 }),
    );
    assert.ok(fast < exact * 1.6, `fast ${fast} vs exact ${exact}`);
  });

  it('uses faiss for the distance update on large inputs and reports progress', () => {
    const big = clustered(30000, dim, 4);
    const seen: number[] = [];
    const picked = selectCoreset(big, dim, { ...DEFAULT_CORESET, size: 300 }, (done) => seen.push(done));
    assert.equal(picked.length, 300);
    assert.equal(seen[seen.length - 1], 300);
    assert.ok(seen.length > 10);
  });

  it('searches large inputs in chunks of rows that cover every row once, as views (no copies)', () => {
    const rows = new Float32Array(10 * 3).map((_, i) => i);
    const seen: { first: number; rows: number; shared: boolean }[] = [];
    forEachChunk(
      rows,
      3,
      (chunk, first) => {
        seen.push({ first, rows: chunk.length / 3, shared: chunk.buffer === rows.buffer });
        assert.equal(chunk[0], first * 3);
      },
      4 * 3 * 4,
    );
    assert.deepEqual(seen, [
      { first: 0, rows: 4, shared: true },
      { first: 4, rows: 4, shared: true },
      { first: 8, rows: 2, shared: true },
    ]);
  });

  it('the greedy over more rows than one search chunk covers them all', () => {
    // 200k rows of width 8 are 6.1 MiB: two chunks of the distance update.
    const big = clustered(200_000, dim, 6);
    const greedy = selectCoreset(big, dim, { ...DEFAULT_CORESET, size: 120, projectDim: 0 });
    const random = selectCoreset(big, dim, { ...DEFAULT_CORESET, method: 'random', size: 120 });
    assert.equal(new Set(greedy).size, 120);
    // Rows of a chunk left out of the update would keep an infinite distance and be picked first.
    assert.ok(coveringRadius(big, dim, greedy) < 0.8 * coveringRadius(big, dim, random));
  });

  it('the distance update skips the rows no new centre can reach, and picks exactly as without skipping', () => {
    // 80k rows of width 16 (5 MiB: two search chunks) in broad blobs; 2,000 picks in 100 updates.
    const rand = mulberry32(9);
    const rows = 80_000;
    const width = 16;
    const blobs = Array.from({ length: 20 }, () => Array.from({ length: width }, () => rand() * 4));
    const x = Float32Array.from(
      { length: rows * width },
      (_, i) => blobs[Math.floor(i / width) % 20][i % width] + rand(),
    );
    const stats = { searched: 0, rows: 0 };
    const skipping = greedyKCenter(x, width, 2000, 20, 3, undefined, undefined, { stats });
    const everyRow = greedyKCenter(x, width, 2000, 20, 3, undefined, undefined, { skip: false });
    assert.deepEqual(Array.from(skipping), Array.from(everyRow));
    assert.ok(stats.searched < 0.7 * stats.rows, `searched ${stats.searched} of ${stats.rows} rows`);
    // Growing an existing bank (an incremental version): the bank's rows are centres from the start.
    const bank = x.subarray(0, 500 * width);
    const rest = x.subarray(500 * width);
    assert.deepEqual(
      Array.from(greedyKCenter(rest, width, 800, 20, 3, undefined, bank)),
      Array.from(greedyKCenter(rest, width, 800, 20, 3, undefined, bank, { skip: false })),
    );
  });

  it('per-image pre-reduction keeps the coverage of the global greedy and every rare patch', () => {
    // 12 "images" of 100 rows; the rare far patterns sit in a few of them.
    const groups = Array.from({ length: 12 }, () => 100);
    const cfg = { ...DEFAULT_CORESET, size: 80, projectDim: 0 };
    const global = selectCoreset(x, dim, cfg);
    const seen: number[] = [];
    const staged = selectCoreset(x, dim, { ...cfg, perImage: 0.25 }, (d) => seen.push(d), groups);
    assert.equal(staged.length, 80);
    assert.equal(new Set(staged).size, 80);
    assert.deepEqual(
      Array.from(staged),
      Array.from(staged).sort((a, b) => a - b),
    );
    assert.ok(staged.every((r) => r >= 0 && r < 1200));
    assert.equal(seen[seen.length - 1], 80);
    const rare = Array.from({ length: 6 }, (_, i) => i * 200);
    for (const r of rare) assert.ok(staged.includes(r), `rare row ${r} kept`);
    const a = coveringRadius(x, dim, staged);
    const b = coveringRadius(x, dim, global);
    assert.ok(a < b * 1.3, `staged ${a} vs global ${b}`);
    // Without the row counts (or with perImage 0) it is the plain global greedy.
    assert.deepEqual(selectCoreset(x, dim, { ...cfg, perImage: 0.25 }), global);
    assert.deepEqual(selectCoreset(x, dim, { ...cfg, perImage: 0 }, undefined, groups), global);
    assert.throws(() => selectCoreset(x, dim, { ...cfg, perImage: 0.25 }, undefined, [100, 100]), /groups/);
  });

  it('random subsampling is reproducible from its seed', () => {
    const a = selectCoreset(x, dim, { ...DEFAULT_CORESET, method: 'random', size: 50, seed: 9 });
    const b = selectCoreset(x, dim, { ...DEFAULT_CORESET, method: 'random', size: 50, seed: 9 });
    assert.deepEqual(a, b);
  });

  it('topIndices finds the k largest values', () => {
    const v = Float32Array.from([5, 1, 9, 3, 9, 7]);
    assert.deepEqual(topIndices(v, 3).sort(), [2, 4, 5]);
  });
});
