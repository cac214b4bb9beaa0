/**
 * The hostile-input corpus: camera formats that must be scored (PNG, JPEG, TIFF, WebP, BMP; 8 and
 * 16 bits; grey and colour) and files that must be refused with the status given (SVG pointing at
 * local files or the network, other formats, truncated, concatenated or oversized images). Made
 * in memory from one small print-like picture, so tests, fuzzing and `make soak` share it.
 */
import * as zlib from 'node:zlib';
import sharp from 'sharp';
import { pngChunk, pngHeader } from './fixtures';

export interface CorpusFile {
  name: string;
  bytes: Buffer;
  /** 'OK': decoded and scored; otherwise the status it must be refused with. */
  expect: 'OK' | 'INVALID_ARGUMENT' | 'RESOURCE_EXHAUSTED';
  /** A word the refusal message must contain (the detected format, the problem). */
  message?: RegExp;
}

const W = 64;
const H = 48;

/** A small picture with structure (gradients and a dark square), as 8-bit RGB. */
export function samplePixels(width = W, height = H): Buffer {
  const px = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      const ink = x > width / 3 && x < width / 2 && y > height / 3 && y < height / 2;
      px[i] = ink ? 20 : (x * 255) / width;
      px[i + 1] = ink ? 30 : (y * 255) / height;
      px[i + 2] = ink ? 40 : 180;
    }
  return px;
}

const raw = (px: Buffer, channels: 1 | 3 = 3) => sharp(px, { raw: { width: W, height: H, channels } });
/** The same picture at 16 bits per sample. */
const raw16 = (px: Buffer, channels: 1 | 3 = 3) =>
  raw(px, channels).toColourspace(channels === 1 ? 'grey16' : 'rgb16');

function grey(px: Buffer): Buffer {
  const g = Buffer.alloc(W * H);
  for (let i = 0; i < W * H; i++) g[i] = Math.round((px[i * 3] + px[i * 3 + 1] + px[i * 3 + 2]) / 3);
  return g;
}

export interface BmpOptions {
  bitsPerPixel: 8 | 16 | 24 | 32;
  topDown?: boolean;
  /** Bytes left between the headers and the pixels (some writers align the pixel data). */
  gap?: number;
  compression?: number;
  headerSize?: 40 | 124;
  /** 8 bits: palette entries written (the header's colour count); default 256, the grey ramp. */
  paletteColours?: number;
}

/** A BMP as cameras write it (BITMAPINFOHEADER), from 8-bit RGB; 8 bits = a grey palette. */
export function encodeBmp(px: Buffer, width: number, height: number, o: BmpOptions): Buffer {
  const bpp = o.bitsPerPixel;
  const headerSize = o.headerSize ?? 40;
  const colours = bpp === 8 ? (o.paletteColours ?? 256) : 0;
  const palette = colours * 4;
  const dataOffset = 14 + headerSize + palette + (o.gap ?? 0);
  const rowBytes = Math.ceil((width * bpp) / 32) * 4;
  const out = Buffer.alloc(dataOffset + rowBytes * height);
  out.write('BM', 0, 'latin1');
  out.writeUInt32LE(out.length, 2);
  out.writeUInt32LE(dataOffset, 10);
  out.writeUInt32LE(headerSize, 14);
  out.writeInt32LE(width, 18);
  out.writeInt32LE(o.topDown ? -height : height, 22);
  out.writeUInt16LE(1, 26);
  out.writeUInt16LE(bpp, 28);
  out.writeUInt32LE(o.compression ?? 0, 30);
  out.writeUInt32LE(rowBytes * height, 34);
  if (o.paletteColours !== undefined) out.writeUInt32LE(colours, 46);
  for (let i = 0; i < colours; i++) out.writeUInt32LE(i * 0x010101, 14 + headerSize + i * 4);
  for (let y = 0; y < height; y++) {
    const row = dataOffset + (o.topDown ? y : height - 1 - y) * rowBytes;
    for (let x = 0; x < width; x++) {
      const [r, g, b] = px.subarray((y * width + x) * 3, (y * width + x) * 3 + 3);
      if (bpp === 8) out[row + x] = Math.round((r + g + b) / 3);
      else if (bpp === 16) out.writeUInt16LE(((r >> 3) << 10) | ((g >> 3) << 5) | (b >> 3), row + x * 2);
      else {
        const at = row + x * (bpp / 8);
        out[at] = b;
        out[at + 1] = g;
        out[at + 2] = r;
      }
    }
  }
  return out;
}

