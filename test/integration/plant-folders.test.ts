/**
 * Banks from plant folders (#18) on the real backbone, onnxruntime and faiss: a good folder with
 * defective sheets mixed in (the outlier filter and its suspect list), and `spi fit --add` (the next
 * version from the bank plus new images, without re-embedding the old ones).
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { run } from '../../services/cli/spi';
import { loadBank } from '../../lib/bank/bank-store';
import { coresetProjector } from '../../lib/coreset/coreset';
import { DEFAULT_OUTLIER_FILTER } from '../../lib/coreset/outliers';
import { fileSources, listImages } from '../../lib/data/mvtec';
import { fittedInspector } from '../../lib/patchcore/fit';
import { Inspector } from '../../lib/patchcore/inspector';
import { addToBank } from '../../lib/patchcore/incremental';
import { MiB, finalBytes, rowBytes, searchBytes } from '../../lib/patchcore/memory-budget';
import { BackbonePool, extractorForBank, openBank } from '../../lib/patchcore/engine';
import { TEST_TMP } from '../helpers/processes';
import { decodeImage } from '../../lib/image/decode';
import { patchScores } from '../../lib/score/anomaly-map';
import { printDataset, PrintDataset } from '../helpers/fixtures';

describe('plant folders: contaminated good folders and incremental banks', function () {
  this.timeout(180_000);
  let data: PrintDataset;
  let out: string;
  const folder = (name: string, files: string[]) => {
    const dir = path.join(out, name);
    fs.mkdirSync(dir, { recursive: true });
    for (const f of files)
      fs.copyFileSync(f, path.join(dir, path.basename(path.dirname(f)) + '-' + path.basename(f)));
    return dir;
  };

  before(async () => {
    data = await printDataset('prints-plant', 20);
    fs.mkdirSync(TEST_TMP, { recursive: true });
    out = fs.mkdtempSync(path.join(TEST_TMP, 'plant-'));
  });
  after(() => fs.rmSync(out, { recursive: true, force: true }));

  /** Defective test prints scored above every good one: how well a bank tells them apart. */
  const caughtBy = async (inspector: Pick<Inspector, 'inspectBytes'>) => {
    const score = async (f: string) => (await inspector.inspectBytes(fs.readFileSync(f))).score;
    const good = await Promise.all(data.testGood.map(score));
    const bad = await Promise.all(data.testDefective.map(score));
    return bad.filter((s) => s > Math.max(...good)).length;
  };

  it('spi fit drops the defective sheets of a good folder before the coreset and lists them as suspects', async () => {
    const defective = data.testDefective.slice(0, 3);
    const good = folder('contaminated', [...data.train.slice(0, 9), ...defective]);
    const bank = path.join(out, 'contaminated-bank');
    assert.equal(await run(['fit', '--data', good, '--out', bank, '--auto', 'off', '--holdout', '0.1']), 0);
    const { meta } = loadBank(bank);
    const o = meta.outliers!;
    assert.ok(o, 'the filter is on by default and recorded');
    assert.ok(o.dropped > 0 && o.dropped <= Math.floor(o.considered * o.fraction));
    assert.equal(o.droppedFraction, o.dropped / o.considered);
    const names = new Set(defective.map((f) => path.basename(path.dirname(f)) + '-' + path.basename(f)));
    const trained = meta.sources.filter((s) => names.has(s.path)).length;
    const flagged = o.suspects.filter((s) => names.has(s.path)).length;
    assert.ok(flagged >= 1, `suspects ${JSON.stringify(o.suspects)}`);
    assert.ok(flagged <= trained);
    assert.equal(o.suspects.length, flagged, 'no good print is a suspect');
  });

  it('--outlier-filter 0 turns it off', async () => {
    const bank = path.join(out, 'unfiltered');
    const good = folder('good-only', data.train.slice(0, 6));
    assert.equal(
      await run(['fit', '--data', good, '--out', bank, '--auto', 'off', '--outlier-filter', '0']),
      0,
    );
    assert.equal(loadBank(bank).meta.outliers, undefined);
  });

  it('spi fit --add builds the next version from the bank and the new images only', async () => {
    const first = folder('first', data.train.slice(0, 8));
    const later = folder('later', data.train.slice(8, 20));
    const v1 = path.join(out, 'v1');
    const v2 = path.join(out, 'v2');
    assert.equal(await run(['fit', '--data', first, '--out', v1, '--auto', 'off', '--holdout', '0.25']), 0);
    assert.equal(
      await run(['fit', '--add', later, '--bank', v1, '--out', v2, '--reason', 'false alarms marked good']),
      0,
    );
    const a = loadBank(v1);
    const b = loadBank(v2);
    assert.equal(b.meta.version, a.meta.version + 1);
    // The old bank's rows are kept as they are: nothing was re-embedded or re-chosen.
    assert.deepEqual(b.vectors.subarray(0, a.vectors.length), a.vectors);
    const added = b.meta.additions!.at(-1)!;
    assert.equal(added.version, 2);
    assert.equal(added.reason, 'false alarms marked good');
    assert.equal(added.images.length + added.heldOut.length, 12);
    assert.equal(added.heldOut.length, 1, 'part of the new images recalibrates the threshold');
    assert.deepEqual(
      b.meta.sources.map((s) => s.path),
      [...a.meta.sources.map((s) => s.path), ...added.images],
    );
    assert.equal(b.meta.vectors.rows, a.meta.vectors.rows + added.keptPatches);
    assert.ok(added.keptPatches > 0 && added.keptPatches < added.inputPatches);
    assert.equal(b.meta.coreset.inputPatches, a.meta.coreset.inputPatches + added.inputPatches);
    // Recalibrated: the old held-out scores pooled with the new held-out images' scores.
    assert.equal(b.meta.threshold.method, 'nominal');
    assert.equal(b.meta.threshold.nominal!.count, a.meta.threshold.nominal!.count + added.heldOut.length);

    // The added version tells the defects from the good prints as well as a full rebuild on the
    // same images does (margin: the lowest defect score over the highest good one).
    const all = folder('all', data.train.slice(0, 20));
    const rebuilt = path.join(out, 'rebuilt');
    assert.equal(
      await run(['fit', '--data', all, '--out', rebuilt, '--auto', 'off', '--holdout', '0.25']),
      0,
    );
    const pool = new BackbonePool();
    try {
      const caught = async (dir: string) => caughtBy((await openBank(pool, dir)).inspector);
      const [c2, cr] = [await caught(v2), await caught(rebuilt)];
      assert.ok(c2 >= cr - 1, `added ${c2}, rebuilt ${cr} of ${data.testDefective.length}`);
    } finally {
      await pool.close();
    }
  });

  it('adds a few sheets (false alarms) to the bank whole: none held back, the threshold kept', async () => {
    const v1 = path.join(out, 'v1');
    const few = folder('few', data.testGood.slice(0, 2));
    const v3 = path.join(out, 'few-bank');
    assert.equal(await run(['fit', '--add', few, '--bank', v1, '--out', v3]), 0);
    const a = loadBank(v1);
    const b = loadBank(v3);
    const added = b.meta.additions!.at(-1)!;
    assert.equal(added.images.length, 2);
    assert.deepEqual(added.heldOut, []);
    assert.equal(b.meta.threshold.value, a.meta.threshold.value);
  });

  it('spi fit --add under a memory budget holds one chunk of new patches at a time', async () => {
    const v1 = path.join(out, 'v1');
    const base = loadBank(v1);
    const later = fileSources(listImages(path.join(out, 'later')), path.join(out, 'later'));
    const dim = base.meta.vectors.dim;
    const pool = new BackbonePool();
    try {
      const extractor = await extractorForBank(pool, base.meta);
      const whole = await addToBank(extractor, base, later, {});
      // A budget (with the resident size fixed, as the library allows) that holds about 2.5 images'
      // patches beside the bank: the new training images go two to a chunk.
      const images = whole.meta.additions!.at(-1)!.images.length;
      const imageRows = whole.meta.additions!.at(-1)!.inputPatches / images;
      const d = coresetProjector(dim, whole.meta.coreset).d;
      const resident = 100 * MiB;
      const need = (rows: number) =>
        (resident +
          finalBytes(whole.vectors.length / dim, dim, d) +
          searchBytes(DEFAULT_OUTLIER_FILTER.reference, d) +
          rows * rowBytes(dim, d)) /
        0.9;
      const memory = { maxBytes: Math.ceil(need(2.5 * imageRows)), residentBytes: resident };
      const chunked = await addToBank(extractor, base, later, { memory });
      const added = chunked.meta.additions!.at(-1)!;
      assert.ok(images >= 6);
      assert.equal(added.memory?.chunks, Math.ceil(images / 2));
      assert.equal(added.memory?.candidates, added.inputPatches);
      assert.equal(added.inputPatches, whole.meta.additions!.at(-1)!.inputPatches);
      // The same number of picks, give or take the per-chunk rounding.
      assert.ok(Math.abs(added.keptPatches - whole.meta.additions!.at(-1)!.keptPatches) <= images);
      assert.equal(chunked.vectors.length / dim, base.meta.vectors.rows + added.keptPatches);
      assert.equal(added.outliers?.considered, added.inputPatches);
      // And it tells the defects from the good prints about as well as the one-chunk addition.
      const caught = (fitted: typeof whole) => caughtBy(fittedInspector(fitted, extractor));
      const [cc, cw] = [await caught(chunked), await caught(whole)];
      assert.ok(cc >= cw - 1, `chunked ${cc}, whole ${cw} of ${data.testDefective.length}`);
      // A budget that cannot hold the bank and two images' patches is refused, with its figures.
      await assert.rejects(
        addToBank(extractor, base, later, {
          memory: { maxBytes: Math.floor(need(imageRows)), residentBytes: resident },
        }),
        /memory budget .* is too small/,
      );
    } finally {
      await pool.close();
    }
  });

  it("--image-score reweighted: the top patch score times its weight from its match's 9 nearest bank patches", async () => {
    const bank = path.join(out, 'reweighted');
    const good = folder('rw-data', data.train.slice(0, 6));
    const args = ['fit', '--data', good, '--out', bank, '--auto', 'off', '--image-score', 'reweighted'];
    assert.equal(await run(args), 0);
    const pool = new BackbonePool();
    try {
      const { inspector, index, meta } = await openBank(pool, bank);
      const { vectors } = loadBank(bank);
      const dim = meta.vectors.dim;
      assert.equal(meta.score.imageScore, 'reweighted');
      assert.equal(meta.score.reweightAround, 'match');
      const rgb = await decodeImage(fs.readFileSync(data.testDefective[0]));
      const r = await inspector.inspectImage(rgb);
      // The same by hand (PatchCore eq. 7): the top patch's nearest bank patch m*, the 9 nearest
      // bank patches of m* (m* first), softmax of the top patch's distances to them.
      const { embedding, knn } = await inspector.search(rgb);
      const scores = patchScores(knn.distances, knn.k, 1);
      const top = scores.indexOf(r.maxPatchScore);
      const q = embedding.vectors.slice(top * dim, (top + 1) * dim);
      const match = Number(knn.labels[top * knn.k]);
      const row = (i: number) => vectors.subarray(i * dim, (i + 1) * dim);
      const near = Array.from(index.searchSync(row(match).slice(), 9).labels, Number);
      const support = [match, ...near.filter((l) => l !== match)].slice(0, 9);
      const dist = (i: number) => Math.sqrt(row(i).reduce((s, v, j) => s + (v - q[j]) ** 2, 0));
      const d = support.map(dist);
      const w = 1 - Math.exp(d[0]) / d.reduce((s, x) => s + Math.exp(x), 0);
      assert.ok(
        Math.abs(r.score - w * r.maxPatchScore) < 1e-5 * r.maxPatchScore,
        `${r.score} vs ${w * r.maxPatchScore}`,
      );
      assert.ok(r.score < r.maxPatchScore);
      assert.equal(r.isDefective, r.score >= meta.threshold.value);
      // A bank built before (no reweightAround) keeps the neighbourhood of the top patch itself.
      const old = await inspector.withScore({ reweightAround: undefined }).inspectImage(rgb);
      const dq = Array.from(index.searchSync(q, 9).distances);
      const wq = 1 - Math.exp(dq[0]) / dq.reduce((s, x) => s + Math.exp(x), 0);
      assert.ok(
        Math.abs(old.score - wq * r.maxPatchScore) < 1e-5 * r.maxPatchScore,
        `${old.score} vs ${wq * r.maxPatchScore}`,
      );
      assert.notEqual(old.score, r.score, 'the two neighbourhoods differ');
    } finally {
      await pool.close();
    }
    assert.notEqual(await run([...args, '--reference', 'mean']), 0, 'not with a nominal reference');
  });
});
