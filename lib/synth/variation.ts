/**
 * Nominal print-to-print variation of good samples: a sub-pixel shift (placement on the conveyor),
 * ink density jitter (applied at compositing), brightness/contrast jitter (illumination), low-frequency
 * paper mottle and per-pixel sensor noise. All of it is small, so a patch-level model still sees
 * defects; all of it is drawn from the sample's own seeded stream.
 */
import { Rng } from './prng';

export interface VariationOptions {
  /** Largest shift per axis in pixels (uniform in [-maxShift, maxShift], sub-pixel, bilinear). */
  maxShift: number;
  /** Largest brightness offset in grey levels. */
  brightness: number;
  /** Largest relative contrast change (0.03 = ±3 %). */
  contrast: number;
  /** Largest relative ink density change per ink (0.04 = ±4 %). */
  density: number;
  /** Sensor noise standard deviation range in grey levels. */
  noise: readonly [number, number];
  /** Paper mottle amplitude (standard deviation) in grey levels. */
  paperTexture: number;
}

export const DEFAULT_VARIATION: VariationOptions = {
  maxShift: 1.5,
  brightness: 3,
  contrast: 0.03,
  density: 0.04,
  noise: [1, 2],
  paperTexture: 1.5,
};

/** No variation at all: the sample is the bare composite of the artwork. */
export const NO_VARIATION: VariationOptions = {
  maxShift: 0,
  brightness: 0,
  contrast: 0,
  density: 0,
  noise: [0, 0],
  paperTexture: 0,
};

/** The variation drawn for one sample. */
export interface NominalParams {
  shift: [number, number];
  brightness: number;
  contrast: number;
  density: [number, number, number, number];
  noiseSigma: number;
  paperTexture: number;
  /** Seeds of the noise and mottle fields. */
  noiseSeed: number;
  textureSeed: number;
}

export function sampleVariation(rng: Rng, opts: VariationOptions = DEFAULT_VARIATION): NominalParams {
  const sym = (a: number) => (a > 0 ? rng.range(-a, a) : 0);
  return {
    shift: [sym(opts.maxShift), sym(opts.maxShift)],
    brightness: sym(opts.brightness),
    contrast: 1 + sym(opts.contrast),
    density: [1 + sym(opts.density), 1 + sym(opts.density), 1 + sym(opts.density), 1 + sym(opts.density)],
    noiseSigma: opts.noise[1] > opts.noise[0] ? rng.range(opts.noise[0], opts.noise[1]) : opts.noise[0],
    paperTexture: opts.paperTexture,
    noiseSeed: rng.uint32() | 1,
    textureSeed: rng.uint32(),
  };
}

/** 65536 standard normal draws, indexed by the top 16 bits of a xorshift state. */
let normalTable: Float32Array | undefined;
function normals(): Float32Array {
  if (!normalTable) {
    const rng = Rng.of('synth-normal-table');
    normalTable = new Float32Array(65536);
    for (let i = 0; i < normalTable.length; i++) normalTable[i] = rng.normal();
  }
  return normalTable;
}

/** Low-frequency mottle (cells of ~`cell` px, bilinear), standard deviation `amp`; undefined if amp is 0. */
function paperMottle(
  width: number,
  height: number,
  amp: number,
  seed: number,
  cell = 24,
): Float32Array | undefined {
  if (amp <= 0) return undefined;
  const rng = new Rng(seed);
  const gw = Math.ceil(width / cell) + 1;
  const gh = Math.ceil(height / cell) + 1;
  const grid = new Float32Array(gw * gh);
  for (let i = 0; i < grid.length; i++) grid[i] = rng.normal() * amp;
  const cx = new Int32Array(width);
  const wx = new Float32Array(width);
  for (let x = 0; x < width; x++) {
    const g = x / cell;
    cx[x] = Math.floor(g);
    wx[x] = g - cx[x];
  }
  const tex = new Float32Array(width * height);
  const row = new Float32Array(gw);
  for (let y = 0; y < height; y++) {
    const g = y / cell;
    const gy = Math.floor(g);
    const wy = g - gy;
    for (let i = 0; i < gw; i++) row[i] = grid[gy * gw + i] * (1 - wy) + grid[(gy + 1) * gw + i] * wy;
    const o = y * width;
    for (let x = 0; x < width; x++) tex[o + x] = row[cx[x]] * (1 - wx[x]) + row[cx[x] + 1] * wx[x];
  }
  return tex;
}

