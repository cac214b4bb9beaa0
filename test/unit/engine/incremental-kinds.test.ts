/**
 * Incremental banks with a nominal reference and fused banks (patchcore/incremental.ts,
 * incremental-fused.ts) on the fake extractor: what is recomputed, what is pooled with the old
 * bank's record, and that the grown bank still finds a faint defect.
 */
import { strict as assert } from 'node:assert';
import { BankMeta, DEFAULT_SCORE } from '../../../lib/bank/bank-meta';
import { DEFAULT_CORESET } from '../../../lib/coreset/coreset';
import { decodeImage } from '../../../lib/image/decode';
import { DEFAULT_VIEW } from '../../../lib/image/views';
import {
  DEFAULT_FIT,
  FitSettings,
  FittedBank,
  completeMeta,
  fitBank,
  fittedInspector,
} from '../../../lib/patchcore/fit';
import { fitFused, fusedInspector, pixelStats } from '../../../lib/patchcore/fusion';
import { addToBank, recalibratedByCategory } from '../../../lib/patchcore/incremental';
import { addToFused, pooledStats } from '../../../lib/patchcore/incremental-fused';
import { leaveOneOut, referenceFrom } from '../../../lib/score/reference';
import { fakeExtractor, greyPng, memorySource } from '../../helpers/fake-extractor';

const settings: FitSettings = {
  ...DEFAULT_FIT,
  name: 'framed',
  categories: ['framed'],
  view: { ...DEFAULT_VIEW, resize: 32 },
  coreset: { ...DEFAULT_CORESET, method: 'none' },
  score: { ...DEFAULT_SCORE, reference: 'mean' },
  holdoutFraction: 0.25,
};

/**
 * Good prints with a hot top-left block whose grey level varies from print to print (structured
 * nominal noise, where a reference earns its keep), from `first` in steps of 8.
 */
async function prints(name: string, count: number, first: number) {
  const images = await Promise.all(
    Array.from({ length: count }, (_, i) => greyPng((x, y) => (x < 4 && y < 4 ? first + 8 * i : undefined))),
  );
  return images.map((b, i) => memorySource(`${name}${i}.png`, b));
}

/** A faint defect (5 levels) in the middle, the hot block as usual. */
const faintDefect = () =>
  greyPng((x, y) => (x >= 16 && x < 20 && y >= 16 && y < 20 ? 95 : x < 4 && y < 4 ? 190 : undefined));

const stored = (f: FittedBank): { meta: BankMeta; vectors: Float32Array } => ({
  meta: completeMeta(f.meta, f.dim, f.index.size),
  vectors: f.vectors,
});

