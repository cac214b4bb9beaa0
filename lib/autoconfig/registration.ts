/**
 * Are the good images registered (the product sits at the same place in every frame)? A nominal
 * reference (score/reference.ts) subtracts each position's usual score, which only means something
 * when a position shows the same part of the product in every image. Measured on small grey
 * thumbnails: each image's correlation with the mean of the others, at zero shift and at the best
 * shift of a few thumbnail pixels. Registered = the images agree at zero shift (a median
 * correlation of at least MIN_CORRELATION) and a shift does not improve that by much.
 */
import { RgbImage } from '../image/decode';

export const THUMB = 48;
const MAX_SHIFT = 2;
export const MIN_CORRELATION = 0.6;
/** A shift may improve the zero-shift correlation by at most this before we call it unregistered. */
const MAX_SHIFT_GAIN = 0.1;

export interface Registration {
  registered: boolean;
  /** Median leave-one-out correlation at zero shift. */
  correlation: number;
  /** Median gain of the best shift over zero shift. */
  shiftGain: number;
  images: number;
}

export function measureRegistration(images: RgbImage[]): Registration {
  if (images.length < 3) return { registered: false, correlation: 0, shiftGain: 0, images: images.length };
  const sizes = new Set(images.map((i) => `${i.width}x${i.height}`));
  // A reference needs one canvas for all; differently sized frames are not registered by definition.
  if (sizes.size > 1) return { registered: false, correlation: 0, shiftGain: 0, images: images.length };
  const thumbs = images.map(greyThumbnail);
  const sum = new Float64Array(THUMB * THUMB);
  for (const t of thumbs) for (let i = 0; i < sum.length; i++) sum[i] += t[i];
  const zero: number[] = [];
  const gain: number[] = [];
  for (const t of thumbs) {
    const others = new Float32Array(sum.length);
    for (let i = 0; i < sum.length; i++) others[i] = (sum[i] - t[i]) / (thumbs.length - 1);
    const c0 = shiftedCorrelation(t, others, 0, 0);
    let best = c0;
    for (let dy = -MAX_SHIFT; dy <= MAX_SHIFT; dy++)
      for (let dx = -MAX_SHIFT; dx <= MAX_SHIFT; dx++)
        best = Math.max(best, shiftedCorrelation(t, others, dx, dy));
    zero.push(c0);
    gain.push(best - c0);
  }
  const correlation = median(zero);
  const shiftGain = median(gain);
  return {
    registered: correlation >= MIN_CORRELATION && shiftGain <= MAX_SHIFT_GAIN,
    correlation,
    shiftGain,
    images: images.length,
  };
}

/** Area-averaged grey thumbnail, THUMB x THUMB. */
export function greyThumbnail(image: RgbImage): Float32Array {
  const out = new Float32Array(THUMB * THUMB);
  const count = new Float32Array(THUMB * THUMB);
  const { width, height, data } = image;
  for (let y = 0; y < height; y++) {
    const ty = Math.min(THUMB - 1, Math.floor((y * THUMB) / height));
    for (let x = 0; x < width; x++) {
      const tx = Math.min(THUMB - 1, Math.floor((x * THUMB) / width));
      const p = 3 * (y * width + x);
      out[ty * THUMB + tx] += 0.299 * data[p] + 0.587 * data[p + 1] + 0.114 * data[p + 2];
      count[ty * THUMB + tx]++;
    }
  }
  for (let i = 0; i < out.length; i++) out[i] /= Math.max(1, count[i]);
  return out;
}

/** Pearson correlation of `a` shifted by (dx, dy) with `b`, over the overlap. */
function shiftedCorrelation(a: Float32Array, b: Float32Array, dx: number, dy: number): number {
  let n = 0;
  let sa = 0;
  let sb = 0;
  let saa = 0;
  let sbb = 0;
  let sab = 0;
  for (let y = Math.max(0, -dy); y < Math.min(THUMB, THUMB - dy); y++) {
    for (let x = Math.max(0, -dx); x < Math.min(THUMB, THUMB - dx); x++) {
      const va = a[(y + dy) * THUMB + x + dx];
      const vb = b[y * THUMB + x];
      n++;
      sa += va;
      sb += vb;
      saa += va * va;
      sbb += vb * vb;
      sab += va * vb;
    }
  }
  const cov = sab / n - (sa / n) * (sb / n);
  const va = saa / n - (sa / n) ** 2;
  const vb = sbb / n - (sb / n) ** 2;
  return va > 1e-9 && vb > 1e-9 ? cov / Math.sqrt(va * vb) : 0;
}

function median(values: number[]): number {
  const s = [...values].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
