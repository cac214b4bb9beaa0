/**
 * Ground-truth masks from what actually changed: a pixel is defective if its composited colour moved by
 * at least `threshold` in some channel, or if it lies inside the defect's shape (opacity >= 50 %) within
 * `fill` px of such a pixel (this closes the gaps between halftone dots inside a void, say).
 */
import { composite, type CompositeParams, type InkLuts } from '../inks';
import type { InkPlanes, Rect } from '../raster';
import type { Footprint } from './types';

export interface MaskResult {
  /** 0/255, full image, row-major. */
  mask: Uint8Array;
  area: number;
  /** Bounding box of the mask (empty rect when area is 0). */
  bbox: Rect;
}

export interface MaskScratch {
  before: Uint8ClampedArray;
  after: Uint8ClampedArray;
}

export function newMaskScratch(width: number, height: number): MaskScratch {
  return {
    before: new Uint8ClampedArray(width * height * 3),
    after: new Uint8ClampedArray(width * height * 3),
  };
}

export function defectMask(
  base: InkPlanes,
  damaged: InkPlanes,
  fp: Footprint,
  params: CompositeParams,
  luts: InkLuts,
  threshold: number,
  fill = 3,
  scratch: MaskScratch = newMaskScratch(base.width, base.height),
): MaskResult {
  const { width: W, height: H } = base;
  const r = fp.rect;
  const w = r.x1 - r.x0;
  const h = r.y1 - r.y0;
  const mask = new Uint8Array(W * H);
  const bbox = { x0: W, y0: H, x1: 0, y1: 0 };
  if (w <= 0 || h <= 0) return { mask, area: 0, bbox: { x0: 0, y0: 0, x1: 0, y1: 0 } };
  composite(base, params, scratch.before, r, luts);
  composite(damaged, params, scratch.after, r, luts);
  const changed = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const o = ((y + r.y0) * W + x + r.x0) * 3;
      const d = Math.max(
        Math.abs(scratch.before[o] - scratch.after[o]),
        Math.abs(scratch.before[o + 1] - scratch.after[o + 1]),
        Math.abs(scratch.before[o + 2] - scratch.after[o + 2]),
      );
      if (d >= threshold) changed[y * w + x] = 1;
    }
  }
  // Square dilation of `changed` by `fill`, separable: rows then columns.
  const rows = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) {
    // Two passes per row: nearest changed pixel to the left and to the right.
    let prev = -1e9;
    for (let x = 0; x < w; x++) {
      if (changed[y * w + x]) prev = x;
      if (x - prev <= fill) rows[y * w + x] = 1;
    }
    let next = 1e9;
    for (let x = w - 1; x >= 0; x--) {
      if (changed[y * w + x]) next = x;
      if (next - x <= fill) rows[y * w + x] = 1;
    }
  }
  let area = 0;
  for (let x = 0; x < w; x++) {
    let prev = -1e9;
    const near = new Uint8Array(h);
    for (let y = 0; y < h; y++) {
      if (rows[y * w + x]) prev = y;
      if (y - prev <= fill) near[y] = 1;
    }
    let next = 1e9;
    for (let y = h - 1; y >= 0; y--) {
      if (rows[y * w + x]) next = y;
      if (next - y <= fill) near[y] = 1;
      const j = y * w + x;
      if (changed[j] || (near[y] && fp.support[j] >= 128)) {
        const gx = x + r.x0;
        const gy = y + r.y0;
        mask[gy * W + gx] = 255;
        area++;
        if (gx < bbox.x0) bbox.x0 = gx;
        if (gy < bbox.y0) bbox.y0 = gy;
        if (gx + 1 > bbox.x1) bbox.x1 = gx + 1;
        if (gy + 1 > bbox.y1) bbox.y1 = gy + 1;
      }
    }
  }
  return { mask, area, bbox: area ? bbox : { x0: 0, y0: 0, x1: 0, y1: 0 } };
}
