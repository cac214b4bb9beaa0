/**
 * PatchCore's image-score re-weighting (Roth et al. 2022, eq. 7): the most anomalous patch's score
 * s* is scaled by w = 1 - exp(|m_test - m*|) / sum over m in N_b(m*) of exp(|m_test - m|), which
 * grows when the bank is sparse around the match (a lone nearest patch, the others far: more
 * anomalous) and shrinks when the match sits in a dense part of the bank. N_b(m*) is the b nearest
 * bank patches of the test patch's nearest bank patch m*, m* first, as in the paper (the searcher
 * reads those bank rows: in-process from the bank, through the cluster with the shards' ReadRows;
 * patchcore/reweighting.ts). Banks built before 2026-12-08 took the b nearest of the test patch
 * itself (ScoreConfig.reweightAround 'query'), and keep it: their thresholds were set with it.
 */

/** Neighbourhood size b. */
export const REWEIGHT_NEIGHBOURS = 9;

/**
 * w for the distances of the test patch to the neighbourhood's bank patches, the match first
 * (w in [0, 1)).
 */
export function reweightFactor(distances: ArrayLike<number>): number {
  if (distances.length === 0) return 1;
  const d0 = distances[0];
  // exp(d0) / sum exp(d), computed as 1 / sum exp(d - d0): no overflow for large distances.
  let sum = 0;
  for (let i = 0; i < distances.length; i++) sum += Math.exp(distances[i] - d0);
  return 1 - 1 / sum;
}

/** Euclidean distance between `query` and row `row` of a row-major [rows x dim] array. */
export function distanceToRow(query: Float32Array, rows: Float32Array, row: number): number {
  const dim = query.length;
  let sum = 0;
  for (let j = 0; j < dim; j++) {
    const d = query[j] - rows[row * dim + j];
    sum += d * d;
  }
  return Math.sqrt(sum);
}
