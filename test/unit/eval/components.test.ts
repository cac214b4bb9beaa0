import assert from 'node:assert/strict';
import { connectedComponents } from '../../../lib/eval/metrics';

/** Mask from rows of '#' (set) and '.' (clear). */
function parse(rows: string[]): { mask: Uint8Array; width: number; height: number } {
  const width = rows[0].length;
  const mask = Uint8Array.from(rows.join(''), (c) => (c === '#' ? 1 : 0));
  return { mask, width, height: rows.length };
}

describe('eval/components: connectedComponents', () => {
  it('joins diagonal neighbours (8-connectivity) and keeps separate blobs apart', () => {
    const { mask, width, height } = parse([
      '##...#', // a: (0,0) (1,0) (1,1) (2,2) via the diagonal; b: (5,0) alone
      '.#....',
      '..#.##', // c: (4,2) (5,2) (4,3)
      '....#.',
      '#.....', // d: (0,4)
    ]);
    const cc = connectedComponents(mask, width, height);
    assert.equal(cc.count, 4);
    assert.deepEqual([...cc.areas], [0, 4, 1, 3, 1]);
    const at = (x: number, y: number) => cc.labels[y * width + x];
    assert.equal(at(0, 0), at(2, 2));
    assert.notEqual(at(5, 0), at(5, 2));
    assert.equal(at(4, 3), at(5, 2));
    assert.equal(at(3, 0), 0);
  });

  it('does not wrap around row ends', () => {
    // (3,0) and (0,1) are adjacent in memory but not in the image.
    const { mask, width, height } = parse(['...#', '#...']);
    assert.equal(connectedComponents(mask, width, height).count, 2);
  });

  it('handles empty, full and large masks', () => {
    assert.equal(connectedComponents(new Uint8Array(6), 3, 2).count, 0);
    const full = connectedComponents(new Uint8Array(12).fill(1), 4, 3);
    assert.deepEqual([full.count, full.areas[1]], [1, 12]);
    // Checkerboard: every set pixel touches others diagonally, so one component.
    const w = 900;
    const board = new Uint8Array(w * w).map((_, i) => ((i % w) + Math.floor(i / w)) % 2);
    const cc = connectedComponents(board, w, w);
    assert.deepEqual([cc.count, cc.areas[1]], [1, (w * w) / 2]);
    assert.throws(() => connectedComponents(new Uint8Array(5), 2, 2), RangeError);
  });
});
