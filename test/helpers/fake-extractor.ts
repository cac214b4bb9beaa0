/**
 * A stand-in backbone for engine tests that need no onnxruntime: each `cell` x `cell` pixel block
 * is one patch whose feature is its mean grey level, so tests steer patch scores by painting
 * pixels (milliseconds per image).
 */
import sharp from 'sharp';
import { RgbImage } from '../../lib/image/decode';
import { FeatureExtractor, ImageEmbedding } from '../../lib/patchcore/feature-extractor';
import { ImageSource } from '../../lib/patchcore/fit';

export function fakeExtractor(cell = 4): FeatureExtractor {
  const embed = async (image: RgbImage): Promise<ImageEmbedding> => {
    const gw = Math.ceil(image.width / cell);
    const gh = Math.ceil(image.height / cell);
    const vectors = new Float32Array(gw * gh);
    for (let y = 0; y < image.height; y++)
      for (let x = 0; x < image.width; x++)
        vectors[Math.floor(y / cell) * gw + Math.floor(x / cell)] +=
          image.data[(y * image.width + x) * 3] / 255 / (cell * cell);
    return {
      canvasWidth: image.width,
      canvasHeight: image.height,
      tiles: [{ left: 0, top: 0, width: image.width, height: image.height }],
      gridHeight: gh,
      gridWidth: gw,
      dim: 1,
      vectors,
    };
  };
  const backbone = { id: 'fake', spec: { sha256: '' }, stages: [{ name: `grey${cell}` }] };
  return { backbone, options: { cellPlacement: false }, embed } as unknown as FeatureExtractor;
}

/** A 32 px grey image (level 100), with `paint` setting some pixels' grey level. */
export async function greyPng(paint: (x: number, y: number) => number | undefined): Promise<Uint8Array> {
  const data = Buffer.alloc(32 * 32 * 3);
  for (let y = 0; y < 32; y++)
    for (let x = 0; x < 32; x++) data.fill(paint(x, y) ?? 100, (y * 32 + x) * 3, (y * 32 + x + 1) * 3);
  return sharp(data, { raw: { width: 32, height: 32, channels: 3 } })
    .png()
    .toBuffer();
}

export function memorySource(name: string, bytes: Uint8Array): ImageSource {
  return { path: name, read: async () => bytes };
}
