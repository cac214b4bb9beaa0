/** Data shapes shared by the evaluation summary and the HTML report. */
import type { AutoConfigRecord } from '../autoconfig/select';
import type { OutlierRecord } from '../bank/bank-meta';
import type { F1Result } from './metrics';

export interface ReportImage {
  /** Path as the engineer knows it (shown, escaped; never dereferenced). */
  path: string;
  /** Ground truth: 1 = defective, 0 = good. */
  label: 0 | 1;
  /** Defect category, e.g. "scratch"; "good" for good images. */
  defectType: string;
  /** Image-level anomaly score (higher = more anomalous). */
  score: number;
  /** PNG of the image with its heat map (see renderOverlay); embedded as a data: URI. */
  overlayPng?: Buffer;
}

export interface PerTypeMetrics {
  defectType: string;
  count: number;
  /** AUROC of this type's images against all good images; NaN for the good type itself. */
  auroc: number;
  /** Fraction flagged (score >= threshold); for good images this is the false-alarm rate. */
  detectionRate: number;
  meanScore: number;
}

export interface ReportMetrics {
  imageAuroc: number;
  pixelAuroc?: number;
  /** Normalised PRO up to 30 % FPR. */
  pro?: number;
  f1AtThreshold: F1Result;
  f1Max: F1Result;
  perType: PerTypeMetrics[];
}

export interface ReportData {
  title: string;
  /** ISO string or Date. */
  createdAt: string | Date;
  /** Data set name or path. */
  dataset: string;
  /** Free-form model description: backbone, layers, coreset ratio, bank size... */
  model: Record<string, string | number | boolean>;
  /** Decision threshold on the image score (score >= threshold = defective). */
  threshold: number;
  images: ReportImage[];
  metrics: ReportMetrics;
  /** Durations in milliseconds, by stage name. */
  timings: Record<string, number>;
  /** How the automatic fit chose the configuration (absent when flags set it). */
  autoConfig?: AutoConfigRecord;
  /** The outlier filter's record of the training set (absent when it was off). */
  outliers?: OutlierRecord;
}
