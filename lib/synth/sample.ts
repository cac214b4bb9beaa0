/**
 * One sample in memory: the job's artwork, this print's nominal variation and optionally one defect
 * with its mask. Everything follows from (seed, index, options): the artwork from the seed, the
 * variation from (seed, index), the defect from (seed, index, type), so a defective sample and the
 * good sample of the same index differ only where the defect is.
 */
import { type Artwork, renderArtwork, resolveSize, type SizeSpec } from './artwork';
import { type DefectOptions, type DefectType, injectDefect, isDefectType } from './defects';
import { composite, type CompositeParams, PAPER_RGB } from './inks';
import { Rng } from './prng';
import type { Rect } from './raster';
import {
  applyVariation,
  DEFAULT_VARIATION,
  NO_VARIATION,
  type NominalParams,
  sampleVariation,
  type VariationOptions,
} from './variation';

export interface SampleOptions {
  /** Square side or {width, height}; default 512. */
  size?: SizeSpec;
  /** Inject one defect of this type. */
  defect?: DefectType;
  defectOptions?: Partial<DefectOptions>;
  /** Nominal variation; `false` for none (the bare composite of the artwork). */
  variation?: Partial<VariationOptions> | false;
}

export interface DefectInfo {
  /** Mask bounding box in image coordinates. */
  bbox: Rect;
  /** Mask pixels. */
  area: number;
  /** Painter parameters (ink, size, direction...). */
  params: Record<string, string | number>;
}

export interface Sample {
  seed: number;
  index: number;
  width: number;
  height: number;
  /** Raw interleaved RGB, width * height * 3 bytes. */
  rgb: Buffer;
  /** Raw single-channel 0/255 mask, width * height bytes; only with a defect. */
  mask?: Buffer;
  defect?: DefectType;
  defectInfo?: DefectInfo;
  /** The nominal variation drawn for this print. */
  variation: NominalParams;
}

const ARTWORK_CACHE_LIMIT = 4;
const artworkCache = new Map<string, Artwork>();

/** The artwork of job `seed` at `size`, cached (a few entries); treat it as read-only. */
export function getArtwork(seed: number, size?: SizeSpec): Artwork {
  const { width, height } = resolveSize(size);
  const key = `${seed}:${width}x${height}`;
  let art = artworkCache.get(key);
  if (art) {
    artworkCache.delete(key);
  } else {
    art = renderArtwork(seed, { width, height });
    if (artworkCache.size >= ARTWORK_CACHE_LIMIT)
      artworkCache.delete(artworkCache.keys().next().value as string);
  }
  artworkCache.set(key, art);
  return art;
}

export function resolveVariation(v: SampleOptions['variation']): VariationOptions {
  return v === false ? NO_VARIATION : { ...DEFAULT_VARIATION, ...v };
}

/** Builds sample `index` of job `seed`, good unless `opts.defect` is given. */
export function makeSample(seed: number, index: number, opts: SampleOptions = {}): Sample {
  if (!Number.isInteger(seed) || !Number.isInteger(index) || index < 0) {
    throw new Error(`seed and index must be integers (index >= 0), got ${seed}, ${index}`);
  }
  if (opts.defect !== undefined && !isDefectType(opts.defect))
    throw new Error(`unknown defect type "${opts.defect}"`);
  const art = getArtwork(seed, opts.size);
  const { width, height } = art;
  const variation = sampleVariation(Rng.of(seed, 'nominal', index), resolveVariation(opts.variation));
  const params: CompositeParams = { paper: PAPER_RGB, density: variation.density };

  let ink = art as Pick<Artwork, 'width' | 'height' | 'planes'>;
  let maskArt: Uint8Array | undefined;
  let injected: ReturnType<typeof injectDefect> | undefined;
  if (opts.defect) {
    injected = injectDefect(
      art,
      opts.defect,
      Rng.of(seed, 'defect', opts.defect, index),
      params,
      opts.defectOptions,
    );
    ink = injected.ink;
    maskArt = injected.mask;
  }
  const flat = new Uint8ClampedArray(width * height * 3);
  composite(ink, params, flat);
  const out = applyVariation(flat, width, height, variation, maskArt);
  const sample: Sample = {
    seed,
    index,
    width,
    height,
    rgb: Buffer.from(out.rgb.buffer, out.rgb.byteOffset, out.rgb.byteLength),
    variation,
  };
  if (injected && out.mask) {
    const mask = out.mask;
    let area = 0;
    const bbox = { x0: width, y0: height, x1: 0, y1: 0 };
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        if (!mask[y * width + x]) continue;
        area++;
        if (x < bbox.x0) bbox.x0 = x;
        if (y < bbox.y0) bbox.y0 = y;
        if (x >= bbox.x1) bbox.x1 = x + 1;
        if (y >= bbox.y1) bbox.y1 = y + 1;
      }
    }
    sample.mask = Buffer.from(mask.buffer, mask.byteOffset, mask.byteLength);
    sample.defect = injected.type;
    sample.defectInfo = { bbox: area ? bbox : { x0: 0, y0: 0, x1: 0, y1: 0 }, area, params: injected.info };
  }
  return sample;
}
