import assert from 'node:assert/strict';
import { renderArtwork } from '../../../lib/synth/artwork';
import { ean13CheckDigit, ean13Modules } from '../../../lib/synth/barcode';
import { compositeToRgb } from '../../../lib/synth/inks';

describe('synth/artwork', () => {
  it('is deterministic per seed and differs between seeds', () => {
    const a = renderArtwork(3, 256);
    const b = renderArtwork(3, 256);
    const c = renderArtwork(4, 256);
    for (let p = 0; p < 4; p++)
      assert.ok(Buffer.from(a.planes[p].data).equals(Buffer.from(b.planes[p].data)));
    assert.ok(!Buffer.from(compositeToRgb(a)).equals(Buffer.from(compositeToRgb(c))));
  });

  it('lays out every element inside the sheet, with ink in each', () => {
    const art = renderArtwork(1, { width: 512, height: 384 });
    assert.equal(art.width, 512);
    assert.equal(art.height, 384);
    const kinds = art.regions.map((r) => r.kind);
    for (const k of ['border', 'logo', 'title', 'photo', 'text', 'solid', 'barcode', 'strip'] as const) {
      assert.ok(kinds.includes(k), `missing ${k}`);
    }
    for (const { kind, rect } of art.regions) {
      assert.ok(
        rect.x0 >= 0 && rect.y0 >= 0 && rect.x1 <= art.width && rect.y1 <= art.height,
        `${kind} off the sheet`,
      );
      let ink = 0;
      for (let y = rect.y0; y < rect.y1; y++) {
        for (let x = rect.x0; x < rect.x1; x++)
          for (const p of art.planes) ink += p.data[y * art.width + x] > 128 ? 1 : 0;
      }
      assert.ok(ink > 20, `${kind} has no ink`);
    }
  });

  it('rejects sizes that are too small', () => {
    assert.throws(() => renderArtwork(1, 32), /size/);
  });

  it('encodes EAN-13 correctly', () => {
    assert.equal(ean13CheckDigit('400638133393'), 1);
    assert.equal(ean13CheckDigit('590123412345'), 7);
    const { modules, digits } = ean13Modules('590123412345');
    assert.equal(digits, '5901234123457');
    assert.equal(modules.length, 95);
    assert.ok(modules.startsWith('101') && modules.endsWith('101') && modules.slice(45, 50) === '01010');
  });
});
