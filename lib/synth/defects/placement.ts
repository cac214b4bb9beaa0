/** Where to put a defect: points on ink, so that voids, smears and misregistration have something to act on. */
import type { Rng } from '../prng';
import type { InkPlanes } from '../raster';

/**
 * A random point at least `margin` px inside the sheet whose neighbourhood (radius `r`) carries on
 * average at least `minCoverage` (0..255) of the given planes' summed ink. Falls back to the best of
 * the tries.
 */
export function pickInkedPoint(
  ink: InkPlanes,
  rng: Rng,
  opts: { margin: number; r: number; minCoverage: number; planes?: readonly number[]; tries?: number },
): [number, number] {
  const { width, height } = ink;
  const planes = (opts.planes ?? [0, 1, 2, 3]).map((p) => ink.planes[p].data);
  const m = Math.min(opts.margin, Math.floor(Math.min(width, height) / 2) - 1);
  const r = Math.max(1, Math.round(opts.r));
  const step = Math.max(1, Math.floor(r / 3));
  let best: [number, number] = [width / 2, height / 2];
  let bestCov = -1;
  for (let t = 0; t < (opts.tries ?? 40); t++) {
    const x = Math.round(rng.range(m, width - m));
    const y = Math.round(rng.range(m, height - m));
    let sum = 0;
    let n = 0;
    for (let yy = Math.max(0, y - r); yy < Math.min(height, y + r + 1); yy += step) {
      for (let xx = Math.max(0, x - r); xx < Math.min(width, x + r + 1); xx += step) {
        const i = yy * width + xx;
        for (const p of planes) sum += p[i];
        n++;
      }
    }
    const cov = n ? sum / n : 0;
    if (cov >= opts.minCoverage) return [x, y];
    if (cov > bestCov) {
      bestCov = cov;
      best = [x, y];
    }
  }
  return best;
}
