/**
 * The artwork of one print "job": a label-like layout drawn into C, M, Y, K coverage planes. Every
 * good print of the job shares this artwork; the seed picks the text, colours, photo and barcode.
 *
 * Layout (fractions of the sheet): border frame; header with logo and title; halftoned photo (left)
 * beside a text column; a solid colour band with knocked-out text; EAN-13 barcode and tint ramps;
 * a colour control strip with registration marks.
 */
import { drawEan13, ean13Width } from './barcode';
import { drawText, GLYPH_H, textWidth } from './font';
import { Rng } from './prng';
import {
  C,
  convexPolygon,
  disc,
  halftone,
  type InkIndex,
  type InkPlanes,
  K,
  M,
  newInkPlanes,
  newPlane,
  paintCoverage,
  paintShape,
  type Rect,
  ring,
  Y,
} from './raster';

export interface Size {
  width: number;
  height: number;
}

/** A square side in pixels, or width and height. */
export type SizeSpec = number | Size;

export const DEFAULT_SIZE = 512;
export const MIN_SIZE = 128;

export type RegionKind =
  | 'border'
  | 'logo'
  | 'title'
  | 'photo'
  | 'text'
  | 'solid'
  | 'barcode'
  | 'ramps'
  | 'strip';

export interface ArtworkRegion {
  kind: RegionKind;
  rect: Rect;
}

export interface Artwork extends InkPlanes {
  readonly seed: number;
  /** Where each layout element went (for debugging and defect placement). */
  readonly regions: readonly ArtworkRegion[];
}

/** Screen angles in degrees for C, M, Y, K (the classic offset set). */
export const SCREEN_ANGLES: readonly [number, number, number, number] = [15, 75, 0, 45];

export function resolveSize(size: SizeSpec = DEFAULT_SIZE): Size {
  const s = typeof size === 'number' ? { width: size, height: size } : size;
  const width = Math.round(s.width);
  const height = Math.round(s.height);
  if (!(width >= MIN_SIZE && height >= MIN_SIZE) || width > 8192 || height > 8192) {
    throw new Error(`artwork size must be ${MIN_SIZE}..8192 px per side, got ${width}x${height}`);
  }
  return { width, height };
}

const CONSONANTS = 'BCDFGHKLMNPRSTVZ';
const VOWELS = 'AEIOU';

function word(rng: Rng, minSyl = 1, maxSyl = 3): string {
  let w = '';
  const n = rng.int(minSyl, maxSyl);
  for (let i = 0; i < n; i++) {
    w += rng.pick([...CONSONANTS]) + rng.pick([...VOWELS]);
    if (rng.chance(0.3)) w += rng.pick([...CONSONANTS]);
  }
  return w;
}

/** A line of pseudo-text that fits `maxChars` characters. */
function sentence(rng: Rng, maxChars: number): string {
  let line = '';
  for (;;) {
    const w = rng.chance(0.12) ? `${rng.int(1, 999)}${rng.pick(['G', 'ML', '%', 'KG', ''])}` : word(rng);
    const next = line ? `${line} ${w}` : w;
    if (next.length > maxChars) break;
    line = next;
  }
  if (line.length < maxChars - 1 && rng.chance(0.5)) line += '.';
  return line;
}

/** Sets `value` on the given planes over a rectangle. */
function solid(ink: InkPlanes, rect: Rect, values: Partial<Record<InkIndex, number>>): void {
  for (const [p, v] of Object.entries(values)) {
    if (v) paintCoverage(ink.planes[Number(p)], rect.x0, rect.y0, rect.x1, rect.y1, v, 'max');
  }
}

