/**
 * Overlapping tiles see the same canvas position more than once: 224 px tiles every 192 px give a
 * 2048 px sheet at scale 0.5 28,224 cells for 16,384 positions. Searching each position once, from
 * the tile that sees it farthest from the tile's inner edges (where the backbone had the most
 * context), and giving the other copies its distances cuts a tiled image's search, and the bytes
 * sent to the shards, by up to 1.7x. Cells coincide only where the tile step is a multiple of the
 * cell stride (the default 224 px tiles overlapping 32 px, and every stage stride up to 32); where
 * none coincide nothing changes.
 */
import { Tile } from '../image/views';
import { CellPlacement, AxisPlacement } from '../backbone/geometry';
import { KnnResult } from '../knn/index';

/** What the position of a cell needs: the tiles, their patch grid and where its cells sit. */
export interface CellLayout {
  tiles: readonly Tile[];
  gridHeight: number;
  gridWidth: number;
  canvasWidth: number;
  canvasHeight: number;
  placement?: CellPlacement;
}

export interface DistinctCells {
  /** Cells searched, one per canvas position, in cell order. */
  searched: Int32Array;
  /** For every cell (tile after tile), its position's row in `searched`. */
  rowOf: Int32Array;
}

/** Centres of a tile's `n` cells along one axis, in tile pixels (pixel p spans [p, p + 1)). */
export function cellCentres(n: number, size: number, axis?: AxisPlacement): number[] {
  return Array.from({ length: n }, (_, i) => (axis ? axis.scale * i + axis.offset : ((i + 0.5) * size) / n));
}

/**
 * One cell per canvas position, or undefined when no two cells share a position (a single tile, or
 * tiles whose step is not a multiple of the cell stride). Of the copies of a position the one kept
 * is the farthest from its tile's edges, not counting edges on the canvas border (no other tile sees
 * past those); ties go to the first tile.
 */
export function distinctCells(layout: CellLayout): DistinctCells | undefined {
  const { tiles, gridHeight: gh, gridWidth: gw, canvasWidth, canvasHeight, placement } = layout;
  if (tiles.length < 2) return undefined;
  const perTile = gh * gw;
  const cells = tiles.length * perTile;
  // Position key -> [cell kept, its distance to the nearest inner edge].
  const best = new Map<number, { cell: number; depth: number }>();
  const positionOf = new Float64Array(cells);
  const keys: number[] = [];
  tiles.forEach((tile, t) => {
    const xs = cellCentres(gw, tile.width, placement?.x);
    const ys = cellCentres(gh, tile.height, placement?.y);
    const inner = innerEdges(tile, canvasWidth, canvasHeight);
    for (let y = 0; y < gh; y++) {
      for (let x = 0; x < gw; x++) {
        const cell = t * perTile + y * gw + x;
        const key = positionKey(tile.left + xs[x], tile.top + ys[y]);
        const depth = Math.min(
          inner.left ? xs[x] : Infinity,
          inner.right ? tile.width - xs[x] : Infinity,
          inner.top ? ys[y] : Infinity,
          inner.bottom ? tile.height - ys[y] : Infinity,
        );
        const seen = best.get(key);
        if (!seen) {
          best.set(key, { cell, depth });
          keys.push(key);
        } else if (depth > seen.depth) seen.cell = cell;
        positionOf[cell] = key;
      }
    }
  });
  if (best.size === cells) return undefined;
  const searched = new Int32Array(keys.map((key) => best.get(key)!.cell)).sort();
  const rowByCell = new Map<number, number>();
  searched.forEach((cell, row) => rowByCell.set(cell, row));
  const rowOf = new Int32Array(cells);
  for (let cell = 0; cell < cells; cell++) rowOf[cell] = rowByCell.get(best.get(positionOf[cell])!.cell)!;
  return { searched, rowOf };
}

/**
 * A canvas position as an exact integer: centres lie on half pixels at worst, so quarter pixels
 * keep them apart; x may be slightly negative (a cell placed left of its tile) and below 2^18 px.
 */
function positionKey(x: number, y: number): number {
  return Math.round(y * 4) * 2 ** 21 + Math.round(x * 4) + 2 ** 20;
}

/** Which of a tile's edges face the inside of the canvas (another tile may see past them). */
function innerEdges(tile: Tile, canvasWidth: number, canvasHeight: number) {
  return {
    left: tile.left > 0,
    top: tile.top > 0,
    right: tile.left + tile.width < canvasWidth,
    bottom: tile.top + tile.height < canvasHeight,
  };
}

/** A search answer for the distinct cells, copied out to every cell of the layout. */
export function expandToCells(knn: KnnResult, rowOf: Int32Array): KnnResult {
  const { k } = knn;
  const distances = new Float32Array(rowOf.length * k);
  const labels = new (knn.labels instanceof Int32Array ? Int32Array : Float64Array)(rowOf.length * k);
  // Element by element: a sheet has ~28k cells, and a view per cell per array is garbage per request.
  for (let cell = 0; cell < rowOf.length; cell++) {
    const from = rowOf[cell] * k;
    const to = cell * k;
    for (let j = 0; j < k; j++) {
      distances[to + j] = knn.distances[from + j];
      labels[to + j] = knn.labels[from + j];
    }
  }
  return { distances, labels, k };
}

/**
 * distinctCells with a memory: every sheet of a job has the same layout, so the plan is worked out
 * once per layout (a few entries: one per view a process serves).
 */
export class DistinctCellCache {
  private readonly plans = new Map<string, DistinctCells | undefined>();

  constructor(private readonly capacity = 16) {}

  get(layout: CellLayout): DistinctCells | undefined {
    // A whole-frame view (the usual 224 px image) has nothing to share: no key to build.
    if (layout.tiles.length < 2) return undefined;
    const key = JSON.stringify([
      layout.tiles,
      layout.gridHeight,
      layout.gridWidth,
      layout.canvasWidth,
      layout.canvasHeight,
      layout.placement ?? null,
    ]);
    if (this.plans.has(key)) return this.plans.get(key);
    const plan = distinctCells(layout);
    if (this.plans.size >= this.capacity) this.plans.delete(this.plans.keys().next().value as string);
    this.plans.set(key, plan);
    return plan;
  }
}
