/**
 * Calibration inputs, as normalised NCHW float32 images of the spec's input size. "randn" is
 * seeded standard-normal noise (no data needed); a folder gives the job's nominal images, prepared
 * as the engine prepares them: resized to the input size (a whole-canvas job), or for a tiled job
 * (view "tile") a seeded crop of the input size at the image's own resolution, which is what its
 * tiles show (DeepPCB at full resolution: calibrated on resized boards, the fast INT8 extractor lost
 * 2.6 AUROC points; on crops, 1.8).
 */
import * as fs from 'node:fs';
import { readCategory } from '../../lib/data/mvtec';
import { RgbImage, cropRgb, decodeImage, resizeRgb } from '../../lib/image/decode';
import { mulberry32, sampleIndices } from '../../lib/util/random';
import { ModelSpec } from '../spec';

/** How a calibration image becomes a model input: resized whole, or cropped like a tile. */
export type CalibrationView = 'resize' | 'tile';

export interface CalibrationSet {
  /** One [1, 3, H, W] image per entry. */
  inputs: Float32Array[];
  height: number;
  width: number;
  /** "randn" or the folder; with the image files used. */
  source: string;
  files: string[];
  seed: number;
}

/** Standard-normal values from a seeded generator (Box-Muller over mulberry32). */
export function randn(count: number, seed: number): Float32Array {
  const rand = mulberry32(seed);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i += 2) {
    const u = Math.max(rand(), 1e-12);
    const r = Math.sqrt(-2 * Math.log(u));
    const t = 2 * Math.PI * rand();
    out[i] = r * Math.cos(t);
    if (i + 1 < count) out[i + 1] = r * Math.sin(t);
  }
  return out;
}

export function randnSet(count: number, size: [number, number], seed = 1234): CalibrationSet {
  const [height, width] = size;
  const inputs = Array.from({ length: count }, (_, i) => randn(3 * height * width, seed + i));
  return { inputs, height, width, source: 'randn', files: [], seed };
}

/**
 * RGB bytes -> normalised CHW floats with the same expression as Backbone.normalizeInto
 * (lib/backbone/backbone.ts), so calibration sees bit-identical inputs.
 */
export function normalizeRgb(tile: RgbImage, normalize: ModelSpec['normalize']): Float32Array {
  const plane = tile.width * tile.height;
  const out = new Float32Array(3 * plane);
  for (let c = 0; c < 3; c++) {
    const scale = 1 / (255 * normalize.std[c]);
    const shift = normalize.mean[c] / normalize.std[c];
    const base = c * plane;
    for (let p = 0, q = c; p < plane; p++, q += 3) out[base + p] = tile.data[q] * scale - shift;
  }
  return out;
}

/** `count` images sampled (seeded) from a folder of good images, or from train/good of an MVTec-layout folder. */
export async function folderSet(
  folder: string,
  count: number,
  spec: Pick<ModelSpec, 'inputSize' | 'normalize'>,
  seed = 1234,
  view: CalibrationView = 'resize',
): Promise<CalibrationSet> {
  const files = readCategory(folder).train;
  const picked = Array.from(sampleIndices(files.length, count, seed), (i) => files[i]);
  const [height, width] = spec.inputSize;
  const rand = mulberry32(seed);
  const inputs: Float32Array[] = [];
  for (const file of picked) {
    const rgb = await decodeImage(await fs.promises.readFile(file));
    // An image smaller than a tile is resized: the engine would show it whole.
    const crop = view === 'tile' && rgb.width >= width && rgb.height >= height;
    const input = crop
      ? cropRgb(
          rgb,
          Math.floor(rand() * (rgb.width - width + 1)),
          Math.floor(rand() * (rgb.height - height + 1)),
          width,
          height,
        )
      : await resizeRgb(rgb, width, height);
    inputs.push(normalizeRgb(input, spec.normalize));
  }
  return { inputs, height, width, source: folder, files: picked, seed };
}
