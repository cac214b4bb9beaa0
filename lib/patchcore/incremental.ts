/**
 * Incremental banks: the next version of a bank from the current one plus new good images, without
 * re-embedding the old images (they are not even needed). The new images are embedded, their patches
 * go through the outlier filter (against the other new images and the bank) and a streaming greedy
 * update of the coreset (coreset.ts `extendCoreset`): each new pick is the new patch farthest from the
 * bank and the picks so far, the bank growing by its own kept/input ratio of the new patches. The
 * version's metadata lists what was added (`additions`).
 *
 * Recalibration. A bank keeps no held-out image (only their scores, and a reference's mean and
 * count), so the held-out images that are rescored against the grown bank are the new images' held-out
 * part, or a threshold folder given for the purpose. The threshold: the held-out scores pooled with the
 * old bank's recorded ones (those can only fall as the bank grows, so the pooled threshold errs on the
 * side of fewer false alarms). A nominal reference: the new held-out images' patch scores pooled with
 * the old reference weighted by its count (score/reference.ts `referenceFrom`, the old part likewise
 * an upper bound), and their image scores taken against it leave-one-out, as a full fit does. A
 * threshold folder replaces both from scratch. With no held-out image (a few sheets), both are kept.
 */
import { BankMeta, categoryOfSource } from '../bank/bank-meta';
import { sha256 } from '../bank/bank-store';
import { CoresetConfig, CoresetSelection, coresetProjector, extendCoreset } from '../coreset/coreset';
import { ChunkPlan, MemoryBudget, planChunks } from './memory-budget';
import { DEFAULT_OUTLIER_FILTER, OutlierFilterConfig } from '../coreset/outliers';
import { DecodeLimits, DEFAULT_DECODE_LIMITS } from '../image/decode';
import { KnnIndex } from '../knn/index';
import { Threshold, thresholdFromNominal } from '../threshold/threshold';
import { invalid } from '../errors';
import { FeatureExtractor, concat, decodeSizeFor } from './feature-extractor';
import {
  DEFAULT_FIT,
  FitProgress,
  FittedBank,
  ImageSource,
  LocalSearcher,
  completeMeta,
  decodeNamed,
  outlierMeta,
  referenceAndScores,
  scoresByCategory,
  splitHoldout,
} from './fit';
import { Inspector } from './inspector';
import { gatherRows } from '../util/rows';

/** Fewer new images than this are all added to the bank, none held back for the threshold. */
export const MIN_HOLDOUT_IMAGES = 10;

export interface AddOptions {
  /** Good images for the threshold, scored from scratch (default: hold back part of the new images). */
  thresholdImages?: ImageSource[];
  /** Fraction of the new images held back for the threshold (default DEFAULT_FIT's). */
  holdoutFraction?: number;
  /** Outlier filter for the new patches (default: the one the bank was built with, if any). */
  outliers?: OutlierFilterConfig;
  /** Recorded in the addition (e.g. "operator feedback"). */
  reason?: string;
  /** Hold only as many new patches at once as fit this budget (spi fit --add --max-memory). */
  memory?: MemoryBudget;
  /** The new version's number (default: the bank's + 1; a cluster numbers past every version it has). */
  version?: number;
  limits?: DecodeLimits;
  onProgress?: FitProgress;
}

/** The new images: those that grow the bank, and those that recalibrate it (a fused bank's members share one). */
export interface AdditionSplit {
  train: ImageSource[];
  holdout: ImageSource[];
  /** The held-out images are a threshold folder: recalibrate from them alone, not pooled. */
  fromScratch: boolean;
}

/**
 * Before anything is embedded: there is something to add, and in a unified bank every new image
 * names its product by its first folder ("labels/0001.png"), as the bank's own images do: each
 * product's threshold is recalibrated on its own held-out images. A discriminator head is carried
 * into the new version by the callers (lib/head/head-growth.ts).
 */
