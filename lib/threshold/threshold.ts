import { f1Max } from '../eval/metrics';

/**
 * The decision threshold on the anomaly score. Without defect labels it comes from held-out nominal
 * images, as a distribution-free (split-conformal) bound: with n held-out scores, the k-th smallest
 * for k = ceil((n + 1) * (1 - a)) is exceeded by a new nominal image's score with probability at
 * most a (the images being exchangeable), whatever the score distribution. a is the target
 * false-reject rate (5 %); with fewer than 1/a - 1 held-out images no order statistic reaches it and
 * the largest held-out score is used (false-reject rate at most 1/(n + 1)). The former rule,
 * max(held-out max, mean + 3 std), rested on a standard deviation that a handful of held-out images
 * cannot estimate: on DeepPCB (7 held-out boards) it sat above almost every defective board.
 * With labelled defects the F1-optimal threshold is offered. A manual value always wins.
 * Everywhere, score >= threshold means defective.
 */
export type ThresholdMethod = 'nominal' | 'f1' | 'manual';

export interface Threshold {
  value: number;
  method: ThresholdMethod;
  /** Statistics of the scores it was derived from. */
  nominal?: {
    count: number;
    mean: number;
    std: number;
    max: number;
    scores?: number[];
    /** 1-based rank of the held-out score used (count = the largest). */
    rank?: number;
    /** Bound on the nominal false-reject rate this threshold guarantees: max(a, 1/(count + 1)). */
    falseRejectBound?: number;
  };
}

/** Target nominal false-reject rate of the automatic threshold. */
export const NOMINAL_FALSE_REJECT = 0.05;

export function thresholdFromNominal(
  scores: ArrayLike<number>,
  falseReject: number = NOMINAL_FALSE_REJECT,
): Threshold {
  const n = scores.length;
  if (n === 0) throw new Error('no held-out nominal images to set the threshold from');
  if (!(falseReject > 0 && falseReject < 1)) throw new Error(`false-reject rate must be in (0, 1)`);
  const sorted = Float64Array.from(scores).sort();
  const mean = sorted.reduce((a, b) => a + b, 0) / n;
  let varSum = 0;
  for (const s of sorted) varSum += (s - mean) ** 2;
  const std = n > 1 ? Math.sqrt(varSum / (n - 1)) : 0;
  // A little slack against float rounding in (n + 1) * (1 - a) before the ceiling.
  const rank = Math.min(n, Math.ceil((n + 1) * (1 - falseReject) - 1e-9));
  return {
    value: sorted[rank - 1],
    method: 'nominal',
    nominal: {
      count: n,
      mean,
      std,
      max: sorted[n - 1],
      scores: Array.from(scores),
      rank,
      falseRejectBound: Math.max(falseReject, 1 / (n + 1)),
    },
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
