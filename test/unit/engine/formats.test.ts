import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { decode as decodeBmpWithLibrary } from 'bmp-ts';
import sharp from 'sharp';
import { encodeBmp as encodeBmpFrame, readBmpHeader } from '../../../lib/image/bmp';
import { DEFAULT_DECODE_LIMITS, decodeImage, resizeRgb } from '../../../lib/image/decode';
import { sniffFormat } from '../../../lib/image/formats';
import { SpiError } from '../../../lib/errors';
import { BmpOptions, cameraFormats, encodeBmp, hostileFiles, samplePixels } from '../../helpers/image-corpus';

const ROOT = path.resolve(__dirname, '../../..');

describe('image formats: an allow-list decided from the first bytes', () => {
  it('scores every camera format: PNG, JPEG, TIFF, WebP, BMP; 8 and 16 bits; grey and colour', async () => {
    const want = samplePixels();
    for (const file of await cameraFormats()) {
      if (/16\.(png|tif)$/.test(file.name))
        assert.equal((await sharp(file.bytes).metadata()).depth, 'ushort', `${file.name} is 16-bit`);
      const img = await decodeImage(file.bytes);
      assert.deepEqual([img.width, img.height, img.data.length], [64, 48, 64 * 48 * 3], file.name);
      // The dark square and the paper around it, in every format (lossy ones within a margin).
      const at = (x: number, y: number) => [...img.data.subarray((y * 64 + x) * 3, (y * 64 + x) * 3 + 3)];
      const ink = at(28, 20);
      const paper = at(60, 40);
      const greyish = /grey|palette/.test(file.name) ? 40 : 25;
      assert.ok(
        ink.every((v) => v < 30 + greyish),
        `${file.name}: ink ${ink}`,
      );
      assert.ok(Math.max(...paper) > 150, `${file.name}: paper ${paper}`);
      if (/bmp-rgb24|png-rgb|tiff-rgb8|webp-lossless/.test(file.name))
        assert.deepEqual(
          at(60, 40),
          [...want.subarray((40 * 64 + 60) * 3, (40 * 64 + 60) * 3 + 3)],
          file.name,
        );
    }
  });

  it('refuses everything else with the detected format or the problem named', async () => {
    for (const file of await hostileFiles()) {
      await assert.rejects(
        decodeImage(file.bytes),
        (err: unknown) => {
          assert.ok(err instanceof SpiError, `${file.name}: ${String(err)}`);
          assert.equal(err.kind, file.expect, `${file.name}: ${err.message}`);
          if (file.message) assert.match(err.message, file.message, file.name);
          return true;
        },
        file.name,
      );
    }
  });

  it('names what it sniffed', () => {
    assert.deepEqual(sniffFormat(Buffer.from('BM\0\0')), { accepted: 'bmp', name: 'BMP' });
    assert.equal(sniffFormat(Buffer.from('\u00ef\u00bb\u00bf<svg>', 'latin1')).name, 'SVG');
    assert.equal(sniffFormat(Buffer.from([0xde, 0xad, 0xbe, 0xef, 0])).name, 'unknown (starts de ad be ef)');
  });

  it('turns off the libvips loaders of every other format in processes that decode untrusted images', () => {
    // A child process: the block is process-wide, and this one renders SVG test fixtures elsewhere.
    const script = `
      const sharp = require('sharp');
      const { blockUnlistedLoaders } = require('./lib/image/formats.ts');
      const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>');
      const png = (s) => s.png().toBuffer();
      (async () => {
        const before = await png(sharp(svg)).then(() => 'read', () => 'refused');
        blockUnlistedLoaders();
        const after = await png(sharp(svg)).then(() => 'read', () => 'refused');
        const gif = await sharp({ create: { width: 4, height: 4, channels: 3, background: '#000' } }).gif().toBuffer();
        const gifAfter = await png(sharp(gif)).then(() => 'read', () => 'refused');
        const pngBytes = await png(sharp({ create: { width: 4, height: 4, channels: 3, background: '#000' } }));
        const pngAfter = await sharp(pngBytes).raw().toBuffer().then(() => 'read', () => 'refused');
        console.log(JSON.stringify({ before, after, gifAfter, pngAfter }));
      })();`;
    const out = execFileSync(process.execPath, ['--import', 'tsx', '-e', script], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    assert.deepEqual(JSON.parse(out.trim().split('\n').pop()!), {
      before: 'read',
      after: 'refused',
      gifAfter: 'refused',
      pngAfter: 'read',
    });
  });
});

describe('BMP frames: the direct unpacking of 24-bit and 8-bit rows', () => {
  /** bmp-ts, the general decoder, as RGB: the reference the direct path must equal. */
  const reference = (bytes: Buffer) => {
    // bmp-ts reads pixels right after the palette: close the gap first, as the decoder did before.
    const h = readBmpHeader(bytes, DEFAULT_DECODE_LIMITS);
    const closed = Buffer.concat([bytes.subarray(0, h.decoderDataStart), bytes.subarray(h.dataOffset)]);
    const abgr = decodeBmpWithLibrary(closed).data;
    const rgb = Buffer.alloc((abgr.length / 4) * 3);
    for (let i = 0; i < abgr.length / 4; i++) {
      rgb[i * 3] = abgr[i * 4 + 3];
      rgb[i * 3 + 1] = abgr[i * 4 + 2];
      rgb[i * 3 + 2] = abgr[i * 4 + 1];
    }
    return rgb;
  };

  it('gives the pixels bmp-ts gives: padded rows, top-down, V5 headers, short palettes', async () => {
    const cases: [string, number, BmpOptions][] = [
      ['24-bit', 64, { bitsPerPixel: 24 }],
      ['24-bit, padded rows', 61, { bitsPerPixel: 24 }],
      ['24-bit, top-down, padded', 63, { bitsPerPixel: 24, topDown: true }],
      ['24-bit, V5 header, gap', 62, { bitsPerPixel: 24, headerSize: 124, gap: 10 }],
      ['8-bit grey', 64, { bitsPerPixel: 8 }],
      ['8-bit, padded rows, top-down', 61, { bitsPerPixel: 8, topDown: true }],
      [
        '8-bit, 100-colour palette (brighter pixels index past it)',
        62,
        { bitsPerPixel: 8, paletteColours: 100 },
      ],
    ];
    for (const [name, width, options] of cases) {
      const bytes = encodeBmp(samplePixels(width, 48), width, 48, options);
      const img = await decodeImage(bytes);
      assert.deepEqual([img.width, img.height], [width, 48], name);
      assert.ok(img.data.equals(reference(bytes)), `${name}: pixels differ from bmp-ts`);
    }
  });

  it('decodes straight to a smaller canvas with the pixels of decode-then-resize', async () => {
    const cases: [string, number, BmpOptions][] = [
      ['24-bit', 64, { bitsPerPixel: 24 }],
      ['24-bit, padded rows, top-down', 61, { bitsPerPixel: 24, topDown: true }],
      ['24-bit, V5 header, gap', 62, { bitsPerPixel: 24, headerSize: 124, gap: 10 }],
      ['8-bit grey', 61, { bitsPerPixel: 8 }],
    ];
    for (const [name, width, options] of cases) {
      const bytes = encodeBmp(samplePixels(width, 48), width, 48, options);
      const direct = await decodeImage(bytes, DEFAULT_DECODE_LIMITS, () => ({ width: 29, height: 21 }));
      const full = await decodeImage(bytes);
      const twoSteps = await resizeRgb(full, 29, 21);
      assert.deepEqual(
        [direct.width, direct.height, direct.scaledFrom],
        [29, 21, { width, height: 48 }],
        name,
      );
      assert.ok(direct.data.equals(twoSteps.data), `${name}: pixels differ from decode-then-resize`);
    }
  });

  it('writes 24-bit frames that decode to the same pixels', async () => {
    const width = 61;
    const image = { data: samplePixels(width, 48), width, height: 48 };
    const back = await decodeImage(encodeBmpFrame(image));
    assert.ok(back.data.equals(image.data));
    // Byte for byte what the corpus' writer makes of the same pixels.
    assert.ok(encodeBmpFrame(image).equals(encodeBmp(image.data, width, 48, { bitsPerPixel: 24 })));
  });
});
