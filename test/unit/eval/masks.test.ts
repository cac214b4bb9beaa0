/** Ground-truth masks as public sets store them: 0/255 or 0/1 labels, at the image's size or not. */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { maskToCanvas } from '../../../lib/eval/evaluate';
import { readCategory } from '../../../lib/data/mvtec';
import { DEFAULT_VIEW } from '../../../lib/image/views';

/** A grey PNG of w x h with the value `on` in the left half of the top rows (`rows`), 0 elsewhere. */
async function writeMask(file: string, w: number, h: number, on: number, rows: number): Promise<void> {
  const px = Buffer.alloc(w * h);
  for (let y = 0; y < rows; y++) for (let x = 0; x < w / 2; x++) px[y * w + x] = on;
  await sharp(px, { raw: { width: w, height: h, channels: 1 } })
    .png()
    .toFile(file);
}

const covered = (m: Uint8Array) => m.reduce((n, v) => n + v, 0);

describe('ground-truth masks (spi eval)', () => {
  let dir: string;
  before(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spi-masks-'))));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  // Full-resolution canvas, as tiled views have: the mask is read at the image's own size.
  const view = { ...DEFAULT_VIEW, resize: 0, scale: 1, tile: 64, overlap: 0 };

  it('reads 0/255 masks as before and 0/1 label masks alike', async () => {
    for (const on of [255, 1]) {
      const file = path.join(dir, `m${on}.png`);
      await writeMask(file, 64, 32, on, 8);
      const m = await maskToCanvas(file, { view }, 64, 32);
      assert.equal(covered(m), 32 * 8, `mask of 0/${on}`);
      assert.equal(m[0], 1);
      assert.equal(m[63], 0);
      assert.equal(m[8 * 64], 0);
    }
    const empty = path.join(dir, 'empty.png');
    await writeMask(empty, 64, 32, 0, 8);
    assert.equal(covered(await maskToCanvas(empty, { view }, 64, 32)), 0);
  });

  it('finds masks named as MVTec names them and as other sets do; none where there is none', async () => {
    const root = path.join(dir, 'category');
    const put = async (rel: string) => {
      fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
      await writeMask(path.join(root, rel), 8, 8, 255, 2);
    };
    for (const rel of [
      'train/good/a.png',
      'test/good/g.png',
      'test/hole/001.png',
      'ground_truth/hole/001_mask.png', // MVTec AD
      'test/crack/002.bmp',
      'ground_truth/crack/002.png', // the image's own stem, another extension
      'ground_truth/crack/002.jpg', // a PNG wins over it
      'test/scratch/003.png', // no mask
    ])
      await put(rel);
    const masks = Object.fromEntries(
      readCategory(root).test.map((t) => [t.path, t.maskPath && path.relative(root, t.maskPath)]),
    );
    assert.deepEqual(masks, {
      'test/crack/002.bmp': 'ground_truth/crack/002.png',
      'test/good/g.png': undefined,
      'test/hole/001.png': 'ground_truth/hole/001_mask.png',
      'test/scratch/003.png': undefined,
    });
  });

  it('resizes a mask stored at another size to its image canvas instead of failing the evaluation', async () => {
    const file = path.join(dir, 'half.png');
    await writeMask(file, 32, 16, 255, 4); // half the image's 64 x 32
    const m = await maskToCanvas(file, { view }, 64, 32);
    assert.equal(m.length, 64 * 32);
    const share = covered(m) / m.length;
    assert.ok(Math.abs(share - 0.125) < 0.02, `covers ${share} of the canvas, not an eighth`);
    assert.equal(m[0], 1);
    assert.equal(m[64 * 31 + 63], 0);
  });
});
