/**
 * Misregistration: one colour separation printed out of register by a few pixels over a region
 * (plate slip / web wander), so that colour fringes appear at the edges of that ink.
 */
import { INK_NAMES, type Plane } from '../raster';
import { pickInkedPoint } from './placement';
import { featheredRect, rasterise } from './shapes';
import type { DefectPainter } from './types';

/** Mean over a 7x7 box of plane coverage at (x, y), edges clamped. */
function boxMean(plane: Plane, x: number, y: number): number {
  const { width: W, height: H, data } = plane;
  let sum = 0;
  for (let yy = y - 3; yy <= y + 3; yy++) {
    const row = Math.min(H - 1, Math.max(0, yy)) * W;
    for (let xx = x - 3; xx <= x + 3; xx++) sum += data[row + Math.min(W - 1, Math.max(0, xx))];
  }
  return sum / 49;
}

/** Mean absolute change of the 7x7-blurred plane over a w x h region centred at (cx, cy) under a shift. */
function lowPassChange(
  plane: Plane,
  cx: number,
  cy: number,
  w: number,
  h: number,
  sx: number,
  sy: number,
): number {
  let sum = 0;
  let n = 0;
  for (let y = Math.round(cy - h / 2); y < cy + h / 2; y += 2) {
    for (let x = Math.round(cx - w / 2); x < cx + w / 2; x += 2) {
      sum += Math.abs(boxMean(plane, x, y) - boxMean(plane, x - sx, y - sy));
      n++;
    }
  }
  return n ? sum / n : 0;
}

export const misregistration: DefectPainter = ({ ink, base, rng, size, opts }) => {
  const plane = rng.weighted<number>([
    [0, 1],
    [1, 1],
    [2, 0.5],
    [3, 1.2],
  ]);
  const side = Math.max(16, size * rng.range(1, 1.6));
  const rw = side * rng.range(0.8, 1.25);
  const rh = side * rng.range(0.8, 1.25);
  const mag = rng.range(opts.misregShift[0], opts.misregShift[1]);
  const th = rng.range(0, 2 * Math.PI);
  let sx = Math.round(mag * Math.cos(th));
  const sy = Math.round(mag * Math.sin(th));
  if (sx === 0 && sy === 0) sx = 1;
  // Of a few inked candidates, keep the one whose shift changes the local mean ink most: edges of
  // solids, text and line art, rather than halftone screens whose shifted dots look much the same.
  let best: [number, number] = [ink.width / 2, ink.height / 2];
  let bestScore = -1;
  for (let c = 0; c < 6; c++) {
    const p = pickInkedPoint(base, rng, {
      margin: Math.max(rw, rh) / 2 + 2,
      r: side / 3,
      minCoverage: 60,
      planes: [plane],
    });
    const score = lowPassChange(base.planes[plane], p[0], p[1], rw, rh, sx, sy);
    if (score > bestScore) {
      bestScore = score;
      best = p;
    }
  }
  const [cx, cy] = best;
  const rect = { x0: cx - rw / 2, y0: cy - rh / 2, x1: cx + rw / 2, y1: cy + rh / 2 };
  const shape = rasterise(featheredRect(rect, 2), rect, ink.width, ink.height);
  const r = shape.rect;
  const w = r.x1 - r.x0;
  const src = base.planes[plane].data;
  const dst = ink.planes[plane].data;
  const W = ink.width;
  const H = ink.height;
  for (let y = r.y0; y < r.y1; y++) {
    const qy = Math.min(H - 1, Math.max(0, y - sy));
    for (let x = r.x0; x < r.x1; x++) {
      const s = shape.support[(y - r.y0) * w + (x - r.x0)];
      if (s === 0) continue;
      const qx = Math.min(W - 1, Math.max(0, x - sx));
      const i = y * W + x;
      dst[i] = dst[i] + (src[qy * W + qx] - dst[i]) * (s / 255);
    }
  }
  return { ...shape, info: { ink: INK_NAMES[plane], dx: sx, dy: sy } };
};
