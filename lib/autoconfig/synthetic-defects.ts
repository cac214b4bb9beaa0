/**
 * Synthetic defects on real RGB images, for scoring candidate configurations on held-out good images
 * (issue #15). The five print defects reuse the synth painters through a naive subtractive ink model;
 * the others are CutPaste-style patches and scars (Li et al. 2021) and local blur, contrast and colour
 * changes. The mask is what visibly changed inside the painted shape.
 */
import type { RgbImage } from '../image/decode';
import { DEFAULT_DEFECT_OPTIONS, type DefectOptions, type DefectType, PAINTERS } from '../synth/defects';
import { blob, rasterise } from '../synth/defects/shapes';
import type { Rng } from '../synth/prng';
import { cloneInkPlanes, convexPolygon, type InkPlanes, newInkPlanes, type Rect } from '../synth/raster';

export const SYNTHETIC_DEFECT_KINDS = [
  'ink_spot',
  'streak',
  'void',
  'smear',
  'misregistration',
  'cutpaste',
  'scar',
  'blur',
  'contrast',
  'colour',
] as const;
export type SyntheticDefectKind = (typeof SYNTHETIC_DEFECT_KINDS)[number];

export interface SyntheticDefect {
  /** The damaged copy. */
  image: RgbImage;
  /** 0/255, width * height, row-major. */
  mask: Uint8Array;
  kind: SyntheticDefectKind;
  /** Characteristic size drawn (blob diameter, patch side, scar length...), px. */
  size: number;
  /** Mask pixels. */
  area: number;
  /** Bounding box of the mask, half-open [x0, x1) x [y0, y1). */
  bbox: Rect;
}

export interface SyntheticDefectOptions {
  minSize: number;
  maxSize: number;
  /** Another good image to take cutpaste and scar patches from; the image itself when absent. */
  donor?: RgbImage;
}

/** Max channel difference (0..255) above which a pixel counts as changed. */
export const MASK_THRESHOLD = 16;
const MAX_ATTEMPTS = 12;

/**
 * Largest defect, as a fraction of the frame's area. A tenth of the frame read as a tenth of its
 * side (1 % of the area) made nearly every defect a fine one, and the selector then preferred
 * resolution even where a job's real defects are large (docs/accuracy-experiments.md, "How well the
 * synthetic set ranks"); CutPaste's own pastes cover 2-15 % of the image.
 */
export const MAX_DEFECT_AREA_FRACTION = 0.1;

/**
 * Sizes relative to the image, drawn log-uniformly between them: from a few pixels at full
 * resolution up to a square of `maxAreaFraction` of the frame, so that fine and coarse defects
 * both weigh in.
 */
export function defectSizeRange(
  width: number,
  height: number,
  maxAreaFraction = MAX_DEFECT_AREA_FRACTION,
): { minSize: number; maxSize: number } {
  if (!(maxAreaFraction > 0 && maxAreaFraction <= 1)) {
    throw new Error(`the largest defect must be a fraction of the frame in (0, 1], got ${maxAreaFraction}`);
  }
  const side = Math.min(width, height);
  const minSize = Math.max(3, Math.round(side / 200));
  const maxSize = Math.round(Math.sqrt(maxAreaFraction * width * height));
  return { minSize, maxSize: Math.max(minSize + 1, Math.min(side - 2, maxSize)) };
}

/** Where a painter acted: opacity 0..255 over `rect` (image coordinates), row-major. */
interface Region {
  rect: Rect;
  support: Uint8Array;
}

interface PaintContext {
  image: RgbImage;
  /** A copy of the image's bytes to paint into. */
  out: Buffer;
  rng: Rng;
  size: number;
  donor: RgbImage;
}

type Painter = (ctx: PaintContext) => Region;

/**
 * Damages a copy of `image` with one defect of `kind` (the image is left untouched). A placement that
 * changes too few pixels (a blur on a flat area, say) is retried elsewhere; the largest is kept.
 */
