/**
 * Patch-level outlier filter before the coreset, for "good" folders that hold a few defective sheets
 * nobody noticed. The greedy k-center coreset takes the most isolated patches first, so a defect in a
 * training image goes straight into the bank and the same defect later scores as normal. Here each
 * candidate patch gets an isolation score from its k nearest patches of OTHER images (a local outlier
 * factor, see isolationScores), and the most isolated candidates are dropped before the coreset sees
 * them: those at least `minRatio` times as isolated as their neighbours, at most `fraction` of all.
 * A plain "drop the most distant few percent" costs accuracy on clean sets (on synthetic prints,
 * 1 % dropped took image AUROC from 0.93 to 0.88): the most distant good patches are the rare but
 * genuine ones, whose loss makes good sheets score high there.
 *
 * "Other images": images are dealt into up to FOLDS folds (image g in fold g % folds); a fold's
 * patches are searched against the patches of the other folds, so no patch can find itself or its own
 * sheet's neighbours. That reference is capped at `reference` rows (a seeded uniform sample, extended
 * by any fixed rows the caller adds, e.g. an existing bank's), which bounds the cost at
 * candidates x reference x width, like one coreset pass. The search runs on the caller's (projected)
 * vectors in faiss.
 */
import { IndexFlatL2 } from '../knn/faiss';
import { mulberry32, sampleIndices } from '../util/random';
import { gatherRows } from '../util/rows';

/** The least neighbourhood spread a patch is measured against, as a share of the mean k-distance. */
export const DENSITY_FLOOR = 0.25;

export interface OutlierFilterConfig {
  /** Most of the candidate patches dropped as outliers (a fraction); 0 = filter off. */
  fraction: number;
  /** Only patches at least this many times as isolated as their neighbours are dropped. */
  minRatio: number;
  /** The isolation score is the distance to the k-th nearest patch of another image. */
  k: number;
  /** Most rows of other images searched per fold (a seeded sample beyond it). */
  reference: number;
}

export const DEFAULT_OUTLIER_FILTER: OutlierFilterConfig = {
  fraction: 0.05,
  minRatio: 2,
  k: 3,
  reference: 20_000,
};

const FOLDS = 4;

export interface OutlierResult {
  /** Rows kept (ascending), indices into the candidates. */
  keep: Int32Array;
  /** Candidates dropped per image (group), in the caller's group order. */
  droppedPerGroup: Int32Array;
  /** Candidates per image. */
  candidatesPerGroup: Int32Array;
  /** Isolation score of each candidate (Euclidean, in the searched space). */
  scores: Float32Array;
  /** Score at and above which a candidate was dropped (Infinity when none was). */
  cutoff: number;
}

/**
 * Isolation score of every row, as SoftPatch's local outlier factor: its distance to its k-th nearest
 * row of another image (or of `fixed`, rows that belong to no image of these, always in the
 * reference), divided by the mean of that same distance of those neighbours. A rare but genuine
 * feature (the same artwork detail on every sheet) sits among its like and scores about 1 however
 * sparse its region; a defect's neighbours are ordinary patches with close neighbours of their own,
 * so it scores far above 1. Rows with nothing to compare against score 1 (never dropped).
 */
export function isolationScores(
  x: Float32Array,
  dim: number,
  groups: ArrayLike<number>,
  config: Pick<OutlierFilterConfig, 'k' | 'reference'>,
  seed = 0,
  fixed?: Float32Array,
): Float32Array {
  const n = x.length / dim;
  const groupOf = groupIndex(groups, n);
  const folds = Math.max(1, Math.min(FOLDS, groups.length));
  const fixedRows = fixed ? fixed.length / dim : 0;
  const kDist = new Float32Array(n);
  // Each row's neighbours among these rows (-1 = a fixed row or none), k per row.
  const k = Math.max(1, config.k);
  const neighbours = new Int32Array(n * k).fill(-1);
  const compared = new Uint8Array(n);
  for (let f = 0; f < folds; f++) {
    const queries: number[] = [];
    const others: number[] = [];
    for (let i = 0; i < n; i++) (groupOf[i] % folds === f ? queries : others).push(i);
    if (queries.length === 0) continue;
    const room = Math.max(0, config.reference - fixedRows);
    const picked =
      others.length > room
        ? Array.from(sampleIndices(others.length, room, seed + f), (j) => others[j])
        : others;
    const refRows = picked.length + fixedRows;
    if (refRows === 0) continue;
    const kk = Math.min(k, refRows);
    const index = new IndexFlatL2(dim);
    if (fixed && fixedRows > 0) index.addBuffer(fixed);
    if (picked.length > 0) index.addBuffer(gatherRows(x, dim, picked));
    const { distances, labels } = index.searchBuffer(gatherRows(x, dim, queries), kk);
    queries.forEach((q, j) => {
      compared[q] = 1;
      kDist[q] = Math.sqrt(Math.max(0, distances[j * kk + kk - 1]));
      for (let t = 0; t < kk; t++) {
        const label = labels[j * kk + t];
        neighbours[q * k + t] = label >= fixedRows ? picked[label - fixedRows] : -1;
      }
    });
  }
  const scores = new Float32Array(n).fill(1);
  const fallback = meanOf(kDist, compared);
  // Exact duplicates (flat paper, a solid ink field) have neighbours at distance 0: a patch a hair
  // away from them would be "infinitely" isolated. Their spread counts as at least this much of
  // the typical one, so only a patch far from everything typical can score high.
  const floor = DENSITY_FLOOR * fallback;
  for (let i = 0; i < n; i++) {
    if (!compared[i]) continue;
    let sum = 0;
    let count = 0;
    for (let t = 0; t < k; t++) {
      const j = neighbours[i * k + t];
      if (j >= 0 && compared[j]) {
        sum += kDist[j];
        count++;
      }
    }
    // Neighbours all in the fixed rows (an existing bank): their own spread is unknown; the row's
    // k-distance against the mean of the compared rows' stands in.
    const local = count > 0 ? Math.max(sum / count, floor) : NaN;
    scores[i] = local > 0 ? kDist[i] / local : kDist[i] > 0 ? Number.POSITIVE_INFINITY : 1;
  }
  for (let i = 0; i < n; i++) {
    if (!compared[i]) continue;
    let anyLocal = false;
    for (let t = 0; t < k; t++) if (neighbours[i * k + t] >= 0) anyLocal = true;
    if (!anyLocal && fallback > 0) scores[i] = kDist[i] / fallback;
  }
  return scores;
}