function drawLogo(ink: InkPlanes, rng: Rng, box: Rect): void {
  const cx = (box.x0 + box.x1) / 2;
  const cy = (box.y0 + box.y1) / 2;
  const r = Math.min(box.x1 - box.x0, box.y1 - box.y0) / 2;
  const variant = rng.int(0, 2);
  if (variant === 0) {
    // Three overlapping discs in C, M, Y (overlaps make R, G, B and a dark centre).
    const d = r * 0.42;
    const rr = r * 0.55;
    const inks: InkIndex[] = [C, M, Y];
    inks.forEach((p, i) => {
      const a = (i * 2 * Math.PI) / 3 - Math.PI / 2 + rng.range(-0.2, 0.2);
      paintShape(ink.planes[p], box, disc(cx + d * Math.cos(a), cy + d * Math.sin(a), rr), 255);
    });
  } else if (variant === 1) {
    // Solid disc with a contrasting ring and a knocked-out triangle.
    const fill = rng.pick<InkIndex>([C, M]);
    paintShape(ink.planes[fill], box, disc(cx, cy, r * 0.8), 255);
    paintShape(ink.planes[Y], box, ring(cx, cy, r * 0.84, r * 0.98), 255);
    const tri = convexPolygon([
      [cx, cy - r * 0.5],
      [cx + r * 0.45, cy + r * 0.35],
      [cx - r * 0.45, cy + r * 0.35],
    ]);
    paintShape(ink.planes[fill], box, tri, 0, 'set');
    paintShape(ink.planes[K], box, disc(cx, cy + r * 0.08, r * 0.14), 255);
  } else {
    // Diamond in one ink with a smaller overprinted diamond and a black ring.
    const a = rng.pick<InkIndex>([C, M]);
    const b = a === C ? M : Y;
    const diamond = (s: number) =>
      convexPolygon([
        [cx, cy - s],
        [cx + s, cy],
        [cx, cy + s],
        [cx - s, cy],
      ]);
    paintShape(ink.planes[a], box, diamond(r * 0.95), 255);
    paintShape(ink.planes[b], box, diamond(r * 0.5), 255);
    paintShape(ink.planes[K], box, ring(cx, cy, r * 0.3, r * 0.36), 255);
  }
}

/** A smooth synthetic "photo": per ink, a base tone plus a few Gaussian blobs. */
function drawPhoto(ink: InkPlanes, rng: Rng, rect: Rect, period: number): void {
  const w = rect.x1 - rect.x0;
  const h = rect.y1 - rect.y0;
  for (let p = 0; p < 4; p++) {
    const tone = new Float32Array(w * h);
    const base = p === K ? 0 : rng.range(0.05, 0.3);
    const gx = rng.range(-0.25, 0.25) / w;
    const gy = rng.range(-0.25, 0.25) / h;
    const blobs = Array.from({ length: rng.int(2, 4) }, () => ({
      x: rng.range(0, w),
      y: rng.range(0, h),
      s2: 2 * (rng.range(0.12, 0.35) * Math.min(w, h)) ** 2,
      a: (p === K ? rng.range(0.2, 0.6) : rng.range(-0.3, 0.8)) * (rng.chance(0.8) ? 1 : 0),
    }));
    // Gaussians are separable: exp(-(dx² + dy²) / s2) = ex[x] * ey[y].
    const ex = blobs.map((b) =>
      Float32Array.from({ length: w }, (_, x) => b.a * Math.exp(-((x - b.x) ** 2) / b.s2)),
    );
    const ey = blobs.map((b) =>
      Float32Array.from({ length: h }, (_, y) => Math.exp(-((y - b.y) ** 2) / b.s2)),
    );
    for (let y = 0; y < h; y++) {
      const row = y * w;
      for (let x = 0; x < w; x++) tone[row + x] = base + gx * x + gy * y;
      for (let b = 0; b < blobs.length; b++) {
        const bx = ex[b];
        const by = ey[b][y];
        for (let x = 0; x < w; x++) tone[row + x] += bx[x] * by;
      }
      for (let x = 0; x < w; x++) {
        const t = tone[row + x];
        tone[row + x] = t < 0 ? 0 : t > 1 ? 1 : t;
      }
    }
    halftone(
      ink.planes[p],
      rect,
      (x, y) => tone[(Math.floor(y) - rect.y0) * w + (Math.floor(x) - rect.x0)],
      SCREEN_ANGLES[p],
      period,
    );
  }
}

function drawRegistrationMark(ink: InkPlanes, cx: number, cy: number, r: number): void {
  const box = { x0: cx - r - 2, y0: cy - r - 2, x1: cx + r + 2, y1: cy + r + 2 };
  for (const plane of ink.planes) {
    paintShape(plane, box, ring(cx, cy, r * 0.55, r * 0.55 + 1), 255);
    paintCoverage(plane, cx - r, Math.round(cy), cx + r, Math.round(cy) + 1, 255);
    paintCoverage(plane, Math.round(cx), cy - r, Math.round(cx) + 1, cy + r, 255);
  }
}

