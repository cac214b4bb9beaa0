/**
 * What the discriminator head learns and is validated on, from good images only (issue #20):
 *   - real patches: every patch embedding of the training images;
 *   - local anomalies: the patches of training images under one image-level synthetic defect each
 *     (lib/autoconfig/synthetic-defects.ts: the print defects, CutPaste, scars, blur, contrast,
 *     colour; kinds dealt in turn), those cells whose area the defect mask covers by at least
 *     LOCAL_COVERAGE;
 *   - the synthetic validation set of the automatic fit (lib/autoconfig/validation-set.ts) on the
 *     held-out good images, for early stopping: the head's maps scored like the selector scores a
 *     candidate (mean of image AUROC and pixel AUROC on the metric grid).
 */
import type { BankMeta } from '../bank/bank-meta';
import { DecodeLimits, DEFAULT_DECODE_LIMITS, RgbImage, decodeImage } from '../image/decode';
import { ViewConfig, reflectPad, toCanvas } from '../image/views';
import { FeatureExtractor, ImageEmbedding, concat } from '../patchcore/feature-extractor';
import { ImageSource } from '../patchcore/fit';
import { scorePatches } from '../patchcore/inspector';
import {
  SYNTHETIC_DEFECT_KINDS,
  defectSizeRange,
  injectSyntheticDefect,
} from '../autoconfig/synthetic-defects';
import { ValidationItem, buildValidationSet } from '../autoconfig/validation-set';
import { maskToGrid, metricGrid, resampleBilinear } from '../autoconfig/trial';
import { pixelAuroc, rocAuc } from '../eval/metrics';
import { maxOf } from '../score/anomaly-map';
import { Rng } from '../synth/prng';
import { sampleIndices } from '../util/random';
import { HeadTrainData, RowScorer } from './train';

/** A cell counts as anomalous when the defect covers this fraction of it. */
export const LOCAL_COVERAGE = 0.25;

/**
 * Real patches kept per training image: all of a 224 px frame's 784, a sample of a tiled board's
 * 50,000 (training draws batches at random anyway; this bounds memory: 73 DeepPCB boards in
 * stride-4 tiles would otherwise hold 3.7M patches, 0.8 GB).
 */
export const REAL_PER_IMAGE = 8192;

export interface HeadData extends HeadTrainData {
  realImages: number;
  localImages: number;
  /** Anomalous cells per defect kind. */
  localByKind: Record<string, number>;
}

/**
 * Embeds the training images (real patches) and, for every `localEvery`-th of them, a copy with one
 * synthetic defect (its covered cells as local anomalies). Images are read one at a time.
 */
export async function headTrainingData(
  extractor: FeatureExtractor,
  sources: ImageSource[],
  options: {
    seed: number;
    /** Defective copies to make, spread over the training images (0 = none). */
    localImages: number;
    /** Real patches kept per image, a seeded sample (default REAL_PER_IMAGE). */
    realPerImage?: number;
    limits?: DecodeLimits;
    onProgress?: (done: number, total: number) => void;
  },
): Promise<HeadData> {
  const view = extractor.options.view;
  const real: Float32Array[] = [];
  const local: Float32Array[] = [];
  const localByKind: Record<string, number> = {};
  const every = options.localImages > 0 ? sources.length / Math.min(options.localImages, sources.length) : 0;
  const picked = new Set(
    every > 0
      ? Array.from({ length: Math.min(options.localImages, sources.length) }, (_, i) => Math.floor(i * every))
      : [],
  );
  let dim = 0;
  let previous: RgbImage | undefined;
  let turn = 0;
  for (const [i, source] of sources.entries()) {
    const image = await decodeImage(await source.read(), options.limits ?? DEFAULT_DECODE_LIMITS);
    const embedding = await extractor.embed(image);
    dim = embedding.dim;
    real.push(sampleRows(embedding.vectors, dim, options.realPerImage ?? REAL_PER_IMAGE, options.seed + i));
    if (picked.has(i)) {
      const donor =
        previous && previous.width === image.width && previous.height === image.height ? previous : undefined;
      const rng = Rng.of(options.seed, 'head-local', i);
      const defect = injectAnyKind(image, turn++, rng, donor);
      if (defect) {
        const damaged = await extractor.embed(defect.image);
        const coverage = await cellCoverage(defect.mask, image.width, image.height, view, damaged);
        const rows = [...coverage.keys()].filter((c) => coverage[c] >= LOCAL_COVERAGE);
        const out = new Float32Array(rows.length * dim);
        rows.forEach((c, j) => out.set(damaged.vectors.subarray(c * dim, (c + 1) * dim), j * dim));
        local.push(out);
        localByKind[defect.kind] = (localByKind[defect.kind] ?? 0) + rows.length;
      }
    }
    previous = image;
    options.onProgress?.(i + 1, sources.length);
  }
  return {
    real: concat(real),
    local: local.length > 0 ? concat(local) : new Float32Array(0),
    dim,
    realImages: sources.length,
    localImages: local.length,
    localByKind,
  };
}

