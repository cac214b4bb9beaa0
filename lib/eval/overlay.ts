/**
 * Heat-map overlay for the report: jet colours blended over the image, ground-truth contour in
 * magenta (a colour jet never produces), predicted boxes in white with a black edge (visible on
 * both paper and ink). Drawn on raw pixels here; sharp only resizes and encodes the PNG.
 */
import sharp from 'sharp';

export interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

export interface OverlayOptions {
  /** Score mapped to the bottom of the colour scale (blue). */
  vmin: number;
  /** Score mapped to the top of the colour scale (red). */
  vmax: number;
  /** Ground-truth mask, same size as the image, nonzero = defect; its outline is drawn. */
  mask?: Uint8Array;
  /** Predicted defect boxes in image pixels. */
  boxes?: Box[];
  /** Heat-map opacity at vmax (default 0.6); it falls to 15 % of that at vmin, so the print stays readable. */
  alpha?: number;
  /** Downscale so the longer side is at most this (keeps a report of large images small). */
  maxSide?: number;
}

const GT_COLOUR = [255, 0, 255] as const;

/** Jet-like colour map, v in [0, 1] -> RGB in [0, 255]. */
export function jet(v: number): [number, number, number] {
  const c = (x: number): number => Math.round(255 * Math.min(1, Math.max(0, x)));
  return [c(1.5 - Math.abs(4 * v - 3)), c(1.5 - Math.abs(4 * v - 2)), c(1.5 - Math.abs(4 * v - 1))];
}

function paint(
  out: Buffer,
  width: number,
  height: number,
  x: number,
  y: number,
  size: number,
  rgb: readonly number[],
) {
  const x0 = Math.max(0, x - (size >> 1));
  const y0 = Math.max(0, y - (size >> 1));
  const x1 = Math.min(width, x0 + size);
  const y1 = Math.min(height, y0 + size);
  for (let yy = y0; yy < y1; yy++) {
    for (let xx = x0; xx < x1; xx++) {
      const o = (yy * width + xx) * 3;
      out[o] = rgb[0];
      out[o + 1] = rgb[1];
      out[o + 2] = rgb[2];
    }
  }
}

/** Outline pixels of the mask: inside, with a 4-neighbour outside (or on the image border). */
function drawContour(out: Buffer, mask: Uint8Array, width: number, height: number, thick: number): void {
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      if (mask[i] === 0) continue;
      const edge =
        x === 0 ||
        y === 0 ||
        x === width - 1 ||
        y === height - 1 ||
        mask[i - 1] === 0 ||
        mask[i + 1] === 0 ||
        mask[i - width] === 0 ||
        mask[i + width] === 0;
      if (edge) paint(out, width, height, x, y, thick, GT_COLOUR);
    }
  }
}

function drawBox(out: Buffer, width: number, height: number, box: Box, thick: number): void {
  const x0 = Math.round(box.x);
  const y0 = Math.round(box.y);
  const x1 = Math.round(box.x + box.w) - 1;
  const y1 = Math.round(box.y + box.h) - 1;
  // Black band outside, white band inside: readable on any background.
  const bands: [number, readonly number[]][] = [
    [-thick, [0, 0, 0]],
    [0, [255, 255, 255]],
  ];
  for (const [offset, colour] of bands) {
    const ax = x0 + offset;
    const ay = y0 + offset;
    const bx = x1 - offset;
    const by = y1 - offset;
    for (let t = 0; t < thick; t++) {
      for (let x = ax; x <= bx; x++) {
        paint(out, width, height, x, ay + t, 1, colour);
        paint(out, width, height, x, by - t, 1, colour);
      }
      for (let y = ay; y <= by; y++) {
        paint(out, width, height, ax + t, y, 1, colour);
        paint(out, width, height, bx - t, y, 1, colour);
      }
    }
  }
}

/**
 * PNG of `rgb` (packed 8-bit RGB, width x height) with `map` (one score per pixel, same size)
 * as a heat map, plus the ground-truth outline and predicted boxes when given.
 */
export async function renderOverlay(
  rgb: Buffer,
  width: number,
  height: number,
  map: Float32Array,
  opts: OverlayOptions,
): Promise<Buffer> {
  const n = width * height;
  if (rgb.length !== n * 3)
    throw new RangeError(`rgb has ${rgb.length} bytes, expected ${width}x${height}x3`);
  if (map.length !== n) throw new RangeError(`map has ${map.length} values, expected ${width}x${height}`);
  if (opts.mask && opts.mask.length !== n) throw new RangeError('mask size differs from the image');
  const alpha = opts.alpha ?? 0.6;
  const span = opts.vmax > opts.vmin ? opts.vmax - opts.vmin : 1;
  // Colour table: 256 levels are plenty for the eye and save a jet() call per pixel.
  const lut = new Uint8Array(256 * 3);
  for (let l = 0; l < 256; l++) lut.set(jet(l / 255), l * 3);
  const out = Buffer.allocUnsafe(n * 3);
  for (let i = 0; i < n; i++) {
    const v = Math.min(1, Math.max(0, (map[i] - opts.vmin) / span)) || 0;
    const a = alpha * (0.15 + 0.85 * v);
    const l = Math.round(v * 255) * 3;
    const o = i * 3;
    out[o] = rgb[o] + (lut[l] - rgb[o]) * a;
    out[o + 1] = rgb[o + 1] + (lut[l + 1] - rgb[o + 1]) * a;
    out[o + 2] = rgb[o + 2] + (lut[l + 2] - rgb[o + 2]) * a;
  }
  const longSide = Math.max(width, height);
  const outSide = opts.maxSide && longSide > opts.maxSide ? opts.maxSide : longSide;
  // Lines about 1 px per 200 px of output, scaled up so they survive the downscale.
  const thick = Math.max(1, Math.round(outSide / 200)) * Math.max(1, Math.round(longSide / outSide));
  if (opts.mask) drawContour(out, opts.mask, width, height, thick);
  for (const box of opts.boxes ?? []) drawBox(out, width, height, box, thick);
  let img = sharp(out, { raw: { width, height, channels: 3 } });
  if (outSide < longSide) {
    img = img.resize(
      Math.max(1, Math.round((width * outSide) / longSide)),
      Math.max(1, Math.round((height * outSide) / longSide)),
    );
  }
  return img.png().toBuffer();
}
