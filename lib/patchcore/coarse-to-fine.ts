/**
 * Coarse-to-fine inspection of large sheets: a pass at reduced scale says where a sheet may be
 * defective, and only the full-resolution tiles over those places need embedding, search and
 * scoring. Here: which fine tiles a coarse map sends to the fine pass, and the sheet's score from
 * the tiles the fine pass saw. bench/coarse-to-fine.ts measures what it costs in recall.
 */
import { Tile } from '../image/views';

/** An anomaly map and the canvas it covers, in pixels. */
export interface CanvasMap {
  map: Float32Array;
  width: number;
  height: number;
}

/**
 * The largest value of `m` over a rectangle given in the pixels of another canvas (`from`, e.g. the
 * fine canvas when `m` is the coarse map): the rectangle is scaled onto `m` and widened to whole
 * pixels, so a peak anywhere under it counts.
 */
export function maxOver(m: CanvasMap, rect: Tile, from: { width: number; height: number }): number {
  const sx = m.width / from.width;
  const sy = m.height / from.height;
  const x0 = Math.max(0, Math.floor(rect.left * sx));
  const y0 = Math.max(0, Math.floor(rect.top * sy));
  const x1 = Math.min(m.width, Math.ceil((rect.left + rect.width) * sx));
  const y1 = Math.min(m.height, Math.ceil((rect.top + rect.height) * sy));
  let best = -Infinity;
  for (let y = y0; y < y1; y++) {
    const row = y * m.width;
    for (let x = x0; x < x1; x++) if (m.map[row + x] > best) best = m.map[row + x];
  }
  return best;
}

/**
 * Indices of the fine tiles whose footprint on the coarse map reaches `level` (the coarse bank's
 * threshold times a margin below 1: a defect the coarse pass sees only faintly still gets its
 * full-resolution look).
 */
export function tilesToRescore(
  coarse: CanvasMap,
  fineTiles: readonly Tile[],
  fineCanvas: { width: number; height: number },
  level: number,
): number[] {
  const out: number[] = [];
  fineTiles.forEach((tile, i) => {
    if (maxOver(coarse, tile, fineCanvas) >= level) out.push(i);
  });
  return out;
}

/**
 * A sheet's score when only some fine tiles were scored: the largest value of the fine map over
 * those tiles (-Infinity when none was: the coarse pass cleared the whole sheet).
 */
export function scoreOfTiles(fine: CanvasMap, tiles: readonly Tile[], chosen: readonly number[]): number {
  let best = -Infinity;
  for (const i of chosen) best = Math.max(best, maxOver(fine, tiles[i], fine));
  return best;
}
