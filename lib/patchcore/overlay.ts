/**
 * An inspection drawn over its image: the canvas-resolution anomaly map brought back to image
 * pixels, a colour scale fixed around the threshold (so colours compare across images), and the
 * defect boxes.
 */
import { RgbImage } from '../image/decode';
import { axisWeights } from '../embed/patch-embed';
import { renderOverlay } from '../eval/overlay';
import { Inspection } from './inspector';

/** Anomaly map resampled to the image size (bilinear); with a centre crop, outside pixels get 0. */
export function mapToImage(
  r: Pick<Inspection, 'map' | 'canvasWidth' | 'canvasHeight'>,
  width: number,
  height: number,
  crop = 0,
  resize = 0,
): Float32Array {
  const fullW = resize > 0 ? resize : r.canvasWidth;
  const fullH = resize > 0 ? resize : r.canvasHeight;
  // Canvas window inside the full resized image, in image pixels.
  const x0 = crop > 0 ? (((fullW - r.canvasWidth) >> 1) * width) / fullW : 0;
  const y0 = crop > 0 ? (((fullH - r.canvasHeight) >> 1) * height) / fullH : 0;
  const winW = Math.max(1, Math.round((r.canvasWidth * width) / fullW));
  const winH = Math.max(1, Math.round((r.canvasHeight * height) / fullH));
  const left = Math.round(x0);
  const top = Math.round(y0);
  const xs = axisWeights(r.canvasWidth, winW);
  const ys = axisWeights(r.canvasHeight, winH);
  const out = new Float32Array(width * height);
  const m = r.map;
  const cw = r.canvasWidth;
  for (let y = 0; y < winH && top + y < height; y++) {
    const a = ys.i0[y] * cw;
    const b = ys.i1[y] * cw;
    const fy = ys.f[y];
    for (let x = 0; x < winW && left + x < width; x++) {
      const i0 = xs.i0[x];
      const i1 = xs.i1[x];
      const fx = xs.f[x];
      const t = m[a + i0] + (m[a + i1] - m[a + i0]) * fx;
      const u = m[b + i0] + (m[b + i1] - m[b + i0]) * fx;
      out[(top + y) * width + left + x] = t + (u - t) * fy;
    }
  }
  return out;
}

export async function inspectionOverlay(
  image: RgbImage,
  r: Pick<Inspection, 'map' | 'canvasWidth' | 'canvasHeight' | 'threshold' | 'regions'>,
  view: { crop: number; resize: number } = { crop: 0, resize: 0 },
  mask?: Uint8Array,
  maxSide = 512,
): Promise<Buffer> {
  const map = mapToImage(r, image.width, image.height, view.crop, view.resize);
  return renderOverlay(image.data, image.width, image.height, map, {
    vmin: r.threshold * 0.5,
    vmax: r.threshold * 1.5,
    mask,
    boxes: r.regions.map((g) => ({ x: g.x, y: g.y, w: g.width, h: g.height })),
    maxSide,
  });
}
