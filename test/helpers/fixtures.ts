/**
 * Shared test data: a small print dataset from our own generator (MVTec layout), made once per
 * test run under .test-tmp, and crafted bad images for the input-validation tests.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { generateDataset } from '../../lib/synth/dataset';
import { listImages } from '../../lib/data/mvtec';
import { TEST_TMP } from '../../services/local/processes';

export interface PrintDataset {
  root: string;
  train: string[];
  testGood: string[];
  testDefective: string[];
}

/**
 * 224 px print images (the engine's default canvas, so no resize in the way); `test`: how many good
 * test prints, and defective ones of each kind.
 */
export async function printDataset(
  name = 'prints-224',
  trainGood = 8,
  test = { good: 2, perDefect: 1 },
): Promise<PrintDataset> {
  const root = path.join(TEST_TMP, name);
  await generateDataset(root, {
    seed: 7,
    size: 224,
    trainGood,
    testGood: test.good,
    perDefect: test.perDefect,
    variation: { maxShift: 0.5 },
  });
  const testDir = path.join(root, 'test');
  const types = fs.readdirSync(testDir).filter((t) => t !== 'good');
  return {
    root,
    train: listImages(path.join(root, 'train', 'good')),
    testGood: listImages(path.join(testDir, 'good')),
    testDefective: types.flatMap((t) => listImages(path.join(testDir, t))),
  };
}

export function upload(files: string[]): { name: string; data: Buffer }[] {
  return files.map((f) => ({ name: path.basename(f), data: fs.readFileSync(f) }));
}

/**
 * A well-formed PNG that claims width x height but carries almost no pixel data: a decompression
 * bomb's header. Decoders read the size before any pixels, which is where it must be refused.
 */
export function pngHeader(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', zlib.deflateSync(Buffer.alloc(64))),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

/** A PNG chunk: length, type, data, CRC. */
export function pngChunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length, 0);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(body) >>> 0, 0);
  return Buffer.concat([len, body, crc]);
}
