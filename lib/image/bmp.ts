/**
 * BMP frames, as many industrial cameras write them. libvips has no BMP loader in sharp's build, so
 * the pixels are unpacked by bmp-ts (the decoder jimp uses). Its header handling is loose (it
 * allocates width x height x 4 from the header, ignores the pixel-data offset, and its RLE path
 * writes pixels to the wrong bytes), so the header is checked here first: size within the limits,
 * a known header, uncompressed or bit-field pixels, a palette that fits, pixel rows that are there.
 */
import { decode as decodeBmpPixels } from 'bmp-ts';
import sharp from 'sharp';
import { SpiError, invalid } from '../errors';
import type { DecodeLimits, RgbImage } from './decode';

const FILE_HEADER = 14;
/** Info-header sizes bmp-ts reads: BITMAPINFOHEADER, V2, V3, V4, V5. (12 = OS/2 core: refused.) */
const INFO_HEADERS = new Set([40, 52, 56, 108, 124]);
const BI_RGB = 0;
const BI_BITFIELDS = 3;
const BI_ALPHABITFIELDS = 6;
const COMPRESSION_NAMES: Record<number, string> = { 1: 'RLE8', 2: 'RLE4', 4: 'JPEG', 5: 'PNG' };

export interface BmpHeader {
  width: number;
  height: number;
  bitsPerPixel: number;
  /** Where bmp-ts starts reading pixels, and where the file says they are. */
  decoderDataStart: number;
  dataOffset: number;
  rowBytes: number;
  compression: number;
  /** Rows stored from the top (a negative height in the header) rather than from the bottom. */
  topDown: boolean;
  /** Palette entries (BGRA) the file holds, from `decoderDataStart - 4 * paletteEntries`. */
  paletteEntries: number;
}

/** Reads and checks the headers; throws INVALID_ARGUMENT / RESOURCE_EXHAUSTED naming the problem. */
export function readBmpHeader(bytes: Buffer, limits: DecodeLimits): BmpHeader {
  if (bytes.length < FILE_HEADER + 40)
    throw invalid(`BMP is truncated: ${bytes.length} bytes, no full header`);
  const dataOffset = bytes.readUInt32LE(10);
  const headerSize = bytes.readUInt32LE(14);
  if (!INFO_HEADERS.has(headerSize))
    throw invalid(`BMP info header of ${headerSize} bytes is not supported (BITMAPINFOHEADER or V2-V5)`);
  const width = bytes.readInt32LE(18);
  const signedHeight = bytes.readInt32LE(22);
  const height = Math.abs(signedHeight); // negative: rows stored top-down
  const planes = bytes.readUInt16LE(26);
  const bitsPerPixel = bytes.readUInt16LE(28);
  const compression = bytes.readUInt32LE(30);
  const colours = bytes.readUInt32LE(46);
  if (width <= 0 || height <= 0) throw invalid(`BMP header has no size (${width}x${height})`);
  if (width * height > limits.maxPixels)
    throw new SpiError(
      'RESOURCE_EXHAUSTED',
      `image is ${width}x${height} (${width * height} pixels), over the limit of ${limits.maxPixels} pixels`,
    );
  if (planes !== 1) throw invalid(`BMP header has ${planes} planes, expected 1`);
  if (![1, 4, 8, 16, 24, 32].includes(bitsPerPixel))
    throw invalid(`BMP with ${bitsPerPixel} bits per pixel is not supported (1, 4, 8, 16, 24 or 32)`);
  const bitFields = compression === BI_BITFIELDS || compression === BI_ALPHABITFIELDS;
  if (compression !== BI_RGB && !(bitFields && (bitsPerPixel === 16 || bitsPerPixel === 32)))
    throw invalid(
      `BMP compression ${COMPRESSION_NAMES[compression] ?? compression} is not supported ` +
        '(uncompressed, or bit fields at 16 or 32 bits per pixel)',
    );
  const paletteMax = bitsPerPixel <= 8 ? 2 ** bitsPerPixel : 256;
  if (colours > paletteMax) throw invalid(`BMP palette of ${colours} colours (at most ${paletteMax})`);
  // Where bmp-ts will be after the headers, the bit masks (after a 40-byte header) and the palette.
  const masks = headerSize === 40 ? (compression === BI_BITFIELDS ? 12 : bitFields ? 16 : 0) : 0;
  const palette = bitsPerPixel <= 8 || colours > 0 ? 4 * (colours || 2 ** bitsPerPixel) : 0;
  const decoderDataStart = FILE_HEADER + headerSize + masks + palette;
  if (dataOffset < decoderDataStart || dataOffset > bytes.length)
    throw invalid(
      `BMP pixel data offset ${dataOffset} is outside the file (headers end at ${decoderDataStart})`,
    );
  const rowBytes = Math.ceil((width * bitsPerPixel) / 32) * 4;
  if (dataOffset + rowBytes * height > bytes.length)
    throw invalid(
      `BMP is truncated: ${height} rows of ${rowBytes} bytes need ${dataOffset + rowBytes * height} bytes, it has ${bytes.length}`,
    );
  return {
    width,
    height,
    bitsPerPixel,
    decoderDataStart,
    dataOffset,
    rowBytes,
    compression,
    topDown: signedHeight < 0,
    paletteEntries: palette / 4,
  };
}

