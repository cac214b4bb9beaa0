/**
 * Evaluation metrics for anomaly detection: image AUROC, pixel AUROC, PRO (MVTec), F1.
 * Conventions everywhere: higher score = more anomalous; label 1 (any nonzero) = defective;
 * a sample is predicted defective when score >= threshold. Metrics that are undefined (no
 * positives or no negatives) return NaN rather than throwing, so a report can show "n/a".
 */
import { connectedComponents } from './components';

export { connectedComponents } from './components';
export type { Components } from './components';

export interface Confusion {
  tp: number;
  fp: number;
  tn: number;
  fn: number;
}

export interface F1Result {
  f1: number;
  threshold: number;
  precision: number;
  recall: number;
}

export interface RocCurve {
  /** Ascending; starts at 0 and ends at 1. */
  fpr: number[];
  tpr: number[];
  /** Threshold giving each point (score >= threshold); +Infinity for the (0, 0) point. */
  thresholds: number[];
}

function checkLengths(scores: ArrayLike<number>, labels: ArrayLike<number>): void {
  if (scores.length !== labels.length) {
    throw new RangeError(`scores (${scores.length}) and labels (${labels.length}) differ in length`);
  }
}

/** Scores split by label, each sorted ascending (native typed-array sort: fast, no comparator). */
function splitSorted(
  scores: ArrayLike<number>,
  labels: ArrayLike<number>,
): { pos: Float64Array; neg: Float64Array } {
  checkLengths(scores, labels);
  let nPos = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i] !== 0) nPos++;
  const pos = new Float64Array(nPos);
  const neg = new Float64Array(labels.length - nPos);
  let p = 0;
  let q = 0;
  for (let i = 0; i < scores.length; i++) {
    const s = scores[i];
    if (Number.isNaN(s)) throw new RangeError(`score ${i} is NaN`);
    if (labels[i] !== 0) pos[p++] = s;
    else neg[q++] = s;
  }
  pos.sort();
  neg.sort();
  return { pos, neg };
}

/**
 * Exact area under the ROC curve = P(score of a random positive > score of a random negative),
 * ties counted as 1/2 (the Mann-Whitney U statistic). O(n log n). NaN without both classes.
 */
export function rocAuc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const { pos, neg } = splitSorted(scores, labels);
  if (pos.length === 0 || neg.length === 0) return NaN;
  let below = 0; // negatives strictly below the current positive score
  let upTo = 0; // negatives <= the current positive score
  let sum = 0;
  for (let i = 0; i < pos.length; i++) {
    const s = pos[i];
    while (below < neg.length && neg[below] < s) below++;
    if (upTo < below) upTo = below;
    while (upTo < neg.length && neg[upTo] <= s) upTo++;
    sum += below + 0.5 * (upTo - below);
  }
  return sum / (pos.length * neg.length);
}

/**
 * ROC curve points, one per distinct score, thinned to at most ~maxPoints for plotting. Thinning
 * keeps points evenly spaced along the curve (by fpr + tpr, which grows monotonically from 0 to 2)
 * and always keeps both ends, so steep and flat parts keep their shape.
 */
export function rocCurve(scores: ArrayLike<number>, labels: ArrayLike<number>, maxPoints = 500): RocCurve {
  const { pos, neg } = splitSorted(scores, labels);
  const nP = pos.length;
  const nN = neg.length;
  const fpr = [0];
  const tpr = [0];
  const thresholds = [Infinity];
  if (nP === 0 || nN === 0) return { fpr: [0, 1], tpr: [0, 1], thresholds: [Infinity, -Infinity] };
  // Walk both sorted lists from the top; each distinct score is one threshold.
  let i = nP - 1;
  let j = nN - 1;
  let tp = 0;
  let fp = 0;
  const step = 2 / Math.max(2, maxPoints - 1);
  let lastBucket = 0;
  while (i >= 0 || j >= 0) {
    const t = Math.max(i >= 0 ? pos[i] : -Infinity, j >= 0 ? neg[j] : -Infinity);
    for (; i >= 0 && pos[i] === t; i--) tp++;
    for (; j >= 0 && neg[j] === t; j--) fp++;
    const x = fp / nN;
    const y = tp / nP;
    const bucket = Math.floor((x + y) / step);
    const last = i < 0 && j < 0;
    if (bucket > lastBucket || last) {
      fpr.push(x);
      tpr.push(y);
      thresholds.push(t);
      lastBucket = bucket;
    }
  }
  return { fpr, tpr, thresholds };
}

export interface PixelAurocResult {
  auroc: number;
  /**
   * Upper bound on |auroc - exact AUROC|. Pairs (defect pixel, good pixel) whose scores fall in the
   * same bin are counted as ties (1/2) although their true contribution is 0 or 1, so the error is
   * at most half the fraction of such pairs. Typically < 1e-5 with the default 2^20 bins.
   */
  maxError: number;
  positives: number;
  negatives: number;
}

