/**
 * Overlapping tiles searched once per canvas position, end to end in-process on the real backbone,
 * onnxruntime and faiss: a tiled bank records the rule, sends the search one row per position, gives
 * every kept cell exactly the distances of a search of all cells, and scores the images as the
 * average of the copies did, with the defective ones still above the good ones.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { run } from '../../services/cli/spi';
import { BankMeta } from '../../lib/bank/bank-meta';
import { loadBank } from '../../lib/bank/bank-store';
import { decodeImage } from '../../lib/image/decode';
import { KnnIndex, KnnResult } from '../../lib/knn/index';
import { BackbonePool, extractorForBank } from '../../lib/patchcore/engine';
import { LocalSearcher } from '../../lib/patchcore/fit';
import { Inspection, Inspector, NeighbourSearcher } from '../../lib/patchcore/inspector';
import { distinctCells } from '../../lib/patchcore/shared-cells';
import { TEST_TMP } from '../helpers/processes';
import { printDataset, PrintDataset } from '../helpers/fixtures';

/** A searcher that remembers how many query rows it was sent. */
class CountingSearcher implements NeighbourSearcher {
  rows: number[] = [];
  constructor(private readonly inner: NeighbourSearcher) {}
  search(queries: Float32Array, dim: number, k: number): Promise<KnnResult> {
    this.rows.push(queries.length / dim);
    return this.inner.search(queries, dim, k);
  }
}

describe('shared cells: overlapping tiles searched once per position', function () {
  this.timeout(120_000);
  let data: PrintDataset;
  let out: string;
  const pool = new BackbonePool();

  before(async () => {
    data = await printDataset('prints-shared-cells', 6);
    fs.mkdirSync(TEST_TMP, { recursive: true });
    out = fs.mkdtempSync(path.join(TEST_TMP, 'shared-cells-'));
  });
  after(async () => {
    fs.rmSync(out, { recursive: true, force: true });
    await pool.close();
  });

  it('searches a third fewer rows and scores as the average of the copies did', async () => {
    const bank = path.join(out, 'bank');
    // 224 px prints in 112 px tiles overlapping 16: 3 x 3 tiles of 14 x 14 cells, 28 x 28 positions.
    const args = [
      'fit',
      '--data',
      data.root,
      '--out',
      bank,
      '--auto',
      'off',
      '--tile',
      '112',
      '--overlap',
      '16',
    ];
    assert.equal(await run(args), 0);
    const { meta, vectors } = loadBank(bank);
    assert.equal(meta.score.sharedCells, 'interior');
    const extractor = await extractorForBank(pool, meta);
    const index = KnnIndex.build(vectors, meta.vectors.dim, { factory: 'Flat' });
    const inspector = (m: BankMeta) => {
      const searcher = new CountingSearcher(new LocalSearcher(index));
      return { searcher, inspector: new Inspector(m, extractor, searcher) };
    };
    const once = inspector(meta);
    const both = inspector({ ...meta, score: { ...meta.score, sharedCells: 'average' } });

    const scores = { once: [] as number[], both: [] as number[] };
    const files = [...data.testGood, ...data.testDefective];
    for (const file of files) {
      const image = await decodeImage(fs.readFileSync(file));
      const a = await once.inspector.search(image);
      const b = await both.inspector.search(image);
      const plan = distinctCells(a.embedding)!;
      assert.ok(plan, 'the tiles share positions');
      // Every kept cell has the answer a search of all cells gives it (up to the rounding of BLAS
      // blocks of another size).
      for (const cell of plan.searched) {
        const [x, y] = [a.knn.distances[cell], b.knn.distances[cell]];
        assert.ok(Math.abs(x - y) <= 1e-4 * y, `cell ${cell}: ${x} against ${y}`);
      }
      const one: Inspection = await once.inspector.inspectImage(image);
      const avg: Inspection = await both.inspector.inspectImage(image);
      scores.once.push(one.score);
      scores.both.push(avg.score);
      assert.ok(
        Math.abs(one.score - avg.score) <= 0.1 * avg.score,
        `${path.basename(file)}: ${one.score} searched once against ${avg.score} averaged`,
      );
    }
    assert.ok(
      once.searcher.rows.every((n) => n === 28 * 28),
      `rows sent: ${once.searcher.rows}`,
    );
    assert.ok(
      both.searcher.rows.every((n) => n === 9 * 14 * 14),
      `rows sent: ${both.searcher.rows}`,
    );
    const good = data.testGood.length;
    const worstGood = Math.max(...scores.once.slice(0, good));
    const meanDefective = scores.once.slice(good).reduce((s, v) => s + v, 0) / (files.length - good);
    assert.ok(meanDefective > worstGood, `defective mean ${meanDefective}, worst good ${worstGood}`);
  });
});
