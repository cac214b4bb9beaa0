/**
 * PatchCore's image-score re-weighting (Roth et al. 2022, eq. 7): the most anomalous patch's score
 * s* is scaled by w = 1 - exp(|m_test - m*|) / sum over m in N_b of exp(|m_test - m|), which grows
 * when the bank is sparse around the match (a lone nearest patch, the others far: more anomalous)
 * and shrinks when the match sits in a dense part of the bank. Here N_b is the b nearest bank
 * patches of the test patch itself (one more search of one query, through the same searcher the
 * inspection used, so it works in-process and through the shards alike), where the paper takes the
 * b nearest of its nearest bank patch m* (that needs the bank's vectors, which a gateway does not
 * hold); m* is the first of both.
 */

/** Neighbourhood size b. */
export const REWEIGHT_NEIGHBOURS = 9;

/** w for the ascending distances of the test patch to its b nearest bank patches (w in [0, 1)). */
export function reweightFactor(distances: ArrayLike<number>): number {
  if (distances.length === 0) return 1;
  const d0 = distances[0];
  // exp(d0) / sum exp(d), computed as 1 / sum exp(d - d0): no overflow for large distances.
  let sum = 0;
  for (let i = 0; i < distances.length; i++) sum += Math.exp(distances[i] - d0);
  return 1 - 1 / sum;
}
