/**
 * Inspection of one image against a bank: embed, search (in-process or through the cluster's
 * shards, behind NeighbourSearcher), score, map, regions, verdict.
 */
import { BankMeta } from '../bank/bank-meta';
import {
  DecodeLimits,
  DEFAULT_DECODE_LIMITS,
  DecodeSize,
  RgbImage,
  decodeImage,
  sentSize,
} from '../image/decode';
import { KnnResult } from '../knn/index';
import { DefectRegion, findRegions } from '../score/regions';
import { anomalyMap, maxOf, patchScores } from '../score/anomaly-map';
import { subtractReference } from '../score/reference';
import { FeatureExtractor, ImageEmbedding, decodeSizeFor } from './feature-extractor';
import { reweightWeight } from './reweighting';
import { DistinctCellCache, cellCentres, expandToCells } from './shared-cells';
import { gatherRows } from '../util/rows';
import { SpiError } from '../errors';

/** An image's pixel size, and the size it was sent at when it was resized while decoding. */
export type DecodedSize = Pick<RgbImage, 'width' | 'height' | 'scaledFrom'>;

/** Where the nearest bank patches come from: a local faiss index or the shard cluster. */
export interface NeighbourSearcher {
  /** `deadline`: epoch ms by which the answer is needed (the caller's gRPC deadline), if any. */
  search(queries: Float32Array, dim: number, k: number, deadline?: number): Promise<KnnResult>;
  /**
   * The bank's vectors of these rows (as search labels them), one after another: the re-weighted
   * image score reads its match's neighbourhood. Absent where the bank's rows cannot be read.
   */
  bankRows?(ids: ArrayLike<number>, dim: number, deadline?: number): Promise<Float32Array>;
}

export interface Inspection {
  score: number;
  threshold: number;
  isDefective: boolean;
  regions: DefectRegion[];
  /** Smoothed anomaly map at canvas resolution. */
  map: Float32Array;
  canvasWidth: number;
  canvasHeight: number;
  imageWidth: number;
  imageHeight: number;
  /** Per patch score grid stitched at canvas resolution before smoothing is not kept; raw max is. */
  maxPatchScore: number;
  timingsMs: { decode: number; embed: number; search: number; score: number };
}

export class Inspector {
  constructor(
    readonly meta: BankMeta,
    private readonly extractor: FeatureExtractor,
    private readonly searcher: NeighbourSearcher,
    readonly limits: DecodeLimits = DEFAULT_DECODE_LIMITS,
  ) {
    if (extractor.backbone.id !== meta.model.id) {
      throw new SpiError(
        'FAILED_PRECONDITION',
        `bank ${meta.name} v${meta.version} was built with backbone ${meta.model.id}, not ${extractor.backbone.id}`,
      );
    }
  }

  /** The same bank, backbone and search, scored with other settings (benches, comparisons). */
  withScore(score: Partial<BankMeta['score']>): Inspector {
    const meta = { ...this.meta, score: { ...this.meta.score, ...score } };
    return new Inspector(meta, this.extractor, this.searcher, this.limits);
  }

  inspectBytes(bytes: Uint8Array, threshold?: number, deadline?: number): Promise<Inspection> {
    return inspectDecoded(
      bytes,
      this.limits,
      (image) => this.inspectImage(image, threshold, deadline),
      this.decodeSize,
    );
  }

  /** What this inspector's images are decoded to: its extractor's canvas (feature-extractor.ts). */
  get decodeSize(): DecodeSize | undefined {
    return decodeSizeFor(this.extractor);
  }

  async inspectImage(image: RgbImage, threshold?: number, deadline?: number): Promise<Inspection> {
    const { embedding, knn, embedMs, searchMs } = await this.search(image, deadline);
    const t2 = performance.now();
    const limit = threshold ?? this.meta.threshold.value;
    let result = scoreEmbedding(this.meta, embedding, knn, image, limit);
    if (this.meta.score.imageScore === 'reweighted')
      result = await this.reweighted(result, embedding, knn, image, limit, deadline);
    result.timingsMs = { decode: 0, embed: embedMs, search: searchMs, score: performance.now() - t2 };
    return result;
  }

