/** Shared by the models tests: tfjs reference models, test images, NHWC/NCHW helpers, comparisons. */
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs';
import { TfjsArtifacts } from '../../../models/keras/nsfwjs';

tf.enableProdMode(); // silences the "use tfjs-node" banner; the pure-JS CPU backend is what we want
void tf.setBackend('cpu');

export { tf };

export const SHARED_DATA = process.env.SPI_SHARED_DATA ?? path.resolve(__dirname, '../../../../shared/data');

/** Two real photos of printed products: an MVTec AD bottle and a DeepPCB board. */
export function testImagePaths(): string[] {
  const pcbDir = path.join(SHARED_DATA, 'deeppcb/group12100/train/good');
  const pcb = fs
    .readdirSync(pcbDir)
    .filter((f) => f.endsWith('.jpg'))
    .sort()[0];
  return [path.join(SHARED_DATA, 'mvtec_ad/bottle/test/good/000.png'), path.join(pcbDir, pcb)];
}

/** Images resized to size x size, RGB scaled to [-1, 1] (Keras "tf" preprocessing), NHWC batch. */
export async function loadBatchNhwc(files: string[], size: number): Promise<Float32Array> {
  const out = new Float32Array(files.length * size * size * 3);
  for (let i = 0; i < files.length; i++) {
    const rgb = await sharp(files[i]).removeAlpha().resize(size, size, { fit: 'fill' }).raw().toBuffer();
    for (let j = 0; j < rgb.length; j++) out[i * rgb.length + j] = rgb[j] / 127.5 - 1;
  }
  return out;
}

export function nhwcToNchw(data: Float32Array, n: number, h: number, w: number, c: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let b = 0; b < n; b++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        for (let k = 0; k < c; k++) out[((b * c + k) * h + y) * w + x] = data[((b * h + y) * w + x) * c + k];
  return out;
}

/** max |a - b| and max |a| between an NHWC reference and an NCHW result of the same shape. */
export function compareNhwcNchw(
  ref: Float32Array | Int32Array | Uint8Array,
  refShape: number[],
  got: Float32Array,
): { maxDiff: number; scale: number } {
  const [n, h, w, c] = refShape;
  let maxDiff = 0;
  let scale = 0;
  for (let b = 0; b < n; b++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        for (let k = 0; k < c; k++) {
          const r = ref[((b * h + y) * w + x) * c + k];
          maxDiff = Math.max(maxDiff, Math.abs(r - got[((b * c + k) * h + y) * w + x]));
          scale = Math.max(scale, Math.abs(r));
        }
  return { maxDiff, scale };
}

/**
 * The Keras model as tfjs builds it from the same topology JSON, cut at `stages` (outputs) and with
 * a fixed input size. tfjs dequantises the uint8 weights itself, independently of our converter.
 */
export async function tfjsReference(
  artifacts: TfjsArtifacts,
  stages: string[],
  size: number,
): Promise<tf.LayersModel> {
  const topology = JSON.parse(JSON.stringify(artifacts.modelTopology)) as {
    model_config: {
      config: {
        layers: { name: string; config: Record<string, unknown>; inbound_nodes: [string][][] }[];
        output_layers: unknown;
      };
    };
  };
  const config = topology.model_config.config;
  const byName = new Map(config.layers.map((l) => [l.name, l]));
  const keep = new Set<string>();
  const stack = [...stages];
  while (stack.length > 0) {
    const name = stack.pop() as string;
    if (keep.has(name)) continue;
    keep.add(name);
    for (const entry of byName.get(name)?.inbound_nodes[0] ?? []) stack.push(entry[0]);
  }
  config.layers = config.layers.filter((l) => keep.has(l.name));
  config.output_layers = stages.map((s) => [s, 0, 0]);
  config.layers[0].config.batch_input_shape = [null, size, size, 3];
  const data = artifacts.weightData;
  const weightData = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer;
  const handler = tf.io.fromMemory({
    modelTopology: topology as unknown as tf.io.ModelArtifacts['modelTopology'],
    weightSpecs: artifacts.weightSpecs as tf.io.WeightsManifestEntry[],
    weightData,
  });
  // strict: false because the manifest also holds the weights of the layers we cut off.
  return tf.loadLayersModel(handler, { strict: false });
}
