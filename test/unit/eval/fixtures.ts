/** Fake printed-product images with defects, heat maps and masks, for the overlay and report tests. */
import sharp from 'sharp';

export interface FakeSample {
  rgb: Buffer;
  width: number;
  height: number;
  map: Float32Array;
  mask: Uint8Array;
  defect?: { x: number; y: number; w: number; h: number };
}

/** A "label" print (coloured bars and a logo disc) on paper, optionally with a dark blot. */
export async function fakeSample(
  width: number,
  height: number,
  seed: number,
  defective: boolean,
): Promise<FakeSample> {
  const hue = (seed * 47) % 360;
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">
<rect width="100%" height="100%" fill="#f7f3ea"/>
<rect x="${width * 0.1}" y="${height * 0.12}" width="${width * 0.8}" height="${height * 0.14}" fill="hsl(${hue},60%,45%)"/>
<circle cx="${width * 0.3}" cy="${height * 0.58}" r="${Math.min(width, height) * 0.17}" fill="hsl(${(hue + 120) % 360},55%,50%)"/>
<rect x="${width * 0.55}" y="${height * 0.45}" width="${width * 0.35}" height="${height * 0.06}" fill="#222"/>
<rect x="${width * 0.55}" y="${height * 0.56}" width="${width * 0.3}" height="${height * 0.06}" fill="#222"/>
<rect x="${width * 0.55}" y="${height * 0.67}" width="${width * 0.25}" height="${height * 0.06}" fill="#222"/>
</svg>`;
  const rgb = await sharp(Buffer.from(svg)).removeAlpha().raw().toBuffer();
  const mask = new Uint8Array(width * height);
  const map = new Float32Array(width * height);
  let defect: FakeSample['defect'];
  if (defective) {
    defect = {
      x: Math.round(width * (0.15 + 0.1 * (seed % 5))),
      y: Math.round(height * (0.3 + 0.08 * (seed % 4))),
      w: Math.round(width * 0.15),
      h: Math.round(height * 0.1),
    };
    const cx = defect.x + defect.w / 2;
    const cy = defect.y + defect.h / 2;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        // Elliptical blot inside the box.
        if (((x - cx) / (defect.w / 2)) ** 2 + ((y - cy) / (defect.h / 2)) ** 2 <= 1) {
          mask[y * width + x] = 1;
          const o = (y * width + x) * 3;
          rgb[o] = 60;
          rgb[o + 1] = 40;
          rgb[o + 2] = 30;
        }
      }
    }
  }
  // Heat map: smooth low background, a Gaussian bump over the defect.
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let v = 0.15 + 0.1 * Math.sin((x + seed * 13) / 9) * Math.cos((y - seed * 7) / 11);
      if (defect) {
        const dx = (x - defect.x - defect.w / 2) / defect.w;
        const dy = (y - defect.y - defect.h / 2) / defect.h;
        v += 0.8 * Math.exp(-(dx * dx + dy * dy) * 2);
      }
      map[y * width + x] = v;
    }
  }
  return { rgb, width, height, map, mask, defect };
}