/** Min and max over all maps, rejecting NaN (it would silently fall out of every bin). */
function scoreRange(maps: readonly Float32Array[]): { lo: number; hi: number } {
  let lo = Infinity;
  let hi = -Infinity;
  for (const map of maps) {
    for (let i = 0; i < map.length; i++) {
      const s = map[i];
      if (s < lo) lo = s;
      if (s > hi) hi = s;
      if (s !== s) throw new RangeError('anomaly map contains NaN');
    }
  }
  return { lo, hi };
}

function checkMaps(maps: readonly Float32Array[], masks: readonly Uint8Array[]): void {
  if (maps.length !== masks.length) throw new RangeError(`${maps.length} maps but ${masks.length} masks`);
  maps.forEach((m, k) => {
    if (m.length !== masks[k].length) throw new RangeError(`map ${k} and its mask differ in size`);
  });
}

/**
 * Pixel-level AUROC over all pixels of all images, by histogram: O(pixels + bins) time and
 * O(bins) memory, so 90 maps of 900x900 (73M pixels) cost two linear passes and 8 MB, where an
 * exact sort would need ~600 MB. Bins are uniform over [min, max] of all scores.
 */
export function pixelAurocDetailed(
  maps: readonly Float32Array[],
  masks: readonly Uint8Array[],
  bins = 1 << 20,
): PixelAurocResult {
  checkMaps(maps, masks);
  const { lo, hi } = scoreRange(maps);
  // Interleaved counts (bin b: [2b] good, [2b+1] defect) so each pixel touches one cache line;
  // Uint32 halves the footprint and cannot overflow below 4e9 pixels.
  const hist = new Uint32Array(2 * bins);
  // All-equal scores: everything lands in bin 0 and the result is an exact 0.5.
  const scale = hi > lo && Number.isFinite(hi - lo) ? bins / (hi - lo) : 0;
  for (let k = 0; k < maps.length; k++) {
    const map = maps[k];
    const mask = masks[k];
    for (let i = 0; i < map.length; i++) {
      let b = Math.floor((map[i] - lo) * scale);
      if (b >= bins) b = bins - 1;
      else if (!(b >= 0)) b = 0; // -Infinity scores and the lo - lo = 0 * Infinity corner
      hist[2 * b + (mask[i] !== 0 ? 1 : 0)]++;
    }
  }
  let negBelow = 0;
  let sum = 0;
  let sameBin = 0;
  let positives = 0;
  for (let b = 0; b < bins; b++) {
    const neg = hist[2 * b];
    const pos = hist[2 * b + 1];
    sum += pos * (negBelow + 0.5 * neg);
    sameBin += pos * neg;
    negBelow += neg;
    positives += pos;
  }
  const negatives = negBelow;
  const pairs = positives * negatives;
  if (pairs === 0) return { auroc: NaN, maxError: NaN, positives, negatives };
  return { auroc: sum / pairs, maxError: (0.5 * sameBin) / pairs, positives, negatives };
}

/** Pixel AUROC (see pixelAurocDetailed for the method and its error bound). */
export function pixelAuroc(
  maps: readonly Float32Array[],
  masks: readonly Uint8Array[],
  bins?: number,
): number {
  return pixelAurocDetailed(maps, masks, bins).auroc;
}

export interface ProOptions {
  /** Thresholds swept uniformly over [min, max] of all scores (default 2^16; MVTec's scripts use 200+). */
  steps?: number;
  /**
   * Width of each map (one number for all, or one per map); regions need the 2-D layout. When
   * omitted the maps must be square (224x224, 900x900...) and the width is the square root.
   */
  width?: number | readonly number[];
}

function widthOf(k: number, n: number, width: ProOptions['width']): number {
  const w = typeof width === 'number' ? width : width !== undefined ? width[k] : Math.round(Math.sqrt(n));
  if (!(w > 0) || n % w !== 0) {
    throw new RangeError(`map ${k}: ${n} pixels is not a multiple of width ${w}; pass opts.width`);
  }
  if (width === undefined && w * w !== n) throw new RangeError(`map ${k} is not square; pass opts.width`);
  return w;
}

/**
 * Normalised area under the PRO curve up to maxFpr (MVTec AD, Bergmann et al.). Each connected
 * ground-truth region (8-connectivity, per image) counts equally: PRO(t) is the mean over regions
 * of the fraction of the region scoring >= t; FPR(t) is the fraction of all defect-free pixels
 * (of every image) scoring >= t. The curve, from (0,0) to (1,1), is integrated with the trapezoid
 * rule up to maxFpr (interpolating the last point) and divided by maxFpr, so a perfect map gets 1.
 *
 * Implementation: every region pixel carries weight 1/(regions x its region's area); histograms of
 * those weights and of good pixels over `steps` score bins give the whole threshold sweep in one
 * pass, O(pixels + steps), instead of one pass per threshold.
 */
