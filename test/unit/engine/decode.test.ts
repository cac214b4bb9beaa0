import { strict as assert } from 'node:assert';
import sharp from 'sharp';
import { decodeImage, resizeRgb, sentSize } from '../../../lib/image/decode';
import { tileGrid, DEFAULT_VIEW, toCanvas } from '../../../lib/image/views';
import { SpiError } from '../../../lib/errors';
import { pngHeader } from '../../helpers/fixtures';

const kindOf = (kind: string, message: RegExp) => (err: unknown) => {
  assert.ok(err instanceof SpiError, String(err));
  assert.equal(err.kind, kind);
  assert.match(err.message, message);
  return true;
};

describe('image decoding', () => {
  const rgb = () =>
    sharp({ create: { width: 40, height: 30, channels: 3, background: { r: 200, g: 10, b: 30 } } })
      .png()
      .toBuffer();

  it('decodes PNG, JPEG and TIFF to 8-bit RGB', async () => {
    for (const format of ['png', 'jpeg', 'tiff'] as const) {
      const bytes = await sharp(await rgb())
        .toFormat(format)
        .toBuffer();
      const img = await decodeImage(bytes);
      assert.equal(img.width, 40);
      assert.equal(img.height, 30);
      assert.equal(img.data.length, 40 * 30 * 3);
      assert.ok(Math.abs(img.data[0] - 200) < 6, `${format}: red ${img.data[0]}`);
    }
  });

  it('turns grayscale into three equal channels and transparency into white paper', async () => {
    const grey = await decodeImage(
      await sharp(await rgb())
        .greyscale()
        .png()
        .toBuffer(),
    );
    assert.equal(grey.data[0], grey.data[1]);
    assert.equal(grey.data[1], grey.data[2]);
    const clear = await sharp({
      create: { width: 4, height: 4, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } },
    })
      .png()
      .toBuffer();
    const paper = await decodeImage(clear);
    assert.deepEqual([...paper.data.subarray(0, 3)], [255, 255, 255]);
  });

  it('refuses empty, corrupt and truncated input as INVALID_ARGUMENT', async () => {
    await assert.rejects(decodeImage(Buffer.alloc(0)), kindOf('INVALID_ARGUMENT', /empty/));
    await assert.rejects(
      decodeImage(Buffer.from('GIF89a nonsense')),
      kindOf('INVALID_ARGUMENT', /format GIF is not accepted/),
    );
    const png = await rgb();
    await assert.rejects(
      decodeImage(png.subarray(0, png.length - 30)),
      kindOf('INVALID_ARGUMENT', /corrupt|truncated|could not/),
    );
  });

  it('refuses a decompression bomb from its header, before decoding pixels', async () => {
    await assert.rejects(decodeImage(pngHeader(30000, 30000)), kindOf('RESOURCE_EXHAUSTED', /30000x30000/));
    await assert.rejects(
      decodeImage(await rgb(), { maxBytes: 10, maxPixels: 1e9 }),
      kindOf('RESOURCE_EXHAUSTED', /over the limit of 10/),
    );
  });

  it('builds canvases and tiles that cover the whole image', async () => {
    const img = await decodeImage(await rgb());
    const canvas = await toCanvas(img, { ...DEFAULT_VIEW, resize: 0, scale: 2 });
    assert.deepEqual([canvas.width, canvas.height], [80, 60]);
    const tiles = tileGrid(80, 60, { ...DEFAULT_VIEW, tile: 32, overlap: 8 });
    const covered = new Uint8Array(80 * 60);
    for (const t of tiles)
      for (let y = 0; y < t.height; y++)
        for (let x = 0; x < t.width; x++) covered[(t.top + y) * 80 + t.left + x] = 1;
    assert.ok(covered.every((c) => c === 1));
    assert.throws(() => tileGrid(20, 20, { ...DEFAULT_VIEW, tile: 32 }), /larger than the canvas/);
  });

  it('decodes straight to a canvas size with the pixels of decode-then-resize', async () => {
    // Busy pixels, so that a resample at another phase or before a turn would show.
    const w = 90;
    const h = 60;
    const raw = Buffer.alloc(w * h * 4);
    for (let i = 0; i < w * h; i++)
      raw.set([(i * 7) % 251, (i * 13) % 253, (i >> 3) % 256, 128 + (i % 128)], i * 4);
    const image = () => sharp(raw, { raw: { width: w, height: h, channels: 4 } });
    const cases: [string, Buffer][] = [
      ['png', await image().removeAlpha().png().toBuffer()],
      ['png with alpha', await image().png().toBuffer()],
      ['grey png', await image().removeAlpha().greyscale().png().toBuffer()],
      ['16-bit png', await image().removeAlpha().toColourspace('rgb16').png().toBuffer()],
      ['jpeg', await image().removeAlpha().jpeg().toBuffer()],
      ['jpeg turned by EXIF', await image().removeAlpha().jpeg().withMetadata({ orientation: 6 }).toBuffer()],
    ];
    for (const [name, bytes] of cases)
      for (const factor of [0.5, 0.37, 2]) {
        const full = await decodeImage(bytes);
        const size = (width: number, height: number) => ({
          width: Math.round(width * factor),
          height: Math.round(height * factor),
        });
        const expected = await resizeRgb(
          full,
          size(full.width, full.height).width,
          size(full.width, full.height).height,
        );
        const direct = await decodeImage(bytes, undefined, size);
        assert.deepEqual([direct.width, direct.height], [expected.width, expected.height], name);
        assert.deepEqual(sentSize(direct), { width: full.width, height: full.height }, name);
        assert.ok(direct.data.equals(expected.data), `${name} x${factor}: pixels differ`);
        // The canvas of a view is then the decoded image itself, not resized a second time.
        const view = { ...DEFAULT_VIEW, resize: 0, scale: factor };
        assert.equal(await toCanvas(direct, view), direct, name);
      }
    const same = await decodeImage(cases[0][1], undefined, (width, height) => ({ width, height }));
    assert.equal(same.scaledFrom, undefined, 'its own size is no resize');
  });
});
