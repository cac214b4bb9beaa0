import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BankMeta, DEFAULT_SCORE } from '../../../lib/bank/bank-meta';
import { loadBank, saveBank } from '../../../lib/bank/bank-store';
import { DEFAULT_CORESET } from '../../../lib/coreset/coreset';
import { DEFAULT_VIEW } from '../../../lib/image/views';
import { fakeExtractor, greyPng, memorySource } from '../../helpers/fake-extractor';
import { DEFAULT_FIT, fitBank, fittedInspector } from '../../../lib/patchcore/fit';
import { scoreEmbedding } from '../../../lib/patchcore/inspector';
import { leaveOneOut, referenceFrom, subtractReference } from '../../../lib/score/reference';

const G = 8; // patch grid of the fake extractor: one cell per 4x4 block of a 32 px image
const png = greyPng;
const source = memorySource;

describe('nominal reference', () => {
  it('is the per-cell mean; leave-one-out subtracts the mean of the others', () => {
    const grids = [Float32Array.from([1, 2]), Float32Array.from([3, 2]), Float32Array.from([5, 8])];
    const ref = referenceFrom(grids);
    assert.equal(ref.count, 3);
    assert.deepEqual(ref.values, [3, 4]);
    assert.deepEqual(Array.from(leaveOneOut(grids, 0)), [1 - 4, 2 - 5]);
    assert.deepEqual(Array.from(subtractReference(Float32Array.from([4, 4]), ref)), [1, 0]);
  });

  it('refuses a unified multi-category bank before embedding anything', async () => {
    const settings = {
      ...DEFAULT_FIT,
      name: 'u',
      categories: ['a', 'b'],
      score: { ...DEFAULT_SCORE, reference: 'mean' as const },
    };
    const never = { path: 'a/x.png', read: () => Promise.reject(new Error('read')) };
    await assert.rejects(fitBank(fakeExtractor(), [never, never], settings), /unified multi-category/);
  });

  it('refuses a single held-out image and a grid of another size', () => {
    assert.throws(() => referenceFrom([new Float32Array(2)]), /at least 2 held-out/);
    assert.throws(
      () => subtractReference(new Float32Array(3), { count: 2, values: [0, 0] }),
      /3 patches, the bank's nominal reference has 2/,
    );
  });

  it('fitBank stores the held-out mean and thresholds leave-one-out scores', async () => {
    // Every good print has a hot cell in its top-left block whose grey level varies from print to
    // print (150, 158, ... 238), so a held-out print's lies 8 levels from the bank's nearest:
    // structured nominal noise, where the background (100) matches exactly.
    const good = await Promise.all(
      Array.from({ length: 12 }, (_, i) => png((x, y) => (x < 4 && y < 4 ? 150 + 8 * i : undefined))),
    );
    const images = good.map((b, i) => source(`g${i}.png`, b));
    const settings = {
      ...DEFAULT_FIT,
      name: 't',
      view: { ...DEFAULT_VIEW, resize: 32 },
      coreset: { ...DEFAULT_CORESET, method: 'none' as const },
      holdoutFraction: 0.25,
    };
    const extractor = fakeExtractor();
    const plain = await fitBank(extractor, images, settings);
    const fitted = await fitBank(extractor, images, {
      ...settings,
      score: { ...DEFAULT_SCORE, reference: 'mean' },
    });
    assert.equal(plain.meta.reference, undefined);
    const ref = fitted.meta.reference!;
    assert.equal(ref.count, 3);
    assert.equal(ref.values.length, G * G);
    assert.ok(
      ref.values[0] > 0 && ref.values.slice(1).every((v) => v === 0),
      'only the hot cell has a baseline',
    );
    // The threshold sits below the plain one: the hot cell's baseline no longer counts against it.
    assert.ok(fitted.meta.threshold.value < plain.meta.threshold.value);
    assert.equal(fitted.meta.threshold.nominal?.count, 3);

    // A faint defect (5 levels) away from the hot cell, whose own hot cell sits 8 levels off as
    // usual: without the reference the hot cell is the peak, with it the defect.
    const defect = await png((x, y) =>
      x >= 16 && x < 20 && y >= 16 && y < 20 ? 95 : x < 4 && y < 4 ? 246 : undefined,
    );
    const withRef = fittedInspector(fitted, extractor);
    const withoutRef = fittedInspector(plain, extractor);
    const r = await withRef.inspectBytes(defect);
    assert.ok(r.isDefective, `score ${r.score} against threshold ${r.threshold}`);
    const peak = r.map.indexOf(Math.max(...r.map));
    assert.ok(
      Math.abs((peak % 32) - 18) <= 2 && Math.abs(Math.floor(peak / 32) - 18) <= 2,
      'peak on the defect',
    );
    const p = await withoutRef.inspectBytes(defect);
    const plainPeak = p.map.indexOf(Math.max(...p.map));
    assert.ok(plainPeak % 32 < 8 && plainPeak < 32 * 8, 'without it the hot cell wins');
  });

  it('a bank with a reference is format 2 and round-trips; unknown formats are refused', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spi-ref-'));
    try {
      const meta: Omit<BankMeta, 'vectors' | 'format'> = {
        name: 'r',
        version: 1,
        createdAt: new Date(0).toISOString(),
        model: { id: 'm', stages: ['a'] },
        view: DEFAULT_VIEW,
        embedding: { dim: 2, projection: null },
        coreset: { ...DEFAULT_CORESET, inputPatches: 4, keptPatches: 2 },
        knn: { factory: 'Flat' },
        score: { ...DEFAULT_SCORE, reference: 'mean' },
        threshold: { value: 1, method: 'manual' },
        reference: { count: 2, values: [0.5, 0.25] },
        categories: ['x'],
        sources: [],
      };
      assert.equal(saveBank(path.join(dir, 'b'), meta, new Float32Array(4), 2).format, 2);
      assert.deepEqual(loadBank(path.join(dir, 'b')).meta.reference, meta.reference);
      const noRef = { ...meta, reference: undefined, score: DEFAULT_SCORE };
      assert.equal(saveBank(path.join(dir, 'c'), noRef, new Float32Array(4), 2).format, 1);
      const file = path.join(dir, 'b', 'bank.json');
      const json = JSON.parse(fs.readFileSync(file, 'utf8'));
      fs.writeFileSync(file, JSON.stringify({ ...json, format: 3 }));
      assert.throws(() => loadBank(path.join(dir, 'b')), /format 3; this build reads formats 1, 2/);
      fs.writeFileSync(file, JSON.stringify({ ...json, reference: undefined }));
      assert.throws(() => loadBank(path.join(dir, 'b')), /format 2 does not match its settings/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('scoreEmbedding subtracts the reference before the map', () => {
    const meta = {
      score: { ...DEFAULT_SCORE, sigma: 0 },
      reference: { count: 2, values: [0, 0, 5, 0] },
      view: DEFAULT_VIEW,
    } as unknown as BankMeta;
    const embedding = {
      canvasWidth: 2,
      canvasHeight: 2,
      tiles: [{ left: 0, top: 0, width: 2, height: 2 }],
      gridHeight: 2,
      gridWidth: 2,
      dim: 1,
      vectors: new Float32Array(4),
    };
    const knn = { k: 1, distances: Float32Array.from([1, 2, 6, 0]), labels: new BigInt64Array(4) };
    const r = scoreEmbedding(meta, embedding, knn as never, { width: 2, height: 2 }, 10);
    assert.equal(r.score, 2);
    assert.equal(r.maxPatchScore, 2);
  });
});
