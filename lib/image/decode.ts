/**
 * Image input: PNG, JPEG, TIFF, WebP (sharp) and BMP (./bmp.ts), 8 or 16 bits, grey or colour,
 * converted to 8-bit RGB; every other format is refused from its first bytes (./formats.ts).
 * Limits refuse decompression bombs before pixels are decoded: the header is read first.
 */
import sharp from 'sharp';
import { SpiError, invalid } from '../errors';
import { decodeBmp } from './bmp';
import { acceptedFormat, checkPngEnd } from './formats';

export interface RgbImage {
  /** Interleaved RGB bytes, row-major, width*height*3. */
  data: Buffer;
  width: number;
  height: number;
}

export interface DecodeLimits {
  /** Encoded bytes accepted. */
  maxBytes: number;
  /** Decoded pixels accepted (width * height). */
  maxPixels: number;
}

export const DEFAULT_DECODE_LIMITS: DecodeLimits = {
  maxBytes: 64 * 1024 * 1024,
  maxPixels: 64 * 1024 * 1024,
};

export async function decodeImage(
  bytes: Uint8Array,
  limits: DecodeLimits = DEFAULT_DECODE_LIMITS,
): Promise<RgbImage> {
  if (bytes.length === 0) throw invalid('image is empty (0 bytes)');
  if (bytes.length > limits.maxBytes) {
    throw new SpiError(
      'RESOURCE_EXHAUSTED',
      `image is ${bytes.length} bytes, over the limit of ${limits.maxBytes}`,
    );
  }
  const format = acceptedFormat(bytes);
  if (format === 'bmp') return decodeBmp(bytes, limits);
  if (format === 'png') checkPngEnd(bytes);
  let meta: sharp.Metadata;
  try {
    // The header alone, with no pixel limit, so an oversized image is reported with its size.
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (err) {
    throw invalid(`image could not be read: ${describe(err)}`);
  }
  // The sniffed format and libvips' own detection agree, or the bytes are something crafted.
  if (meta.format !== format) throw invalid(`image looks like ${format} but decodes as ${meta.format}`);
  const { width, height } = meta;
  if (!width || !height) throw invalid('image header has no size');
  if (width * height > limits.maxPixels) {
    throw new SpiError(
      'RESOURCE_EXHAUSTED',
      `image is ${width}x${height} (${width * height} pixels), over the limit of ${limits.maxPixels} pixels`,
    );
  }
  try {
    // Transparent areas become white paper; grayscale becomes three equal channels.
    const { data, info } = await sharp(bytes, { failOn: 'truncated', limitInputPixels: limits.maxPixels })
      .rotate()
      .flatten({ background: '#ffffff' })
      .toColourspace('srgb')
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw invalid(`image decoded to ${info.channels} channels, expected 3`);
    return { data, width: info.width, height: info.height };
  } catch (err) {
    if (err instanceof SpiError) throw err;
    throw invalid(`image is corrupt or truncated: ${describe(err)}`);
  }
}

/** Resizes an RGB image (bilinear-like, sharp's default lanczos is sharper than bilinear for downscale). */
export async function resizeRgb(image: RgbImage, width: number, height: number): Promise<RgbImage> {
  if (image.width === width && image.height === height) return image;
  const data = await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
    .resize(width, height, { fit: 'fill', kernel: 'linear' })
    .raw()
    .toBuffer();
  return { data, width, height };
}

/** Cuts the centred `size` x `size` square (or the given rectangle) out of an RGB image. */
export function cropRgb(image: RgbImage, left: number, top: number, width: number, height: number): RgbImage {
  if (left === 0 && top === 0 && width === image.width && height === image.height) return image;
  const out = Buffer.allocUnsafe(width * height * 3);
  for (let y = 0; y < height; y++) {
    const src = ((top + y) * image.width + left) * 3;
    image.data.copy(out, y * width * 3, src, src + width * 3);
  }
  return { data: out, width, height };
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
