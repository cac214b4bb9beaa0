/**
 * A contact sheet for eyeballing the generator: two good prints and one print per defect type, each
 * shown plain and, below it, with its mask outlined in red; labelled.
 */
import type { SizeSpec } from './artwork';
import { DEFECT_TYPES, type DefectOptions, type DefectType } from './defects';
import { drawText, GLYPH_H } from './font';
import { encodePng } from './png';
import { newPlane } from './raster';
import { makeSample, type Sample } from './sample';

export interface PreviewOptions {
  size?: SizeSpec;
  defects?: readonly DefectType[];
  /** Sample index of the first tile; the others follow. */
  index?: number;
  defectOptions?: Partial<DefectOptions>;
  /** Tiles per row (each tile is a plain print above its outlined copy); default 4. */
  columns?: number;
}

const GAP = 8;
const LABEL = 8 + GLYPH_H * 2;

/** Copies an RGB tile into the sheet; outlines mask edges in red when `outline` is set. */
function blit(sheet: Uint8Array, sheetW: number, s: Sample, ox: number, oy: number, outline: boolean): void {
  const { width: w, height: h, rgb, mask } = s;
  for (let y = 0; y < h; y++) {
    sheet.set(rgb.subarray(y * w * 3, (y + 1) * w * 3), ((oy + y) * sheetW + ox) * 3);
  }
  if (!outline || !mask) return;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (!mask[y * w + x]) continue;
      const edge =
        x === 0 ||
        y === 0 ||
        x === w - 1 ||
        y === h - 1 ||
        !mask[y * w + x - 1] ||
        !mask[y * w + x + 1] ||
        !mask[(y - 1) * w + x] ||
        !mask[(y + 1) * w + x];
      if (!edge) continue;
      for (let dy = -1; dy <= 1; dy++) {
        for (let dx = -1; dx <= 1; dx++) {
          const px = x + dx;
          const py = y + dy;
          if (px < 0 || py < 0 || px >= w || py >= h || mask[py * w + px]) continue;
          const o = ((oy + py) * sheetW + ox + px) * 3;
          sheet[o] = 255;
          sheet[o + 1] = 0;
          sheet[o + 2] = 0;
        }
      }
    }
  }
}

export async function renderPreview(seed: number, opts: PreviewOptions = {}): Promise<Buffer> {
  const defects = opts.defects ?? DEFECT_TYPES;
  const index = opts.index ?? 0;
  const samples: { label: string; sample: Sample }[] = [
    { label: 'good', sample: makeSample(seed, index, { size: opts.size }) },
    { label: 'good', sample: makeSample(seed, index + 1, { size: opts.size }) },
    ...defects.map((d, i) => ({
      label: d,
      sample: makeSample(seed, index + 2 + i, {
        size: opts.size,
        defect: d,
        defectOptions: opts.defectOptions,
      }),
    })),
  ];
  const { width: w, height: h } = samples[0].sample;
  const cols = Math.max(1, Math.min(samples.length, opts.columns ?? 4));
  const rows = Math.ceil(samples.length / cols);
  const tileH = LABEL + 2 * h + GAP;
  const sheetW = GAP + cols * (w + GAP);
  const sheetH = GAP + rows * (tileH + GAP);
  const sheet = new Uint8Array(sheetW * sheetH * 3).fill(200);
  const labels = newPlane(sheetW, sheetH);
  samples.forEach(({ label, sample }, i) => {
    const ox = GAP + (i % cols) * (w + GAP);
    const oy = GAP + Math.floor(i / cols) * (tileH + GAP);
    drawText(labels, ox, oy + 2, label, { scale: 2 });
    blit(sheet, sheetW, sample, ox, oy + LABEL, false);
    blit(sheet, sheetW, sample, ox, oy + LABEL + h + GAP, true);
  });
  for (let i = 0; i < labels.data.length; i++) {
    if (labels.data[i]) sheet.fill(0, i * 3, i * 3 + 3);
  }
  return encodePng(sheet, sheetW, sheetH, 3);
}
