/**
 * The converted backbones compute what Keras computes: every exported stage of our ONNX graph, run
 * by onnxruntime, matches the same Keras model run by TensorFlow.js (pure-JS CPU) on real images.
 * tfjs needs ~13 s per 299 px InceptionV3 image on one core, so InceptionV3 is compared at 160 px
 * (the graph's spatial dims are dynamic); SPI_EQUIV_FULL=1 compares it at 299 px too.
 */
import { strict as assert } from 'assert';
import * as ort from 'onnxruntime-node';
import { BACKBONES } from '../../../models/backbones';
import { convertKerasModel } from '../../../models/keras/convert';
import { loadNsfwjsModel } from '../../../models/keras/nsfwjs';
import { decodeWeights } from '../../../models/keras/weights';
import { encodeModel } from '../../../models/onnx/io';
import { compareNhwcNchw, loadBatchNhwc, nhwcToNchw, testImagePaths, tf, tfjsReference } from './helpers';

const TOLERANCE = 1e-3; // max |onnx - tfjs| relative to the stage's max |value|

const CASES: { id: string; size: number }[] = [
  { id: 'mobilenet_v2-imagenet', size: 224 },
  { id: 'inception_v3-imagenet', size: 160 },
  ...(process.env.SPI_EQUIV_FULL ? [{ id: 'inception_v3-imagenet', size: 299 }] : []),
];

describe('models: Keras -> ONNX backbones match TensorFlow.js on real images', function () {
  this.timeout(180_000);

  for (const { id, size } of CASES) {
    it(`${id} at ${size} px: every stage within ${TOLERANCE} (relative)`, async () => {
      const def = BACKBONES.find((b) => b.id === id);
      assert.ok(def);
      const artifacts = loadNsfwjsModel(def.nsfwjsModel);
      const converted = convertKerasModel(
        artifacts.modelTopology,
        decodeWeights(artifacts.weightSpecs, artifacts.weightData),
        {
          stages: def.stages,
          lastUsableLayer: def.lastFrozenLayer,
          requireFrozen: true,
        },
      );
      const session = await ort.InferenceSession.create(encodeModel(converted.model));
      const files = testImagePaths();
      const nhwc = await loadBatchNhwc(files, size);
      const onnxOut = await session.run({
        input: new ort.Tensor('float32', nhwcToNchw(nhwc, files.length, size, size, 3), [
          files.length,
          3,
          size,
          size,
        ]),
      });
      await session.release();

      const reference = await tfjsReference(artifacts, def.stages, size);
      const tfOut = tf.tidy(
        () => reference.predict(tf.tensor4d(nhwc, [files.length, size, size, 3])) as tf.Tensor[],
      );
      try {
        def.stages.forEach((stage, i) => {
          const ref = tfOut[i];
          const [n, h, w, c] = ref.shape;
          assert.deepEqual(onnxOut[stage].dims, [n, c, h, w], `${stage} shape`);
          const { maxDiff, scale } = compareNhwcNchw(
            ref.dataSync(),
            ref.shape,
            onnxOut[stage].data as Float32Array,
          );
          assert.ok(scale > 0, `${stage} is all zeros`);
          assert.ok(maxDiff <= TOLERANCE * scale, `${stage}: max |diff| ${maxDiff} vs scale ${scale}`);
        });
      } finally {
        tfOut.forEach((t) => t.dispose());
        reference.dispose();
      }
    });
  }
});
