/**
 * Subtractive compositing of C, M, Y, K coverage planes over paper into 8-bit RGB: each ink at
 * coverage a multiplies the paper colour by 1 - a * (1 - transmission). Lookup tables keep the
 * per-pixel work to twelve table reads and a few multiplies.
 */
import { type InkPlanes, type Rect, clampRect } from './raster';

export type Rgb = readonly [number, number, number];

/** Ink transmission colours (0..255 per channel) of the process inks C, M, Y, K. */
export const INK_RGB: readonly [Rgb, Rgb, Rgb, Rgb] = [
  [0, 158, 224],
  [228, 0, 124],
  [255, 236, 0],
  [34, 30, 32],
];

/** Default paper colour (slightly warm white). */
export const PAPER_RGB: Rgb = [246, 244, 238];

export interface CompositeParams {
  paper: Rgb;
  /** Per-ink density multipliers (1 = nominal); coverage is scaled and clipped at 255. */
  density: readonly [number, number, number, number];
}

export const NOMINAL_COMPOSITE: CompositeParams = { paper: PAPER_RGB, density: [1, 1, 1, 1] };

/** 12 lookup tables [ink * 3 + channel][coverage] -> transmission factor. */
export type InkLuts = Float32Array[];

export function buildInkLuts(params: CompositeParams): InkLuts {
  const luts: Float32Array[] = [];
  for (let ink = 0; ink < 4; ink++) {
    for (let ch = 0; ch < 3; ch++) {
      const lut = new Float32Array(256);
      const absorb = 1 - INK_RGB[ink][ch] / 255;
      for (let a = 0; a < 256; a++) {
        const cov = Math.min(1, (a / 255) * params.density[ink]);
        lut[a] = 1 - cov * absorb;
      }
      luts.push(lut);
    }
  }
  return luts;
}

/**
 * Composites `ink` into `out` (RGB, same size) over `rect` (whole image by default). Values are
 * written as floats into a Uint8ClampedArray (rounded and clipped) or any numeric array.
 */
export function composite(
  ink: InkPlanes,
  params: CompositeParams,
  out: Uint8ClampedArray | Float32Array,
  rect?: Rect,
  luts: InkLuts = buildInkLuts(params),
): void {
  const { width, height } = ink;
  const r = clampRect(rect ?? { x0: 0, y0: 0, x1: width, y1: height }, width, height);
  const [pc, pm, py, pk] = ink.planes.map((p) => p.data);
  const [cR, cG, cB, mR, mG, mB, yR, yG, yB, kR, kG, kB] = luts;
  const [paperR, paperG, paperB] = params.paper;
  for (let y = r.y0; y < r.y1; y++) {
    for (let i = y * width + r.x0, end = y * width + r.x1; i < end; i++) {
      const c = pc[i];
      const m = pm[i];
      const yy = py[i];
      const k = pk[i];
      const o = i * 3;
      out[o] = paperR * cR[c] * mR[m] * yR[yy] * kR[k];
      out[o + 1] = paperG * cG[c] * mG[m] * yG[yy] * kG[k];
      out[o + 2] = paperB * cB[c] * mB[m] * yB[yy] * kB[k];
    }
  }
}

/** Composites the whole image into a new RGB buffer. */
export function compositeToRgb(
  ink: InkPlanes,
  params: CompositeParams = NOMINAL_COMPOSITE,
): Uint8ClampedArray {
  const out = new Uint8ClampedArray(ink.width * ink.height * 3);
  composite(ink, params, out);
  return out;
}