/** Source columns (or rows) and the fractional weight of a shift by `d` with clamped edges. */
function shiftTaps(n: number, d: number): { a: Int32Array; b: Int32Array; f: number } {
  const o = Math.floor(-d);
  const f = -d - o;
  const a = new Int32Array(n);
  const b = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    a[i] = Math.min(n - 1, Math.max(0, i + o));
    b[i] = Math.min(n - 1, Math.max(0, i + o + 1));
  }
  return { a, b, f };
}

/**
 * Applies shift, photometric jitter, mottle and noise to an RGB image (density jitter is applied at
 * compositing). A mask in the same geometry is shifted alike and re-binarised at 50 %.
 */
export function applyVariation(
  src: Uint8ClampedArray,
  width: number,
  height: number,
  params: NominalParams,
  mask?: Uint8Array,
): { rgb: Uint8ClampedArray; mask?: Uint8Array } {
  const tx = shiftTaps(width, params.shift[0]);
  const ty = shiftTaps(height, params.shift[1]);
  const w00 = (1 - tx.f) * (1 - ty.f);
  const w10 = tx.f * (1 - ty.f);
  const w01 = (1 - tx.f) * ty.f;
  const w11 = tx.f * ty.f;
  const gain = params.contrast;
  const offset = 128 * (1 - gain) + params.brightness;
  const sigma = params.noiseSigma;
  const table = normals();
  const tex = paperMottle(width, height, params.paperTexture, params.textureSeed);
  const out = new Uint8ClampedArray(width * height * 3);
  let s = params.noiseSeed | 0 || 1;
  // Noise is read from the normal table at xorshift32 states; sigma 0 scales it away (kept branch-free).
  for (let y = 0; y < height; y++) {
    const ra = ty.a[y] * width;
    const rb = ty.b[y] * width;
    for (let x = 0; x < width; x++) {
      const p00 = (ra + tx.a[x]) * 3;
      const p10 = (ra + tx.b[x]) * 3;
      const p01 = (rb + tx.a[x]) * 3;
      const p11 = (rb + tx.b[x]) * 3;
      const i = y * width + x;
      const base = offset + (tex ? tex[i] : 0);
      const o = i * 3;
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      const n0 = table[s >>> 16] * sigma;
      const n1 = table[s & 0xffff] * sigma;
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      const n2 = table[s >>> 16] * sigma;
      out[o] = (w00 * src[p00] + w10 * src[p10] + w01 * src[p01] + w11 * src[p11]) * gain + base + n0;
      out[o + 1] =
        (w00 * src[p00 + 1] + w10 * src[p10 + 1] + w01 * src[p01 + 1] + w11 * src[p11 + 1]) * gain +
        base +
        n1;
      out[o + 2] =
        (w00 * src[p00 + 2] + w10 * src[p10 + 2] + w01 * src[p01 + 2] + w11 * src[p11 + 2]) * gain +
        base +
        n2;
    }
  }
  if (!mask) return { rgb: out };
  const shifted = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    const ra = ty.a[y] * width;
    const rb = ty.b[y] * width;
    for (let x = 0; x < width; x++) {
      const v =
        w00 * mask[ra + tx.a[x]] +
        w10 * mask[ra + tx.b[x]] +
        w01 * mask[rb + tx.a[x]] +
        w11 * mask[rb + tx.b[x]];
      shifted[y * width + x] = v >= 127.5 ? 255 : 0;
    }
  }
  return { rgb: out, mask: shifted };
}
