/**
 * Smear: wet ink dragged along a direction: ink from the start of a stroke is carried forward with
 * decaying density (a directional blur that only adds ink), plus a faint dirty tint.
 */
import { pickInkedPoint } from './placement';
import { capsule, rasterise } from './shapes';
import type { DefectPainter } from './types';

export const smear: DefectPainter = ({ ink, base, rng, size }) => {
  const length = size * rng.range(1.3, 2);
  const halfW = Math.max(2, size * rng.range(0.15, 0.3));
  const [sx, sy] = pickInkedPoint(base, rng, { margin: length + halfW + 2, r: halfW, minCoverage: 120 });
  const th = rng.range(0, 2 * Math.PI);
  const dx = Math.cos(th);
  const dy = Math.sin(th);
  const ex = sx + dx * length;
  const ey = sy + dy * length;
  const cap = capsule(sx, sy, ex, ey, halfW);
  // Opacity tapers from the start of the stroke to its end.
  const taper = (x: number, y: number) => {
    const { a, t } = cap.alpha(x, y);
    return a * (1 - 0.55 * t);
  };
  const shape = rasterise(taper, cap.rect, ink.width, ink.height);
  const { rect, support } = shape;
  const w = rect.x1 - rect.x0;
  const steps = Math.max(3, Math.round(length * 0.6));
  const decay = Math.pow(0.05, 1 / steps);
  const tint = rng.range(0.2, 0.4);
  const tintPlane = rng.weighted<number>([
    [3, 3],
    [0, 1],
    [1, 1],
  ]);
  const W = ink.width;
  const H = ink.height;
  for (let p = 0; p < 4; p++) {
    const src = base.planes[p].data;
    const dst = ink.planes[p].data;
    for (let y = rect.y0; y < rect.y1; y++) {
      for (let x = rect.x0; x < rect.x1; x++) {
        const s = support[(y - rect.y0) * w + (x - rect.x0)];
        if (s === 0) continue;
        let acc = 0;
        let wsum = 0;
        let wk = 1;
        for (let k = 0; k <= steps; k++) {
          const qx = Math.round(x - dx * k);
          const qy = Math.round(y - dy * k);
          if (qx < 0 || qy < 0 || qx >= W || qy >= H) break;
          acc += src[qy * W + qx] * wk;
          wsum += wk;
          wk *= decay;
        }
        const i = y * W + x;
        const o = dst[i];
        let smeared = wsum ? Math.max(o, (acc / wsum) * 1.1) : o;
        if (p === tintPlane) smeared += (255 - smeared) * tint;
        const a = s / 255;
        dst[i] = Math.min(255, o + (smeared - o) * a);
      }
    }
  }
  return {
    ...shape,
    info: {
      length: Math.round(length),
      width: Math.round(2 * halfW),
      angle: Math.round((th * 180) / Math.PI),
    },
  };
};