/** The camera formats that must be scored. */
export async function cameraFormats(): Promise<CorpusFile[]> {
  const px = samplePixels();
  const g = grey(px);
  const ok = (name: string, bytes: Buffer): CorpusFile => ({ name, bytes, expect: 'OK' });
  return [
    ok('png-rgb8.png', await raw(px).png().toBuffer()),
    ok('png-grey8.png', await raw(g, 1).png().toBuffer()),
    ok('png-rgb16.png', await raw16(px).png().toBuffer()),
    ok('png-grey16.png', await raw16(g, 1).png().toBuffer()),
    ok('png-palette.png', await raw(px).png({ palette: true }).toBuffer()),
    ok('png-rgba.png', await raw(px).ensureAlpha(1).png().toBuffer()),
    ok('jpeg-rgb.jpg', await raw(px).jpeg().toBuffer()),
    ok('jpeg-grey.jpg', await raw(g, 1).jpeg().toBuffer()),
    ok('jpeg-progressive.jpg', await raw(px).jpeg({ progressive: true }).toBuffer()),
    ok('tiff-rgb8.tif', await raw(px).tiff({ compression: 'none' }).toBuffer()),
    ok('tiff-grey8.tif', await raw(g, 1).tiff({ compression: 'none' }).toBuffer()),
    ok('tiff-jpeg.tif', await raw(px).tiff().toBuffer()),
    ok('tiff-rgb16.tif', await raw16(px).tiff({ compression: 'deflate' }).toBuffer()),
    ok('tiff-grey16.tif', await raw16(g, 1).tiff({ compression: 'deflate' }).toBuffer()),
    ok('tiff-lzw.tif', await raw(px).tiff({ compression: 'lzw' }).toBuffer()),
    ok('webp-lossy.webp', await raw(px).webp().toBuffer()),
    ok('webp-lossless.webp', await raw(px).webp({ lossless: true }).toBuffer()),
    ok('bmp-rgb24.bmp', encodeBmp(px, W, H, { bitsPerPixel: 24 })),
    ok('bmp-grey8.bmp', encodeBmp(px, W, H, { bitsPerPixel: 8 })),
    ok('bmp-rgb16.bmp', encodeBmp(px, W, H, { bitsPerPixel: 16 })),
    ok('bmp-rgb32.bmp', encodeBmp(px, W, H, { bitsPerPixel: 32 })),
    ok('bmp-top-down.bmp', encodeBmp(px, W, H, { bitsPerPixel: 24, topDown: true })),
    ok('bmp-v5-gap.bmp', encodeBmp(px, W, H, { bitsPerPixel: 24, headerSize: 124, gap: 10 })),
  ];
}