export function checkAddition(metas: Pick<BankMeta, 'categories' | 'name'>[], images: ImageSource[]) {
  if (images.length === 0) throw invalid('no new good images to add');
  for (const meta of metas) {
    if (meta.categories.length < 2) continue;
    const stray = images.find((im) => !categoryOfSource(im.path, meta.categories));
    if (stray)
      throw invalid(
        `image "${stray.path}" is not under a category folder of the unified bank ${meta.name} ` +
          `(${meta.categories.join(', ')}/...): name each new image <category>/<file>`,
      );
  }
}

/**
 * Which new images are held back: part of them when the bank recalibrates anything (an automatic
 * threshold, a reference, a fused bank's standardisation) and there are enough, or a threshold folder.
 */
export function splitAddition(
  images: ImageSource[],
  options: AddOptions,
  recalibrates: boolean,
): AdditionSplit {
  const fromScratch = (options.thresholdImages?.length ?? 0) > 0;
  // A few sheets (an operator's false alarms) all go into the bank: holding one back would leave
  // out the very sheet the bank must learn, and one score recalibrates nothing.
  const holdBack = recalibrates && (images.length >= MIN_HOLDOUT_IMAGES || fromScratch);
  const split = splitHoldout(
    images,
    {
      ...DEFAULT_FIT,
      name: '',
      holdoutFraction: options.holdoutFraction ?? DEFAULT_FIT.holdoutFraction,
      // Any manual value: splitHoldout then holds nothing back.
      threshold: holdBack ? undefined : 0,
    },
    options.thresholdImages,
  );
  return { ...split, fromScratch };
}

export async function addToBank(
  extractor: FeatureExtractor,
  base: { meta: BankMeta; vectors: Float32Array },
  images: ImageSource[],
  options: AddOptions = {},
): Promise<FittedBank> {
  checkAddition([base.meta], images);
  const recalibrates = base.meta.threshold.method === 'nominal' || !!base.meta.reference;
  return growBank(extractor, base, splitAddition(images, options, recalibrates), options);
}

/**
 * The bank grown by the split's training images and recalibrated on its held-out ones. `maps` gets
 * the held-out maps as the new threshold saw them (a fused bank standardises its members by them);
 * with it, the held-out images are scored even under a manual threshold.
 */
export async function growBank(
  extractor: FeatureExtractor,
  base: { meta: BankMeta; vectors: Float32Array },
  split: AdditionSplit,
  options: AddOptions = {},
  maps?: Float32Array[],
): Promise<FittedBank> {
  const grown = await extendBank(extractor, base, split, options);
  Object.assign(grown.meta, await recalibrate(grown, base.meta, extractor, split, options, maps));
  return grown;
}

/**
 * The bank's rows plus the new images' picks, its index, and its metadata with the addition. Under a
 * memory budget (`options.memory`) the new images go in chunks that fit it: each chunk's patches
 * extend the bank as it stands after the chunks before (the same streaming greedy, chunk after
 * chunk), so only one chunk's patches are held however many images are added.
 */
