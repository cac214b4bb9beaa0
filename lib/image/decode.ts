/**
 * Image input: PNG, JPEG, TIFF, WebP (sharp) and BMP (./bmp.ts), 8 or 16 bits, grey or colour,
 * converted to 8-bit RGB; every other format is refused from its first bytes (./formats.ts).
 * Limits refuse decompression bombs before pixels are decoded: the header is read first.
 */
import sharp from 'sharp';
import { SpiError, invalid } from '../errors';
import { decodeBmp, decodeBmpResized, readBmpHeader } from './bmp';
import { acceptedFormat, checkPngEnd } from './formats';

export interface RgbImage {
  /** Interleaved RGB bytes, row-major, width*height*3. */
  data: Buffer;
  width: number;
  height: number;
  /**
   * Set when the pixels were resized while decoding (decodeImage's `sizeFor`): the size the image
   * was sent at. Maps and regions are reported in those pixels; `width`/`height` are the data's.
   */
  scaledFrom?: { width: number; height: number };
}

/** The size of the image as it was sent, whether or not it was resized while decoding. */
export function sentSize(image: Pick<RgbImage, 'width' | 'height' | 'scaledFrom'>): {
  width: number;
  height: number;
} {
  return image.scaledFrom ?? { width: image.width, height: image.height };
}

/** The size to decode an image of this (upright) size to; its own size means no resize. */
export type DecodeSize = (width: number, height: number) => { width: number; height: number };

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

/**
 * `sizeFor`, when given, resizes in the same libvips pipeline as the decode (an inspection's canvas:
 * a 2048 px sheet scaled to 1024 px is never held as a 12 MB full-size RGB copy, which on a gateway
 * was garbage to collect and pages to fault). The result then carries `scaledFrom`.
 */
export async function decodeImage(
  bytes: Uint8Array,
  limits: DecodeLimits = DEFAULT_DECODE_LIMITS,
  sizeFor?: DecodeSize,
): Promise<RgbImage> {
  if (bytes.length === 0) throw invalid('image is empty (0 bytes)');
  if (bytes.length > limits.maxBytes) {
    throw new SpiError(
      'RESOURCE_EXHAUSTED',
      `image is ${bytes.length} bytes, over the limit of ${limits.maxBytes}`,
    );
  }
  const format = acceptedFormat(bytes);
  if (format === 'bmp') return decodeBmpTo(bytes, limits, sizeFor);
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
  // EXIF orientations 5-8 turn the image by 90 degrees: the upright size is the other way round.
  const upright = (meta.orientation ?? 1) >= 5 ? { width: height, height: width } : { width, height };
  const target = sizeFor?.(upright.width, upright.height);
  const resize = target && (target.width !== upright.width || target.height !== upright.height);
  // Turned or 16-bit images resize after the decode: in one pipeline libvips would resample them
  // before the turn or the cast to 8 bits, and the pixels would differ from the bank's (its fit
  // decodes, then resizes).
  if (resize && ((meta.orientation ?? 1) > 1 || meta.depth !== 'uchar')) {
    const image = await decodeImage(bytes, limits);
    return withSource(await resizeRgb(image, target.width, target.height), image);
  }
  try {
    // Transparent areas become white paper; grayscale becomes three equal channels.
    let pipeline = sharp(bytes, { failOn: 'truncated', limitInputPixels: limits.maxPixels })
      .rotate()
      .flatten({ background: '#ffffff' })
      .toColourspace('srgb')
      .removeAlpha();
    // The same kernel as resizeRgb, and no JPEG shrink-on-load: the pixels equal decode-then-resize.
    if (resize)
      pipeline = pipeline.resize(target.width, target.height, {
        fit: 'fill',
        kernel: 'linear',
        fastShrinkOnLoad: false,
      });
    const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw invalid(`image decoded to ${info.channels} channels, expected 3`);
    const image = { data, width: info.width, height: info.height };
    return resize ? withSource(image, upright) : image;
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

/** A BMP, straight to the size `sizeFor` asks where it is a 24-bit frame (bmp.ts), else decoded, then resized. */
async function decodeBmpTo(bytes: Uint8Array, limits: DecodeLimits, sizeFor?: DecodeSize): Promise<RgbImage> {
  const header = readBmpHeader(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), limits);
  const size = sizeFor?.(header.width, header.height);
  if (!size || (size.width === header.width && size.height === header.height))
    return decodeBmp(bytes, limits);
  const image =
    (await decodeBmpResized(bytes, header, size.width, size.height)) ??
    (await resizeRgb(decodeBmp(bytes, limits), size.width, size.height));
  return withSource(image, header);
}

function withSource(image: RgbImage, source: { width: number; height: number }): RgbImage {
  if (image.width === source.width && image.height === source.height) return image;
  return { ...image, scaledFrom: { width: source.width, height: source.height } };
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
