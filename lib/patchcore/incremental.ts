/**
 * Incremental banks: the next version of a bank from the current one plus new good images, without
 * re-embedding the old images (they are not even needed). The new images are embedded, their patches
 * go through the outlier filter (against the other new images and the bank) and a streaming greedy
 * update of the coreset (coreset.ts `extendCoreset`): each new pick is the new patch farthest from the
 * bank and the picks so far, the bank growing by its own kept/input ratio of the new patches. The
 * threshold is recalibrated: the new images' held-out part is scored against the new bank and pooled
 * with the held-out scores recorded in the old bank (those can only fall as the bank grows, so the
 * pooled threshold errs on the side of fewer false alarms); a threshold folder rescored from scratch
 * replaces both. The version's metadata lists what was added (`additions`).
 */
import { BankMeta } from '../bank/bank-meta';
import { sha256 } from '../bank/bank-store';
import { CoresetConfig, extendCoreset } from '../coreset/coreset';
import { DEFAULT_OUTLIER_FILTER, OutlierFilterConfig } from '../coreset/outliers';
import { DecodeLimits, DEFAULT_DECODE_LIMITS } from '../image/decode';
import { KnnIndex } from '../knn/index';
import { Threshold, thresholdFromNominal } from '../threshold/threshold';
import { SpiError, invalid } from '../errors';
import { FeatureExtractor, concat } from './feature-extractor';
import {
  DEFAULT_FIT,
  FitProgress,
  FittedBank,
  ImageSource,
  LocalSearcher,
  completeMeta,
  decodeNamed,
  gather,
  outlierMeta,
  splitHoldout,
} from './fit';
import { Inspector } from './inspector';

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
  /** The new version's number (default: the bank's + 1; a cluster numbers past every version it has). */
  version?: number;
  limits?: DecodeLimits;
  onProgress?: FitProgress;
}

/** Why a bank cannot grow incrementally (undefined when it can). */
export function notIncremental(meta: Pick<BankMeta, 'reference' | 'score' | 'categories' | 'name'>) {
  if (meta.reference || meta.score.reference === 'mean')
    return `bank ${meta.name} has a nominal reference (per-position mean of held-out scores): rebuild it to add images`;
  if (meta.categories.length > 1)
    return `bank ${meta.name} is a unified multi-category bank: adding images to it is not supported yet, rebuild it`;
  return undefined;
}

export async function addToBank(
  extractor: FeatureExtractor,
  base: { meta: BankMeta; vectors: Float32Array },
  images: ImageSource[],
  options: AddOptions = {},
): Promise<FittedBank> {
  const refused = notIncremental(base.meta);
  if (refused) throw new SpiError('FAILED_PRECONDITION', refused);
  if (images.length === 0) throw invalid('no new good images to add');
  const { meta: old } = base;
  const dim = old.vectors.dim;
  const limits = options.limits ?? DEFAULT_DECODE_LIMITS;
  const manual = old.threshold.method !== 'nominal';
  // A few sheets (an operator's false alarms) all go into the bank: holding one back would leave
  // out the very sheet the bank must learn, and one score recalibrates nothing.
  const holdBack = !manual && (images.length >= MIN_HOLDOUT_IMAGES || !!options.thresholdImages);
  const split = splitHoldout(
    images,
    {
      ...DEFAULT_FIT,
      name: old.name,
      score: old.score,
      holdoutFraction: options.holdoutFraction ?? DEFAULT_FIT.holdoutFraction,
      // A hand-set (or labelled) threshold stays: no image needs holding back for it.
      threshold: holdBack ? undefined : old.threshold.value,
    },
    options.thresholdImages,
  );
  const parts: Float32Array[] = [];
  const sources: { path: string; sha256: string }[] = [];
  for (const [i, source] of split.train.entries()) {
    const bytes = await source.read();
    sources.push({ path: source.path, sha256: sha256(bytes) });
    const embedding = await extractor.embed(await decodeNamed(source.path, bytes, limits));
    if (embedding.dim !== dim)
      throw invalid(`image "${source.path}" embeds to width ${embedding.dim}, the bank's is ${dim}`);
    parts.push(embedding.vectors);
    options.onProgress?.('embed', i + 1, split.train.length);
  }
  if (parts.length === 0) throw invalid('every new image was held back for the threshold: add more images');
  const fresh = concat(parts);
  const groups = parts.map((p) => p.length / dim);
  parts.length = 0;
  const coreset = coresetOf(old.coreset);
  const freshRows = fresh.length / dim;
  const picks = newPicks(old.coreset, freshRows);
  const filter = options.outliers ?? (old.outliers ? pickFilter(old.outliers) : undefined);
  const selection = extendCoreset(
    base.vectors,
    fresh,
    dim,
    coreset,
    picks,
    filter,
    (d, t) => options.onProgress?.('coreset', d, t),
    groups,
  );
  const vectors = concat([base.vectors, gather(fresh, dim, selection.rows)]);
  const index = KnnIndex.build(vectors, dim, old.knn);
  const version = options.version ?? old.version + 1;
  const createdAt = new Date().toISOString();
  const added = outlierMeta(selection, filter, sources).outliers;
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
        heldOut: options.thresholdImages ? [] : split.holdout.map((s) => s.path),
        inputPatches: freshRows,
        keptPatches: selection.rows.length,
        ...(options.reason ? { reason: options.reason } : {}),
        ...(added ? { outliers: added } : {}),
      },
    ],
  };
  if (!manual) {
    const inspector = new Inspector(
      completeMeta(meta, dim, index.size),
      extractor,
      new LocalSearcher(index),
      limits,
    );
    const scores: number[] = [];
    for (const [i, source] of split.holdout.entries()) {
      scores.push((await inspector.inspectBytes(await source.read())).score);
      options.onProgress?.('threshold', i + 1, split.holdout.length);
    }
    meta.threshold = recalibrated(old.threshold, scores, !!options.thresholdImages);
  }
  return { meta, vectors, dim, index };
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