export function pro(
  maps: readonly Float32Array[],
  masks: readonly Uint8Array[],
  maxFpr = 0.3,
  opts: ProOptions = {},
): number {
  checkMaps(maps, masks);
  if (!(maxFpr > 0 && maxFpr <= 1)) throw new RangeError(`maxFpr must be in (0, 1], got ${maxFpr}`);
  const steps = opts.steps ?? 1 << 16;
  const { lo, hi } = scoreRange(maps);
  const scale = hi > lo && Number.isFinite(hi - lo) ? steps / (hi - lo) : 0;
  const regionH = new Float64Array(steps);
  const goodH = new Float64Array(steps);
  let regions = 0;
  let good = 0;
  for (let k = 0; k < maps.length; k++) {
    const map = maps[k];
    const mask = masks[k];
    const w = widthOf(k, map.length, opts.width);
    const { labels, count, areas } = connectedComponents(mask, w, map.length / w);
    regions += count;
    const inverseArea = Float64Array.from(areas, (a) => (a > 0 ? 1 / a : 0));
    for (let i = 0; i < map.length; i++) {
      let b = Math.floor((map[i] - lo) * scale);
      if (b >= steps) b = steps - 1;
      else if (!(b >= 0)) b = 0;
      const label = labels[i];
      if (label !== 0) regionH[b] += inverseArea[label];
      else {
        goodH[b]++;
        good++;
      }
    }
  }
  if (regions === 0 || good === 0) return NaN;
  // Sweep thresholds from the highest bin down: FPR and PRO only grow.
  let area = 0;
  let x0 = 0;
  let y0 = 0;
  let fp = 0;
  let overlap = 0;
  for (let b = steps - 1; b >= -1; b--) {
    let x1: number;
    let y1: number;
    if (b >= 0) {
      if (goodH[b] === 0 && regionH[b] === 0) continue;
      fp += goodH[b];
      overlap += regionH[b];
      x1 = fp / good;
      y1 = overlap / regions;
    } else {
      // MVTec appends (1, 1); this also absorbs float drift in the weight sums.
      x1 = 1;
      y1 = 1;
    }
    if (x1 >= maxFpr) {
      const yAt = x1 > x0 ? y0 + ((y1 - y0) * (maxFpr - x0)) / (x1 - x0) : y1;
      area += ((maxFpr - x0) * (y0 + yAt)) / 2;
      return area / maxFpr;
    }
    area += ((x1 - x0) * (y0 + y1)) / 2;
    x0 = x1;
    y0 = y1;
  }
  return area / maxFpr;
}

/** Confusion counts when predicting defective for score >= t. */
export function confusion(scores: ArrayLike<number>, labels: ArrayLike<number>, t: number): Confusion {
  checkLengths(scores, labels);
  const c: Confusion = { tp: 0, fp: 0, tn: 0, fn: 0 };
  for (let i = 0; i < scores.length; i++) {
    const predicted = scores[i] >= t;
    if (labels[i] !== 0) {
      if (predicted) c.tp++;
      else c.fn++;
    } else if (predicted) c.fp++;
    else c.tn++;
  }
  return c;
}

/** Precision/recall/F1 from counts; 0 where undefined (nothing predicted, no positives). */
function f1From(tp: number, fp: number, fn: number, threshold: number): F1Result {
  const precision = tp + fp > 0 ? tp / (tp + fp) : 0;
  const recall = tp + fn > 0 ? tp / (tp + fn) : 0;
  const f1 = tp > 0 ? (2 * tp) / (2 * tp + fp + fn) : 0;
  return { f1, threshold, precision, recall };
}

/** F1 (with precision and recall) when predicting defective for score >= t. */
export function f1AtThreshold(scores: ArrayLike<number>, labels: ArrayLike<number>, t: number): F1Result {
  const { tp, fp, fn } = confusion(scores, labels, t);
  return f1From(tp, fp, fn, t);
}

/**
 * Best F1 over all thresholds. Candidate thresholds are the distinct scores (score >= threshold);
 * on equal F1 the higher threshold wins (fewer alarms). O(n log n).
 */
export function f1Max(scores: ArrayLike<number>, labels: ArrayLike<number>): F1Result {
  const { pos, neg } = splitSorted(scores, labels);
  let best = f1From(0, 0, pos.length, Infinity);
  let i = pos.length - 1;
  let j = neg.length - 1;
  let tp = 0;
  let fp = 0;
  while (i >= 0 || j >= 0) {
    const t = Math.max(i >= 0 ? pos[i] : -Infinity, j >= 0 ? neg[j] : -Infinity);
    for (; i >= 0 && pos[i] === t; i--) tp++;
    for (; j >= 0 && neg[j] === t; j--) fp++;
    const r = f1From(tp, fp, pos.length - tp, t);
    if (r.f1 > best.f1) best = r;
  }
  return best;
}
