/**
 * Image listing for the CLI (lib/data/mvtec.ts): a folder's images and its sub-folders', and a name
 * per file that no other file of the list shares (spi inspect's overlays).
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { listImagesDeep, uniqueStems } from '../../../lib/data/mvtec';
import { TEST_TMP } from '../../helpers/processes';

describe('image listing', () => {
  it('lists a folder, then its sub-folders in name order, images only', () => {
    fs.mkdirSync(TEST_TMP, { recursive: true });
    const root = fs.mkdtempSync(path.join(TEST_TMP, 'listing-'));
    try {
      for (const f of [
        'b.png',
        'a.JPG',
        'notes.txt',
        'good/000.png',
        'ink_spot/000.bmp',
        'ink_spot/deep/x.tif',
      ]) {
        fs.mkdirSync(path.dirname(path.join(root, f)), { recursive: true });
        fs.writeFileSync(path.join(root, f), '');
      }
      assert.deepEqual(
        listImagesDeep(root).map((f) => path.relative(root, f)),
        ['a.JPG', 'b.png', 'good/000.png', 'ink_spot/000.bmp', 'ink_spot/deep/x.tif'].map((f) =>
          path.join(...f.split('/')),
        ),
      );
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  it('names files by their own names when unique, else by their path below the shared folder', () => {
    assert.deepEqual(uniqueStems(['/x/a/1.png', '/x/b/2.png']), ['1', '2']);
    assert.deepEqual(
      uniqueStems(['/x/test/good/000.png', '/x/test/ink_spot/000.png', '/x/test/ink_spot/001.png']),
      ['good_000', 'ink_spot_000', 'ink_spot_001'],
    );
    const deep = uniqueStems(['/x/a/b/0.png', '/x/a/c/0.png', '/x/d/0.png']);
    assert.equal(new Set(deep).size, 3);
    assert.deepEqual(deep, ['a_b_0', 'a_c_0', 'd_0']);
  });
});