export function injectSyntheticDefect(
  image: RgbImage,
  kind: SyntheticDefectKind,
  rng: Rng,
  options: SyntheticDefectOptions,
): SyntheticDefect {
  checkImage(image, 'image');
  if (options.donor) checkImage(options.donor, 'donor');
  const { minSize, maxSize } = options;
  if (!(minSize >= 2 && maxSize >= minSize)) {
    throw new Error(`defect sizes need 2 <= minSize <= maxSize, got ${minSize}..${maxSize}`);
  }
  if (!Object.hasOwn(KIND_PAINTERS, kind)) throw new Error(`unknown synthetic defect kind "${kind}"`);
  const size = minSize === maxSize ? minSize : rng.logRange(minSize, maxSize);
  const donor = options.donor ?? image;
  let best: SyntheticDefect | undefined;
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    const out = Buffer.from(image.data);
    const region = KIND_PAINTERS[kind]({ image, out, rng: rng.fork(attempt), size, donor });
    const changed = changeMask(image, out, region);
    if (!best || changed.area > best.area) {
      best = { image: { data: out, width: image.width, height: image.height }, kind, size, ...changed };
    }
    if (changed.area >= visibleArea(kind, size)) break;
  }
  if (!best || best.area === 0) {
    throw new Error(
      `could not place a visible ${kind} defect of ${size.toFixed(1)} px on the ${image.width}x${image.height} ` +
        `image in ${MAX_ATTEMPTS} attempts (is it flat or uniform?)`,
    );
  }
  return best;
}

function checkImage(image: RgbImage, what: string): void {
  const { width, height, data } = image;
  if (!(Number.isInteger(width) && Number.isInteger(height) && width >= 8 && height >= 8)) {
    throw new Error(`${what} must be at least 8x8 px, got ${width}x${height}`);
  }
  if (data.length !== width * height * 3) {
    throw new Error(
      `${what} has ${data.length} bytes, expected ${width}x${height}x3 = ${width * height * 3}`,
    );
  }
}

/** Mask pixels that make a placement good enough: thin defects cover about their length. */
function visibleArea(kind: SyntheticDefectKind, size: number): number {
  if (kind === 'streak' || kind === 'scar') return Math.max(4, size / 2);
  return Math.min(100, Math.max(4, 0.15 * size * size));
}

/**
 * The defect's mask: pixels of the region whose colour moved by more than MASK_THRESHOLD, plus the
 * region's own pixels (opacity >= 50 %) between two of them, which closes 1-px holes and gaps (between
 * halftone dots inside a void, say) without growing the mask. Painters change nothing outside their
 * region.
 */
function changeMask(
  image: RgbImage,
  out: Buffer,
  region: Region,
): Pick<SyntheticDefect, 'mask' | 'area' | 'bbox'> {
  const { width: W, height: H, data } = image;
  const { rect, support } = region;
  const w = Math.max(0, rect.x1 - rect.x0);
  const h = Math.max(0, rect.y1 - rect.y0);
  const changed = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const o = ((y + rect.y0) * W + x + rect.x0) * 3;
      const d = Math.max(
        Math.abs(data[o] - out[o]),
        Math.abs(data[o + 1] - out[o + 1]),
        Math.abs(data[o + 2] - out[o + 2]),
      );
      if (d > MASK_THRESHOLD) changed[y * w + x] = 1;
    }
  }
  const mask = new Uint8Array(W * H);
  const bbox = { x0: W, y0: H, x1: 0, y1: 0 };
  let area = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const j = y * w + x;
      if (!changed[j] && !(support[j] >= 128 && between(changed, w, h, x, y))) continue;
      const gx = x + rect.x0;
      const gy = y + rect.y0;
      mask[gy * W + gx] = 255;
      area++;
      bbox.x0 = Math.min(bbox.x0, gx);
      bbox.y0 = Math.min(bbox.y0, gy);
      bbox.x1 = Math.max(bbox.x1, gx + 1);
      bbox.y1 = Math.max(bbox.y1, gy + 1);
    }
  }
  return { mask, area, bbox: area ? bbox : { x0: 0, y0: 0, x1: 0, y1: 0 } };
}

