/**
 * A memory bank's metadata: everything needed to reproduce and to refuse misuse (a bank built with
 * one backbone, stages or preprocessing is useless with another).
 */
import { CoresetConfig } from '../coreset/coreset';
import { ViewConfig } from '../image/views';
import { KnnConfig } from '../knn/index';
import { Threshold } from '../threshold/threshold';

export const BANK_FORMAT = 1;

export type ImageScoreMethod = 'map-max' | 'patch-max';

export interface ScoreConfig {
  /** Nearest neighbours searched per patch; the patch score is the mean of the first k. */
  k: number;
  /** Gaussian sigma of the anomaly map, in canvas pixels. */
  sigma: number;
  /** Image score: max of the smoothed map (default) or of the raw patch scores. */
  imageScore: ImageScoreMethod;
}

export const DEFAULT_SCORE: ScoreConfig = { k: 1, sigma: 4, imageScore: 'map-max' };

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
  /** Product categories the bank covers (a unified multi-class bank has several). */
  categories: string[];
  sources: { path: string; sha256: string }[];
  vectors: { rows: number; dim: number; sha256: string; file: string };
}
