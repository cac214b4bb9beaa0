/**
 * A memory bank's metadata: everything needed to reproduce and to refuse misuse (a bank built with
 * one backbone, stages or preprocessing is useless with another).
 */
import { CoresetConfig } from '../coreset/coreset';
import { ViewConfig } from '../image/views';
import { KnnConfig } from '../knn/index';
import { Threshold } from '../threshold/threshold';
import { NominalReference, ReferenceMethod } from '../score/reference';
import { invalid } from '../errors';
import type { AutoConfigRecord } from '../autoconfig/select';
import type { HeadMeta } from '../head/head-bank';
import type { OutlierFilterConfig } from '../coreset/outliers';

/**
 * Format 2 is a bank with a nominal reference (`reference`) or edge padding (`view.pad`): a format-1
 * reader would ignore either and mis-score every image, so such a bank is written as 2 and older
 * readers refuse it. Banks with neither stay format 1, readable by every build.
 */
export const BANK_FORMAT = 2;
export const READABLE_BANK_FORMATS: readonly number[] = [1, 2];

export function bankFormatOf(meta: Pick<BankMeta, 'reference' | 'view'>): number {
  return meta.reference || (meta.view.pad ?? 0) > 0 ? 2 : 1;
}

export type ImageScoreMethod = 'map-max' | 'patch-max' | 'reweighted';

/** How a canvas position seen by several tiles is scored (ScoreConfig.sharedCells). */
export type SharedCellRule = 'interior' | 'average';
export const SHARED_CELL_RULES: readonly SharedCellRule[] = ['interior', 'average'];

export interface ScoreConfig {
  /** Nearest neighbours searched per patch; the patch score is the mean of the first k. */
  k: number;
  /** Gaussian sigma of the anomaly map, in canvas pixels. */
  sigma: number;
  /** Image score: max of the smoothed map (default) or of the raw patch scores. */
  imageScore: ImageScoreMethod;
  /** Subtract the held-out good images' mean patch score per position (score/reference.ts). */
  reference?: ReferenceMethod;
  /**
   * A canvas position two overlapping tiles both see: searched once, from the tile that sees it
   * farthest from its edge (interior), or in both tiles and averaged (average: banks built before
   * 2026-12-07 have no field and keep it). See patchcore/shared-cells.ts.
   */
  sharedCells?: SharedCellRule;
  /**
   * Whose bank neighbourhood the reweighted image score weighs the top patch by: its nearest bank
   * patch's, as PatchCore has it (match), or the top patch's own (query: banks built before
   * 2026-12-08 have no field and keep it, their thresholds were set with it). See score/reweight.ts.
   */
  reweightAround?: ReweightNeighbourhood;
}

export type ReweightNeighbourhood = 'match' | 'query';

export const DEFAULT_SCORE: ScoreConfig = {
  k: 1,
  sigma: 4,
  imageScore: 'map-max',
  reference: 'none',
  sharedCells: 'interior',
  reweightAround: 'match',
};

export interface BankMeta {
  format: number;
  name: string;
  version: number;
  createdAt: string;
  model: { id: string; sha256?: string; stages: string[] };
  view: ViewConfig;
  embedding: {
    dim: number;
    projection: { dim: number; seed: number } | null;
    /** Stage cells placed where the backbone graph puts them (absent in banks built before). */
    cellPlacement?: boolean;
  };
  coreset: CoresetConfig & { inputPatches: number; keptPatches: number };
  knn: KnnConfig;
  score: ScoreConfig;
  threshold: Threshold;
  /**
   * A unified multi-category bank's own threshold per category, from that category's held-out good
   * images (products differ in how far their good prints stray from the bank; one shared value sits
   * too high for the steadier ones). Absent in single-category banks.
   */
  thresholdByCategory?: Record<string, Threshold>;
  /** The nominal reference subtracted from patch scores, when score.reference is 'mean'. */
  reference?: NominalReference;
  /** Product categories the bank covers (a unified multi-class bank has several). */
  categories: string[];
  sources: { path: string; sha256: string }[];
  /** How the automatic fit chose this bank's configuration (absent when flags set it). */
  autoConfig?: AutoConfigRecord;
  /** What the patch-level outlier filter dropped before the coreset (absent when it was off). */
  outliers?: OutlierRecord;
  /** The fit's memory budget and what it spilled to disk (`spi fit --max-memory`; absent without one). */
  memory?: FitMemoryRecord;
  /** Images added by incremental versions (`spi fit --add`), oldest first; absent in a bank built at once. */
  additions?: BankAddition[];
  /**
   * A discriminator head trained beside the bank (lib/head/, `spi fit --head glass`): its ONNX files
   * in the bank folder, its thresholds and the maps' standardisation. `threshold` above stays the
   * bank's own, so a reader that ignores the head still judges correctly with the bank alone.
   */
  head?: HeadMeta;
  vectors: { rows: number; dim: number; sha256: string; file: string };
}

export interface OutlierRecord extends OutlierFilterConfig {
  /** Candidate patches the filter looked at (all patches, or the per-image greedy's survivors). */
  considered: number;
  dropped: number;
  droppedFraction: number;
  /**
   * "Suspect good images": training images that lost far more of their patches than the average
   * (coreset/outliers.ts `suspectImages`), most affected first; worth a look by a person.
   */
  suspects: { path: string; dropped: number; candidates: number; share: number }[];
}

export interface FitMemoryRecord {
  maxBytes: number;
  /** Resident bytes besides the patches when the chunk size was planned (backbone, runtime). */
  residentBytes: number;
  /** Most candidate rows per chunk. */
  chunkRows: number;
  /** Rows after the per-image greedy (all patches without one). */
  candidates: number;
  chunks: number;
  /** Whether the candidates went to disk (then the coreset was chosen in two stages). */
  spilled: boolean;
  spilledBytes: number;
}

export interface BankAddition {
  /** The version this addition made. */
  version: number;
  createdAt: string;
  /** Training images added (held-out ones are in `heldOut`). */
  images: string[];
  heldOut: string[];
  inputPatches: number;
  keptPatches: number;
  /** Why these images came (e.g. operator feedback: false alarms marked good). */
  reason?: string;
  /** The outlier filter on the added patches (absent when it was off). */
  outliers?: OutlierRecord;
  /** The memory budget the new patches were held under, and in how many chunks they went in. */
  memory?: FitMemoryRecord;
}

/**
 * The threshold to judge an image of `category` by: the category's own one in a unified bank, else
 * the bank's. Naming a category the bank does not cover is an error, not a silent fallback.
 */
export function thresholdFor(
  meta: Pick<BankMeta, 'threshold' | 'thresholdByCategory' | 'categories' | 'name'>,
  category?: string,
): Threshold {
  if (!category) return meta.threshold;
  checkCategory(meta, category);
  return meta.thresholdByCategory?.[category] ?? meta.threshold;
}

/** Naming a category the bank does not cover is an error (INVALID_ARGUMENT). */
export function checkCategory(meta: Pick<BankMeta, 'categories' | 'name'>, category: string): void {
  if (meta.categories.includes(category)) return;
  const known = meta.categories.length > 0 ? meta.categories.join(', ') : 'none recorded';
  throw invalid(`bank ${meta.name} has no category "${category}" (its categories: ${known})`);
}

/** A training image's category in a unified bank: the first folder of its recorded path. */
export function categoryOfSource(sourcePath: string, categories: string[]): string | undefined {
  const first = sourcePath.split(/[\\/]/)[0];
  return categories.length > 1 && categories.includes(first) ? first : undefined;
}
