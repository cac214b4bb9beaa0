/**
 * Bounded-memory fits (#18) in their parts: the spill file (chunks of whole images, read back as
 * written, removed on close), the two-stage coreset over chunks against the one-pass greedy, the
 * budget's arithmetic and its error, and the sizes of `--max-memory`.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DEFAULT_CORESET, selectCoreset } from '../../../lib/coreset/coreset';
import { selectChunked } from '../../../lib/coreset/chunked';
import { PatchSpill } from '../../../lib/patchcore/patch-spill';
import { concat } from '../../../lib/patchcore/feature-extractor';
import {
  GiB,
  MiB,
  defaultMaxMemory,
  finalBytes,
  formatBytes,
  parseBytes,
  planChunks,
  rowBytes,
  searchBytes,
} from '../../../lib/patchcore/memory-budget';
import { formatDuration, secondsLeft } from '../../../services/cli/progress';
import { mulberry32 } from '../../../lib/util/random';
import { TEST_TMP } from '../../helpers/processes';
import { gatherRows } from '../../../lib/util/rows';

const DIM = 4;

/** `images` images of `rows` random rows each, image g's rows around a centre of its own cluster. */
function patches(images: number, rows: number, seed = 1): Float32Array[] {
  const rand = mulberry32(seed);
  return Array.from({ length: images }, () => {
    const centre = Array.from({ length: DIM }, () => rand() * 10);
    return Float32Array.from({ length: rows * DIM }, (_, i) => centre[i % DIM] + rand());
  });
}

/** Largest distance from a row of `x` to its nearest row of `bank` (the covering radius). */
function radius(x: Float32Array, bank: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < x.length / DIM; i++) {
    let best = Infinity;
    for (let j = 0; j < bank.length / DIM; j++) {
      let s = 0;
      for (let k = 0; k < DIM; k++) s += (x[i * DIM + k] - bank[j * DIM + k]) ** 2;
      best = Math.min(best, s);
    }
    worst = Math.max(worst, Math.sqrt(best));
  }
  return worst;
}