  /** `--image-score reweighted` (score/reweight.ts): the top patch's score times its weight. */
  private async reweighted(
    result: Inspection,
    embedding: ImageEmbedding,
    knn: KnnResult,
    image: DecodedSize,
    threshold: number,
    deadline?: number,
  ): Promise<Inspection> {
    const scores = patchScores(knn.distances, knn.k, this.meta.score.k);
    const top = scores.indexOf(result.maxPatchScore);
    const dim = embedding.dim;
    const query = Float32Array.from(embedding.vectors.subarray(top * dim, (top + 1) * dim));
    const match = Number(knn.labels[top * knn.k]);
    const around = this.meta.score.reweightAround ?? 'query';
    const weight = await reweightWeight(this.searcher, around, query, match, deadline);
    // The map in the score's units, so its regions are cut at the same threshold.
    const map = Float32Array.from(result.map, (v) => v * weight);
    const { canvasWidth: w, canvasHeight: h } = result;
    return verdict(
      this.meta,
      map,
      w,
      h,
      weight * result.maxPatchScore,
      result.maxPatchScore,
      image,
      threshold,
    );
  }

  /** Embedding and nearest bank patches of an image, before any scoring (the fit's held-out pass). */
  async search(image: RgbImage, deadline?: number) {
    const t0 = performance.now();
    const embedding = await this.extractor.embed(image);
    const t1 = performance.now();
    const knn = await searchCells(this.searcher, embedding, this.meta.score, deadline);
    return { embedding, knn, embedMs: t1 - t0, searchMs: performance.now() - t1 };
  }
}

/** Plans by tile layout, shared by every inspection in the process (one per view served). */
const SHARED_PLANS = new DistinctCellCache();

/**
 * Every cell's nearest bank patches, as the bank's score settings want them: with `sharedCells`
 * interior (shared-cells.ts), a place overlapping tiles share is searched once and its answer
 * copied to the other cells. For whoever scores an embedding outside an Inspector.
 */
export async function searchCells(
  searcher: NeighbourSearcher,
  embedding: ImageEmbedding,
  score: Pick<BankMeta['score'], 'k' | 'sharedCells'>,
  deadline?: number,
): Promise<KnnResult> {
  const { dim } = embedding;
  const plan = score.sharedCells === 'interior' ? SHARED_PLANS.get(embedding) : undefined;
  if (!plan) return searcher.search(embedding.vectors, dim, score.k, deadline);
  const knn = await searcher.search(
    gatherRows(embedding.vectors, dim, plan.searched),
    dim,
    score.k,
    deadline,
  );
  return expandToCells(knn, plan.rowOf);
}

/**
 * Decodes `bytes` within `limits` (straight to the canvas size `sizeFor` gives, where given), then
 * inspects the image with `inspect`; the answer's decode time is what the whole took beyond the
 * inspection's own stages.
 */
export async function inspectDecoded(
  bytes: Uint8Array,
  limits: DecodeLimits,
  inspect: (image: RgbImage) => Promise<Inspection>,
  sizeFor?: DecodeSize,
): Promise<Inspection> {
  const t0 = performance.now();
  const image = await decodeImage(bytes, limits, sizeFor);
  const result = await inspect(image);
  result.timingsMs.decode = performance.now() - t0 - sumTimings(result.timingsMs);
  return result;
}

/** Patch distances -> anomaly map, image score, regions and verdict. */
export function scoreEmbedding(
  meta: BankMeta,
  embedding: ImageEmbedding,
  knn: KnnResult,
  image: DecodedSize,
  threshold: number,
): Inspection {
  const scores = patchScores(knn.distances, knn.k, meta.score.k);
  if (meta.reference) subtractReference(scores, meta.reference);
  return scorePatches(meta, embedding, scores, image, threshold);
}

