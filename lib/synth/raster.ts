/**
 * Ink planes and the drawing primitives that fill them. A print is modelled as four coverage planes
 * (C, M, Y, K; 0 = paper, 255 = solid ink) that are composited to RGB only at the end (see inks.ts),
 * so defects such as misregistration can act on a single colour separation.
 */

export interface Plane {
  readonly width: number;
  readonly height: number;
  /** Coverage 0..255, row-major. */
  readonly data: Uint8Array;
}

/** Plane indices of the process inks. */
export const C = 0;
export const M = 1;
export const Y = 2;
export const K = 3;
export type InkIndex = typeof C | typeof M | typeof Y | typeof K;
export const INK_NAMES = ['cyan', 'magenta', 'yellow', 'black'] as const;

export interface InkPlanes {
  readonly width: number;
  readonly height: number;
  /** [C, M, Y, K]. */
  readonly planes: readonly [Plane, Plane, Plane, Plane];
}

/** Half-open integer rectangle [x0, x1) x [y0, y1). */
export interface Rect {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

/**
 * How a coverage value combines with the ink already there:
 * max = overprint of the same ink, set = knockout/replace, add = extra ink on top (p + (255 - p) * v).
 */
export type PaintMode = 'max' | 'set' | 'add';

export function newPlane(width: number, height: number): Plane {
  return { width, height, data: new Uint8Array(width * height) };
}

export function newInkPlanes(width: number, height: number): InkPlanes {
  return {
    width,
    height,
    planes: [
      newPlane(width, height),
      newPlane(width, height),
      newPlane(width, height),
      newPlane(width, height),
    ],
  };
}

export function cloneInkPlanes(src: InkPlanes): InkPlanes {
  const copy = (p: Plane): Plane => ({ width: p.width, height: p.height, data: p.data.slice() });
  return {
    width: src.width,
    height: src.height,
    planes: [copy(src.planes[0]), copy(src.planes[1]), copy(src.planes[2]), copy(src.planes[3])],
  };
}

export function clampRect(r: Rect, width: number, height: number): Rect {
  return {
    x0: Math.max(0, Math.min(width, Math.floor(r.x0))),
    y0: Math.max(0, Math.min(height, Math.floor(r.y0))),
    x1: Math.max(0, Math.min(width, Math.ceil(r.x1))),
    y1: Math.max(0, Math.min(height, Math.ceil(r.y1))),
  };
}

/** Combines one pixel's coverage `p` with `v` at opacity `a` (0..1). */
export function combine(p: number, v: number, a: number, mode: PaintMode): number {
  switch (mode) {
    case 'max':
      return Math.max(p, v * a);
    case 'set':
      return p + (v - p) * a;
    case 'add':
      return p + (255 - p) * (v / 255) * a;
  }
}

/** Fills the rectangle [x0, x1) x [y0, y1) (clipped) with coverage `value`. */
export function paintCoverage(
  plane: Plane,
  x0: number,
  y0: number,
  x1: number,
  y1: number,
  value: number,
  mode: PaintMode = 'max',
): void {
  const r = clampRect({ x0, y0, x1, y1 }, plane.width, plane.height);
  const { data, width } = plane;
  for (let y = r.y0; y < r.y1; y++) {
    const row = y * width;
    if (mode === 'set') {
      data.fill(value, row + r.x0, row + r.x1);
      continue;
    }
    for (let i = row + r.x0; i < row + r.x1; i++) data[i] = combine(data[i], value, 1, mode);
  }
}

/**
 * Paints an anti-aliased shape given by `alpha(x, y)` in 0..1 (evaluated at pixel centres) over the
 * bounding box `box`. Meant for artwork and defect shapes, not per-sample hot loops.
 */
export function paintShape(
  plane: Plane,
  box: Rect,
  alpha: (x: number, y: number) => number,
  value: number,
  mode: PaintMode = 'max',
): void {
  const r = clampRect(box, plane.width, plane.height);
  const { data, width } = plane;
  for (let y = r.y0; y < r.y1; y++) {
    for (let x = r.x0; x < r.x1; x++) {
      const a = alpha(x + 0.5, y + 0.5);
      if (a <= 0) continue;
      const i = y * width + x;
      data[i] = combine(data[i], value, a > 1 ? 1 : a, mode);
    }
  }
}

/** Anti-aliased coverage of a disc of radius r at distance d from its centre. */
export function discAlpha(d: number, r: number): number {
  const a = r - d + 0.5;
  return a <= 0 ? 0 : a >= 1 ? 1 : a;
}

/** Alpha of a filled disc. */
export function disc(cx: number, cy: number, r: number): (x: number, y: number) => number {
  return (x, y) => discAlpha(Math.hypot(x - cx, y - cy), r);
}

/** Alpha of a ring between radii r0 < r1. */
export function ring(cx: number, cy: number, r0: number, r1: number): (x: number, y: number) => number {
  return (x, y) => {
    const d = Math.hypot(x - cx, y - cy);
    return Math.min(discAlpha(d, r1), 1 - discAlpha(d, r0));
  };
}

/** Alpha of a convex polygon (vertices counter-clockwise or clockwise), 1 px anti-aliased edge. */
export function convexPolygon(
  points: ReadonlyArray<readonly [number, number]>,
): (x: number, y: number) => number {
  const n = points.length;
  let area = 0;
  for (let i = 0; i < n; i++) {
    const [ax, ay] = points[i];
    const [bx, by] = points[(i + 1) % n];
    area += ax * by - bx * ay;
  }
  const orient = area >= 0 ? 1 : -1;
  const edges = points.map(([ax, ay], i) => {
    const [bx, by] = points[(i + 1) % n];
    const len = Math.hypot(bx - ax, by - ay) || 1;
    // Inward normal.
    return { ax, ay, nx: (-(by - ay) / len) * orient, ny: ((bx - ax) / len) * orient };
  });
  return (x, y) => {
    let a = 1;
    for (const e of edges) {
      const d = (x - e.ax) * e.nx + (y - e.ay) * e.ny + 0.5;
      if (d <= 0) return 0;
      if (d < a) a = d;
    }
    return a;
  };
}

/**
 * Screens a continuous tone (0..1, from `tone(x, y)`) into round halftone dots on a grid rotated by
 * `angleDeg` with `period` pixels per cell, anti-aliased at the dot edges.
 */
export function halftone(
  plane: Plane,
  box: Rect,
  tone: (x: number, y: number) => number,
  angleDeg: number,
  period: number,
): void {
  const r = clampRect(box, plane.width, plane.height);
  const { data, width } = plane;
  const th = (angleDeg * Math.PI) / 180;
  const cs = Math.cos(th) / period;
  const sn = Math.sin(th) / period;
  const twoPi = 2 * Math.PI;
  // Threshold gradient is about pi / period per pixel; soften edges over ~1 px.
  const sharp = period / 2.2;
  for (let y = r.y0; y < r.y1; y++) {
    const yc = y + 0.5;
    for (let x = r.x0; x < r.x1; x++) {
      const t = tone(x + 0.5, yc);
      if (t <= 0) continue;
      const xc = x + 0.5;
      const u = xc * cs + yc * sn;
      const v = -xc * sn + yc * cs;
      const thr = 0.5 - (Math.cos(twoPi * u) + Math.cos(twoPi * v)) / 4;
      let a = (t - thr) * sharp + 0.5;
      if (a <= 0) continue;
      if (a > 1) a = 1;
      const i = y * width + x;
      const val = a * 255;
      if (val > data[i]) data[i] = val;
    }
  }
}
