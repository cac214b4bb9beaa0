import { strict as assert } from 'node:assert';
import { maxOver, scoreOfTiles, tilesToRescore } from '../../../lib/patchcore/coarse-to-fine';
import { tileGrid } from '../../../lib/image/views';

describe('coarse-to-fine tile choice', () => {
  // A 100x100 coarse map of a 400x400 fine canvas (scale 1/4), zero but for one peak.
  const coarse = { map: new Float32Array(100 * 100), width: 100, height: 100 };
  coarse.map[60 * 100 + 70] = 5; // coarse pixel (70, 60) = fine pixels 280-283 x 240-243
  const fineCanvas = { width: 400, height: 400 };
  const view = { resize: 0, crop: 0, scale: 1, tile: 160, overlap: 40 };
  const tiles = tileGrid(400, 400, view);

  it('reads a fine rectangle off the coarse map, widened to whole coarse pixels', () => {
    assert.equal(maxOver(coarse, { left: 280, top: 240, width: 4, height: 4 }, fineCanvas), 5);
    assert.equal(maxOver(coarse, { left: 283, top: 243, width: 1, height: 1 }, fineCanvas), 5);
    assert.equal(maxOver(coarse, { left: 284, top: 240, width: 10, height: 10 }, fineCanvas), 0);
    assert.equal(maxOver(coarse, { left: 0, top: 0, width: 279, height: 400 }, fineCanvas), 0);
  });

  it('sends to the fine pass exactly the tiles over the coarse peak', () => {
    const chosen = tilesToRescore(coarse, tiles, fineCanvas, 4);
    const expected = tiles
      .map((t, i) => ({ t, i }))
      .filter(({ t }) => t.left < 284 && t.left + t.width > 280 && t.top < 244 && t.top + t.height > 240)
      .map(({ i }) => i);
    assert.ok(expected.length >= 1);
    assert.deepEqual(chosen, expected);
    assert.deepEqual(tilesToRescore(coarse, tiles, fineCanvas, 5.5), [], 'nothing reaches the level');
    assert.equal(tilesToRescore(coarse, tiles, fineCanvas, 0).length, tiles.length, 'level 0 keeps all');
  });

  it('scores a sheet by the fine map over the chosen tiles only', () => {
    const fine = { map: new Float32Array(400 * 400), width: 400, height: 400 };
    fine.map[10 * 400 + 10] = 9; // a peak in the first tile only
    fine.map[300 * 400 + 300] = 2;
    const last = tiles.length - 1;
    assert.equal(scoreOfTiles(fine, tiles, [0]), 9);
    assert.equal(scoreOfTiles(fine, tiles, [last]), 2);
    assert.equal(scoreOfTiles(fine, tiles, []), -Infinity);
  });
});
