import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { KnnIndex } from '../../../lib/knn/index';
import { IndexFlatL2, matmul, pairwiseL2, setBlockedFlatSearch, toHalves } from '../../../lib/knn/faiss';
import { buildIndex } from '../../../lib/knn/build-worker';
import { mulberry32 } from '../../../lib/util/random';
import { fromFloat16, toFloat16 } from '../../../lib/util/float16';

function randomVectors(n: number, dim: number, seed: number): Float32Array {
  const rand = mulberry32(seed);
  return Float32Array.from({ length: n * dim }, () => rand());
}

/** Brute-force nearest distance, the reference faiss must agree with. */
function bruteNearest(bank: Float32Array, q: Float32Array, dim: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < q.length / dim; i++) {
    let best = Infinity;
    for (let j = 0; j < bank.length / dim; j++) {
      let s = 0;
      for (let k = 0; k < dim; k++) s += (q[i * dim + k] - bank[j * dim + k]) ** 2;
      best = Math.min(best, s);
    }
    out.push(Math.sqrt(best));
  }
  return out;
}

describe('knn (faiss-node built against Debian libfaiss)', () => {
  const dim = 16;
  const bank = randomVectors(2000, dim, 1);
  const queries = randomVectors(50, dim, 2);

  it('IndexFlatL2 returns the exact Euclidean nearest distances', () => {
    const index = KnnIndex.build(bank, dim, { factory: 'Flat' });
    assert.equal(index.size, 2000);
    const result = index.searchSync(queries, 3);
    assert.equal(result.k, 3);
    const ref = bruteNearest(bank, queries, dim);
    for (let i = 0; i < 50; i++) {
      assert.ok(Math.abs(result.distances[i * 3] - ref[i]) < 1e-4, `query ${i}`);
      assert.ok(result.distances[i * 3] <= result.distances[i * 3 + 1]);
    }
  });

  it("the blocked exact search gives the k nearest in order, as brute force and faiss' own path do", async () => {
    // Bank rows over several slices (1,024 rows), the last one not a multiple of the eight distances
    // the vector scan compares at once; queries in several blocks; k up to the blocked search's limit
    // (16) and one past it (faiss' path); a factory "Flat" and an IndexFlatL2.
    const d = 6;
    const rows = 9003;
    const big = randomVectors(rows, d, 11);
    const q = randomVectors(70, d, 12);
    const brute = (k: number) =>
      Array.from({ length: 70 }, (_, i) => {
        const all = Array.from({ length: rows }, (_, j) => {
          let s = 0;
          for (let c = 0; c < d; c++) s += (q[i * d + c] - big[j * d + c]) ** 2;
          return { j, s };
        });
        return all.sort((a, b) => a.s - b.s).slice(0, k);
      });
    const flat = new IndexFlatL2(d);
    flat.addBuffer(big);
    for (const index of [KnnIndex.build(big, d, { factory: 'Flat' }), flat]) {
      for (const k of [1, 5, 16, 17]) {
        const want = brute(k);
        const got = index instanceof KnnIndex ? await index.search(q, k) : await index.searchAsync(q, k);
        for (let i = 0; i < 70; i++)
          for (let r = 0; r < k; r++) {
            assert.equal(got.labels[i * k + r], want[i][r].j, `k ${k}, query ${i}, rank ${r}`);
            const dist = index instanceof KnnIndex ? got.distances[i * k + r] ** 2 : got.distances[i * k + r];
            assert.ok(Math.abs(dist - want[i][r].s) < 1e-4, `k ${k}, query ${i}, rank ${r}`);
          }
      }
    }
    setBlockedFlatSearch(false);
    try {
      const theirs = await flat.searchAsync(q, 5);
      setBlockedFlatSearch(true);
      const ours = await flat.searchAsync(q, 5);
      assert.deepEqual(Array.from(ours.labels), Array.from(theirs.labels));
    } finally {
      setBlockedFlatSearch(true);
    }
  });

  it('async search on the thread pool matches the synchronous one', async () => {
    const index = KnnIndex.build(bank, dim, { factory: 'Flat' });
    const [a, b] = await Promise.all([index.search(queries, 2), index.search(queries, 2)]);
    assert.deepEqual(Array.from(a.labels), Array.from(index.searchSync(queries, 2).labels));
    assert.deepEqual(Array.from(a.distances), Array.from(b.distances));
  });

  it('concurrent blocked searches on the pool threads (a shard serving several requests) each get their own answer', async () => {
    const big = randomVectors(9000, 8, 21);
    const index = KnnIndex.build(big, 8, { factory: 'Flat' });
    const sets = Array.from({ length: 8 }, (_, i) => randomVectors(40 + 13 * i, 8, 100 + i));
    const alone = sets.map((q) => index.searchSync(q, 3));
    const together = await Promise.all(sets.map((q) => index.search(q, 3)));
    together.forEach((r, i) => {
      assert.deepEqual(Array.from(r.labels), Array.from(alone[i].labels), `set ${i}`);
      assert.deepEqual(Array.from(r.distances), Array.from(alone[i].distances), `set ${i}`);
    });
  });

  it('packs float32 values into halves natively, bit for bit as JavaScript does, and says when one is not finite', () => {
    const rand = mulberry32(5);
    const edges = [
      0, -0, 1, -1, 65504, 65519.99, -65519, 6.1e-5, 6.0e-5, 5.96e-8, 2.98e-8, 2.99e-8, 1e-9, 1.5, 0.1,
    ];
    // Ties at every exponent (the 13 dropped bits exactly half): round to even.
    // Exponents 2^-24 .. 2^15, every value a half can hold.
    const ties = Array.from({ length: 40 }, (_, i) => {
      const bits = new Uint32Array([((103 + i) << 23) | (i % 2 ? 0x3000 : 0x1000)]);
      return new Float32Array(bits.buffer)[0];
    });
    const random = Array.from({ length: 20_000 }, () => (rand() - 0.5) * 10 ** (rand() * 12 - 8));
    const values = Float32Array.from([...edges, ...ties, ...random]);
    const halves = new Uint16Array(values.length);
    assert.equal(toHalves(values, halves), true);
    assert.deepEqual(Array.from(halves), Array.from(toFloat16(values)));
    for (const bad of [65520, -1e6, Infinity, NaN]) {
      const one = Float32Array.from([1, bad, 2, 3, 4, 5, 6, 7, 8]);
      assert.equal(toHalves(one, new Uint16Array(one.length)), false, String(bad));
    }
    assert.throws(() => toHalves(values, new Uint16Array(3)), /as long as src/);
  });

  it('float16 queries, as shards get them, are widened natively: the same answers as widened in JavaScript', async () => {
    const index = KnnIndex.build(bank, dim, { factory: 'Flat' });
    const halves = toFloat16(queries);
    const native = await index.search(halves, 3);
    const widened = await index.search(fromFloat16(halves), 3);
    assert.deepEqual(Array.from(native.labels), Array.from(widened.labels));
    assert.deepEqual(Array.from(native.distances), Array.from(widened.distances));
    // Every finite half, each a query of its own against the origin: the distance is its magnitude,
    // exactly (subnormals, signs, the largest). Runs of 8 take the CPU's conversion where it has
    // one; fewer than 8 values (the second set) take the scalar one.
    const origin = KnnIndex.build(new Float32Array(1), 1, { factory: 'Flat' });
    const magnitudesExact = async (halves: Uint16Array) => {
      const found = await origin.search(halves, 1);
      const expected = fromFloat16(halves).map(Math.abs);
      const wrong = found.distances.findIndex((d, i) => d !== expected[i]);
      assert.equal(
        wrong,
        -1,
        `half 0x${halves[wrong]?.toString(16)}: ${found.distances[wrong]} not ${expected[wrong]}`,
      );
    };
    await magnitudesExact(
      Uint16Array.from({ length: 65536 }, (_, h) => h).filter((h) => (h & 0x7c00) !== 0x7c00),
    );
    await magnitudesExact(Uint16Array.from([0x0001, 0x03ff, 0x0400, 0x8001, 0x7bff, 0xfbff, 0x3555]));
    await assert.rejects(index.search(new Uint16Array(dim + 1), 1), /not a multiple of the dimension/);
  });

  it("searches listed rows gathered natively, and gives the pairwise distances of rows (the greedy's helpers), and multiplies matrices", () => {
    const index = new IndexFlatL2(dim);
    index.addBuffer(bank);
    const rows = Int32Array.from([7, 0, 49, 7]);
    const gathered = new Float32Array(rows.length * dim);
    rows.forEach((r, i) => gathered.set(queries.subarray(r * dim, (r + 1) * dim), i * dim));
    const listed = index.searchRows(queries, rows, 2);
    const direct = index.searchBuffer(gathered, 2);
    assert.deepEqual(Array.from(listed.labels), Array.from(direct.labels));
    assert.deepEqual(Array.from(listed.distances), Array.from(direct.distances));
    assert.throws(() => index.searchRows(queries, Int32Array.from([50]), 1), /row 50 is outside the 50 rows/);
    const few = queries.subarray(0, 5 * dim);
    const pairs = pairwiseL2(few, dim);
    for (let i = 0; i < 5; i++)
      for (let j = 0; j < 5; j++) {
        let s = 0;
        for (let k = 0; k < dim; k++) s += (few[i * dim + k] - few[j * dim + k]) ** 2;
        assert.ok(Math.abs(pairs[i * 5 + j] - s) < 1e-4, `pair ${i},${j}: ${pairs[i * 5 + j]} vs ${s}`);
      }
    // The projections' product (BLAS): 5 rows of width 16 times a 16 x 3 matrix.
    const matrix = randomVectors(dim, 3, 4);
    const product = matmul(few, dim, matrix, 3);
    for (let r = 0; r < 5; r++)
      for (let c = 0; c < 3; c++) {
        let s = 0;
        for (let k = 0; k < dim; k++) s += few[r * dim + k] * matrix[k * 3 + c];
        assert.ok(Math.abs(product[r * 3 + c] - s) < 1e-4, `(${r}, ${c}): ${product[r * 3 + c]} vs ${s}`);
      }
    assert.throws(() => matmul(few, dim, matrix, 4), /shapes do not agree/);
    assert.equal(matmul(new Float32Array(0), dim, matrix, 3).length, 0);
  });

  it('IVF index finds the stored vectors themselves with nprobe = nlist', () => {
    const index = KnnIndex.build(bank, dim, { factory: 'IVF16,Flat', nprobe: 16 });
    const self = bank.subarray(0, 20 * dim);
    const result = index.searchSync(self, 1);
    for (let i = 0; i < 20; i++) {
      assert.equal(result.labels[i], i);
      assert.ok(result.distances[i] < 1e-3);
    }
  });

  it('changes nprobe on a built IVF index: more cells, closer to exact', () => {
    const index = KnnIndex.build(bank, dim, { factory: 'IVF16,Flat', nprobe: 1 });
    const exact = bruteNearest(bank, queries, dim);
    const misses = () => {
      const r = index.searchSync(queries, 1);
      return exact.filter((d, i) => Math.abs(r.distances[i] - d) > 1e-4).length;
    };
    const atOne = misses();
    assert.ok(atOne > 0, 'one cell of 16 misses some true neighbours of uniform data');
    index.setNprobe(16);
    assert.equal(index.config.nprobe, 16);
    assert.equal(misses(), 0);
    assert.throws(() => index.setNprobe(17), /from 1 to 16/);
    assert.throws(() => KnnIndex.build(bank, dim, { factory: 'Flat' }).setNprobe(4), /only IVF/);
  });

  it('builds IVF indexes on a worker thread with the same answers, and reports its errors', async function () {
    this.timeout(30_000);
    const config = { factory: 'IVF16,Flat', nprobe: 4 };
    const offThread = await buildIndex(bank, dim, config);
    const here = KnnIndex.build(bank, dim, config);
    assert.equal(offThread.size, here.size);
    assert.deepEqual(offThread.config, config);
    const a = offThread.searchSync(queries, 2);
    const b = here.searchSync(queries, 2);
    assert.deepEqual(Array.from(a.labels), Array.from(b.labels));
    assert.deepEqual(Array.from(a.distances), Array.from(b.distances));
    await assert.rejects(
      buildIndex(bank.subarray(0, 8 * dim), dim, config),
      /needs at least 16 bank vectors/,
    );
  });

  it('serialises and restores an index with identical answers', () => {
    const index = KnnIndex.build(bank, dim, { factory: 'IVF16,Flat', nprobe: 4 });
    const restored = KnnIndex.deserialize(index.serialize(), { factory: 'IVF16,Flat', nprobe: 4 });
    assert.deepEqual(
      Array.from(restored.searchSync(queries, 2).labels),
      Array.from(index.searchSync(queries, 2).labels),
    );
  });

  it('works on the main thread after a worker thread used faiss (per-thread constructors)', async () => {
    const { Worker } = await import('node:worker_threads');
    const code = `const { Index } = require('faiss-node'); const i = Index.fromFactory(4, 'Flat');
      i.addBuffer(new Float32Array(8)); require('node:worker_threads').parentPort.postMessage(i.ntotal());`;
    const fromWorker = await new Promise((resolve, reject) => {
      const w = new Worker(code, { eval: true });
      w.once('message', resolve);
      w.once('error', reject);
    });
    assert.equal(fromWorker, 2);
    // Upstream faiss-node crashed here: its constructor reference belonged to the worker's environment.
    const index = KnnIndex.build(bank, dim, { factory: 'Flat' });
    assert.equal(index.size, 2000);
  });

  it('search threads sleep between searches instead of spinning on the cores', function () {
    this.timeout(30_000);
    // A fresh process, so the thread settings are the ones faiss.ts applies before its libraries load.
    // Without them OpenBLAS' workers busy-wait about 110 ms of a core after every exact search here.
    const child = `
      const { KnnIndex } = require('./lib/knn/index');
      const d = 96, bank = new Float32Array(1500 * d).map(Math.random), q = new Float32Array(784 * d).map(Math.random);
      const index = KnnIndex.build(bank, d, { factory: 'Flat' });
      const idle = [];
      for (let r = 0; r < 3; r++) {
        index.searchSync(q, 1);
        const c0 = process.cpuUsage();
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300); // blocks, burns nothing
        const c = process.cpuUsage(c0);
        idle.push((c.user + c.system) / 1000);
      }
      console.log(JSON.stringify(idle));`;
    const env = { ...process.env };
    for (const name of [
      'OMP_WAIT_POLICY',
      'OPENBLAS_THREAD_TIMEOUT',
      'OMP_NUM_THREADS',
      'OPENBLAS_NUM_THREADS',
    ])
      delete env[name];
    const run = spawnSync(process.execPath, ['--import', 'tsx', '-e', child], {
      cwd: path.resolve(__dirname, '../../..'),
      env,
      encoding: 'utf8',
    });
    assert.equal(run.status, 0, run.stderr);
    const idleCpuMs: number[] = JSON.parse(run.stdout.trim().split('\n').pop()!);
    // CPU time of a process blocked for 300 ms: a spinning pool shows ~100 ms, a sleeping one ~0.
    assert.ok(Math.min(...idleCpuMs) < 30, `idle CPU ms after a search: ${idleCpuMs.join(', ')}`);
  });

  it('clamps k to the bank size and refuses bad input with clear messages', () => {
    const small = KnnIndex.build(bank.subarray(0, 3 * dim), dim, { factory: 'Flat' });
    assert.equal(small.searchSync(queries, 5).k, 3);
    assert.throws(
      () => KnnIndex.build(bank.subarray(0, 10 * dim), dim, { factory: 'IVF64,Flat' }),
      /needs at least 64/,
    );
    assert.throws(() => small.searchSync(queries.subarray(0, 5), 1), /not a multiple of the dimension/);
    assert.throws(() => small.searchSync(queries, 0), /k must be a positive integer/);
  });
});
