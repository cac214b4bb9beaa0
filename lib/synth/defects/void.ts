/** Void: ink missing over an irregular patch (paper shows through), placed on printed areas. */
import { pickInkedPoint } from './placement';
import { blob, rasterise } from './shapes';
import { eraseSupport } from './paint';
import type { DefectPainter } from './types';

export const voidDefect: DefectPainter = ({ ink, base, rng, size }) => {
  const r = size / 2;
  const [cx, cy] = pickInkedPoint(base, rng, { margin: r + 4, r, minCoverage: 150 });
  const shape = blob(rng, cx + rng.range(-0.5, 0.5), cy + rng.range(-0.5, 0.5), r, 0.14);
  const s = rasterise(shape.alpha, shape.rect, ink.width, ink.height);
  const strength = rng.range(0.85, 1);
  eraseSupport(ink, s.rect, s.support, strength);
  return { ...s, info: { diameter: Math.round(size), strength: +strength.toFixed(2) } };
};