async function extendBank(
  extractor: FeatureExtractor,
  base: { meta: BankMeta; vectors: Float32Array },
  split: AdditionSplit,
  options: AddOptions,
): Promise<FittedBank> {
  const { meta: old } = base;
  const dim = old.vectors.dim;
  const limits = options.limits ?? DEFAULT_DECODE_LIMITS;
  const sources: { path: string; sha256: string }[] = [];
  const coreset = coresetOf(old.coreset);
  const filter = options.outliers ?? (old.outliers ? pickFilter(old.outliers) : undefined);
  let vectors = base.vectors;
  let freshRows = 0;
  let picked = 0;
  const filtered: NonNullable<CoresetSelection['outliers']>[] = [];
  let chunk: Float32Array[] = [];
  let held = 0;
  let plan: ChunkPlan | undefined;
  let chunks = 0;
  const extend = () => {
    const fresh = concat(chunk);
    const groups = chunk.map((p) => p.length / dim);
    chunk = [];
    held = 0;
    const rows = fresh.length / dim;
    const selection = extendCoreset(
      vectors,
      fresh,
      dim,
      coreset,
      newPicks(old.coreset, rows),
      filter,
      (d, t) => options.onProgress?.('coreset', d, t),
      groups,
    );
    vectors = concat([vectors, gatherRows(fresh, dim, selection.rows)]);
    freshRows += rows;
    picked += selection.rows.length;
    chunks++;
    if (selection.outliers) filtered.push(selection.outliers);
  };
  for (const [i, source] of split.train.entries()) {
    const bytes = await source.read();
    sources.push({ path: source.path, sha256: sha256(bytes) });
    const image = await decodeNamed(source.path, bytes, limits, decodeSizeFor(extractor));
    const embedding = await extractor.embed(image);
    if (embedding.dim !== dim)
      throw invalid(`image "${source.path}" embeds to width ${embedding.dim}, the bank's is ${dim}`);
    const rows = embedding.vectors.length / dim;
    if (options.memory && !plan) {
      // Planned on the first image (a job's images share their size): the bank as it will be, and
      // what the process holds besides the bank and this image's patches.
      const budget = options.memory;
      const resident =
        budget.residentBytes ?? process.memoryUsage().rss - vectors.byteLength - embedding.vectors.byteLength;
      const m = vectors.length / dim + newPicks(old.coreset, rows * split.train.length);
      const reference = filter && filter.fraction > 0 ? filter.reference : 0;
      plan = planChunks(budget, resident, m, dim, coresetProjector(dim, coreset).d, rows, reference);
    }
    if (plan && chunk.length > 0 && held + rows > plan.chunkRows) extend();
    chunk.push(embedding.vectors);
    held += rows;
    options.onProgress?.('embed', i + 1, split.train.length);
  }
  if (chunk.length === 0) throw invalid('every new image was held back for the threshold: add more images');
  extend();
  const index = KnnIndex.build(vectors, dim, old.knn);
  const version = options.version ?? old.version + 1;
  const createdAt = new Date().toISOString();
  const added = outlierMeta({ outliers: mergeFiltered(filtered) }, filter, sources).outliers;
  const meta: FittedBank['meta'] = {
    ...withoutStored(old),
    version,
    createdAt,
    coreset: {
      ...old.coreset,
      inputPatches: old.coreset.inputPatches + freshRows,
      keptPatches: vectors.length / dim,
    },
    sources: [...old.sources, ...sources],
    additions: [
      ...(old.additions ?? []),
      {
        version,
        createdAt,
        images: sources.map((s) => s.path),
        heldOut: split.fromScratch ? [] : split.holdout.map((s) => s.path),
        inputPatches: freshRows,
        keptPatches: picked,
        ...(plan
          ? {
              memory: {
                maxBytes: options.memory!.maxBytes,
                residentBytes: plan.residentBytes,
                chunkRows: plan.chunkRows,
                candidates: freshRows,
                chunks,
                spilled: false,
                spilledBytes: 0,
              },
            }
          : {}),
        ...(options.reason ? { reason: options.reason } : {}),
        ...(added ? { outliers: added } : {}),
      },
    ],
  };
  return { meta, vectors, dim, index };
}

/**
 * The grown bank's threshold and reference from the held-out images scored against it (the module
 * comment says what is pooled with what); a manual threshold stays.
 */
