/**
 * Scoring candidates on the synthetic validation set. A BaseTrial owns one base (backbone, stages,
 * view): it embeds each image once and keeps the embeddings, so a later rung with more training
 * images only embeds the new ones, and every configuration that uses the base (alone, fused, with
 * or without the reference) reuses its searches. Configurations are then pure map arithmetic.
 */
import { DEFAULT_SCORE, BankMeta } from '../bank/bank-meta';
import { CoresetConfig, coresetSize, selectCoreset } from '../coreset/coreset';
import { Rng } from '../synth/prng';
import { RgbImage } from '../image/decode';
import {
  AUTO_HNSW_MIN_ROWS,
  DEFAULT_KNN,
  INDEX_PRESETS,
  KnnIndex,
  parseFactory,
  resolveKnn,
} from '../knn/index';
import { rocAuc, pixelAuroc } from '../eval/metrics';
import { maxOf, patchScores } from '../score/anomaly-map';
import { FeatureExtractor, ImageEmbedding, concat } from '../patchcore/feature-extractor';
import { LocalSearcher } from '../patchcore/fit';
import { fuseMaps, pixelStats } from '../patchcore/fusion';
import { scorePatches, searchCells } from '../patchcore/inspector';
import { distinctCells } from '../patchcore/shared-cells';
import { BaseCandidate, Configuration } from './candidates';
import type { ValidationItem } from './validation-set';
import { gatherRows } from '../util/rows';

/** A fixed bank size scaled to `images` of `finalImages` (ratios scale by themselves). */
export function rungCoreset(coreset: CoresetConfig, images: number, finalImages: number): CoresetConfig {
  if (!(coreset.size > 0) || images >= finalImages) return coreset;
  return { ...coreset, size: Math.max(MIN_RUNG_BANK, Math.round((coreset.size * images) / finalImages)) };
}

/** Smallest bank a rung builds (a few patches per image would rank by noise). */
const MIN_RUNG_BANK = 64;

/** Pixel AUROC is measured on one grid for every candidate, so canvases of any size compare fairly. */
export const METRIC_GRID = 256;

export interface BaseRun {
  base: BaseCandidate;
  bankPatches: number;
  /** Raw patch scores of each validation item (no reference), and the geometry to map them. */
  grids: Float32Array[];
  geometry: Omit<ImageEmbedding, 'vectors'>[];
  embedMsPerImage: number;
}

export class BaseTrial {
  private train: ImageEmbedding[] = [];
  private validation = new Map<ValidationItem, ImageEmbedding>();
  /** Fastest per-image embedding time of any batch: a busy machine must not price a view out. */
  private embedMs = Infinity;

  constructor(
    readonly base: BaseCandidate,
    private readonly extractor: FeatureExtractor,
  ) {}

  /**
   * Bank from the first `trainPool.length` images, then every validation image searched in it.
   * `finalImages`: the training images the real bank will have. A fixed-size bank (many-patch
   * views) is scaled down to keep as many patches per image as the final one will: a bank of 8000
   * from 8 images is 25 times denser than one of 8000 from 200, and would judge the view by a
   * coverage it never gets.
   */
  async run(
    trainPool: RgbImage[],
    validation: ValidationItem[],
    finalImages = trainPool.length,
  ): Promise<BaseRun> {
    this.train.push(...(await this.embedAll(trainPool.slice(this.train.length))));
    const missing = validation.filter((v) => !this.validation.has(v));
    const embedded = await this.embedAll(missing.map((v) => v.image));
    missing.forEach((v, i) => this.validation.set(v, embedded[i]));
    const queries = validation.map((v) => this.validation.get(v)!);
    const dim = this.train[0].dim;
    const all = concat(this.train.map((e) => e.vectors));
    const keep = selectCoreset(
      all,
      dim,
      rungCoreset(this.base.coreset, trainPool.length, finalImages),
      undefined,
      this.train.map((e) => e.vectors.length / dim),
    );
    const index = KnnIndex.build(gatherRows(all, dim, keep), dim, { factory: 'Flat' });
    const grids: Float32Array[] = [];
    // Searched as the fitted bank's inspections will search (each place of a tiled view once).
    const searcher = new LocalSearcher(index);
    for (const e of queries) {
      const knn = await searchCells(searcher, e, { ...DEFAULT_SCORE, k: 1 });
      grids.push(patchScores(knn.distances, knn.k, 1));
    }
    return {
      base: this.base,
      bankPatches: keep.length,
      grids,
      geometry: queries.map(({ vectors: _, ...g }) => g),
      embedMsPerImage: this.embedMs,
    };
  }

