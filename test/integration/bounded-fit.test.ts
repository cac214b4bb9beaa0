/**
 * Bounded-memory fits (#18) on the real backbone, onnxruntime and faiss: within the budget the fit is
 * the in-memory one row for row; under a small budget the candidates spill to disk, the coreset is
 * chosen in two stages, the bank tells defects from good prints as well, and no file is left (also
 * after an error); a budget that cannot hold the bank is refused; `spi fit --max-memory`.
 * The process's own resident size is fixed at 0 (`residentBytes`) so the chunking does not depend
 * on what else mocha has loaded.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { run } from '../../services/cli/spi';
import { loadBank } from '../../lib/bank/bank-store';
import { fileSources } from '../../lib/data/mvtec';
import { BackbonePool, createExtractor, DEFAULT_MODEL } from '../../lib/patchcore/engine';
import { FeatureExtractor } from '../../lib/patchcore/feature-extractor';
import {
  DEFAULT_FIT,
  FitSettings,
  FittedBank,
  ImageSource,
  fitBank,
  fittedInspector,
} from '../../lib/patchcore/fit';
import { DEFAULT_CORESET } from '../../lib/coreset/coreset';
import { DEFAULT_VIEW } from '../../lib/image/views';
import { GiB, MiB, searchBytes } from '../../lib/patchcore/memory-budget';
import { TEST_TMP } from '../helpers/processes';
import { printDataset, PrintDataset } from '../helpers/fixtures';

describe('bounded-memory fit: spill to disk, two-stage coreset, --max-memory', function () {
  this.timeout(180_000);
  let data: PrintDataset;
  let out: string;
  let spillDir: string;
  let pool: BackbonePool;
  let extractor: FeatureExtractor;
  let images: ImageSource[];
  const settings: FitSettings = {
    ...DEFAULT_FIT,
    name: 'bounded',
    view: DEFAULT_VIEW,
    coreset: { ...DEFAULT_CORESET, perImage: 0.25 },
  };
  const leftovers = () => fs.readdirSync(spillDir);
  /** The budget's share for faiss's buffers and the outlier filter's reference (memory-budget.ts). */
  const searching = searchBytes(DEFAULT_FIT.outliers!.reference, 96) / 0.9;

  before(async () => {
    data = await printDataset('prints-plant', 20);
    fs.mkdirSync(TEST_TMP, { recursive: true });
    out = fs.mkdtempSync(path.join(TEST_TMP, 'bounded-'));
    spillDir = path.join(out, 'spill');
    fs.mkdirSync(spillDir);
    pool = new BackbonePool();
    extractor = await createExtractor(pool, {
      model: DEFAULT_MODEL,
      view: DEFAULT_VIEW,
      projectionDim: 0,
      projectionSeed: DEFAULT_FIT.projectionSeed,
    });
    images = fileSources(data.train, data.root);
  });
  after(async () => {
    await pool.close();
    fs.rmSync(out, { recursive: true, force: true });
  });

  /** Defective test prints scoring above every good one. */
  const caught = async (fitted: FittedBank) => {
    const inspector = fittedInspector(fitted, extractor);
    const score = async (f: string) => (await inspector.inspectBytes(fs.readFileSync(f))).score;
    const good = await Promise.all(data.testGood.map(score));
    const bad = await Promise.all(data.testDefective.map(score));
    return bad.filter((s) => s > Math.max(...good)).length;
  };

  it('spills under a small budget, leaves no file, and gives a bank as good as the in-memory one', async () => {
    const plain = await fitBank(extractor, images, settings);
    const roomy = await fitBank(extractor, images, {
      ...settings,
      memory: { maxBytes: 8 * GiB, residentBytes: 0, spillDir },
    });
    assert.deepEqual(roomy.vectors, plain.vectors, 'within the budget: the in-memory fit, row for row');
    assert.equal(roomy.meta.memory!.spilled, false);

    // 18 training prints of 784 patches, 196 each after the per-image greedy; 10 MB beside the
    // searches hold the bank of 1,411 rows and its candidates but only a few prints' per chunk.
    let seen: string[] = [];
    const watched = images.map((im, i) =>
      i === images.length - 1 ? { ...im, read: () => ((seen = leftovers()), im.read()) } : im,
    );
    const small = await fitBank(extractor, watched, {
      ...settings,
      memory: { maxBytes: searching + 10 * MiB, residentBytes: 0, spillDir },
    });
    const m = small.meta.memory!;
    assert.ok(m.spilled && m.chunks >= 3, JSON.stringify(m));
    assert.equal(m.candidates, small.meta.sources.length * 196);
    assert.ok(m.spilledBytes > 0 && m.spilledBytes <= m.candidates * small.dim * 4);
    assert.equal(seen.length, 1, 'the spill folder existed during the fit');
    assert.deepEqual(leftovers(), [], 'and is gone after it');
    assert.equal(small.vectors.length, plain.vectors.length, 'the same bank size');
    assert.equal(small.meta.coreset.inputPatches, plain.meta.coreset.inputPatches);
    assert.ok(small.meta.outliers!.considered === m.candidates, 'the filter ran on every chunk');
    const [cs, cp] = [await caught(small), await caught(plain)];
    assert.ok(cs >= cp - 1, `spilled ${cs}, in memory ${cp} of ${data.testDefective.length}`);
  });

  it('removes the spill file when the fit fails after spilling (an undecodable image)', async () => {
    let seen: string[] = [];
    const text = new TextEncoder().encode('not an image, just some text');
    const bad = { path: 'bad.png', read: async () => ((seen = leftovers()), text) };
    await assert.rejects(
      fitBank(extractor, [...images.slice(0, 12), bad], {
        ...settings,
        memory: { maxBytes: searching + 8 * MiB, residentBytes: 0, spillDir },
      }),
      /bad\.png/,
    );
    assert.equal(seen.length, 1, 'the first chunks were on disk when it failed');
    assert.deepEqual(leftovers(), []);
  });

  it('refuses a budget that cannot hold the bank, after the first image', async () => {
    let reads = 0;
    const counted = images.map((im) => ({ ...im, read: () => (reads++, im.read()) }));
    await assert.rejects(
      fitBank(extractor, counted, { ...settings, memory: { maxBytes: MiB, residentBytes: 0, spillDir } }),
      /memory budget \(--max-memory 1 MiB\) is too small[\s\S]*raise it or keep fewer patches/,
    );
    assert.equal(reads, 1, 'refused before embedding the rest');
    assert.deepEqual(leftovers(), []);
  });

  it('spi fit --max-memory: recorded in bank.json and the summary; refused when too small or not a size', async () => {
    const folder = path.join(out, 'good');
    fs.mkdirSync(folder);
    for (const f of data.train.slice(0, 6)) fs.copyFileSync(f, path.join(folder, path.basename(f)));
    const bank = path.join(out, 'bank');
    const lines: string[] = [];
    const log = console.log;
    console.log = (...a: unknown[]) => void lines.push(a.join(' '));
    try {
      assert.equal(
        await run(['fit', '--data', folder, '--out', bank, '--auto', 'off', '--max-memory', '4GiB']),
        0,
      );
    } finally {
      console.log = log;
    }
    const meta = loadBank(bank).meta;
    assert.equal(meta.memory!.maxBytes, 4 * GiB);
    assert.equal(meta.memory!.spilled, false);
    assert.ok(
      lines.some((l) =>
        /^memory: budget 4\.0 GiB \(\d+ MiB in use before the patches\), \d+ candidate patches, nothing spilled$/.test(
          l,
        ),
      ),
      lines.join('\n'),
    );
    const other = path.join(out, 'refused');
    const args = ['fit', '--data', folder, '--out', other, '--auto', 'off', '--max-memory'];
    assert.equal(await run([...args, '1MiB']), 2);
    assert.equal(await run([...args, 'lots']), 2);
    assert.ok(!fs.existsSync(path.join(other, 'bank.json')));
  });

  it('spi eval --max-memory: the evaluation fits under the same budget', async () => {
    const report = path.join(out, 'eval');
    const args = ['eval', '--data', data.root, '--out', report, '--auto', 'off', '--gallery', '0'];
    assert.equal(await run([...args, '--max-memory', '1MiB']), 2, 'a budget that cannot hold the bank');
    assert.ok(!fs.existsSync(path.join(report, 'metrics.json')));
    assert.equal(await run([...args, '--max-memory', '4GiB']), 0);
    const metrics = JSON.parse(fs.readFileSync(path.join(report, 'metrics.json'), 'utf8'));
    assert.ok(metrics.imageAuroc > 0.5, `image AUROC ${metrics.imageAuroc}`);
  });
});
