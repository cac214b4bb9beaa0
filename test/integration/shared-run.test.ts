/**
 * One backbone run for a fused bank's members (lib/patchcore/shared-run.ts), on the real MobileNetV2
 * in onnxruntime: the members' embeddings are those of their own extractors, from one run per image.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import { BankMeta } from '../../lib/bank/bank-meta';
import { decodeImage } from '../../lib/image/decode';
import { BackbonePool, DEFAULT_MODEL, extractorForBank } from '../../lib/patchcore/engine';
import { SharedRunExtractor, extractorsForBanks } from '../../lib/patchcore/shared-run';
import { testBankMeta } from '../helpers/bank-meta';
import { printDataset } from '../helpers/fixtures';

function memberMeta(
  stages: string[],
  view: BankMeta['view'],
  projection: BankMeta['embedding']['projection'] = null,
) {
  return {
    ...testBankMeta(0, { model: { id: DEFAULT_MODEL, stages }, view }),
    embedding: { dim: 0, projection, cellPlacement: true },
    vectors: { file: 'vectors.f32', dim: 0, rows: 0, dtype: 'float32' },
    format: 3,
  } as unknown as BankMeta;
}

describe("shared backbone run for a fused bank's members (real backbone)", function () {
  this.timeout(120_000);
  const pool = new BackbonePool();
  after(() => pool.close());

  it("gives each member its own extractor's embedding, from one backbone run per image", async () => {
    const data = await printDataset('prints-shared-run', 2);
    const view = { resize: 256, crop: 0, scale: 1, tile: 0, overlap: 0, pad: 8 };
    const metas = [
      memberMeta(['block_5_add', 'block_9_add'], view),
      memberMeta(['block_2_add', 'block_5_add'], view, { dim: 24, seed: 3 }),
    ];
    const shared = await extractorsForBanks(pool, metas);
    assert.ok(shared.every((x) => x instanceof SharedRunExtractor));
    assert.equal(shared[0].backbone, shared[1].backbone, 'one backbone session');
    assert.deepEqual(
      shared[0].backbone.stages.map((s) => s.name),
      ['block_2_add', 'block_5_add', 'block_9_add'],
    );
    let runs = 0;
    const backbone = shared[0].backbone;
    const run = backbone.runRegions.bind(backbone);
    backbone.runRegions = (regions) => {
      runs++;
      return run(regions);
    };
    const image = await decodeImage(fs.readFileSync(data.testDefective[0]));
    const [a, b] = [await shared[0].embed(image), await shared[1].embed(image)];
    assert.equal(runs, 1, 'the second member took its embedding from the first run');
    for (const [i, meta] of metas.entries()) {
      const own = await (await extractorForBank(pool, meta)).embed(image);
      const got = [a, b][i];
      assert.equal(got.dim, own.dim);
      assert.deepEqual(
        [got.gridWidth, got.gridHeight, got.canvasWidth],
        [own.gridWidth, own.gridHeight, own.canvasWidth],
      );
      let worst = 0;
      for (let k = 0; k < own.vectors.length; k++)
        worst = Math.max(worst, Math.abs(got.vectors[k] - own.vectors[k]) / (1 + Math.abs(own.vectors[k])));
      assert.ok(worst <= 1e-5, `member ${i}: largest difference ${worst}`);
    }
    // Another image object is another run.
    await shared[1].embed(await decodeImage(fs.readFileSync(data.testGood[0])));
    assert.equal(runs, 2);
    backbone.runRegions = run;
  });

  it('keeps separate extractors where the members cannot share a run (different views, one bank)', async () => {
    const a = memberMeta(['block_5_add', 'block_9_add'], {
      resize: 224,
      crop: 0,
      scale: 1,
      tile: 0,
      overlap: 0,
    });
    const b = memberMeta(['block_2_add', 'block_5_add'], {
      resize: 448,
      crop: 0,
      scale: 1,
      tile: 0,
      overlap: 0,
    });
    const apart = await extractorsForBanks(pool, [a, b]);
    assert.ok(apart.every((x) => !(x instanceof SharedRunExtractor)));
    assert.notEqual(apart[0].backbone, apart[1].backbone);
    const [one] = await extractorsForBanks(pool, [a]);
    assert.ok(!(one instanceof SharedRunExtractor));
  });
});