  /**
   * A trial of `base` (the same backbone, stages and view with another bank) that shares these
   * embeddings, so trying a smaller bank costs a coreset and the searches, no embedding.
   */
  sharing(base: BaseCandidate): BaseTrial {
    if (
      base.model !== this.base.model ||
      base.viewLabel !== this.base.viewLabel ||
      base.stages.join() !== this.base.stages.join()
    )
      throw new Error(`${base.key} cannot share the embeddings of ${this.base.key}`);
    const trial = new BaseTrial(base, this.extractor);
    trial.train = this.train;
    trial.validation = this.validation;
    trial.embedMs = this.embedMs;
    return trial;
  }

  /** Patches a bank of `images` training images would keep with this base's coreset. */
  bankPatchesFor(images: number): number {
    const perImage = this.train[0] ? this.train[0].vectors.length / this.train[0].dim : 0;
    return coresetSize(images * perImage, this.base.coreset);
  }

  private async embedAll(images: RgbImage[]): Promise<ImageEmbedding[]> {
    const out: ImageEmbedding[] = [];
    for (let i = 0; i < images.length; i += 8) out.push(...(await this.embed(images.slice(i, i + 8))));
    return out;
  }

  private async embed(images: RgbImage[]): Promise<ImageEmbedding[]> {
    const clock = startClock();
    const out = await this.extractor.embedMany(images);
    if (images.length > 0) this.embedMs = Math.min(this.embedMs, clock() / images.length);
    return out;
  }
}

export interface ConfigurationScore {
  imageAuroc: number;
  pixelAuroc: number;
  /** What the selector ranks by: the mean of the two (the verdict and where the defect is). */
  score: number;
  /** Predicted inspection cost with the full bank: embedding plus search scaled to its size. */
  msPerImage: number;
}

/**
 * The validation items' maps and image scores under one configuration: each member's patch
 * scores (minus the leave-one-out reference when it has one) mapped as an inspection would; fused
 * members standardised by their good items' map pixels and averaged, as fused banks do.
 */
export function configurationMaps(
  config: Configuration,
  runs: Map<string, BaseRun>,
  validation: ValidationItem[],
): { maps: Float32Array[]; scores: number[]; width: number[]; height: number[] } {
  const memberMaps = config.members.map((m) => {
    const run = runs.get(m.key);
    if (!run) throw new Error(`no run for ${m.key}`);
    const grids = config.reference ? lessReference(run.grids, validation) : run.grids;
    const meta = { view: m.view, score: DEFAULT_SCORE } as BankMeta;
    return grids.map(
      (g, i) =>
        scorePatches(meta, run.geometry[i], g, validation[i].image, Infinity) as { map: Float32Array },
    );
  });
  const first = memberMaps[0];
  const width = first.map((_, i) => mapSizeOf(runs.get(config.members[0].key)!, i).width);
  const height = first.map((_, i) => mapSizeOf(runs.get(config.members[0].key)!, i).height);
  if (memberMaps.length === 1) {
    const maps = first.map((r) => r.map);
    return { maps, scores: maps.map(maxOf), width, height };
  }
  // Standardised on the good items' maps, as fitFused does on its held-out maps.
  const members = memberMaps.map((ms) => ({
    weight: 1,
    ...pixelStats(ms.filter((_, i) => isNominal(validation[i])).map((r) => r.map)),
  }));
  const maps = first.map((_, i) => fuseMaps(members, (j) => memberMaps[j][i].map));
  return { maps, scores: maps.map(maxOf), width, height };
}

export function scoreConfiguration(
  config: Configuration,
  runs: Map<string, BaseRun>,
  validation: ValidationItem[],
  gridMasks: Uint8Array[],
  /** Patches each base's bank will hold when fitted on all training images. */
  finalBankPatches: (base: BaseCandidate) => number,
  /** Search speed on this machine (calibrateSearch). */
  rates: SearchRates,
): ConfigurationScore {
  const { maps, scores, width, height } = configurationMaps(config, runs, validation);
  const judged = validation.map((v, i) => i).filter((i) => !validation[i].referenceOnly);
  const imageAuroc = rocAuc(
    judged.map((i) => scores[i]),
    judged.map((i) => validation[i].label),
  );
  // Pixel AUROC over the defective items and the good ones (their pixels are all negatives).
  const items = [
    ...judged.filter((i) => validation[i].label === 1),
    ...judged.filter((i) => validation[i].label === 0),
  ];
  const gridMaps = items.map((i) => {
    const g = metricGrid(validation[i].image.width, validation[i].image.height);
    return resampleBilinear(maps[i], width[i], height[i], g.width, g.height);
  });
  const pix = pixelAuroc(
    gridMaps,
    items.map((i) => gridMasks[i]),
  );
  const msPerImage = config.members.reduce((sum, m) => {
    const run = runs.get(m.key)!;
    const g = run.geometry[0];
    // The places searched: a tiled view's overlaps are searched once (patchcore/shared-cells.ts).
    const queries = distinctCells(g)?.searched.length ?? g.tiles.length * g.gridHeight * g.gridWidth;
    return sum + run.embedMsPerImage + searchCostMs(queries, finalBankPatches(m), g.dim, rates);
  }, 0);
  return {
    imageAuroc,
    pixelAuroc: pix,
    score: (imageAuroc + pix) / 2,
    msPerImage,
  };
}