async function recalibrate(
  grown: FittedBank,
  old: BankMeta,
  extractor: FeatureExtractor,
  split: AdditionSplit,
  options: AddOptions,
  maps?: Float32Array[],
): Promise<Pick<BankMeta, 'threshold' | 'thresholdByCategory' | 'reference'>> {
  const manual = old.threshold.method !== 'nominal';
  const limits = options.limits ?? DEFAULT_DECODE_LIMITS;
  const inspector = new Inspector(
    completeMeta(grown.meta, grown.dim, grown.index.size),
    extractor,
    new LocalSearcher(grown.index, grown.vectors),
    limits,
  );
  let scores: number[] = [];
  let reference = old.reference;
  if (old.reference && split.holdout.length > 0) {
    const prior = split.fromScratch ? undefined : old.reference;
    ({ reference, scores } = await referenceAndScores(
      inspector,
      split.holdout,
      limits,
      options.onProgress,
      maps,
      prior,
    ));
  } else if (!old.reference && (!manual || maps)) {
    for (const [i, source] of split.holdout.entries()) {
      const { score, map } = await inspector.inspectBytes(await source.read());
      scores.push(score);
      maps?.push(map);
      options.onProgress?.('threshold', i + 1, split.holdout.length);
    }
  }
  const threshold = manual ? old.threshold : recalibrated(old.threshold, scores, split.fromScratch);
  const byCategory = scoresByCategory(split.holdout, scores, old.categories);
  const thresholdByCategory =
    manual || byCategory.size === 0
      ? old.thresholdByCategory
      : recalibratedByCategory(old.thresholdByCategory ?? {}, byCategory, split.fromScratch);
  return {
    threshold,
    ...(thresholdByCategory ? { thresholdByCategory } : {}),
    ...(reference ? { reference } : {}),
  };
}

/**
 * A unified bank's per-product thresholds: each product with new held-out scores recalibrated as the
 * bank's own threshold is (pooled with its old scores, or from a threshold folder alone); the others
 * keep theirs, except from scratch, where a product the folder does not show falls back to the
 * bank's overall threshold (bank-meta.ts `thresholdFor`).
 */
export function recalibratedByCategory(
  old: Record<string, Threshold>,
  scores: Map<string, number[]>,
  fromScratch: boolean,
): Record<string, Threshold> {
  const out: Record<string, Threshold> = fromScratch ? {} : { ...old };
  for (const [category, s] of scores)
    out[category] = old[category] ? recalibrated(old[category], s, fromScratch) : thresholdFromNominal(s);
  return out;
}

/**
 * The new threshold: the rescored threshold folder alone, or the new held-out scores pooled with the
 * old bank's recorded held-out scores (upper bounds of what they score now).
 */
export function recalibrated(old: Threshold, scores: number[], fromScratch: boolean): Threshold {
  const previous = fromScratch ? [] : (old.nominal?.scores ?? []);
  const pooled = [...previous, ...scores];
  if (pooled.length === 0) return old;
  return thresholdFromNominal(pooled);
}

/** The outlier filter's record over every chunk (images in order, as the sources are). */
function mergeFiltered(
  parts: NonNullable<CoresetSelection['outliers']>[],
): CoresetSelection['outliers'] | undefined {
  if (parts.length === 0) return undefined;
  return {
    considered: parts.reduce((n, p) => n + p.considered, 0),
    dropped: parts.reduce((n, p) => n + p.dropped, 0),
    droppedPerGroup: Int32Array.from(parts.flatMap((p) => Array.from(p.droppedPerGroup))),
    candidatesPerGroup: Int32Array.from(parts.flatMap((p) => Array.from(p.candidatesPerGroup))),
    cutoff: Math.min(...parts.map((p) => p.cutoff)),
  };
}

/** New bank rows for `fresh` new patches: the bank's own kept/input ratio (all of them with "none"). */
export function newPicks(c: BankMeta['coreset'], fresh: number): number {
  if (c.method === 'none') return fresh;
  const ratio = c.inputPatches > 0 ? c.keptPatches / c.inputPatches : c.ratio;
  return Math.max(1, Math.min(fresh, Math.round(fresh * ratio)));
}

function coresetOf(c: BankMeta['coreset']): CoresetConfig {
  const { inputPatches: _i, keptPatches: _k, ...config } = c;
  return config;
}

function pickFilter(o: NonNullable<BankMeta['outliers']>): OutlierFilterConfig {
  return {
    ...DEFAULT_OUTLIER_FILTER,
    fraction: o.fraction,
    minRatio: o.minRatio,
    k: o.k,
    reference: o.reference,
  };
}

function withoutStored(meta: BankMeta): FittedBank['meta'] {
  const { vectors: _v, format: _f, ...rest } = meta;
  return rest;
}
