import { f1Max } from '../eval/metrics';

/**
 * The decision threshold on the anomaly score. Without defect labels it comes from held-out nominal
 * images: above every held-out score and above mean + 3 std, so a normal sheet is rarely rejected.
 * With labelled defects the F1-optimal threshold is offered. A manual value always wins.
 * Everywhere, score >= threshold means defective.
 */
export type ThresholdMethod = 'nominal' | 'f1' | 'manual';

export interface Threshold {
  value: number;
  method: ThresholdMethod;
  /** Statistics of the scores it was derived from. */
  nominal?: { count: number; mean: number; std: number; max: number };
}

export const NOMINAL_SIGMAS = 3;

export function thresholdFromNominal(scores: ArrayLike<number>): Threshold {
  const n = scores.length;
  if (n === 0) throw new Error('no held-out nominal images to set the threshold from');
  let sum = 0;
  let max = -Infinity;
  for (let i = 0; i < n; i++) {
    sum += scores[i];
    if (scores[i] > max) max = scores[i];
  }
  const mean = sum / n;
  let varSum = 0;
  for (let i = 0; i < n; i++) varSum += (scores[i] - mean) ** 2;
  const std = n > 1 ? Math.sqrt(varSum / (n - 1)) : 0;
  return {
    value: Math.max(max, mean + NOMINAL_SIGMAS * std),
    method: 'nominal',
    nominal: { count: n, mean, std, max },
  };
}

/** The threshold with the best F1 on labelled scores (1 = defective). */
export function thresholdF1(
  scores: ArrayLike<number>,
  labels: ArrayLike<number>,
): Threshold & { f1: number } {
  const best = f1Max(scores, labels);
  return { value: best.threshold, method: 'f1', f1: best.f1 };
}

export function manualThreshold(value: number): Threshold {
  if (!Number.isFinite(value)) throw new Error(`threshold must be a finite number, got ${value}`);
  return { value, method: 'manual' };
}