/** What search costs on this machine (calibrateSearch). */
export interface SearchRates {
  /** Exact (Flat) search: ns per multiply-add of queries x bank rows x width. */
  nsPerMac: number;
  /** The `hnsw` preset's graph search: ns per query, per unit of width, per doubling of the bank. */
  hnswNs: number;
  /** The index the final bank will be built with (`--index`; default `auto`). */
  index?: string;
}

/**
 * Search cost of one image against the final bank as its index will be built (`rates.index`,
 * `auto` by default: Flat below AUTO_HNSW_MIN_ROWS, the `hnsw` preset from there). Flat is priced
 * per multiply-add; an HNSW index by its graph walk, growing with the width and the log of the
 * bank, plus its exact re-rank (the `hnsw` preset: 2 % of the queries, at least 20) at Flat's rate.
 * Other indexes (IVF) are priced as Flat, an upper bound. Timing the rung's small banks and
 * scaling would mostly scale call overhead.
 */
export function searchCostMs(queries: number, bank: number, dim: number, rates: SearchRates): number {
  const flat = (n: number) => (n * bank * dim * rates.nsPerMac) / 1e6;
  const built = parseFactory(resolveKnn({ ...DEFAULT_KNN, factory: rates.index ?? 'auto' }, bank).factory);
  if (!/^HNSW/i.test(built.factory) || !(rates.hnswNs > 0)) return flat(queries);
  const graph = (queries * rates.hnswNs * dim * Math.log2(bank)) / 1e6;
  const reranked = built.rerank > 0 ? Math.min(queries, Math.max(20, Math.ceil(built.rerank * queries))) : 0;
  return graph + flat(reranked);
}

/**
 * Search speed here, on a bank and batch of typical size: Flat's rate per multiply-add, and the
 * `hnsw` preset's per query (the best of three each: what the search costs on this machine, not
 * what else it is doing now).
 */
export async function calibrateSearch(): Promise<SearchRates> {
  const dim = 64;
  const rows = AUTO_HNSW_MIN_ROWS;
  const queries = 4000;
  const rng = Rng.of('calibrate-search');
  // Clustered like patch embeddings (uniform noise would price a graph search at several times
  // what real banks cost: it has no neighbourhoods to follow).
  const centres = Float32Array.from({ length: CALIBRATION_CLUSTERS * dim }, () => rng.float());
  const random = (n: number) => {
    const out = new Float32Array(n * dim);
    for (let i = 0; i < n; i++) {
      const c = Math.floor(rng.float() * CALIBRATION_CLUSTERS) * dim;
      for (let d = 0; d < dim; d++) out[i * dim + d] = centres[c + d] + 0.1 * rng.float();
    }
    return out;
  };
  const bank = random(rows);
  const q = random(queries);
  const best = async (index: KnnIndex) => {
    await index.search(q.subarray(0, 100 * dim), 1); // warm the thread pool
    let ms = Infinity;
    for (let i = 0; i < 3; i++) {
      const clock = startClock();
      await index.search(q, 1);
      ms = Math.min(ms, clock());
    }
    return ms;
  };
  const flatMs = await best(KnnIndex.build(bank, dim, { factory: 'Flat' }));
  const nsPerMac = (flatMs * 1e6) / (queries * rows * dim);
  // The graph part alone (no re-rank): the re-rank is priced at Flat's rate.
  const hnswMs = await best(KnnIndex.build(bank, dim, { factory: GRAPH_ONLY }));
  return { nsPerMac, hnswNs: (hnswMs * 1e6) / (queries * dim * Math.log2(rows)) };
}

const CALIBRATION_CLUSTERS = 256;

