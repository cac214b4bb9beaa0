/** Shape helpers for defects: irregular blobs, capsules, feathered rectangles, rasterised supports. */
import type { Rng } from '../prng';
import { clampRect, type Rect } from '../raster';

export type Alpha = (x: number, y: number) => number;

/** An irregular blob of mean radius r: the radius wobbles with a few random harmonics. */
export function blob(
  rng: Rng,
  cx: number,
  cy: number,
  r: number,
  roughness = 0.15,
): { alpha: Alpha; rect: Rect } {
  const harmonics = Array.from({ length: 3 }, (_, i) => ({
    k: i + 2,
    a: rng.range(0.3, 1) * roughness,
    phase: rng.range(0, 2 * Math.PI),
  }));
  const stretch = rng.range(0.75, 1.25);
  const rot = rng.range(0, Math.PI);
  const cs = Math.cos(rot);
  const sn = Math.sin(rot);
  const maxR = r * (1 + roughness * 3) * Math.max(stretch, 1 / stretch) + 2;
  const alpha: Alpha = (x, y) => {
    const dx = x - cx;
    const dy = y - cy;
    const u = (dx * cs + dy * sn) / stretch;
    const v = (-dx * sn + dy * cs) * stretch;
    const d = Math.hypot(u, v);
    const th = Math.atan2(v, u);
    let rr = r;
    for (const h of harmonics) rr += r * h.a * Math.sin(h.k * th + h.phase);
    const a = rr - d + 0.5;
    return a <= 0 ? 0 : a >= 1 ? 1 : a;
  };
  return { alpha, rect: { x0: cx - maxR, y0: cy - maxR, x1: cx + maxR, y1: cy + maxR } };
}

/** A capsule (thick segment) from (x0, y0) to (x1, y1); `t` is the position along it, 0..1. */
export function capsule(
  x0: number,
  y0: number,
  x1: number,
  y1: number,
  halfWidth: number,
): { alpha: (x: number, y: number) => { a: number; t: number }; rect: Rect } {
  const dx = x1 - x0;
  const dy = y1 - y0;
  const len2 = dx * dx + dy * dy || 1;
  const alpha = (x: number, y: number) => {
    let t = ((x - x0) * dx + (y - y0) * dy) / len2;
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    const d = Math.hypot(x - (x0 + t * dx), y - (y0 + t * dy));
    const a = halfWidth - d + 0.5;
    return { a: a <= 0 ? 0 : a >= 1 ? 1 : a, t };
  };
  const m = halfWidth + 2;
  return {
    alpha,
    rect: {
      x0: Math.min(x0, x1) - m,
      y0: Math.min(y0, y1) - m,
      x1: Math.max(x0, x1) + m,
      y1: Math.max(y0, y1) + m,
    },
  };
}

/** A rectangle whose opacity ramps from 0 to 1 over `feather` px inside its edges. */
export function featheredRect(r: Rect, feather: number): Alpha {
  return (x, y) => {
    const d = Math.min(x - r.x0, r.x1 - x, y - r.y0, r.y1 - y);
    if (d <= 0) return 0;
    return feather <= 0 || d >= feather ? 1 : d / feather;
  };
}

/** Rasterises `alpha` over `rect` (clipped to the image) into 0..255 at pixel centres. */
export function rasterise(
  alpha: Alpha,
  rect: Rect,
  width: number,
  height: number,
): { rect: Rect; support: Uint8Array } {
  const r = clampRect(rect, width, height);
  const w = r.x1 - r.x0;
  const support = new Uint8Array(Math.max(0, w * (r.y1 - r.y0)));
  for (let y = r.y0; y < r.y1; y++) {
    for (let x = r.x0; x < r.x1; x++) {
      const a = alpha(x + 0.5, y + 0.5);
      if (a > 0) support[(y - r.y0) * w + (x - r.x0)] = Math.round(Math.min(1, a) * 255);
    }
  }
  return { rect: r, support };
}

/** Union of two supports over the union of their rectangles (opacity = max). */
export function unionSupport(
  a: { rect: Rect; support: Uint8Array },
  b: { rect: Rect; support: Uint8Array },
): { rect: Rect; support: Uint8Array } {
  const rect = {
    x0: Math.min(a.rect.x0, b.rect.x0),
    y0: Math.min(a.rect.y0, b.rect.y0),
    x1: Math.max(a.rect.x1, b.rect.x1),
    y1: Math.max(a.rect.y1, b.rect.y1),
  };
  const w = rect.x1 - rect.x0;
  const support = new Uint8Array(w * (rect.y1 - rect.y0));
  for (const s of [a, b]) {
    const sw = s.rect.x1 - s.rect.x0;
    for (let y = s.rect.y0; y < s.rect.y1; y++) {
      for (let x = s.rect.x0; x < s.rect.x1; x++) {
        const v = s.support[(y - s.rect.y0) * sw + (x - s.rect.x0)];
        const i = (y - rect.y0) * w + (x - rect.x0);
        if (v > support[i]) support[i] = v;
      }
    }
  }
  return { rect, support };
}