/** Whether (x, y) lies between two set pixels: its left and right, upper and lower or diagonal neighbours. */
function between(bits: Uint8Array, w: number, h: number, x: number, y: number): boolean {
  if (x === 0 || y === 0 || x === w - 1 || y === h - 1) return false;
  const i = y * w + x;
  const pairs =
    (bits[i - 1] & bits[i + 1]) |
    (bits[i - w] & bits[i + w]) |
    (bits[i - w - 1] & bits[i + w + 1]) |
    (bits[i - w + 1] & bits[i + w - 1]);
  return pairs !== 0;
}

// ---- Print defects: the synth painters on naive ink planes of a window around the defect. ----

/**
 * Side of the window a print painter runs in. It places its defect anywhere inside and a streak runs
 * along most of it, so the window bounds the defect's extent (and the work) by its size.
 */
function printWindow(kind: DefectType, size: number): number {
  return Math.ceil(kind === 'streak' ? 2 * size + 8 : 5 * size + 16);
}

/** The painters' options at this size: misregistration shifts grow with the region they move. */
function printOptions(size: number): DefectOptions {
  const shift = Math.max(1, Math.round(size / 10));
  return {
    ...DEFAULT_DEFECT_OPTIONS,
    minSize: size,
    maxSize: size,
    misregShift: [shift, Math.max(shift + 1, Math.round(size / 5))],
  };
}

function printPainter(kind: DefectType): Painter {
  return ({ image, out, rng, size }) => {
    const win = randomWindow(image, rng, printWindow(kind, size));
    const base = rgbToInk(image, win);
    const ink = cloneInkPlanes(base);
    const fp = PAINTERS[kind]({ ink, base, rng, size, opts: printOptions(size) });
    inkToRgb(ink, fp.rect, win, out, image.width);
    const rect = {
      x0: fp.rect.x0 + win.x0,
      y0: fp.rect.y0 + win.y0,
      x1: fp.rect.x1 + win.x0,
      y1: fp.rect.y1 + win.y0,
    };
    return { rect, support: fp.support };
  };
}

/** A `side` x `side` window (clipped to the image) at a random place. */
function randomWindow(image: RgbImage, rng: Rng, side: number): Rect {
  const w = Math.min(image.width, side);
  const h = Math.min(image.height, side);
  const x0 = rng.int(0, image.width - w);
  const y0 = rng.int(0, image.height - h);
  return { x0, y0, x1: x0 + w, y1: y0 + h };
}

/** Subtractive planes of the window: C = 255 - R, M = 255 - G, Y = 255 - B and no black. */
function rgbToInk(image: RgbImage, win: Rect): InkPlanes {
  const w = win.x1 - win.x0;
  const h = win.y1 - win.y0;
  const ink = newInkPlanes(w, h);
  const [c, m, y] = ink.planes.map((p) => p.data);
  for (let row = 0; row < h; row++) {
    let o = ((win.y0 + row) * image.width + win.x0) * 3;
    for (let i = row * w, end = i + w; i < end; i++, o += 3) {
      c[i] = 255 - image.data[o];
      m[i] = 255 - image.data[o + 1];
      y[i] = 255 - image.data[o + 2];
    }
  }
  return ink;
}

/** Back to RGB over `rect` (window coordinates): each channel loses its ink plus black, so untouched pixels round-trip. */
function inkToRgb(ink: InkPlanes, rect: Rect, win: Rect, out: Buffer, outWidth: number): void {
  const [c, m, y, k] = ink.planes.map((p) => p.data);
  for (let row = rect.y0; row < rect.y1; row++) {
    for (let x = rect.x0; x < rect.x1; x++) {
      const i = row * ink.width + x;
      const o = ((row + win.y0) * outWidth + x + win.x0) * 3;
      out[o] = 255 - Math.min(255, c[i] + k[i]);
      out[o + 1] = 255 - Math.min(255, m[i] + k[i]);
      out[o + 2] = 255 - Math.min(255, y[i] + k[i]);
    }
  }
}

