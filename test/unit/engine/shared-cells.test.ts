import { strict as assert } from 'node:assert';
import { DEFAULT_VIEW, Tile, tileGrid } from '../../../lib/image/views';
import {
  CellLayout,
  DistinctCellCache,
  cellCentres,
  distinctCells,
  expandToCells,
} from '../../../lib/patchcore/shared-cells';
import { gatherRows } from '../../../lib/util/rows';

/** Canvas centre of every cell of a layout, tile after tile. */
function centresOf(layout: CellLayout): [number, number][] {
  return layout.tiles.flatMap((tile) => {
    const xs = cellCentres(layout.gridWidth, tile.width, layout.placement?.x);
    const ys = cellCentres(layout.gridHeight, tile.height, layout.placement?.y);
    return ys.flatMap((y) => xs.map((x): [number, number] => [tile.left + x, tile.top + y]));
  });
}

const tiled = (size: number, tile: number, overlap: number, grid: number): CellLayout => ({
  tiles: tileGrid(size, size, { ...DEFAULT_VIEW, resize: 0, tile, overlap }),
  gridHeight: grid,
  gridWidth: grid,
  canvasWidth: size,
  canvasHeight: size,
});

describe('shared cells of overlapping tiles', () => {
  it('keeps one cell per canvas position, the copy farthest from its tile inner edges', () => {
    // 416 px in 224 px tiles overlapping 32 (step 192): 2 x 2 tiles of 28 x 28 cells at stride 8.
    const layout = tiled(416, 224, 32, 28);
    const plan = distinctCells(layout)!;
    assert.ok(plan);
    assert.equal(plan.rowOf.length, 4 * 28 * 28);
    assert.equal(plan.searched.length, 52 * 52, 'one cell per 8 px position of the 416 px canvas');
    const centres = centresOf(layout);
    plan.rowOf.forEach((row, cell) =>
      assert.deepEqual(
        centres[plan.searched[row]],
        centres[cell],
        `cell ${cell} takes another position's row`,
      ),
    );
    // The tiles overlap on x in [192, 224): x = 204 is 20 px inside the left tile and 12 inside the
    // right one, x = 212 the other way round; the edge on the canvas border does not count.
    const at = (x: number, y: number) => centres.findIndex(([cx, cy]) => cx === x && cy === y);
    const tileOfKept = (x: number, y: number) => Math.floor(plan.searched[plan.rowOf[at(x, y)]] / (28 * 28));
    assert.equal(tileOfKept(204, 100), 0);
    assert.equal(tileOfKept(212, 100), 1);
    assert.equal(tileOfKept(4, 4), 0, 'only one tile sees the corner');
    assert.equal(tileOfKept(412, 412), 3);
  });

  it('shares nothing for one tile, or where the tile step is not a multiple of the cell stride', () => {
    assert.equal(distinctCells(tiled(224, 224, 0, 28)), undefined);
    const odd: Tile[] = [
      { left: 0, top: 0, width: 224, height: 224 },
      { left: 190, top: 0, width: 224, height: 224 },
    ];
    assert.equal(
      distinctCells({ tiles: odd, gridHeight: 28, gridWidth: 28, canvasWidth: 414, canvasHeight: 224 }),
      undefined,
    );
  });

  it('searches the kept rows and copies each answer to every cell of its position', () => {
    const layout = tiled(416, 224, 32, 28);
    const plan = distinctCells(layout)!;
    const cells = plan.rowOf.length;
    const dim = 2;
    const vectors = Float32Array.from({ length: cells * dim }, (_, i) => i);
    const gathered = gatherRows(vectors, dim, plan.searched);
    assert.equal(gathered.length, plan.searched.length * dim);
    assert.deepEqual(Array.from(gathered.subarray(2, 4)), [plan.searched[1] * 2, plan.searched[1] * 2 + 1]);
    // A "search" whose answer is the query's own first coordinate, k = 2.
    const k = 2;
    const distances = new Float32Array(plan.searched.length * k);
    const labels = new Int32Array(plan.searched.length * k);
    plan.searched.forEach((cell, row) => {
      distances.set([cell, cell + 0.5], row * k);
      labels.set([cell, -cell], row * k);
    });
    const out = expandToCells({ distances, labels, k }, plan.rowOf);
    assert.equal(out.k, k);
    assert.ok(out.labels instanceof Int32Array);
    for (let cell = 0; cell < cells; cell++) {
      const owner = plan.searched[plan.rowOf[cell]];
      assert.deepEqual(Array.from(out.distances.subarray(cell * k, cell * k + k)), [owner, owner + 0.5]);
      assert.equal(out.labels[cell * k], owner);
    }
  });

  it('remembers a plan per layout', () => {
    const cache = new DistinctCellCache(2);
    const a = tiled(416, 224, 32, 28);
    assert.equal(cache.get(a), cache.get({ ...a, tiles: a.tiles.map((t) => ({ ...t })) }));
    assert.notEqual(cache.get(a), cache.get(tiled(608, 224, 32, 28)));
    assert.equal(cache.get(tiled(224, 224, 0, 28)), undefined);
  });
});
