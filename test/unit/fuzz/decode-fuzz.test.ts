/**
 * Image decoding fed mutated PNG, JPEG, TIFF, WebP and BMP files (seeded, bounded): every input
 * ends in a decoded image of consistent size or an SpiError the gateway maps to a clean status
 * (INVALID_ARGUMENT or RESOURCE_EXHAUSTED), never another exception or a crash.
 */
import { strict as assert } from 'node:assert';
import { decodeImage } from '../../../lib/image/decode';
import { SpiError } from '../../../lib/errors';
import { cameraFormats } from '../../helpers/image-corpus';
import { mutator } from '../../helpers/mutate';

const SEED = 19;
const PER_FILE = 100;
const BASES = [
  'png-rgb8.png',
  'png-grey16.png',
  'png-palette.png',
  'jpeg-rgb.jpg',
  'jpeg-progressive.jpg',
  'tiff-rgb8.tif',
  'tiff-lzw.tif',
  'tiff-grey16.tif',
  'webp-lossy.webp',
  'bmp-rgb24.bmp',
  'bmp-grey8.bmp',
  'bmp-rgb16.bmp',
];

const HALF = (width: number, height: number) => ({
  width: Math.max(1, width >> 1),
  height: Math.max(1, height >> 1),
});

describe('fuzz: image decoding', function () {
  this.timeout(60_000);

  it(`ends every mutant of ${BASES.length} valid files (${PER_FILE} each) in an image or a clean refusal`, async () => {
    const files = new Map((await cameraFormats()).map((f) => [f.name, f.bytes]));
    const { mutate } = mutator(SEED);
    const outcomes = new Map<string, number>();
    for (const [i, name] of BASES.entries()) {
      const base = files.get(name)!;
      const other = files.get(BASES[(i + 1) % BASES.length])!;
      for (let n = 0; n < PER_FILE; n++) {
        const { bytes, how } = mutate(base, other);
        // As a fit decodes (full size) and as an inspection does (straight to a smaller canvas).
        for (const sizeFor of [undefined, HALF]) {
          const label = `${name} #${n} (${how}, seed ${SEED}${sizeFor ? ', to half size' : ''})`;
          try {
            const img = await decodeImage(bytes, undefined, sizeFor);
            assert.ok(img.width > 0 && img.height > 0, label);
            assert.equal(img.data.length, img.width * img.height * 3, label);
            outcomes.set('decoded', (outcomes.get('decoded') ?? 0) + 1);
          } catch (err) {
            assert.ok(err instanceof SpiError, `${label}: ${String((err as Error).stack ?? err)}`);
            assert.ok(['INVALID_ARGUMENT', 'RESOURCE_EXHAUSTED'].includes(err.kind), `${label}: ${err.kind}`);
            outcomes.set(err.kind, (outcomes.get(err.kind) ?? 0) + 1);
          }
        }
      }
    }
    // Both paths were exercised: mutants that still decode, and refusals.
    assert.ok(
      (outcomes.get('decoded') ?? 0) > 0 && (outcomes.get('INVALID_ARGUMENT') ?? 0) > 0,
      JSON.stringify([...outcomes]),
    );
  });
});