/** `keep` rows of `vectors` (all when there are fewer), seeded, in their order. */
function sampleRows(vectors: Float32Array, dim: number, keep: number, seed: number): Float32Array {
  const rows = vectors.length / dim;
  if (rows <= keep) return vectors;
  const out = new Float32Array(keep * dim);
  sampleIndices(rows, keep, seed).forEach((r, j) =>
    out.set(vectors.subarray(r * dim, (r + 1) * dim), j * dim),
  );
  return out;
}

function injectAnyKind(image: RgbImage, turn: number, rng: Rng, donor?: RgbImage) {
  const sizes = defectSizeRange(image.width, image.height);
  for (let k = 0; k < SYNTHETIC_DEFECT_KINDS.length; k++) {
    const kind = SYNTHETIC_DEFECT_KINDS[(turn + k) % SYNTHETIC_DEFECT_KINDS.length];
    try {
      return injectSyntheticDefect(image, kind, rng, { ...sizes, donor });
    } catch {
      // This kind cannot show on this image (a blur on a flat area): the next one.
    }
  }
  return undefined;
}

/**
 * The fraction of each embedding cell (tile after tile, row-major) that a 0/255 image mask covers,
 * with the mask taken through the same view (resize, crop, mirror padding) as the image.
 */
export async function cellCoverage(
  mask: Uint8Array,
  width: number,
  height: number,
  view: ViewConfig,
  embedding: Pick<ImageEmbedding, 'tiles' | 'gridWidth' | 'gridHeight'>,
): Promise<Float32Array> {
  const grey = Buffer.alloc(width * height * 3);
  for (let p = 0; p < mask.length; p++) if (mask[p]) grey.fill(255, p * 3, p * 3 + 3);
  const canvas = reflectPad(await toCanvas({ data: grey, width, height }, view), view.pad ?? 0);
  const { gridWidth: gw, gridHeight: gh } = embedding;
  const out = new Float32Array(embedding.tiles.length * gw * gh);
  embedding.tiles.forEach((tile, t) => {
    for (let cy = 0; cy < gh; cy++) {
      const y0 = tile.top + Math.floor((cy * tile.height) / gh);
      const y1 = tile.top + Math.floor(((cy + 1) * tile.height) / gh);
      for (let cx = 0; cx < gw; cx++) {
        const x0 = tile.left + Math.floor((cx * tile.width) / gw);
        const x1 = tile.left + Math.floor(((cx + 1) * tile.width) / gw);
        let on = 0;
        for (let y = y0; y < y1; y++)
          for (let x = x0; x < x1; x++) if (canvas.data[(y * canvas.width + x) * 3] > 127) on++;
        out[(t * gh + cy) * gw + cx] = on / Math.max(1, (y1 - y0) * (x1 - x0));
      }
    }
  });
  return out;
}

/** The synthetic validation set, embedded once: each item's patches and map geometry. */
export interface EmbeddedValidation {
  items: ValidationItem[];
  embeddings: ImageEmbedding[];
  gridMasks: Uint8Array[];
}

export async function embedValidation(
  extractor: FeatureExtractor,
  goods: { name: string; image: RgbImage }[],
  seed: number,
): Promise<EmbeddedValidation> {
  const items = buildValidationSet(goods, { seed });
  const embeddings: ImageEmbedding[] = [];
  for (const item of items) embeddings.push(await extractor.embed(item.image));
  const gridMasks = items.map((v) => maskToGrid(v.mask, v.image.width, v.image.height));
  return { items, embeddings, gridMasks };
}

/** Maps of the validation items under `score` (patch scores mapped as an inspection maps them). */
export function validationMaps(
  v: EmbeddedValidation,
  meta: Pick<BankMeta, 'view' | 'score'>,
  score: RowScorer,
): Float32Array[] {
  return v.items.map((item, i) => {
    const scores = score(v.embeddings[i].vectors);
    return scorePatches(meta as BankMeta, v.embeddings[i], scores, item.image, Infinity).map;
  });
}

/** The selector's ranking score of maps on the validation set: mean of image and pixel AUROC. */
export function validationScore(
  v: EmbeddedValidation,
  maps: Float32Array[],
): { imageAuroc: number; pixelAuroc: number; score: number } {
  const labels = v.items.map((i) => i.label);
  const imageAuroc = rocAuc(maps.map(maxOf), labels);
  const gridMaps = v.items.map((item, i) => {
    const g = metricGrid(item.image.width, item.image.height);
    const e = v.embeddings[i];
    const w = e.canvasWidth - 2 * (e.pad ?? 0);
    const h = e.canvasHeight - 2 * (e.pad ?? 0);
    return resampleBilinear(maps[i], w, h, g.width, g.height);
  });
  const pix = pixelAuroc(gridMaps, v.gridMasks);
  return { imageAuroc, pixelAuroc: pix, score: (imageAuroc + pix) / 2 };
}
