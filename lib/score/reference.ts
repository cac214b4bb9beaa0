/**
 * The nominal reference: the mean raw patch score of each patch position over the held-out good
 * images, subtracted from every image's patch scores before the map is made. Some positions of a
 * registered product score high on every good image (a rim, a reflection, a print edge the bank
 * matches poorly); a defect there hides in that structured nominal noise, and a defect elsewhere is
 * judged against it. Subtracting the per-position baseline ranks pixels by how far they exceed
 * their own nominal level. It is kept at patch-grid resolution (all tiles' cells, tile after tile):
 * upsampling and smoothing are linear, so this equals subtracting the mean map, at a fraction of
 * the size in the bank. It assumes every image gives the same patch grid (a fixed canvas).
 */
import { invalid } from '../errors';

export type ReferenceMethod = 'none' | 'mean';

export interface NominalReference {
  /** Held-out good images it is the mean of. */
  count: number;
  /** Mean raw patch score per grid cell, tile after tile (the order of the patch scores). */
  values: number[];
}

/**
 * Per-cell mean of the held-out images' raw patch scores (all of one grid size). `prior` is an
 * earlier reference whose images are no longer at hand (an incremental bank, patchcore/incremental.ts):
 * it counts as `prior.count` grids equal to its values.
 */
export function referenceFrom(grids: readonly Float32Array[], prior?: NominalReference): NominalReference {
  const sum = summed(grids, prior);
  const count = grids.length + (prior?.count ?? 0);
  if (count < 2) throw invalid('a nominal reference needs at least 2 held-out good images (see --holdout)');
  // Five significant digits: the bank's JSON stays small and the scores do not notice.
  return { count, values: Array.from(sum, (s) => Number((s / count).toPrecision(5))) };
}

/** Per-cell sum of the grids and of the prior's values times its count. */
function summed(grids: readonly Float32Array[], prior?: NominalReference): Float64Array {
  const n = grids[0]?.length ?? prior?.values.length ?? 0;
  const sum = new Float64Array(n);
  if (prior) {
    if (prior.values.length !== n)
      throw invalid(
        `held-out images give ${n} patches, the bank's nominal reference has ${prior.values.length}: a reference needs a fixed canvas`,
      );
    for (let i = 0; i < n; i++) sum[i] = prior.values[i] * prior.count;
  }
  for (const g of grids) {
    if (g.length !== n)
      throw invalid('held-out images give different patch grids: a reference needs a fixed canvas');
    for (let i = 0; i < n; i++) sum[i] += g[i];
  }
  return sum;
}

/**
 * Held-out image j's scores minus the mean of the *other* held-out images: the threshold is set on
 * scores from a reference they did not shape, as a new good image's will be (the in-sample mean
 * pulls each held-out image towards zero and the threshold too low). A `prior` counts as in
 * referenceFrom.
 */
export function leaveOneOut(
  grids: readonly Float32Array[],
  j: number,
  prior?: NominalReference,
): Float32Array {
  const others = grids.length - 1 + (prior?.count ?? 0);
  if (others < 1) throw invalid('leave-one-out needs at least 2 held-out images');
  const sum = summed(grids, prior);
  const own = grids[j];
  const out = new Float32Array(own.length);
  for (let i = 0; i < out.length; i++) out[i] = own[i] - (sum[i] - own[i]) / others;
  return out;
}

/** Patch scores minus the reference, in place; a grid of another size is refused. */
export function subtractReference(scores: Float32Array, reference: NominalReference): Float32Array {
  const ref = reference.values;
  if (ref.length !== scores.length) {
    throw invalid(
      `image gives ${scores.length} patches, the bank's nominal reference has ${ref.length}: ` +
        'a bank with a reference inspects only images of its own canvas size',
    );
  }
  for (let i = 0; i < scores.length; i++) scores[i] -= ref[i];
  return scores;
}
