/**
 * Rows of a row-major matrix, copied out in the order asked: the coreset's picks, the outlier
 * filter's folds, a bank's rows read back, a sheet's distinct cells. One helper for all of them.
 */
export function gatherRows(x: Float32Array, dim: number, rows: ArrayLike<number>): Float32Array {
  const out = new Float32Array(rows.length * dim);
  for (let i = 0; i < rows.length; i++) out.set(x.subarray(rows[i] * dim, (rows[i] + 1) * dim), i * dim);
  return out;
}
