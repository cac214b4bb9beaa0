/**
 * `--index hnsw` end to end in-process, on the real backbone, onnxruntime and faiss: the preset is
 * resolved into the bank's metadata, the opened bank searches with it, and the re-rank keeps the
 * image scores and verdicts of an exact search over the same bank.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { run } from '../../services/cli/spi';
import { loadBank } from '../../lib/bank/bank-store';
import { decodeImage } from '../../lib/image/decode';
import { INDEX_PRESETS, KnnIndex } from '../../lib/knn/index';
import { BackbonePool, extractorForBank, openBank } from '../../lib/patchcore/engine';
import { LocalSearcher } from '../../lib/patchcore/fit';
import { Inspector } from '../../lib/patchcore/inspector';
import { TEST_TMP } from '../helpers/processes';
import { printDataset, PrintDataset } from '../helpers/fixtures';

describe('--index hnsw: a bank fitted, saved, opened and inspected with HNSW and the exact re-rank', function () {
  this.timeout(120_000);
  let data: PrintDataset;
  let out: string;
  const pool = new BackbonePool();

  before(async () => {
    data = await printDataset('prints-sheet-index', 6);
    fs.mkdirSync(TEST_TMP, { recursive: true });
    out = fs.mkdtempSync(path.join(TEST_TMP, 'sheet-index-'));
  });
  after(async () => {
    fs.rmSync(out, { recursive: true, force: true });
    await pool.close();
  });

  it('records the resolved factory string and scores as an exact search does', async () => {
    const bank = path.join(out, 'bank');
    const args = ['fit', '--data', data.root, '--out', bank, '--auto', 'off', '--index', 'hnsw'];
    assert.equal(await run([...args, '--tile', '112', '--overlap', '16']), 0);
    const { meta, vectors } = loadBank(bank);
    assert.equal(meta.knn.factory, INDEX_PRESETS.hnsw);
    assert.equal(meta.knn.factory, 'HNSW16,Flat,efSearch=32,rerank=0.02');

    const opened = await openBank(pool, bank);
    assert.equal(opened.index.config.factory, INDEX_PRESETS.hnsw);
    const exact = new Inspector(
      meta,
      await extractorForBank(pool, meta),
      new LocalSearcher(KnnIndex.build(vectors, meta.vectors.dim, { factory: 'Flat' })),
    );
    for (const file of [...data.testGood, ...data.testDefective]) {
      const image = await decodeImage(fs.readFileSync(file));
      const approx = await opened.inspector.inspectImage(image);
      const truth = await exact.inspectImage(image);
      assert.ok(
        Math.abs(approx.score - truth.score) <= 1e-3 * truth.score,
        `${path.basename(file)}: ${approx.score} against ${truth.score}`,
      );
      assert.equal(approx.isDefective, truth.isDefective, path.basename(file));
    }
  });

  it('inspects bytes decoded straight to the canvas as it inspects the full-size image', async () => {
    // A scaled canvas (sheets), a resized one (frames) and a centre crop: the same score, map and regions, and
    // sizes and regions reported in the pixels of the image as sent.
    for (const [name, view] of [
      ['scaled', ['--resize', '0', '--scale', '0.5']],
      ['resized', ['--resize', '160']],
      ['cropped', ['--resize', '160', '--crop', '128']],
    ] as const) {
      const bank = path.join(out, `canvas-${name}`);
      assert.equal(await run(['fit', '--data', data.root, '--out', bank, '--auto', 'off', ...view]), 0);
      const { inspector } = await openBank(pool, bank);
      for (const file of [data.testDefective[0], data.testGood[0]]) {
        const bytes = fs.readFileSync(file);
        const full = await decodeImage(bytes);
        const direct = await inspector.inspectBytes(bytes, 0);
        const twoStep = await inspector.inspectImage(full, 0);
        assert.equal(direct.score, twoStep.score, `${name} ${path.basename(file)}`);
        assert.deepEqual(direct.map, twoStep.map);
        assert.deepEqual(direct.regions, twoStep.regions);
        assert.deepEqual([direct.imageWidth, direct.imageHeight], [full.width, full.height]);
        assert.ok(direct.regions.length > 0, 'threshold 0: the whole frame is a region');
        for (const r of direct.regions)
          assert.ok(r.x + r.width <= full.width && r.y + r.height <= full.height);
      }
    }
  });
});