describe('incremental banks with a nominal reference and fused banks', () => {
  it('an earlier reference pools in as its count of grids equal to its values', () => {
    const grids = [Float32Array.from([1, 2]), Float32Array.from([3, 2])];
    const prior = { count: 2, values: [5, 8] };
    const asGrids = [...grids, Float32Array.from([5, 8]), Float32Array.from([5, 8])];
    assert.deepEqual(referenceFrom(grids, prior), referenceFrom(asGrids));
    assert.deepEqual(leaveOneOut(grids, 1, prior), leaveOneOut(asGrids, 1));
    // One new grid is enough beside a prior; a grid of another size is refused.
    assert.equal(referenceFrom([grids[0]], { count: 1, values: [0, 0] }).count, 2);
    assert.throws(() => referenceFrom(grids, { count: 1, values: [0] }), /fixed canvas/);
  });

  it("a member's map statistics pool by map count as if computed on all the maps", () => {
    const a = [Float32Array.from([1, 2, 3]), Float32Array.from([2, 2, 2])];
    const b = [Float32Array.from([7, 0, 1])];
    const old = { ...pixelStats(a), count: 2 };
    const member = { threshold: { value: 0, method: 'manual' as const } };
    const pooled = pooledStats(old, member, b, false);
    const all = pixelStats([...a, ...b]);
    assert.ok(Math.abs(pooled.mean - all.mean) < 1e-9 && Math.abs(pooled.std - all.std) < 1e-9);
    assert.equal(pooled.count, 3);
    assert.deepEqual(pooledStats(old, member, b, true), { ...pixelStats(b), count: 1 });
    // Banks fitted before the count was recorded: the member threshold's count stands in.
    const legacy = { mean: old.mean, std: old.std };
    const threshold = {
      value: 1,
      method: 'nominal' as const,
      nominal: { count: 2, mean: 0, std: 0, max: 0 },
    };
    assert.equal(pooledStats(legacy, { threshold }, b, false).count, 3);
  });

  it('recomputes the reference against the grown bank, pooled with the old one, and the threshold', async () => {
    const extractor = fakeExtractor();
    const v1 = await fitBank(extractor, await prints('a', 12, 150), settings);
    // Twelve new prints between the old ones' levels: one is held back (10 %).
    const v2 = await addToBank(extractor, stored(v1), await prints('b', 12, 154), { reason: 'new job' });
    const old = v1.meta.reference!;
    const ref = v2.meta.reference!;
    assert.equal(ref.count, old.count + 1);
    assert.notDeepEqual(ref.values, old.values, 'recomputed against the grown bank');
    assert.ok(ref.values[0] < old.values[0], 'the hot block is better matched by the grown bank');
    assert.ok(ref.values.slice(1).every((v) => v === 0));
    assert.equal(v2.meta.threshold.nominal!.count, v1.meta.threshold.nominal!.count + 1);
    const added = v2.meta.additions!.at(-1)!;
    assert.equal(added.images.length, 11);
    assert.equal(added.heldOut.length, 1);
    assert.equal(added.reason, 'new job');
    // The grown bank still finds the faint defect, scored above a good print.
    const inspector = fittedInspector(v2, extractor);
    const r = await inspector.inspectImage(await decodeImage(await faintDefect()));
    assert.ok(r.isDefective, `score ${r.score} against ${r.threshold}`);
    const good = await inspector.inspectBytes(await (await prints('c', 1, 162))[0].read());
    assert.ok(good.score < r.score, `good ${good.score}, defect ${r.score}`);

    // A threshold folder recomputes both from it alone; a few sheets keep both.
    const scratch = await addToBank(extractor, stored(v1), await prints('b', 12, 154), {
      thresholdImages: await prints('t', 4, 151),
    });
    assert.equal(scratch.meta.reference!.count, 4);
    assert.equal(scratch.meta.threshold.nominal!.count, 4);
    const few = await addToBank(extractor, stored(v1), await prints('f', 2, 154));
    assert.deepEqual(few.meta.reference, old);
    assert.equal(few.meta.threshold.value, v1.meta.threshold.value);
  });

  it('grows every member of a fused bank by the same images, then its statistics and threshold', async () => {
    const extractors = [fakeExtractor(4), fakeExtractor(8)];
    const members = extractors.map((extractor) => ({ extractor, settings }));
    const v1 = await fitFused(await prints('a', 12, 150), members, settings);
    const base = { meta: v1.meta, members: v1.members.map(stored) };
    const v2 = await addToFused(extractors, base, await prints('b', 12, 154), { reason: 'new job' });
    assert.equal(v2.meta.version, 2);
    assert.deepEqual(
      v2.meta.additions!.map((a) => [a.version, a.images.length, a.heldOut.length, a.reason]),
      [[2, 11, 1, 'new job']],
    );
    v2.members.forEach((m, i) => {
      const added = m.meta.additions!.at(-1)!;
      assert.equal(m.meta.version, 2);
      assert.deepEqual(added.images, v2.meta.additions![0].images, 'the same images in every member');
      assert.equal(m.vectors.length, v1.members[i].vectors.length + added.keptPatches * m.dim);
      assert.equal(m.meta.reference!.count, v1.members[i].meta.reference!.count + 1);
      const stats = v2.meta.members[i];
      assert.equal(stats.count, v1.meta.members[i].count! + 1);
      assert.notEqual(stats.mean, v1.meta.members[i].mean, 'the statistics were recomputed');
    });
    assert.equal(v2.meta.threshold.nominal!.count, v1.meta.threshold.nominal!.count + 1);
    const r = await fusedInspector(v2, extractors).inspectImage(await decodeImage(await faintDefect()));
    assert.ok(r.isDefective, `fused score ${r.score} against ${r.threshold}`);

    await assert.rejects(
      addToFused(extractors, base, await prints('b', 12, 154), {
        thresholdImages: await prints('t', 1, 151),
      }),
      /at least 2 held-out/,
    );
    await assert.rejects(
      addToFused(
        extractors,
        { ...base, meta: { ...base.meta, categories: ['a', 'b'] } },
        await prints('b', 2, 1),
      ),
      /names several products: a fused bank covers one/,
    );
  });

  it('a unified bank grows by images named <category>/<file>: each product recalibrated on its own held-out ones', async () => {
    const unified: FitSettings = {
      ...settings,
      name: 'mixed',
      categories: ['labels', 'cartons'],
      score: DEFAULT_SCORE,
      holdoutFraction: 0.5,
    };
    const named = async (category: string, count: number, first: number, tag = 'p') =>
      prints(`${category}/${tag}`, count, first);
    const v1 = await fitBank(
      fakeExtractor(4),
      [...(await named('labels', 8, 150)), ...(await named('cartons', 8, 90))],
      unified,
    );
    const before = v1.meta.thresholdByCategory!;
    assert.deepEqual(Object.keys(before).sort(), ['cartons', 'labels']);
    // Twelve new label sheets: part held out, and only the labels' threshold pools their scores.
    const v2 = await addToBank(fakeExtractor(4), stored(v1), await named('labels', 12, 154, 'new'));
    const after = v2.meta.thresholdByCategory!;
    const heldOut = v2.meta.additions![0].heldOut;
    assert.ok(heldOut.length > 0 && heldOut.every((p) => p.startsWith('labels/new')));
    assert.equal(after.labels.nominal!.count, before.labels.nominal!.count + heldOut.length);
    assert.deepEqual(after.cartons, before.cartons, 'the cartons kept theirs');
    assert.equal(v2.meta.threshold.nominal!.count, v1.meta.threshold.nominal!.count + heldOut.length);
    assert.equal(v2.meta.sources.filter((s) => s.path.startsWith('labels/new')).length, 12 - heldOut.length);
    // An image that names no product of the bank is refused before anything is embedded.
    await assert.rejects(
      addToBank(fakeExtractor(4), stored(v1), [
        ...(await named('labels', 2, 1)),
        ...(await prints('stray', 1, 1)),
      ]),
      /image "stray0\.png" is not under a category folder of the unified bank mixed \(labels, cartons\/\.\.\.\)/,
    );
    // From a threshold folder alone: a product it does not show falls back to the overall threshold.
    const t = { value: 1, method: 'nominal' as const };
    const fresh = recalibratedByCategory({ labels: t, cartons: t }, new Map([['labels', [1, 2]]]), true);
    assert.deepEqual(Object.keys(fresh), ['labels']);
  });
});
