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

/** Per-cell mean of the held-out images' raw patch scores (all of one grid size). */
export function referenceFrom(grids: readonly Float32Array[]): NominalReference {
  if (grids.length < 2)
    throw invalid('a nominal reference needs at least 2 held-out good images (see --holdout)');
  const n = grids[0].length;
  const sum = new Float64Array(n);
  for (const g of grids) {
    if (g.length !== n)
      throw invalid('held-out images give different patch grids: a reference needs a fixed canvas');
    for (let i = 0; i < n; i++) sum[i] += g[i];
  }
  // Five significant digits: the bank's JSON stays small and the scores do not notice.
  return { count: grids.length, values: Array.from(sum, (s) => Number((s / grids.length).toPrecision(5))) };
}

/**
 * Held-out image j's scores minus the mean of the *other* held-out images: the threshold is set on
 * scores from a reference they did not shape, as a new good image's will be (the in-sample mean
 * pulls each held-out image towards zero and the threshold too low).
 */
export function leaveOneOut(grids: readonly Float32Array[], j: number): Float32Array {
  const n = grids.length;
  if (n < 2) throw invalid('leave-one-out needs at least 2 held-out images');
  const out = new Float32Array(grids[j].length);
  for (let i = 0; i < out.length; i++) {
    let others = 0;
    for (let k = 0; k < n; k++) if (k !== j) others += grids[k][i];
    out[i] = grids[j][i] - others / (n - 1);
  }
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
