/**
 * How an image becomes what the backbone sees. First a "canvas": the image resized (and optionally
 * centre-cropped), or scaled by a factor for high-resolution print. Then "tiles": the canvas is fed
 * whole, or cut into overlapping square tiles so small defects keep their pixels; tile maps are
 * stitched back onto the canvas. Masks and anomaly maps live at canvas resolution.
 */
import { DecodeSize, RgbImage, cropRgb, resizeRgb, sentSize } from './decode';
import { invalid } from '../errors';

export interface ViewConfig {
  /** Canvas side: the image is resized to resize x resize. 0 = keep the size, times `scale`. */
  resize: number;
  /** Centre crop of the resized canvas (0 = none). */
  crop: number;
  /** Scale factor applied when resize = 0 (tiling at a chosen scale). */
  scale: number;
  /** Tile side fed to the backbone; 0 = the whole canvas in one pass. */
  tile: number;
  /** Overlap between neighbouring tiles, pixels. */
  overlap: number;
  /**
   * Mirror the canvas by this many pixels on every side before the backbone (0 = none; absent in
   * older banks). The frame edge is otherwise where the backbone's zero padding meets content cut
   * by the frame: those cells score high on good images (every top-scoring good DeepPCB board
   * peaked within 8 px of its edge). Mirrored context moves that seam out of the canvas; the map
   * is cropped back, so the whole frame is still inspected.
   */
  pad?: number;
}

export const DEFAULT_VIEW: ViewConfig = { resize: 224, crop: 0, scale: 1, tile: 0, overlap: 0 };

export interface Tile {
  left: number;
  top: number;
  width: number;
  height: number;
}

/** Canvas size an image of this size gets, before any crop. */
export function canvasSize(
  view: ViewConfig,
  width: number,
  height: number,
): { width: number; height: number } {
  if (view.resize > 0) return { width: view.resize, height: view.resize };
  return {
    width: Math.max(1, Math.round(width * view.scale)),
    height: Math.max(1, Math.round(height * view.scale)),
  };
}

/** The decode size of a view's canvas (decodeImage's `sizeFor`: decoded straight to the canvas). */
export function canvasOf(view: ViewConfig): DecodeSize {
  return (width, height) => canvasSize(view, width, height);
}

/** An image decoded at its canvas size already (decodeImage's `sizeFor`) is only cropped. */
export async function toCanvas(image: RgbImage, view: ViewConfig): Promise<RgbImage> {
  const sent = sentSize(image);
  const size = canvasSize(view, sent.width, sent.height);
  const resized = await resizeRgb(image, size.width, size.height);
  return cropCentre(resized, view.crop);
}

export function cropCentre<T extends { width: number; height: number }>(
  image: T & RgbImage,
  crop: number,
): RgbImage {
  if (crop <= 0 || (crop === image.width && crop === image.height)) return image;
  if (crop > image.width || crop > image.height) {
    throw invalid(`crop ${crop} is larger than the canvas ${image.width}x${image.height}`);
  }
  return cropRgb(image, (image.width - crop) >> 1, (image.height - crop) >> 1, crop, crop);
}

/** The canvas mirrored by `pad` pixels on every side (edge pixel not repeated, as numpy 'reflect'). */
export function reflectPad(image: RgbImage, pad: number): RgbImage {
  if (pad <= 0) return image;
  const { width: w, height: h } = image;
  if (pad >= w || pad >= h) throw invalid(`edge padding ${pad} px needs a canvas larger than ${w}x${h}`);
  const pw = w + 2 * pad;
  const ph = h + 2 * pad;
  const out = Buffer.allocUnsafe(pw * ph * 3);
  const mirror = (i: number, n: number) => (i < 0 ? -i : i >= n ? 2 * (n - 1) - i : i);
  for (let y = 0; y < ph; y++) {
    const sy = mirror(y - pad, h);
    for (let x = 0; x < pw; x++) {
      const s = (sy * w + mirror(x - pad, w)) * 3;
      const d = (y * pw + x) * 3;
      out[d] = image.data[s];
      out[d + 1] = image.data[s + 1];
      out[d + 2] = image.data[s + 2];
    }
  }
  return { data: out, width: pw, height: ph };
}

/** Tile placements covering a canvas; the last row/column is aligned to the far edge. */
export function tileGrid(width: number, height: number, view: ViewConfig): Tile[] {
  if (view.tile <= 0) return [{ left: 0, top: 0, width, height }];
  const size = view.tile;
  if (size > width || size > height) {
    throw invalid(
      `tile ${size} px is larger than the canvas ${width}x${height}; lower the tile or raise the scale`,
    );
  }
  if (view.overlap < 0 || view.overlap >= size)
    throw invalid(`tile overlap must be in [0, ${size}), got ${view.overlap}`);
  const starts = (extent: number): number[] => {
    const step = size - view.overlap;
    const out: number[] = [];
    for (let s = 0; s + size < extent; s += step) out.push(s);
    out.push(extent - size);
    return out;
  };
  const tiles: Tile[] = [];
  for (const top of starts(height))
    for (const left of starts(width)) tiles.push({ left, top, width: size, height: size });
  return tiles;
}
