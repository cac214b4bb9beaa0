/**
 * The weight of the re-weighted image score (score/reweight.ts) for the top patch of an
 * inspection, gathered through the inspection's searcher: in-process and through the shards alike.
 */
import { ReweightNeighbourhood } from '../bank/bank-meta';
import { REWEIGHT_NEIGHBOURS, distanceToRow, reweightFactor } from '../score/reweight';
import { SpiError } from '../errors';
import { NeighbourSearcher } from './inspector';

/**
 * `query`: the top patch's embedding; `match`: the bank row nearest to it. Around the match (the
 * paper's N_b(m*)): the match's row is read, searched for its b nearest rows, and those rows are
 * read to measure the query against them; around the query (banks built before): one search.
 */
export async function reweightWeight(
  searcher: NeighbourSearcher,
  around: ReweightNeighbourhood,
  query: Float32Array,
  match: number,
  deadline?: number,
): Promise<number> {
  const dim = query.length;
  if (around === 'query') {
    const near = await searcher.search(query, dim, REWEIGHT_NEIGHBOURS, deadline);
    return reweightFactor(near.distances.subarray(0, near.k));
  }
  if (!searcher.bankRows)
    throw new SpiError(
      'FAILED_PRECONDITION',
      'the re-weighted image score needs bank rows this searcher cannot read',
    );
  const star = await searcher.bankRows([match], dim, deadline);
  const near = await searcher.search(star, dim, REWEIGHT_NEIGHBOURS, deadline);
  // The match first (the weight sets the query's distance to it against the others'), then its
  // nearest other rows (the search finds the match itself too, at distance 0, or a duplicate).
  const support = [match];
  for (let i = 0; i < near.k && support.length < REWEIGHT_NEIGHBOURS; i++) {
    const label = Number(near.labels[i]);
    if (label >= 0 && label !== match) support.push(label);
  }
  const rows = await searcher.bankRows(support, dim, deadline);
  return reweightFactor(support.map((_, i) => distanceToRow(query, rows, i)));
}