/** Final patch scores (reference already subtracted) -> map, image score, regions and verdict. */
export function scorePatches(
  meta: BankMeta,
  embedding: Omit<ImageEmbedding, 'vectors'>,
  scores: Float32Array,
  image: DecodedSize,
  threshold: number,
): Inspection {
  const perTile = embedding.gridHeight * embedding.gridWidth;
  const grids = embedding.tiles.map((_, t) => scores.subarray(t * perTile, (t + 1) * perTile));
  const { canvasWidth: pw, canvasHeight: ph } = embedding;
  const padded = anomalyMap(
    grids,
    embedding.gridHeight,
    embedding.gridWidth,
    embedding.tiles,
    pw,
    ph,
    meta.score.sigma,
    embedding.placement,
  );
  // The map of the mirrored border is dropped: it shows no pixel of the image.
  const pad = embedding.pad ?? 0;
  const w = pw - 2 * pad;
  const h = ph - 2 * pad;
  const map = pad > 0 ? cropMap(padded, pw, pad, w, h) : padded;
  // With a mirrored border, only cells that sit mostly on the image count: the others look at the
  // mirror image of the frame's edge, not at a part of the product.
  const maxPatchScore = pad > 0 ? maxInsideBorder(grids, embedding, pad, w, h) : maxOf(scores);
  const score = meta.score.imageScore === 'patch-max' ? maxPatchScore : maxOf(map);
  return verdict(meta, map, w, h, score, maxPatchScore, image, threshold);
}

/** A finished anomaly map and image score -> regions (in image pixels) and verdict. */
export function verdict(
  meta: Pick<BankMeta, 'view'>,
  map: Float32Array,
  w: number,
  h: number,
  score: number,
  maxPatchScore: number,
  decoded: DecodedSize,
  threshold: number,
): Inspection {
  const isDefective = score >= threshold;
  // Regions in the pixels of the image as sent; with a centre crop the canvas maps to the cropped window.
  const image = sentSize(decoded);
  const toImage = canvasToImage(meta, image.width, image.height, w, h);
  let regions = findRegions(map, w, h, threshold, toImage);
  // The verdict can rest on a peak just at the threshold: still say where it is.
  if (isDefective && regions.length === 0) regions = findRegions(map, w, h, score * 0.9, toImage);
  return {
    score,
    threshold,
    isDefective,
    regions,
    map,
    canvasWidth: w,
    canvasHeight: h,
    imageWidth: image.width,
    imageHeight: image.height,
    maxPatchScore,
    timingsMs: { decode: 0, embed: 0, search: 0, score: 0 },
  };
}

/** Largest patch score among cells whose centre lies strictly inside the unpadded canvas. */
function maxInsideBorder(
  grids: Float32Array[],
  embedding: Omit<ImageEmbedding, 'vectors'>,
  pad: number,
  w: number,
  h: number,
): number {
  const { gridWidth: gw, gridHeight: gh, placement } = embedding;
  let best = -Infinity;
  embedding.tiles.forEach((tile, t) => {
    const xs = cellCentres(gw, tile.width, placement?.x).map((c) => c + tile.left);
    const ys = cellCentres(gh, tile.height, placement?.y).map((c) => c + tile.top);
    for (let y = 0; y < gh; y++) {
      if (!(ys[y] > pad && ys[y] < pad + h)) continue;
      for (let x = 0; x < gw; x++)
        if (xs[x] > pad && xs[x] < pad + w) best = Math.max(best, grids[t][y * gw + x]);
    }
  });
  return best === -Infinity ? Math.max(...grids.map(maxOf)) : best;
}

function cropMap(map: Float32Array, width: number, pad: number, w: number, h: number): Float32Array {
  const out = new Float32Array(w * h);
  for (let y = 0; y < h; y++)
    out.set(map.subarray((y + pad) * width + pad, (y + pad) * width + pad + w), y * w);
  return out;
}

function canvasToImage(
  meta: Pick<BankMeta, 'view'>,
  imageW: number,
  imageH: number,
  canvasW: number,
  canvasH: number,
) {
  const { resize, crop } = meta.view;
  const fullW = resize > 0 ? resize : canvasW;
  const fullH = resize > 0 ? resize : canvasH;
  const scaleX = imageW / fullW;
  const scaleY = imageH / fullH;
  const offX = crop > 0 ? ((fullW - canvasW) >> 1) * scaleX : 0;
  const offY = crop > 0 ? ((fullH - canvasH) >> 1) * scaleY : 0;
  return { scaleX, scaleY, offsetX: offX, offsetY: offY };
}

function sumTimings(t: Inspection['timingsMs']): number {
  return t.embed + t.search + t.score;
}
