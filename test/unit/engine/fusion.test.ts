import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadBank } from '../../../lib/bank/bank-store';
import { DEFAULT_CORESET } from '../../../lib/coreset/coreset';
import { decodeImage } from '../../../lib/image/decode';
import { DEFAULT_VIEW } from '../../../lib/image/views';
import { DEFAULT_FIT, FitSettings } from '../../../lib/patchcore/fit';
import {
  FUSED_BANK_FORMAT,
  fitFused,
  fuseMaps,
  fusedInspector,
  isFusedBank,
  saveFused,
} from '../../../lib/patchcore/fusion';
import { fakeExtractor, greyPng, memorySource } from '../../helpers/fake-extractor';

const settings: FitSettings = {
  ...DEFAULT_FIT,
  name: 'fused',
  categories: ['prints'],
  view: { ...DEFAULT_VIEW, resize: 32 },
  coreset: { ...DEFAULT_CORESET, method: 'none' },
  holdoutFraction: 0.25,
};

describe('fused bank', () => {
  it('standardises each member map by its nominal mean and spread, then takes the weighted mean', () => {
    const fused = fuseMaps(
      [
        { weight: 1, mean: 10, std: 2 },
        { weight: 3, mean: 0, std: 0.5 },
      ],
      (i) => (i === 0 ? Float32Array.from([10, 14]) : Float32Array.from([0.5, 0])),
    );
    assert.deepEqual(Array.from(fused), [0.75 * 1, 0.25 * 2]);
  });

  it('fits members on one split, thresholds the fused held-out maps, and finds a defect', async () => {
    // Slightly varied good prints (one pixel's level); the defect is a dark 4x4 block.
    const good = await Promise.all(
      Array.from({ length: 12 }, (_, i) => greyPng((x, y) => (x === 5 && y === 5 ? 100 + 3 * i : undefined))),
    );
    const images = good.map((b, i) => memorySource(`g${i}.png`, b));
    const extractors = [fakeExtractor(4), fakeExtractor(8)];
    const fitted = await fitFused(
      images,
      extractors.map((extractor) => ({ extractor, settings })),
      settings,
    );
    assert.equal(fitted.meta.format, FUSED_BANK_FORMAT);
    assert.equal(fitted.members.length, 2);
    assert.ok(fitted.members.every((m) => m.meta.sources.length === 9)); // the same 3 held back
    assert.ok(fitted.meta.members.every((m) => m.std > 0 && Number.isFinite(m.mean)));
    assert.equal(fitted.meta.threshold.nominal?.count, 3);
    assert.equal(fitted.members[0].heldOutMaps, undefined); // not kept past the fit

    const inspector = fusedInspector(fitted, extractors);
    const defect = await greyPng((x, y) => (x >= 16 && x < 20 && y >= 16 && y < 20 ? 30 : undefined));
    const r = await inspector.inspectImage(await decodeImage(defect));
    assert.ok(r.isDefective, `fused score ${r.score} against ${r.threshold}`);
    assert.equal(r.map.length, 32 * 32);
    assert.ok(r.regions.length > 0);
    assert.equal(inspector.meta.threshold, fitted.meta.threshold);
  });

  it('saves as format 3 with ordinary member banks; a format 1-2 reader refuses the whole', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spi-fused-'));
    try {
      const good = await Promise.all(Array.from({ length: 8 }, () => greyPng(() => undefined)));
      const images = good.map((b, i) => memorySource(`g${i}.png`, b));
      const extractors = [fakeExtractor(4), fakeExtractor(8)];
      const fitted = await fitFused(
        images,
        extractors.map((extractor) => ({ extractor, settings })),
        { ...settings, threshold: 1.5 },
      );
      assert.equal(fitted.meta.threshold.value, 1.5); // a manual threshold is on the fused scale
      saveFused(path.join(dir, 'bank'), fitted);
      assert.ok(isFusedBank(path.join(dir, 'bank')));
      assert.throws(() => loadBank(path.join(dir, 'bank')), /format 3; this build reads formats 1, 2/);
      assert.equal(loadBank(path.join(dir, 'bank', 'members', '1')).meta.model.stages[0], 'grey8');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a single member and a unified multi-category bank', async () => {
    const m = { extractor: fakeExtractor(4), settings };
    await assert.rejects(fitFused([], [m], settings), /at least 2 members/);
    await assert.rejects(
      fitFused([], [m, m], { ...settings, categories: ['a', 'b'] }),
      /unified multi-category/,
    );
  });
});