/** A BMP as 8-bit RGB (alpha, which cameras do not write, is ignored). */
export function decodeBmp(bytes: Uint8Array, limits: DecodeLimits): RgbImage {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const h = readBmpHeader(buf, limits);
  if (h.compression === BI_RGB && (h.bitsPerPixel === 24 || h.bitsPerPixel === 8)) return unpackRows(buf, h);
  // bmp-ts reads pixels right after the palette: close any gap the file leaves before them.
  const input =
    h.dataOffset === h.decoderDataStart
      ? buf
      : Buffer.concat([buf.subarray(0, h.decoderDataStart), buf.subarray(h.dataOffset)]);
  let abgr: Buffer;
  try {
    abgr = decodeBmpPixels(input).data;
  } catch (err) {
    throw invalid(`BMP is corrupt: ${err instanceof Error ? err.message : String(err)}`);
  }
  const n = h.width * h.height;
  const data = Buffer.allocUnsafe(n * 3);
  for (let i = 0; i < n; i++) {
    data[i * 3] = abgr[i * 4 + 3];
    data[i * 3 + 1] = abgr[i * 4 + 2];
    data[i * 3 + 2] = abgr[i * 4 + 1];
  }
  return { data, width: h.width, height: h.height };
}

/**
 * A 24-bit frame (its header read by readBmpHeader) decoded straight to a smaller size: libvips flips the rows, resizes each channel
 * and swaps blue and red after the shrink (a permutation commutes with a per-channel resize), 24 ms
 * for a 2048 px sheet to 1,024 px against ~55 to unpack and then resize. The same pixels as
 * decodeBmp then resizeRgb (a test), so the bank and an inspection see the same canvas.
 * Undefined for the other kinds of BMP, which go the long way.
 */
export async function decodeBmpResized(
  bytes: Uint8Array,
  h: BmpHeader,
  width: number,
  height: number,
): Promise<RgbImage | undefined> {
  if (h.compression !== BI_RGB || h.bitsPerPixel !== 24) return undefined;
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const packed = h.width * 3;
  let rows = buf.subarray(h.dataOffset, h.dataOffset + h.rowBytes * h.height);
  if (h.rowBytes !== packed) {
    const tight = Buffer.allocUnsafe(packed * h.height);
    for (let y = 0; y < h.height; y++) rows.copy(tight, y * packed, y * h.rowBytes, y * h.rowBytes + packed);
    rows = tight;
  }
  try {
    const data = await sharp(rows, { raw: { width: h.width, height: h.height, channels: 3 } })
      .flip(!h.topDown)
      .recomb(BGR_TO_RGB)
      .resize(width, height, { fit: 'fill', kernel: 'linear' })
      .raw()
      .toBuffer();
    return { data, width, height };
  } catch (err) {
    throw invalid(`BMP could not be resized: ${err instanceof Error ? err.message : String(err)}`);
  }
}

const BGR_TO_RGB: sharp.Matrix3x3 = [
  [0, 0, 1],
  [0, 1, 0],
  [1, 0, 0],
];

/**
 * The frames cameras write, uncompressed 24-bit colour and 8-bit palette (mono) rows, unpacked
 * straight to RGB: bmp-ts goes through a 4-byte pixel and a call per pixel, 180 ms for a 2048 px
 * sheet against ~10 here. The same pixels as bmp-ts, including its white for an index past the
 * palette (a test compares the two).
 */
function unpackRows(buf: Buffer, h: BmpHeader): RgbImage {
  const { width, height, rowBytes } = h;
  const data = Buffer.allocUnsafe(width * height * 3);
  const lut = h.bitsPerPixel === 8 ? paletteRgb(buf, h) : undefined;
  for (let y = 0; y < height; y++) {
    let s = h.dataOffset + (h.topDown ? y : height - 1 - y) * rowBytes;
    let d = y * width * 3;
    if (lut) {
      for (let x = 0; x < width; x++, d += 3) {
        const i = buf[s++] * 3;
        data[d] = lut[i];
        data[d + 1] = lut[i + 1];
        data[d + 2] = lut[i + 2];
      }
    } else {
      for (let x = 0; x < width; x++, s += 3, d += 3) {
        data[d] = buf[s + 2];
        data[d + 1] = buf[s + 1];
        data[d + 2] = buf[s];
      }
    }
  }
  return { data, width, height };
}

/** An 8-bit palette as RGB triplets for all 256 indices; indices past the file's palette are white. */
function paletteRgb(buf: Buffer, h: BmpHeader): Uint8Array {
  const lut = new Uint8Array(256 * 3).fill(0xff);
  const start = h.decoderDataStart - 4 * h.paletteEntries;
  for (let i = 0; i < Math.min(256, h.paletteEntries); i++) {
    lut[i * 3] = buf[start + i * 4 + 2];
    lut[i * 3 + 1] = buf[start + i * 4 + 1];
    lut[i * 3 + 2] = buf[start + i * 4];
  }
  return lut;
}

/** An RGB image as a 24-bit bottom-up BMP (BITMAPINFOHEADER), the frame a colour camera writes. */
export function encodeBmp(image: RgbImage): Buffer {
  const { width, height } = image;
  const rowBytes = Math.ceil((width * 3) / 4) * 4;
  const dataOffset = FILE_HEADER + 40;
  const out = Buffer.alloc(dataOffset + rowBytes * height);
  out.write('BM', 0, 'latin1');
  out.writeUInt32LE(out.length, 2);
  out.writeUInt32LE(dataOffset, 10);
  out.writeUInt32LE(40, 14);
  out.writeInt32LE(width, 18);
  out.writeInt32LE(height, 22);
  out.writeUInt16LE(1, 26);
  out.writeUInt16LE(24, 28);
  out.writeUInt32LE(rowBytes * height, 34);
  for (let y = 0; y < height; y++) {
    let d = dataOffset + (height - 1 - y) * rowBytes;
    for (let s = y * width * 3, end = s + width * 3; s < end; s += 3, d += 3) {
      out[d] = image.data[s + 2];
      out[d + 1] = image.data[s + 1];
      out[d + 2] = image.data[s];
    }
  }
  return out;
}
