import { strict as assert } from 'node:assert';
import { BankMeta, DEFAULT_SCORE, bankFormatOf } from '../../../lib/bank/bank-meta';
import { DEFAULT_VIEW, reflectPad, tileGrid } from '../../../lib/image/views';
import { scorePatches } from '../../../lib/patchcore/inspector';

const grey = (w: number, h: number, f: (x: number, y: number) => number) => {
  const data = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) data.fill(f(x, y), (y * w + x) * 3, (y * w + x + 1) * 3);
  return { data, width: w, height: h };
};

describe('edge padding', () => {
  it('mirrors the canvas without repeating the edge pixel', () => {
    const padded = reflectPad(
      grey(3, 3, (x, y) => 10 * y + x),
      2,
    );
    assert.equal(padded.width, 7);
    assert.equal(padded.height, 7);
    const row = (y: number) => Array.from({ length: 7 }, (_, x) => padded.data[(y * 7 + x) * 3]);
    assert.deepEqual(row(2), [2, 1, 0, 1, 2, 1, 0]); // image row 0, mirrored left and right
    assert.deepEqual(row(0), [22, 21, 20, 21, 22, 21, 20]); // two rows up: image row 2
    assert.deepEqual(row(4), row(0)); // image row 2, the bottom edge
    assert.deepEqual(row(6), row(2));
    assert.equal(
      reflectPad(
        grey(3, 2, () => 0),
        0,
      ).width,
      3,
    );
    assert.throws(
      () =>
        reflectPad(
          grey(3, 2, () => 0),
          2,
        ),
      /larger than 3x2/,
    );
  });

  it('scores on the padded canvas and returns the map of the canvas only', () => {
    // A 12 px canvas padded by 2: the backbone saw 16 px in one tile of a 4x4 grid; the hot cell
    // in the padded border must not reach the map or the image score.
    const meta = { score: { ...DEFAULT_SCORE, sigma: 0 }, view: { ...DEFAULT_VIEW, pad: 2 } } as BankMeta;
    const scores = new Float32Array(16);
    scores[0] = 100; // top-left cell: mostly mirrored border
    scores[5] = 3;
    const embedding = {
      canvasWidth: 16,
      canvasHeight: 16,
      pad: 2,
      tiles: tileGrid(16, 16, DEFAULT_VIEW),
      gridHeight: 4,
      gridWidth: 4,
      dim: 1,
    };
    const r = scorePatches(meta, embedding, scores, { width: 12, height: 12 }, 50);
    assert.equal(r.canvasWidth, 12);
    assert.equal(r.map.length, 144);
    assert.ok(r.score < 100, `the border cell's 100 is interpolated away inside the canvas, got ${r.score}`);
  });

  it('patch-max counts only the cells that sit mostly on the image, not on its mirrored border', () => {
    const meta = {
      score: { ...DEFAULT_SCORE, sigma: 0, imageScore: 'patch-max' },
      view: { ...DEFAULT_VIEW, pad: 4 },
    } as BankMeta;
    // A 16 px canvas padded by 4: 24 px seen as one tile of a 6x6 grid (cell centres 2, 6, ..., 22).
    const embedding = {
      canvasWidth: 24,
      canvasHeight: 24,
      pad: 4,
      tiles: tileGrid(24, 24, DEFAULT_VIEW),
      gridHeight: 6,
      gridWidth: 6,
      dim: 1,
    };
    const scores = new Float32Array(36).fill(1);
    scores[0] = 100; // centre (2, 2): in the mirrored border
    scores[6 * 3 + 5] = 80; // centre (22, 14): right border
    scores[6 * 2 + 3] = 7; // centre (14, 10): on the image
    const r = scorePatches(meta, embedding, scores, { width: 16, height: 16 }, 50);
    assert.equal(r.score, 7);
    assert.equal(r.isDefective, false);
    // Without padding every cell is on the image.
    const plain = scorePatches(
      { ...meta, view: DEFAULT_VIEW },
      { ...embedding, pad: 0 },
      scores,
      { width: 24, height: 24 },
      50,
    );
    assert.equal(plain.score, 100);
  });

  it('a padded bank is format 2; an unpadded one stays 1', () => {
    assert.equal(bankFormatOf({ view: { ...DEFAULT_VIEW, pad: 16 } }), 2);
    assert.equal(bankFormatOf({ view: { ...DEFAULT_VIEW, pad: 0 } }), 1);
    assert.equal(bankFormatOf({ view: DEFAULT_VIEW }), 1);
  });
});