/** Files that must be refused, each with its status and a word of its message. */
export async function hostileFiles(): Promise<CorpusFile[]> {
  const px = samplePixels();
  const png = await raw(px).png().toBuffer();
  const jpeg = await raw(px).jpeg().toBuffer();
  const bmp = encodeBmp(px, W, H, { bitsPerPixel: 24 });
  const bad = (name: string, bytes: Buffer | string, message: RegExp): CorpusFile => ({
    name,
    bytes: Buffer.from(bytes),
    expect: 'INVALID_ARGUMENT',
    message,
  });
  const svg = (body: string) =>
    `<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="64" height="48">${body}</svg>`;
  const bombBmp = encodeBmp(px, W, H, { bitsPerPixel: 24 });
  bombBmp.writeInt32LE(30000, 18);
  bombBmp.writeInt32LE(30000, 22);
  const rle = encodeBmp(px, W, H, { bitsPerPixel: 8, compression: 1 });
  const idat = pngChunk('IDAT', zlib.deflateSync(Buffer.alloc(10)));
  return [
    bad('passwd.svg', svg('<image xlink:href="file:///etc/passwd" width="64" height="48"/>'), /SVG/),
    bad('network.svg', svg('<image href="http://10.11.12.13/probe.png" width="64" height="48"/>'), /SVG/),
    bad(
      'entity.svg',
      `<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]><svg xmlns="http://www.w3.org/2000/svg"><text>&x;</text></svg>`,
      /SVG/,
    ),
    bad('bare.svg', '<svg width="10" height="10"></svg>', /SVG/),
    bad('image.gif', await raw(px).gif().toBuffer(), /GIF/),
    bad('image.avif', await raw(px).avif().toBuffer(), /HEIF/),
    bad(
      'doc.pdf',
      '%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n',
      /PDF/,
    ),
    bad('doc.ps', '%!PS-Adobe-3.0\nshowpage\n', /PostScript/),
    bad('page.html', '<!DOCTYPE html><html><body><img src="x.png"></body></html>', /HTML/),
    bad('data.xml', '<?xml version="1.0"?><frame/>', /XML/),
    bad('notes.txt', 'this is a frame, honestly', /text/),
    bad('frame.json', '{"image": "base64..."}', /text/),
    bad('image.ppm', Buffer.concat([Buffer.from('P6\n64 48\n255\n'), px]), /PNM/),
    bad('image.psd', Buffer.concat([Buffer.from('8BPS'), Buffer.alloc(40)]), /PSD/),
    bad('image.ico', Buffer.from([0, 0, 1, 0, 1, 0, 16, 16, 0, 0, 1, 0, 32, 0]), /ICO/),
    bad(
      'image.jp2',
      Buffer.from([0, 0, 0, 0x0c, 0x6a, 0x50, 0x20, 0x20, 0x0d, 0x0a, 0x87, 0x0a]),
      /JPEG 2000/,
    ),
    bad('image.jxl', Buffer.from([0xff, 0x0a, 0xfa, 0x7f]), /JPEG XL/),
    bad('image.exr', Buffer.from([0x76, 0x2f, 0x31, 0x01, 2, 0, 0, 0]), /OpenEXR/),
    bad('image.fits', 'SIMPLE  =                    T', /FITS/),
    bad('image.v', Buffer.from([0x08, 0xf2, 0xa6, 0xb6, 0, 0, 0, 0]), /VIPS/),
    bad('png.gz', zlib.gzipSync(png), /gzip/),
    bad('png.zip', Buffer.concat([Buffer.from('PK\u0003\u0004'), png]), /ZIP/),
    bad('random.bin', Buffer.from(Array.from({ length: 256 }, (_, i) => (i * 73 + 41) & 0xff)), /unknown/),
    bad('empty.png', Buffer.alloc(0), /empty/),
    bad('one-byte', Buffer.from([0x89]), /unknown/),
    bad('trailing-garbage.png', Buffer.concat([png, Buffer.from('GARBAGE-AFTER-IEND')]), /after its end/),
    bad('two-pngs.png', Buffer.concat([png, png]), /after its end/),
    bad('truncated.png', png.subarray(0, png.length - 40), /corrupt|truncated/),
    bad(
      'no-idat.png',
      Buffer.concat([pngHeader(64, 48).subarray(0, 33), pngChunk('IEND', Buffer.alloc(0))]),
      /corrupt|truncated|could not/,
    ),
    bad(
      'bad-crc.png',
      Buffer.concat([
        png.subarray(0, 33),
        Buffer.from(idat.map((b, i) => (i === 10 ? b ^ 0xff : b))),
        pngChunk('IEND', Buffer.alloc(0)),
      ]),
      /corrupt|truncated|could not/,
    ),
    bad('truncated.jpg', jpeg.subarray(0, Math.floor(jpeg.length / 2)), /corrupt|truncated/),
    bad('truncated.bmp', bmp.subarray(0, bmp.length - 100), /truncated/),
    bad('header-only.bmp', bmp.subarray(0, 30), /truncated/),
    bad('rle8.bmp', rle, /RLE8/),
    {
      name: 'bomb.png',
      bytes: pngHeader(30000, 30000),
      expect: 'RESOURCE_EXHAUSTED',
      message: /30000x30000/,
    },
    { name: 'bomb.bmp', bytes: bombBmp, expect: 'RESOURCE_EXHAUSTED', message: /30000x30000/ },
  ];
}

/** Every file of the corpus. */
export async function imageCorpus(): Promise<CorpusFile[]> {
  return [...(await cameraFormats()), ...(await hostileFiles())];
}