// ---- Image defects: patches from elsewhere and local changes of sharpness, contrast and colour. ----

/** Pastes a rectangle from the donor (or from another place of the image), as CutPaste does. */
const cutpaste: Painter = ({ image, out, rng, size, donor }) => {
  const aspect = rng.logRange(0.3, 3.3);
  const w = clampInt(size * Math.sqrt(aspect), 2, Math.min(image.width, donor.width) - 1);
  const h = clampInt(size / Math.sqrt(aspect), 2, Math.min(image.height, donor.height) - 1);
  const x0 = rng.int(0, image.width - w);
  const y0 = rng.int(0, image.height - h);
  const region = { rect: { x0, y0, x1: x0 + w, y1: y0 + h }, support: new Uint8Array(w * h).fill(255) };
  pasteFrom(image, out, region, donor, rng);
  return region;
};

/** A thin, long rotated rectangle pasted from elsewhere (CutPaste-scar). */
const scar: Painter = ({ image, out, rng, size, donor }) => {
  const halfW = rng.range(2, Math.max(3, size / 6)) / 2;
  const th = rng.range(0, Math.PI);
  const [ux, uy] = [(Math.cos(th) * size) / 2, (Math.sin(th) * size) / 2];
  const [vx, vy] = [-Math.sin(th) * halfW, Math.cos(th) * halfW];
  const [cx, cy] = randomPoint(rng, image, Math.abs(ux) + halfW + 1, Math.abs(uy) + halfW + 1);
  const corners: [number, number][] = [
    [cx - ux - vx, cy - uy - vy],
    [cx + ux - vx, cy + uy - vy],
    [cx + ux + vx, cy + uy + vy],
    [cx - ux + vx, cy - uy + vy],
  ];
  const xs = corners.map(([x]) => x);
  const ys = corners.map(([, y]) => y);
  const box = {
    x0: Math.min(...xs) - 1,
    y0: Math.min(...ys) - 1,
    x1: Math.max(...xs) + 1,
    y1: Math.max(...ys) + 1,
  };
  const region = rasterise(convexPolygon(corners), box, image.width, image.height);
  pasteFrom(image, out, region, donor, rng);
  return region;
};

/** A blob box-blurred with a radius that grows with it. */
const blur: Painter = ({ image, out, rng, size }) => {
  const region = blobRegion(image, rng, size, true);
  const radius = Math.max(2, Math.round(size / 8));
  const mean = boxMean(image, region.rect, radius);
  const w = region.rect.x1 - region.rect.x0;
  blendThrough(
    image,
    out,
    region,
    (_v, c, x, y) => mean[((y - region.rect.y0) * w + x - region.rect.x0) * 3 + c],
  );
  return region;
};

/** A blob whose contrast around its mean colour is scaled down (0.3..0.6) or up (1.6..2.5). */
const contrast: Painter = ({ image, out, rng, size }) => {
  const region = blobRegion(image, rng, size, true);
  const gain = rng.chance(0.5) ? rng.range(0.3, 0.6) : rng.range(1.6, 2.5);
  const mean = regionMean(image, region);
  blendThrough(image, out, region, (v, c) => mean[c] + (v - mean[c]) * gain);
  return region;
};

/** A blob shifted in colour and brightness: its most changed channel moves by 25..60 levels. */
const colour: Painter = ({ image, out, rng, size }) => {
  const region = blobRegion(image, rng, size, false);
  const mean = regionMean(image, region);
  const dir = [rng.normal(), rng.normal(), rng.normal()];
  const scale = rng.range(25, 60) / (Math.max(...dir.map(Math.abs)) || 1);
  // A channel that would clip at black or white moves the other way.
  const shift = dir.map((d, c) => (mean[c] + d * scale > 255 || mean[c] + d * scale < 0 ? -d : d) * scale);
  blendThrough(image, out, region, (v, c) => v + shift[c]);
  return region;
};

