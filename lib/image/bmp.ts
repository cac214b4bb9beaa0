/**
 * BMP frames, as many industrial cameras write them. libvips has no BMP loader in sharp's build, so
 * the pixels are unpacked by bmp-ts (the decoder jimp uses). Its header handling is loose (it
 * allocates width x height x 4 from the header, ignores the pixel-data offset, and its RLE path
 * writes pixels to the wrong bytes), so the header is checked here first: size within the limits,
 * a known header, uncompressed or bit-field pixels, a palette that fits, pixel rows that are there.
 */
import { decode as decodeBmpPixels } from 'bmp-ts';
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
  const height = Math.abs(bytes.readInt32LE(22)); // negative: rows stored top-down
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
  return { width, height, bitsPerPixel, decoderDataStart, dataOffset, rowBytes };
}

/** A BMP as 8-bit RGB (alpha, which cameras do not write, is ignored). */
export function decodeBmp(bytes: Uint8Array, limits: DecodeLimits): RgbImage {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const h = readBmpHeader(buf, limits);
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