describe('bounded-memory fit', () => {
  let dir: string;
  beforeEach(() => {
    fs.mkdirSync(TEST_TMP, { recursive: true });
    dir = fs.mkdtempSync(path.join(TEST_TMP, 'spill-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('spills whole images in chunks to one file, reads them back as written and removes it on close', () => {
    const images = patches(7, 5);
    const spill = new PatchSpill(DIM, 12, dir);
    images.forEach((x, i) => spill.add(x, i));
    assert.ok(spill.spilled, 'chunks of 12 rows: images of 5 rows spill from the third on');
    assert.equal(fs.readdirSync(dir).length, 1);
    const chunks = [...spill.read()];
    assert.deepEqual(
      chunks.map((c) => c.images),
      [[0, 1], [2, 3], [4, 5], [6]],
    );
    assert.deepEqual(chunks[1].groups, [5, 5]);
    assert.deepEqual(chunks[1].vectors, concat([images[2], images[3]]));
    assert.equal(spill.spilledBytes, 7 * 5 * DIM * 4);
    assert.equal(fs.statSync(spill.file!).size, spill.spilledBytes);
    spill.close();
    spill.close();
    assert.deepEqual(fs.readdirSync(dir), [], 'the spill folder is gone');
  });

  it('removes the spill file when the process is interrupted (Ctrl-C), and still ends by the signal', async function () {
    this.timeout(30_000);
    const script = path.join(dir, 'interrupted.ts');
    const module = path.resolve(__dirname, '../../../lib/patchcore/patch-spill');
    fs.writeFileSync(
      script,
      `import { PatchSpill } from ${JSON.stringify(module)};
const spill = new PatchSpill(2, 2, process.argv[2]);
spill.add(new Float32Array(4), 0);
spill.add(new Float32Array(4), 1);
console.log(spill.file);
setInterval(() => {}, 1000);
`,
    );
    const spillDir = path.join(dir, 'spill');
    const child = spawn(process.execPath, ['--import', 'tsx', script, spillDir], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const file = await new Promise<string>((resolve) =>
      child.stdout.once('data', (d) => resolve(String(d).trim())),
    );
    assert.ok(fs.existsSync(file), 'spilled before the interrupt');
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      child.once('exit', (_code, signal) => resolve(signal)),
    );
    child.kill('SIGINT');
    assert.equal(await exited, 'SIGINT');
    assert.deepEqual(fs.readdirSync(spillDir), []);
  });

  it('keeps everything in memory while it fits in one chunk (no file at all)', () => {
    const images = patches(3, 5);
    const spill = new PatchSpill(DIM, 100, dir);
    images.forEach((x, i) => spill.add(x, i));
    assert.ok(!spill.spilled);
    assert.deepEqual(spill.whole().vectors, concat(images));
    spill.close();
    assert.deepEqual(fs.readdirSync(dir), []);
  });

  it('the two-stage coreset over chunks covers the rows about as well as one greedy over all', async () => {
    const images = patches(40, 30, 3);
    const all = concat(images);
    const config = { ...DEFAULT_CORESET, projectDim: 0 };
    const m = 60;
    const one = selectCoreset(all, DIM, { ...config, size: m });
    const oneBank = gatherRows(all, DIM, one);
    const chunks = [0, 10, 20, 30].map((s) => ({
      vectors: concat(images.slice(s, s + 10)),
      groups: new Array<number>(10).fill(30),
      images: Array.from({ length: 10 }, (_, i) => s + i),
    }));
    const two = await selectChunked(chunks, { chunks: 4, rows: 1200, images: 40 }, DIM, config, m);
    assert.equal(two.vectors.length / DIM, m);
    const r1 = radius(all, oneBank);
    const r2 = radius(all, two.vectors);
    // Measured 1.17x here; a chunk coreset that ignored its neighbours (random picks) is far off.
    assert.ok(r2 <= 1.5 * r1, `two-stage radius ${r2} against ${r1}`);
  });

  it('adds up the outlier filter per image across chunks', async () => {
    const images = patches(12, 20, 5);
    const chunks = [0, 6].map((s) => ({
      vectors: concat(images.slice(s, s + 6)),
      groups: new Array<number>(6).fill(20),
      images: Array.from({ length: 6 }, (_, i) => s + i),
    }));
    const filter = { fraction: 0.05, minRatio: 1, k: 2, reference: 1000 };
    const r = await selectChunked(
      chunks,
      { chunks: 2, rows: 240, images: 12 },
      DIM,
      DEFAULT_CORESET,
      30,
      filter,
    );
    const o = r.outliers!;
    assert.equal(o.considered, 240);
    assert.deepEqual([...o.candidatesPerGroup], new Array(12).fill(20));
    assert.equal(
      o.droppedPerGroup.reduce((a, b) => a + b, 0),
      o.dropped,
    );
    assert.ok(o.dropped > 0 && o.dropped <= 2 * Math.floor(120 * 0.05));
  });

  it('plans a chunk from what is left of the budget, and refuses a budget that cannot hold the bank', () => {
    const budget = { maxBytes: 100 * MiB };
    const plan = planChunks(budget, 20 * MiB, 1000, 96, 96, 700, 5000);
    const left = 0.9 * 100 * MiB - 20 * MiB - finalBytes(1000, 96, 96) - searchBytes(5000, 96);
    assert.equal(plan.chunkRows, Math.floor(left / rowBytes(96, 96)));
    assert.throws(
      () => planChunks({ maxBytes: 300 * MiB }, 280 * MiB, 100_000, 96, 96, 700),
      /memory budget \(--max-memory 300 MiB\) is too small: 280 MiB are in use[\s\S]*bank of 100000 patches x 96/,
    );
  });

  it('reads sizes as people write them and defaults to half the RAM within 1 to 16 GiB', () => {
    assert.equal(parseBytes('2GiB'), 2 * GiB);
    assert.equal(parseBytes('800 MiB'), 800 * MiB);
    assert.equal(parseBytes('1.5G'), 1.5e9);
    assert.equal(parseBytes('123456'), 123456);
    assert.equal(parseBytes('lots'), undefined);
    assert.equal(parseBytes('2 GiBs'), undefined);
    assert.equal(formatBytes(1.5 * GiB), '1.5 GiB');
    assert.equal(formatBytes(300 * MiB), '300 MiB');
    assert.equal(defaultMaxMemory(8 * GiB), 4 * GiB);
    assert.equal(defaultMaxMemory(GiB), GiB);
    assert.equal(defaultMaxMemory(256 * GiB), 16 * GiB);
  });

  it('estimates the time left at the rate so far', () => {
    assert.equal(secondsLeft(10_000, 100, 400), 40);
    assert.ok(Number.isNaN(secondsLeft(10_000, 0, 400)));
    assert.equal(formatDuration(40), '40s');
    assert.equal(formatDuration(250), '4m 10s');
    assert.equal(formatDuration(7500), '2h 05m');
    assert.equal(formatDuration(NaN), '?');
  });
});