const KIND_PAINTERS: Readonly<Record<SyntheticDefectKind, Painter>> = {
  ink_spot: printPainter('ink_spot'),
  streak: printPainter('streak'),
  void: printPainter('void'),
  smear: printPainter('smear'),
  misregistration: printPainter('misregistration'),
  cutpaste,
  scar,
  blur,
  contrast,
  colour,
};

function clampInt(v: number, lo: number, hi: number): number {
  return Math.max(lo, Math.min(hi, Math.round(v)));
}

/** A uniform point at least (mx, my) px inside the image, or its middle where the image is smaller. */
function randomPoint(rng: Rng, image: RgbImage, mx: number, my = mx): [number, number] {
  const ax = Math.min(mx, image.width / 2);
  const ay = Math.min(my, image.height / 2);
  return [rng.range(ax, image.width - ax), rng.range(ay, image.height - ay)];
}

/**
 * An irregular, slightly elongated blob of diameter `size`. With `detailed`, of a few places the one
 * whose neighbourhood varies most: blur and contrast change nothing on a flat area.
 */
function blobRegion(image: RgbImage, rng: Rng, size: number, detailed: boolean): Region {
  const r = size / 2;
  let [cx, cy] = randomPoint(rng, image, r + 2);
  if (detailed) {
    let best = localDetail(image, cx, cy, r);
    for (let t = 1; t < 6; t++) {
      const [x, y] = randomPoint(rng, image, r + 2);
      const score = localDetail(image, x, y, r);
      if (score > best) [best, cx, cy] = [score, x, y];
    }
  }
  const shape = blob(rng, cx, cy, r, 0.08);
  return rasterise(shape.alpha, shape.rect, image.width, image.height);
}

/** Mean absolute deviation of R + G + B over a sparse grid of the square of half-side r around (cx, cy). */
function localDetail(image: RgbImage, cx: number, cy: number, r: number): number {
  const step = Math.max(1, Math.floor(r / 4));
  const values: number[] = [];
  for (let y = Math.max(0, Math.round(cy - r)); y < Math.min(image.height, cy + r); y += step) {
    for (let x = Math.max(0, Math.round(cx - r)); x < Math.min(image.width, cx + r); x += step) {
      const o = (y * image.width + x) * 3;
      values.push(image.data[o] + image.data[o + 1] + image.data[o + 2]);
    }
  }
  const mean = values.reduce((s, v) => s + v, 0) / (values.length || 1);
  return values.reduce((s, v) => s + Math.abs(v - mean), 0) / (values.length || 1);
}

/** Per-channel mean of the image weighted by the region's opacity. */
function regionMean(image: RgbImage, region: Region): [number, number, number] {
  const sum = [0, 0, 0];
  let weight = 0;
  forEachPixel(image, region, (o, a) => {
    for (let c = 0; c < 3; c++) sum[c] += image.data[o + c] * a;
    weight += a;
  });
  return [sum[0] / (weight || 1), sum[1] / (weight || 1), sum[2] / (weight || 1)];
}

