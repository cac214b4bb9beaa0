/** PNG encoding and decoding of raw samples through sharp. */
import sharp from 'sharp';
import type { Sample } from './sample';

export type Channels = 1 | 3;

/** Encodes raw pixels (RGB or grey) to PNG. Deterministic for equal input. */
export async function encodePng(
  pixels: Uint8Array,
  width: number,
  height: number,
  channels: Channels,
  compressionLevel = 6,
): Promise<Buffer> {
  if (pixels.length !== width * height * channels) {
    throw new Error(
      `expected ${width * height * channels} bytes for ${width}x${height}x${channels}, got ${pixels.length}`,
    );
  }
  let img = sharp(pixels, { raw: { width, height, channels } });
  if (channels === 1) img = img.toColourspace('b-w');
  return img.png({ compressionLevel, adaptiveFiltering: false }).toBuffer();
}

/** The sample as PNG files: the image and, for a defective sample, its single-channel mask. */
export async function sampleToPng(
  sample: Sample,
  compressionLevel?: number,
): Promise<{ image: Buffer; mask?: Buffer }> {
  const image = await encodePng(sample.rgb, sample.width, sample.height, 3, compressionLevel);
  if (!sample.mask) return { image };
  return { image, mask: await encodePng(sample.mask, sample.width, sample.height, 1, compressionLevel) };
}

/** Decodes a PNG (file path or bytes) to raw pixels, keeping grey images single-channel. */
export async function decodePng(
  input: string | Buffer,
): Promise<{ data: Buffer; width: number; height: number; channels: number }> {
  const meta = await sharp(input).metadata();
  let img = sharp(input);
  if (meta.channels === 1) img = img.toColourspace('b-w');
  const { data, info } = await img.raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels };
}
