/**
 * The in-process engine end to end, on the real MobileNetV2 backbone with onnxruntime and faiss:
 * `spi fit`, `spi inspect` and `spi eval` on our generated print images.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { run } from '../../services/cli/spi';
import { loadBank } from '../../lib/bank/bank-store';
import { BackbonePool, DEFAULT_MODEL, createExtractor, openBank } from '../../lib/patchcore/engine';
import { DEFAULT_FIT, fitBank } from '../../lib/patchcore/fit';
import { thresholdFor } from '../../lib/bank/bank-meta';
import { DEFAULT_VIEW } from '../../lib/image/views';
import { fileSources, listImages } from '../../lib/data/mvtec';
import { generateDataset } from '../../lib/synth';
import { TEST_TMP } from '../helpers/processes';
import { printDataset, PrintDataset } from '../helpers/fixtures';
import { SpiError } from '../../lib/errors';

describe('engine: fit, inspect, eval on generated prints', function () {
  this.timeout(180_000);
  let data: PrintDataset;
  let out: string;

  before(async () => {
    data = await printDataset('prints-engine', 10);
    fs.mkdirSync(TEST_TMP, { recursive: true });
    out = fs.mkdtempSync(path.join(TEST_TMP, 'engine-'));
  });
  after(() => fs.rmSync(out, { recursive: true, force: true }));

  it('spi fit writes a versioned bank with its settings, sources and threshold', async () => {
    assert.equal(
      // The default configuration, not the automatic choice (test/integration/autoconfig.test.ts).
      await run([
        'fit',
        '--data',
        data.root,
        '--out',
        path.join(out, 'bank'),
        '--holdout',
        '0.2',
        '--auto',
        'off',
      ]),
      0,
    );
    const { meta, vectors } = loadBank(path.join(out, 'bank'));
    assert.equal(meta.model.id, 'mobilenet_v2-imagenet');
    assert.deepEqual(meta.model.stages, ['block_5_add', 'block_9_add']);
    assert.equal(meta.sources.length, 8); // 2 of 10 held back for the threshold
    assert.ok(meta.sources.every((s) => /^[0-9a-f]{64}$/.test(s.sha256)));
    assert.equal(meta.threshold.method, 'nominal');
    assert.equal(vectors.length, meta.vectors.rows * meta.vectors.dim);
    assert.equal(meta.coreset.keptPatches, Math.round(meta.coreset.inputPatches * 0.1));
  });

  it('spi inspect scores defects above good prints and points at them', async () => {
    const inspected = path.join(out, 'inspected');
    const files = [...data.testGood, ...data.testDefective];
    assert.equal(await run(['inspect', '--bank', path.join(out, 'bank'), '--out', inspected, ...files]), 0);
    const report = JSON.parse(fs.readFileSync(path.join(inspected, 'verdicts.json'), 'utf8'));
    const score = (f: string) => report.verdicts.find((v: { file: string }) => v.file === f).score as number;
    const worstGood = Math.max(...data.testGood.map(score));
    const caught = data.testDefective.filter((f) => score(f) > worstGood);
    assert.ok(
      caught.length >= data.testDefective.length - 1,
      `${caught.length}/${data.testDefective.length} above the good prints`,
    );
    for (const v of report.verdicts) assert.ok(fs.existsSync(v.overlay));
    // test/good/000.png and test/ink_spot/000.png: one overlay each, none written over another.
    assert.equal(new Set(report.verdicts.map((v: { overlay: string }) => v.overlay)).size, files.length);
    assert.ok(report.verdicts.some((v: { overlay: string }) => v.overlay.endsWith('good_000.overlay.png')));
    // A folder of folders (an MVTec test/) brings every image below it; a folder without images is an error.
    const deep = path.join(out, 'inspected-deep');
    assert.equal(
      await run(['inspect', '--bank', path.join(out, 'bank'), '--out', deep, path.join(data.root, 'test')]),
      0,
    );
    const all = JSON.parse(fs.readFileSync(path.join(deep, 'verdicts.json'), 'utf8')).verdicts;
    assert.deepEqual(
      all.map((v: { file: string }) => path.resolve(v.file)).sort(),
      files.map((f) => path.resolve(f)).sort(),
    );
    const empty = fs.mkdtempSync(path.join(out, 'empty-'));
    assert.notEqual(await run(['inspect', '--bank', path.join(out, 'bank'), empty]), 0);
    // A corrupt frame among good ones: reported, the others' verdicts kept, the run ends non-zero.
    const corrupt = path.join(empty, 'corrupt.png');
    fs.writeFileSync(corrupt, Buffer.concat([fs.readFileSync(files[0]).subarray(0, 64), Buffer.alloc(64)]));
    const mixed = path.join(out, 'inspected-mixed');
    assert.notEqual(
      await run(['inspect', '--bank', path.join(out, 'bank'), '--out', mixed, files[0], corrupt, files[1]]),
      0,
    );
    const kept = JSON.parse(fs.readFileSync(path.join(mixed, 'verdicts.json'), 'utf8')).verdicts;
    assert.deepEqual(
      kept.map((v: { file: string; verdict: string }) => [v.file, v.verdict === 'error']),
      [
        [files[0], false],
        [corrupt, true],
        [files[1], false],
      ],
    );
    assert.match(kept[1].error, /corrupt\.png|image|decode|PNG/i);
    // The strongest region of a defective print lies on its ground-truth mask.
    const flagged = report.verdicts.filter(
      (v: { verdict: string; file: string }) =>
        v.verdict === 'defective' && data.testDefective.includes(v.file),
    );
    assert.ok(flagged.length > 0);
    const sharp = (await import('sharp')).default;
    let hits = 0;
    for (const v of flagged) {
      const type = path.basename(path.dirname(v.file));
      const maskFile = path.join(data.root, 'ground_truth', type, `${path.parse(v.file).name}_mask.png`);
      const { data: mask, info } = await sharp(maskFile)
        .greyscale()
        .raw()
        .toBuffer({ resolveWithObject: true });
      const r = v.regions[0];
      let inside = 0;
      for (let y = r.y; y < r.y + r.height && y < info.height; y++)
        for (let x = r.x; x < r.x + r.width && x < info.width; x++)
          inside += mask[y * info.width + x] > 0 ? 1 : 0;
      if (inside > 0) hits++;
    }
    assert.ok(hits >= Math.ceil(flagged.length * 0.6), `${hits}/${flagged.length} top regions on the defect`);
  });

  it('spi inspect --nprobe retunes an IVF bank per run and is refused on a Flat bank', async () => {
    const ivf = path.join(out, 'bank-ivf');
    const fitArgs = [
      'fit',
      '--data',
      data.root,
      '--out',
      ivf,
      '--index',
      'IVF16,Flat',
      '--nprobe',
      '1',
      '--auto',
      'off',
    ];
    assert.equal(await run(fitArgs), 0);
    const files = [...data.testGood, ...data.testDefective];
    const scores = async (extra: string[]) => {
      const dir = fs.mkdtempSync(path.join(out, 'nprobe-'));
      assert.equal(await run(['inspect', '--bank', ivf, '--out', dir, ...extra, ...files]), 0);
      const report = JSON.parse(fs.readFileSync(path.join(dir, 'verdicts.json'), 'utf8'));
      return report.verdicts.map((v: { score: number }) => v.score) as number[];
    };
    // All 16 cells visited = exact search: never farther than the 1-cell answer, and here closer.
    const one = await scores([]);
    const all = await scores(['--nprobe', '16']);
    assert.ok(all.every((s, i) => s <= one[i] + 1e-5));
    assert.ok(
      all.some((s, i) => s < one[i] - 1e-5),
      'visiting every cell finds closer patches',
    );
    assert.notEqual(await run(['inspect', '--bank', path.join(out, 'bank'), '--nprobe', '4', files[0]]), 0);
  });

  it('a unified bank keeps each category its own threshold, from its own held-out images', async () => {
    // A second product: the same generator, another seed, less well registered (noisier good prints).
    const otherRoot = path.join(TEST_TMP, 'prints-engine-other');
    await generateDataset(otherRoot, { seed: 8, size: 224, trainGood: 8, testGood: 0, perDefect: 0 });
    const other = listImages(path.join(otherRoot, 'train', 'good'));
    const names = [path.basename(data.root), path.basename(otherRoot)];
    const pool = new BackbonePool();
    try {
      const extractor = await createExtractor(pool, {
        model: DEFAULT_MODEL,
        view: DEFAULT_VIEW,
        projectionDim: 0,
        projectionSeed: 0,
      });
      const sources = [...fileSources(data.train, TEST_TMP), ...fileSources(other, TEST_TMP)];
      const settings = { ...DEFAULT_FIT, name: 'unified', categories: names, holdoutFraction: 0.25 };
      const { meta } = await fitBank(extractor, sources, settings);
      const own = meta.thresholdByCategory ?? {};
      assert.deepEqual(Object.keys(own).sort(), [...names].sort());
      // Every held-out image counted once overall and once in its category.
      const counts = names.map((n) => own[n].nominal?.count ?? 0);
      assert.ok(counts.every((c) => c >= 1));
      assert.equal(counts[0] + counts[1], meta.threshold.nominal?.count);
      // The shared threshold sits at or above the held-out scores of every category.
      for (const n of names) assert.ok(meta.threshold.nominal!.max >= own[n].nominal!.max);
      assert.notEqual(own[names[0]].value, own[names[1]].value);
      const full = { ...meta, name: 'unified' };
      assert.equal(thresholdFor(full, names[1]).value, own[names[1]].value);
      assert.equal(thresholdFor(full).value, meta.threshold.value);
      assert.throws(
        () => thresholdFor(full, 'labels'),
        (err: SpiError) => err.kind === 'INVALID_ARGUMENT' && /no category "labels"/.test(err.message),
      );
    } finally {
      await pool.close();
    }
  });

  it('refuses a bank built with another backbone, by name', async () => {
    const dir = path.join(out, 'bank');
    const meta = JSON.parse(fs.readFileSync(path.join(dir, 'bank.json'), 'utf8'));
    const other = path.join(out, 'bank-other');
    fs.cpSync(dir, other, { recursive: true });
    fs.writeFileSync(
      path.join(other, 'bank.json'),
      JSON.stringify({ ...meta, model: { ...meta.model, sha256: 'f'.repeat(64) } }),
    );
    const pool = new BackbonePool();
    try {
      await assert.rejects(
        openBank(pool, other),
        (err: SpiError) =>
          err.kind === 'FAILED_PRECONDITION' && /different mobilenet_v2-imagenet/.test(err.message),
      );
    } finally {
      await pool.close();
    }
  });

  it('spi eval writes scores.json, metrics.json and a report', async () => {
    const dir = path.join(out, 'eval');
    assert.equal(
      await run(['eval', '--data', data.root, '--out', dir, '--gallery', '4', '--auto', 'off']),
      0,
    );
    const scores = JSON.parse(fs.readFileSync(path.join(dir, 'scores.json'), 'utf8'));
    assert.equal(scores.images.length, data.testGood.length + data.testDefective.length);
    for (const im of scores.images) {
      assert.match(im.path, /^test\/[a-z_]+\/[^/]+\.png$/);
      assert.ok(im.label === 0 || im.label === 1);
      assert.equal(typeof im.score, 'number');
    }
    assert.equal(typeof scores.threshold, 'number');
    const metrics = JSON.parse(fs.readFileSync(path.join(dir, 'metrics.json'), 'utf8'));
    assert.ok(metrics.imageAuroc >= 0.7, `image AUROC ${metrics.imageAuroc}`); // chance is 0.5; some defects are subtle at 224 px
    assert.ok(metrics.pixelAuroc > 0.8, `pixel AUROC ${metrics.pixelAuroc}`);
    assert.ok(metrics.pro > 0 && metrics.pro <= 1);
    assert.ok(metrics.perType.length >= 2);
    assert.match(fs.readFileSync(path.join(dir, 'report.html'), 'utf8'), /<svg/);
  });
});