function meanOf(values: Float32Array, mask: Uint8Array): number {
  let s = 0;
  let c = 0;
  for (let i = 0; i < values.length; i++)
    if (mask[i]) {
      s += values[i];
      c++;
    }
  return c > 0 ? s / c : 0;
}

/** Drops the most isolated `fraction` of the rows (see the file comment). */
export function filterOutliers(
  x: Float32Array,
  dim: number,
  groups: ArrayLike<number>,
  config: OutlierFilterConfig,
  seed = 0,
  fixed?: Float32Array,
): OutlierResult {
  const n = x.length / dim;
  const groupOf = groupIndex(groups, n);
  const candidatesPerGroup = Int32Array.from(groups);
  const droppedPerGroup = new Int32Array(groups.length);
  const most = Math.floor(n * Math.max(0, Math.min(1, config.fraction)));
  const comparable = groups.length >= 2 || (fixed?.length ?? 0) > 0;
  if (most === 0 || !comparable) {
    return {
      keep: Int32Array.from({ length: n }, (_, i) => i),
      droppedPerGroup,
      candidatesPerGroup,
      scores: new Float32Array(n),
      cutoff: Infinity,
    };
  }
  const scores = isolationScores(x, dim, groups, config, seed, fixed);
  // Highest scores first; ties broken by a seeded shuffle so no image is favoured by its position.
  const rand = mulberry32(seed + 17);
  const tie = Float32Array.from({ length: n }, () => rand());
  const order = Array.from({ length: n }, (_, i) => i).sort(
    (a, b) => scores[b] - scores[a] || tie[a] - tie[b],
  );
  let drop = 0;
  while (drop < most && scores[order[drop]] >= config.minRatio) drop++;
  const dropped = new Uint8Array(n);
  for (let j = 0; j < drop; j++) {
    dropped[order[j]] = 1;
    droppedPerGroup[groupOf[order[j]]]++;
  }
  const keep = new Int32Array(n - drop);
  let o = 0;
  for (let i = 0; i < n; i++) if (!dropped[i]) keep[o++] = i;
  return {
    keep,
    droppedPerGroup,
    candidatesPerGroup,
    scores,
    cutoff: drop > 0 ? scores[order[drop - 1]] : Infinity,
  };
}

/**
 * "Suspect good images": those that lost a far larger share of their candidates than the average
 * image: at least `factor` (4) times the overall dropped share, at least `minShare` (1 %) of their
 * own candidates and at least `minDropped` (3) patches. Most affected first, at most `limit`.
 */
export function suspectImages(
  result: Pick<OutlierResult, 'droppedPerGroup' | 'candidatesPerGroup'>,
  options: { factor?: number; minDropped?: number; minShare?: number; limit?: number } = {},
): { group: number; dropped: number; candidates: number; share: number }[] {
  const factor = options.factor ?? 4;
  const limit = options.limit ?? 20;
  const minDropped = options.minDropped ?? 3;
  const minShare = options.minShare ?? 0.01;
  let allDropped = 0;
  let allCandidates = 0;
  for (let g = 0; g < result.droppedPerGroup.length; g++) {
    allDropped += result.droppedPerGroup[g];
    allCandidates += result.candidatesPerGroup[g];
  }
  const rate = allCandidates > 0 ? allDropped / allCandidates : 0;
  const out = [];
  for (let g = 0; g < result.droppedPerGroup.length; g++) {
    const dropped = result.droppedPerGroup[g];
    const candidates = result.candidatesPerGroup[g];
    const share = candidates > 0 ? dropped / candidates : 0;
    if (dropped >= minDropped && share >= Math.max(minShare, factor * rate))
      out.push({ group: g, dropped, candidates, share });
  }
  return out.sort((a, b) => b.share - a.share || a.group - b.group).slice(0, limit);
}

function groupIndex(groups: ArrayLike<number>, n: number): Int32Array {
  const out = new Int32Array(n);
  let offset = 0;
  for (let g = 0; g < groups.length; g++) {
    out.fill(g, offset, offset + groups[g]);
    offset += groups[g];
  }
  if (offset !== n) throw new Error(`outlier filter groups cover ${offset} rows, not ${n}`);
  return out;
}