/** Box mean (radius r, edges clipped) of every pixel of `rect`, interleaved RGB over the rect. */
function boxMean(image: RgbImage, rect: Rect, r: number): Float32Array {
  // Summed-area table over the rect grown by r (clipped to the image): what the box can reach.
  const ex0 = Math.max(0, rect.x0 - r);
  const ey0 = Math.max(0, rect.y0 - r);
  const ex1 = Math.min(image.width, rect.x1 + r);
  const ey1 = Math.min(image.height, rect.y1 + r);
  const sw = ex1 - ex0 + 1;
  const sat = new Float64Array(sw * (ey1 - ey0 + 1) * 3);
  for (let y = ey0; y < ey1; y++) {
    for (let x = ex0; x < ex1; x++) {
      const o = (y * image.width + x) * 3;
      const s = ((y - ey0 + 1) * sw + x - ex0 + 1) * 3;
      for (let c = 0; c < 3; c++) {
        sat[s + c] = image.data[o + c] + sat[s - 3 + c] + sat[s - sw * 3 + c] - sat[s - sw * 3 - 3 + c];
      }
    }
  }
  const w = rect.x1 - rect.x0;
  const mean = new Float32Array(w * (rect.y1 - rect.y0) * 3);
  for (let y = rect.y0; y < rect.y1; y++) {
    const top = Math.max(ey0, y - r) - ey0;
    const bottom = Math.min(ey1, y + r + 1) - ey0;
    for (let x = rect.x0; x < rect.x1; x++) {
      const left = Math.max(ex0, x - r) - ex0;
      const right = Math.min(ex1, x + r + 1) - ex0;
      const n = (bottom - top) * (right - left);
      const m = ((y - rect.y0) * w + x - rect.x0) * 3;
      for (let c = 0; c < 3; c++) {
        const total =
          sat[(bottom * sw + right) * 3 + c] -
          sat[(top * sw + right) * 3 + c] -
          sat[(bottom * sw + left) * 3 + c] +
          sat[(top * sw + left) * 3 + c];
        mean[m + c] = total / n;
      }
    }
  }
  return mean;
}

/**
 * Blends the region with the donor's pixels at an offset: a random place of the donor, or for the
 * image itself the farthest of a few places from the region, plus a small brightness jitter.
 */
function pasteFrom(image: RgbImage, out: Buffer, region: Region, donor: RgbImage, rng: Rng): void {
  const { rect } = region;
  const w = rect.x1 - rect.x0;
  const h = rect.y1 - rect.y0;
  let best = [0, 0];
  let bestDist = -1;
  for (let t = 0; t < (donor === image ? 4 : 1); t++) {
    const sx = rng.int(0, Math.max(0, donor.width - w));
    const sy = rng.int(0, Math.max(0, donor.height - h));
    const dist = Math.hypot(sx - rect.x0, sy - rect.y0);
    if (dist > bestDist) [best, bestDist] = [[sx - rect.x0, sy - rect.y0], dist];
  }
  const [dx, dy] = best;
  const jitter = rng.range(-8, 8);
  blendThrough(image, out, region, (_v, c, x, y) => {
    const sx = Math.min(donor.width - 1, x + dx);
    const sy = Math.min(donor.height - 1, y + dy);
    return donor.data[(sy * donor.width + sx) * 3 + c] + jitter;
  });
}

/** Calls `fn(byte offset, opacity 0..1, x, y)` for the region's pixels of non-zero opacity. */
function forEachPixel(
  image: RgbImage,
  region: Region,
  fn: (o: number, a: number, x: number, y: number) => void,
): void {
  const { rect, support } = region;
  const w = rect.x1 - rect.x0;
  for (let y = rect.y0; y < rect.y1; y++) {
    for (let x = rect.x0; x < rect.x1; x++) {
      const s = support[(y - rect.y0) * w + x - rect.x0];
      if (s) fn((y * image.width + x) * 3, s / 255, x, y);
    }
  }
}

/** Blends `target(original value, channel, x, y)` into `out` through the region's opacity, clipped to 0..255. */
function blendThrough(
  image: RgbImage,
  out: Buffer,
  region: Region,
  target: (v: number, c: number, x: number, y: number) => number,
): void {
  forEachPixel(image, region, (o, a, x, y) => {
    for (let c = 0; c < 3; c++) {
      const v = image.data[o + c];
      const t = v + (target(v, c, x, y) - v) * a;
      out[o + c] = t <= 0 ? 0 : t >= 255 ? 255 : Math.round(t);
    }
  });
}
