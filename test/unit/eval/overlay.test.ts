import assert from 'node:assert/strict';
import sharp from 'sharp';
import { jet, renderOverlay } from '../../../lib/eval/overlay';
import { fakeSample } from './fixtures';

async function pixels(png: Buffer) {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return {
    info,
    at: (x: number, y: number) => [...data.subarray((y * info.width + x) * 3, (y * info.width + x) * 3 + 3)],
  };
}

describe('eval/overlay', () => {
  it('maps low scores to blue and high scores to red', () => {
    assert.deepEqual(jet(0), [0, 0, 128]);
    assert.deepEqual(jet(1), [128, 0, 0]);
    assert.deepEqual(jet(0.5), [128, 255, 128]);
  });

  it('blends the heat map and draws the mask outline and boxes', async () => {
    const s = await fakeSample(96, 64, 3, true);
    const d = s.defect!;
    const png = await renderOverlay(s.rgb, s.width, s.height, s.map, {
      vmin: 0,
      vmax: 1,
      mask: s.mask,
      boxes: [{ x: 2, y: 2, w: 20, h: 14 }],
    });
    assert.deepEqual([...png.subarray(1, 4)].map((c) => String.fromCharCode(c)).join(''), 'PNG');
    const { info, at } = await pixels(png);
    assert.deepEqual([info.width, info.height], [96, 64]);
    // Leftmost mask pixel on the defect's middle row is on the outline: magenta.
    const row = Math.round(d.y + d.h / 2);
    let x = 0;
    while (s.mask[row * s.width + x] === 0) x++;
    assert.deepEqual(at(x, row), [255, 0, 255]);
    // Box: white just inside its edge, black just outside.
    assert.deepEqual(at(10, 2), [255, 255, 255]);
    assert.deepEqual(at(10, 1), [0, 0, 0]);
    // Defect centre (high score) is pushed towards red.
    const centre = at(Math.round(d.x + d.w / 2), row);
    const orig = [...s.rgb.subarray((row * s.width + Math.round(d.x + d.w / 2)) * 3)].slice(0, 3);
    assert.ok(centre[0] - orig[0] > 40, `${centre} vs ${orig}`);
  });

  it('downscales to maxSide and validates sizes', async () => {
    const s = await fakeSample(300, 200, 1, false);
    const png = await renderOverlay(s.rgb, s.width, s.height, s.map, { vmin: 0, vmax: 1, maxSide: 150 });
    const meta = await sharp(png).metadata();
    assert.deepEqual([meta.width, meta.height], [150, 100]);
    await assert.rejects(renderOverlay(s.rgb, 10, 10, s.map, { vmin: 0, vmax: 1 }), RangeError);
  });
});
