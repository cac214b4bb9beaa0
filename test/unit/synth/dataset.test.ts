import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { generateDataset, type Manifest, MANIFEST_FILE } from '../../../lib/synth/dataset';
import { decodePng } from '../../../lib/synth/png';

describe('synth/dataset', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'spi-synth-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const opts = {
    seed: 4,
    size: 192,
    trainGood: 3,
    testGood: 2,
    perDefect: 2,
    defects: ['void', 'streak'] as const,
  };

  it('writes the MVTec layout with masks and a manifest', async () => {
    const progress: number[] = [];
    const res = await generateDataset(
      dir,
      { ...opts, defects: [...opts.defects] },
      { onProgress: (p) => progress.push(p.done) },
    );
    assert.equal(res.skipped, false);
    assert.equal(res.written, 3 + 2 + 2 * 2);
    assert.deepEqual(progress, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const ls = (p: string) => readdirSync(path.join(dir, p)).sort();
    assert.deepEqual(ls('.'), ['dataset.json', 'ground_truth', 'test', 'train']);
    assert.deepEqual(ls('train'), ['good']);
    assert.deepEqual(ls('train/good'), ['000.png', '001.png', '002.png']);
    assert.deepEqual(ls('test'), ['good', 'streak', 'void']);
    assert.deepEqual(ls('test/void'), ['000.png', '001.png']);
    assert.deepEqual(ls('ground_truth'), ['streak', 'void']);
    assert.deepEqual(ls('ground_truth/streak'), ['000_mask.png', '001_mask.png']);

    const img = await decodePng(path.join(dir, 'test/void/001.png'));
    assert.deepEqual([img.width, img.height, img.channels], [192, 192, 3]);
    const mask = await decodePng(path.join(dir, 'ground_truth/void/001_mask.png'));
    assert.deepEqual([mask.width, mask.height, mask.channels], [192, 192, 1]);
    assert.ok(mask.data.every((v) => v === 0 || v === 255));
    assert.ok(mask.data.some((v) => v === 255));

    const manifest = JSON.parse(await readFile(path.join(dir, MANIFEST_FILE), 'utf8')) as Manifest;
    assert.equal(manifest.seed, 4);
    assert.deepEqual(manifest.options.size, { width: 192, height: 192 });
    assert.deepEqual(manifest.options.defects, ['streak', 'void']);
    assert.equal(manifest.files.length, 9);
    for (const f of manifest.files) {
      assert.ok(existsSync(path.join(dir, f.path)), f.path);
      if (f.split === 'test' && f.label !== 'good') {
        assert.equal(f.mask, `ground_truth/${f.label}/${path.basename(f.path, '.png')}_mask.png`);
        assert.ok(f.defect && f.defect.area > 0);
      }
    }
  });

  it('skips an up-to-date dataset and rebuilds when options change', async () => {
    const file = path.join(dir, 'train/good/000.png');
    const before = statSync(file).mtimeMs;
    const again = await generateDataset(dir, { ...opts, defects: ['streak', 'void'] });
    assert.equal(again.skipped, true);
    assert.equal(statSync(file).mtimeMs, before);

    const smaller = await generateDataset(dir, { ...opts, defects: ['void'], perDefect: 1 });
    assert.equal(smaller.skipped, false);
    assert.ok(
      !existsSync(path.join(dir, 'test/streak/000.png')),
      'stale files of the old manifest are removed',
    );
    assert.ok(!existsSync(path.join(dir, 'test/void/001.png')));
    assert.ok(existsSync(path.join(dir, 'ground_truth/void/000_mask.png')));
  });

  it('writes identical bytes for the same options', async () => {
    const other = mkdtempSync(path.join(os.tmpdir(), 'spi-synth-'));
    try {
      await generateDataset(other, { ...opts, defects: ['void'], perDefect: 1 });
      for (const f of [
        'train/good/002.png',
        'test/void/000.png',
        'ground_truth/void/000_mask.png',
        MANIFEST_FILE,
      ]) {
        assert.ok((await readFile(path.join(dir, f))).equals(await readFile(path.join(other, f))), f);
      }
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });
});