/** The `hnsw` preset without its re-rank. */
const GRAPH_ONLY = INDEX_PRESETS.hnsw.replace(/,rerank=[\d.]+/, '');

/**
 * A stopwatch for what work costs this machine, not what else it is doing: the elapsed time, but no
 * more than the process's CPU time over the same span. On an idle machine the two agree or the wall
 * time is the smaller (the work runs on several cores), so nothing changes there; on a machine
 * busy with other work the wall time grows while the CPU time does not, and a candidate is not
 * priced out of the budget by someone else's load (seen: a loaded 2-core machine priced a 448 px
 * whole frame at 4.3 s per image that takes 0.3-0.8 s alone). It assumes the process does nothing
 * else meanwhile, as the selection does.
 */
export function startClock(): () => number {
  const wall = performance.now();
  const cpu = process.cpuUsage();
  return () => {
    const used = process.cpuUsage(cpu);
    return Math.min(performance.now() - wall, (used.user + used.system) / 1000);
  };
}

/** The metric grid of an image: its own size, scaled down so the longer side is METRIC_GRID. */
export function metricGrid(width: number, height: number): { width: number; height: number } {
  const s = Math.min(1, METRIC_GRID / Math.max(width, height));
  return { width: Math.max(1, Math.round(width * s)), height: Math.max(1, Math.round(height * s)) };
}

/** A 0/255 image-size mask on the metric grid: a cell is defective when any of its pixels is. */
export function maskToGrid(mask: Uint8Array | null, width: number, height: number): Uint8Array {
  const g = metricGrid(width, height);
  const out = new Uint8Array(g.width * g.height);
  if (!mask) return out;
  for (let y = 0; y < height; y++) {
    const gy = Math.min(g.height - 1, Math.floor((y * g.height) / height));
    for (let x = 0; x < width; x++)
      if (mask[y * width + x])
        out[gy * g.width + Math.min(g.width - 1, Math.floor((x * g.width) / width))] = 1;
  }
  return out;
}

export function resampleBilinear(
  map: Float32Array,
  w: number,
  h: number,
  outW: number,
  outH: number,
): Float32Array {
  const out = new Float32Array(outW * outH);
  for (let y = 0; y < outH; y++) {
    const sy = Math.min(h - 1, Math.max(0, ((y + 0.5) * h) / outH - 0.5));
    const y0 = Math.floor(sy);
    const y1 = Math.min(h - 1, y0 + 1);
    const fy = sy - y0;
    for (let x = 0; x < outW; x++) {
      const sx = Math.min(w - 1, Math.max(0, ((x + 0.5) * w) / outW - 0.5));
      const x0 = Math.floor(sx);
      const x1 = Math.min(w - 1, x0 + 1);
      const fx = sx - x0;
      const top = map[y0 * w + x0] * (1 - fx) + map[y0 * w + x1] * fx;
      const bottom = map[y1 * w + x0] * (1 - fx) + map[y1 * w + x1] * fx;
      out[y * outW + x] = top * (1 - fy) + bottom * fy;
    }
  }
  return out;
}

/**
 * Each item's grid minus the mean grid of the good items made from *other* good images: the
 * reference never contains the image it judges (as the fit's leave-one-out threshold does).
 */
function lessReference(grids: Float32Array[], validation: ValidationItem[]): Float32Array[] {
  const goods = validation.map((v, i) => i).filter((i) => isNominal(validation[i]));
  const n = grids[goods[0]].length;
  const sum = new Float64Array(n);
  for (const i of goods) for (let p = 0; p < n; p++) sum[p] += grids[i][p];
  return grids.map((g, i) => {
    const own = goods.find((j) => validation[j].source === validation[i].source);
    const count = own === undefined ? goods.length : goods.length - 1;
    const out = new Float32Array(n);
    for (let p = 0; p < n; p++) out[p] = g[p] - (sum[p] - (own === undefined ? 0 : grids[own][p])) / count;
    return out;
  });
}

/**
 * The good images a reference and a fusion's standardisation come from: the held-out good images
 * (source >= 0). Items from elsewhere (source < 0: a labelled test set in a ranking study) never are.
 */
function isNominal(v: ValidationItem): boolean {
  return v.label === 0 && v.source >= 0;
}

/** The unpadded canvas of validation image i: the size of its anomaly map. */
function mapSizeOf(run: BaseRun, i: number): { width: number; height: number } {
  const g = run.geometry[i];
  const pad = g.pad ?? 0;
  return { width: g.canvasWidth - 2 * pad, height: g.canvasHeight - 2 * pad };
}
