/**
 * Streak: a thin, long line of ink left by a worn or nicked doctor blade, running in the print
 * direction (mostly vertical), with slowly varying density and faded ends.
 */
import { rasterise } from './shapes';
import { paintSupport, STRAY_INKS } from './paint';
import type { DefectPainter } from './types';

export const streak: DefectPainter = ({ ink, rng, size }) => {
  const vertical = rng.chance(0.7);
  const along = vertical ? ink.height : ink.width;
  const across = vertical ? ink.width : ink.height;
  const halfW = Math.min(2, Math.max(0.5, (size / 12) * rng.range(0.6, 1.2)));
  const length = along * rng.range(0.35, 0.95);
  const start = rng.range(0, along - length);
  const pos = rng.range(across * 0.06, across * 0.94);
  const wobbleA = rng.range(0, 1.2);
  const wobbleF = (2 * Math.PI) / rng.range(60, 200);
  const wobbleP = rng.range(0, 2 * Math.PI);
  const modF = (2 * Math.PI) / rng.range(20, 80);
  const fade = Math.min(12, length / 4);
  const { name, recipe } = rng.weighted(STRAY_INKS.filter(([s]) => s.name !== 'yellow'));
  const density = rng.range(0.5, 0.9);
  const alpha = (x: number, y: number) => {
    const a = vertical ? y : x;
    const c = vertical ? x : y;
    const t = a - start;
    if (t < 0 || t > length) return 0;
    const centre = pos + wobbleA * Math.sin(wobbleF * a + wobbleP);
    const d = Math.abs(c - centre);
    let v = halfW - d + 0.5;
    if (v <= 0) return 0;
    if (v > 1) v = 1;
    const ends = Math.min(1, t / fade, (length - t) / fade);
    return v * ends * (0.8 + 0.2 * Math.sin(modF * a));
  };
  const m = halfW + wobbleA + 2;
  const rect = vertical
    ? { x0: pos - m, x1: pos + m, y0: start, y1: start + length }
    : { x0: start, x1: start + length, y0: pos - m, y1: pos + m };
  const shape = rasterise(alpha, rect, ink.width, ink.height);
  paintSupport(ink, shape.rect, shape.support, recipe, 'add', density);
  return {
    ...shape,
    info: {
      ink: name,
      direction: vertical ? 'vertical' : 'horizontal',
      width: +(2 * halfW).toFixed(1),
      length: Math.round(length),
    },
  };
};