/** Draws the artwork of job `seed` at `size` (default 512x512). Deterministic. */
export function renderArtwork(seed: number, size: SizeSpec = DEFAULT_SIZE): Artwork {
  const { width: W, height: H } = resolveSize(size);
  const rng = Rng.of(seed, 'artwork');
  const ink = newInkPlanes(W, H);
  const regions: ArtworkRegion[] = [];
  const s = Math.min(W, H) / 512;
  const fs = (f: number) => Math.max(1, Math.round(f * s));
  const period = Math.max(4, 6 * s);

  // Border: heavy black frame and a thin cyan inner rule.
  const m = fs(10);
  const t = fs(3);
  const frame = { x0: m, y0: m, x1: W - m, y1: H - m };
  for (const [x0, y0, x1, y1] of [
    [frame.x0, frame.y0, frame.x1, frame.y0 + t],
    [frame.x0, frame.y1 - t, frame.x1, frame.y1],
    [frame.x0, frame.y0, frame.x0 + t, frame.y1],
    [frame.x1 - t, frame.y0, frame.x1, frame.y1],
  ]) {
    paintCoverage(ink.planes[K], x0, y0, x1, y1, 255);
  }
  const inner = m + t + fs(3);
  const rule = rng.pick<InkIndex>([C, M]);
  for (const [x0, y0, x1, y1] of [
    [inner, inner, W - inner, inner + 1],
    [inner, H - inner - 1, W - inner, H - inner],
    [inner, inner, inner + 1, H - inner],
    [W - inner - 1, inner, W - inner, H - inner],
  ]) {
    paintCoverage(ink.planes[rule], x0, y0, x1, y1, 255);
  }
  regions.push({ kind: 'border', rect: frame });

  const pad = inner + fs(8);
  const innerW = W - 2 * pad;

  // Header: logo and title.
  const headerH = Math.round(0.13 * H);
  const logoBox = { x0: pad, y0: pad, x1: pad + headerH, y1: pad + headerH };
  drawLogo(ink, rng.fork('logo'), logoBox);
  regions.push({ kind: 'logo', rect: logoBox });
  const titleScale = fs(3);
  const titleX = logoBox.x1 + fs(12);
  const maxTitle = Math.max(3, Math.floor((W - pad - titleX) / (6 * titleScale)));
  const title = `${word(rng, 2, 3)} ${word(rng, 1, 2)}`.slice(0, maxTitle);
  const titleInk = rng.pick<InkIndex>([K, C, M]);
  drawText(ink.planes[titleInk], titleX, pad + fs(4), title, { scale: titleScale, bold: 1 });
  const lineH = Math.max(fs(11), GLYPH_H * fs(1) + 2);
  const subY = pad + fs(4) + GLYPH_H * titleScale + Math.max(2, fs(8));
  const maxSub = Math.floor((W - pad - titleX) / 6 / fs(1));
  drawText(ink.planes[K], titleX, subY, sentence(rng, maxSub), { scale: fs(1) });
  drawText(ink.planes[K], titleX, subY + lineH, sentence(rng, maxSub), { scale: fs(1) });
  regions.push({ kind: 'title', rect: { x0: titleX, y0: pad, x1: W - pad, y1: logoBox.y1 } });

  // Photo (halftone) on the left.
  const bodyTop = logoBox.y1 + fs(12);
  const bodyBottom = Math.round(0.57 * H);
  const photo = { x0: pad, y0: bodyTop, x1: pad + Math.round(innerW * 0.5), y1: bodyBottom };
  drawPhoto(ink, rng.fork('photo'), photo, period);
  regions.push({ kind: 'photo', rect: photo });

  // Text column on the right: a coloured heading and body lines.
  const col = { x0: photo.x1 + fs(14), y0: bodyTop, x1: W - pad, y1: bodyBottom };
  const headScale = fs(2);
  const headChars = Math.floor((col.x1 - col.x0) / (6 * headScale));
  const heading = sentence(rng, headChars);
  for (const p of rng.pick<InkIndex[]>([[C], [C, M], [M, Y]])) {
    drawText(ink.planes[p], col.x0, col.y0, heading, { scale: headScale });
  }
  const bodyChars = Math.floor((col.x1 - col.x0) / (6 * fs(1)));
  let ly = col.y0 + GLYPH_H * headScale + fs(8);
  let para = 0;
  while (ly + GLYPH_H * fs(1) <= col.y1) {
    const short = rng.chance(0.15);
    drawText(ink.planes[K], col.x0, ly, sentence(rng, short ? Math.floor(bodyChars * 0.6) : bodyChars), {
      scale: fs(1),
    });
    ly += lineH;
    if (short && ++para % 2 === 1) ly += Math.round(lineH / 2);
  }
  regions.push({ kind: 'text', rect: col });

  // Solid band with knocked-out (paper-white) text.
  const band = { x0: pad, y0: Math.round(0.6 * H), x1: W - pad, y1: Math.round(0.69 * H) };
  const bandInks = rng.pick<Partial<Record<InkIndex, number>>>([
    { [M]: 255, [Y]: 230 },
    { [C]: 255, [M]: 110 },
    { [C]: 230, [Y]: 200 },
    { [K]: 220 },
    { [M]: 255, [C]: 40 },
  ]);
  solid(ink, band, bandInks);
  const knock = newPlane(W, H);
  const bandScale = Math.max(1, Math.min(fs(2), Math.floor((band.y1 - band.y0 - 4) / GLYPH_H)));
  const bandChars = Math.floor((band.x1 - band.x0 - fs(16)) / (6 * bandScale));
  const bandText = sentence(rng, bandChars);
  const bandTextY = Math.round((band.y0 + band.y1 - GLYPH_H * bandScale) / 2);
  drawText(knock, band.x0 + fs(8), bandTextY, bandText, { scale: bandScale, bold: 1 });
  for (const plane of ink.planes) {
    const d = plane.data;
    const kd = knock.data;
    for (let i = band.y0 * W; i < band.y1 * W; i++) if (kd[i]) d[i] = (d[i] * (255 - kd[i])) / 255;
  }
  regions.push({ kind: 'solid', rect: band });

  // Barcode.
  const mw = fs(2);
  const barTop = Math.round(0.72 * H);
  const barH = Math.round(0.12 * H);
  const data12 = Array.from({ length: 12 }, () => rng.int(0, 9)).join('');
  const used = drawEan13(ink.planes[K], pad, barTop, data12, mw, barH);
  regions.push({
    kind: 'barcode',
    rect: { x0: pad, y0: barTop, x1: pad + ean13Width(mw), y1: barTop + used },
  });

  // Tint ramps (5%..100%) for each process ink, plus a caption.
  const ramps = { x0: pad + ean13Width(mw) + fs(20), y0: barTop, x1: W - pad, y1: barTop + barH };
  if (ramps.x1 - ramps.x0 > fs(40)) {
    const rampH = Math.floor((ramps.y1 - ramps.y0 - 3 * fs(4)) / 4);
    for (let p = 0; p < 4; p++) {
      const r = {
        x0: ramps.x0,
        y0: ramps.y0 + p * (rampH + fs(4)),
        x1: ramps.x1,
        y1: ramps.y0 + p * (rampH + fs(4)) + rampH,
      };
      const span = r.x1 - r.x0;
      halftone(ink.planes[p], r, (x) => 0.05 + (0.95 * (x - r.x0)) / span, SCREEN_ANGLES[p], period);
    }
    const cap = `LOT ${rng.int(10, 99)}${word(rng, 1, 1)} ${rng.int(1000, 9999)}`;
    if (textWidth(cap, fs(1)) <= ramps.x1 - ramps.x0)
      drawText(ink.planes[K], ramps.x0, ramps.y1 + fs(6), cap, { scale: fs(1) });
    regions.push({ kind: 'ramps', rect: ramps });
  }

  // Colour control strip: solids, overprints, tints, with registration marks at both ends.
  const stripH = fs(14);
  const stripY = H - pad - stripH;
  const markR = Math.round(stripH / 2);
  drawRegistrationMark(ink, pad + markR, stripY + markR, markR);
  drawRegistrationMark(ink, W - pad - markR - 1, stripY + markR, markR);
  const patches: Partial<Record<InkIndex, number>>[] = [
    { [C]: 255 },
    { [M]: 255 },
    { [Y]: 255 },
    { [K]: 255 },
    { [M]: 255, [Y]: 255 },
    { [C]: 255, [Y]: 255 },
    { [C]: 255, [M]: 255 },
    { [C]: 128, [M]: 100, [Y]: 100 },
    { [K]: 64 },
    { [K]: 128 },
    { [K]: 192 },
  ];
  const sx0 = pad + 2 * markR + fs(6);
  const sx1 = W - pad - 2 * markR - fs(6);
  const pw = (sx1 - sx0) / patches.length;
  patches.forEach((values, i) => {
    const r = {
      x0: Math.round(sx0 + i * pw),
      y0: stripY,
      x1: Math.round(sx0 + (i + 1) * pw) - 1,
      y1: stripY + stripH,
    };
    for (const [p, v] of Object.entries(values)) {
      const plane = ink.planes[Number(p)];
      if (v >= 255) paintCoverage(plane, r.x0, r.y0, r.x1, r.y1, 255);
      else halftone(plane, r, () => v / 255, SCREEN_ANGLES[Number(p)], period);
    }
  });
  regions.push({ kind: 'strip', rect: { x0: pad, y0: stripY, x1: W - pad, y1: stripY + stripH } });

  return { width: W, height: H, planes: ink.planes, seed, regions };
}
