/** Ink spot: an irregular drop of dark or coloured ink, sometimes with tiny satellite droplets. */
import { blob, rasterise, unionSupport } from './shapes';
import { paintSupport, STRAY_INKS } from './paint';
import type { DefectPainter } from './types';

export const inkSpot: DefectPainter = ({ ink, rng, size }) => {
  const r = size / 2;
  const m = r + 4;
  const cx = rng.range(m, ink.width - m);
  const cy = rng.range(m, ink.height - m);
  const { name, recipe } = rng.weighted(STRAY_INKS);
  const main = blob(rng, cx, cy, r, 0.12);
  let shape = rasterise(main.alpha, main.rect, ink.width, ink.height);
  const satellites = size >= 10 && rng.chance(0.5) ? rng.int(1, 3) : 0;
  for (let i = 0; i < satellites; i++) {
    const a = rng.range(0, 2 * Math.PI);
    const d = r * rng.range(1.25, 1.7);
    const sat = blob(
      rng,
      cx + d * Math.cos(a),
      cy + d * Math.sin(a),
      rng.range(0.8, Math.max(1, r * 0.18)),
      0.1,
    );
    shape = unionSupport(shape, rasterise(sat.alpha, sat.rect, ink.width, ink.height));
  }
  const strength = rng.range(0.8, 1);
  paintSupport(ink, shape.rect, shape.support, recipe, 'add', strength);
  return { ...shape, info: { ink: name, diameter: Math.round(size), satellites } };
};
