/**
 * The converter layer by layer, on a small tfjs-built model that uses every supported layer type in
 * the awkward cases the real backbones do not all hit (stride-2 'same' at odd and even sizes,
 * excluded-padding averages, standalone BatchNormalization and padding, 3-way Add), plus its errors.
 */
import { strict as assert } from 'assert';
import * as ort from 'onnxruntime-node';
import { BACKBONES } from '../../../models/backbones';
import { convertKerasModel } from '../../../models/keras/convert';
import { loadNsfwjsModel } from '../../../models/keras/nsfwjs';
import { WeightMap, WeightSpec, decodeWeights } from '../../../models/keras/weights';
import { encodeModel } from '../../../models/onnx/io';
import { ancestorTensors } from '../../../models/onnx/prune';
import { compareNhwcNchw, nhwcToNchw, tf } from './helpers';

const L = tf.layers;
const STAGES = ['relu_a', 'cat', 'out_add', 'avg_s1', 'pool_after_pad', 'avg_after_pad'];

type Sym = tf.SymbolicTensor;

/** Applies a layer to symbolic input(s); tfjs' apply() is typed for eager tensors too. */
function ap(layer: tf.layers.Layer, input: Sym | Sym[]): Sym {
  return layer.apply(input) as Sym;
}

function buildTinyModel(): tf.LayersModel {
  const x = tf.input({ shape: [null, null, 3], name: 'img' });
  const padA = ap(
    L.zeroPadding2d({
      padding: [
        [1, 1],
        [1, 1],
      ],
      name: 'pad1',
    }),
    x,
  );
  const convA = ap(
    L.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'valid', useBias: false, name: 'conv_a' }),
    padA,
  );
  const a = ap(L.reLU({ maxValue: 6, name: 'relu_a' }), ap(L.batchNormalization({ name: 'bn_a' }), convA));
  const b = ap(
    L.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu', name: 'conv_b' }),
    x,
  );
  const dw = ap(
    L.depthwiseConv2d({ kernelSize: 3, strides: 2, padding: 'same', depthMultiplier: 2, name: 'dw_c' }),
    x,
  );
  const act = ap(
    L.activation({ activation: 'relu6', name: 'act_c' }),
    ap(L.batchNormalization({ name: 'bn_c' }), dw),
  );
  const pw = ap(L.conv2d({ filters: 8, kernelSize: 1, useBias: false, name: 'pw_c' }), act);
  const c = ap(L.batchNormalization({ name: 'bn_pw_c', scale: false }), pw);
  const n = ap(L.batchNormalization({ name: 'bn_sum' }), ap(L.add({ name: 'sum3' }), [a, b, c]));
  const cat = ap(L.concatenate({ axis: -1, name: 'cat' }), [n, b]);
  const m = ap(L.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same', name: 'max_s2' }), cat);
  const v = ap(L.averagePooling2d({ poolSize: 3, strides: 2, padding: 'same', name: 'avg_s2' }), cat);
  const v1 = ap(L.averagePooling2d({ poolSize: 3, strides: 1, padding: 'same', name: 'avg_s1' }), cat);
  const padZ = ap(L.zeroPadding2d({ padding: 1, name: 'pad2' }), cat);
  const zp = ap(L.maxPooling2d({ poolSize: 3, strides: 2, padding: 'valid', name: 'pool_after_pad' }), padZ);
  const padY = ap(
    L.zeroPadding2d({
      padding: [
        [0, 1],
        [2, 0],
      ],
      name: 'pad3',
    }),
    cat,
  );
  const za = ap(
    L.averagePooling2d({ poolSize: 2, strides: 2, padding: 'valid', name: 'avg_after_pad' }),
    padY,
  );
  const t = ap(L.activation({ activation: 'tanh', name: 'tanh_v' }), v);
  const s = ap(L.activation({ activation: 'sigmoid', name: 'sig_m' }), m);
  const out = ap(L.add({ name: 'out_add' }), [t, s]);
  const model = tf.model({ inputs: x, outputs: [a, cat, out, v1, zp, za], name: 'tiny' });
  // Non-trivial weights everywhere, BN statistics included (variances and scales positive).
  model.setWeights(
    model.weights.map((w, i) => {
      const positive = w.name.includes('moving_variance') || w.name.includes('gamma');
      return tf.randomUniform(
        w.shape as number[],
        positive ? 0.5 : -0.8,
        positive ? 1.5 : 0.8,
        'float32',
        i + 1,
      );
    }),
  );
  return model;
}

/** The model as TF.js would save it: topology JSON + weight manifest + bytes. */
async function saveArtifacts(
  model: tf.LayersModel,
): Promise<{ topology: unknown; weights: WeightMap; specs: WeightSpec[]; data: Uint8Array }> {
  let saved: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      saved = artifacts;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  assert.ok(saved?.weightSpecs && saved.weightData);
  const data = new Uint8Array(saved.weightData as ArrayBuffer);
  const specs = saved.weightSpecs as WeightSpec[];
  return { topology: saved.modelTopology, weights: decodeWeights(specs, data), specs, data };
}

describe('models: Keras layer converters', function () {
  this.timeout(60_000);
  let model: tf.LayersModel;
  let saved: Awaited<ReturnType<typeof saveArtifacts>>;

  before(async () => {
    model = buildTinyModel();
    saved = await saveArtifacts(model);
  });
  after(() => model.dispose());

  for (const [h, w] of [
    [17, 17],
    [16, 21],
  ]) {
    it(`matches tfjs on every layer type at ${h}x${w}`, async () => {
      const converted = convertKerasModel(saved.topology, saved.weights, { stages: STAGES });
      const session = await ort.InferenceSession.create(encodeModel(converted.model));
      const nhwc = (tf.randomUniform([2, h, w, 3], -1, 1, 'float32', 7).dataSync() as Float32Array).slice();
      const onnxOut = await session.run({
        input: new ort.Tensor('float32', nhwcToNchw(nhwc, 2, h, w, 3), [2, 3, h, w]),
      });
      const tfOut = model.predict(tf.tensor4d(nhwc, [2, h, w, 3])) as tf.Tensor[];
      STAGES.forEach((stage, i) => {
        const [n, oh, ow, oc] = tfOut[i].shape;
        assert.deepEqual(onnxOut[stage].dims, [n, oc, oh, ow], `${stage} shape`);
        const { maxDiff, scale } = compareNhwcNchw(
          tfOut[i].dataSync(),
          tfOut[i].shape,
          onnxOut[stage].data as Float32Array,
        );
        assert.ok(maxDiff <= 1e-4 * Math.max(scale, 1), `${stage}: max |diff| ${maxDiff} (scale ${scale})`);
      });
      await session.release();
    });
  }

  it('folds BatchNormalization and ZeroPadding2D into convolutions and emits only needed nodes', () => {
    const converted = convertKerasModel(saved.topology, saved.weights, { stages: ['relu_a'] });
    const ops = converted.model.graph.node.map((n) => n.opType);
    assert.deepEqual(ops, ['Conv', 'Clip']);
    const conv = converted.model.graph.node[0];
    assert.deepEqual(conv.attribute.find((a) => a.name === 'pads')?.ints, [1, 1, 1, 1]);
    assert.deepEqual(
      converted.model.graph.output.map((o) => o.name),
      ['relu_a'],
    );
    // Standalone BN (after an Add) becomes Mul + Add; nodes after the stages are not in the graph.
    const deeper = convertKerasModel(saved.topology, saved.weights, { stages: ['cat'] }).model.graph;
    assert.ok(deeper.node.some((n) => n.name === 'bn_sum/scaled' && n.opType === 'Mul'));
    assert.ok(!deeper.node.some((n) => /pool|tanh|sig|out_add/.test(n.output[0])));
    const needed = ancestorTensors(deeper, ['cat']);
    assert.ok(deeper.node.every((n) => n.output.some((o) => needed.has(o))));
  });

  it('produces the same bytes on every run', () => {
    const once = encodeModel(convertKerasModel(saved.topology, saved.weights, { stages: STAGES }).model);
    const twice = encodeModel(convertKerasModel(saved.topology, saved.weights, { stages: STAGES }).model);
    assert.deepEqual(Buffer.from(once), Buffer.from(twice));
  });

  describe('errors', () => {
    it('names an unknown layer type', () => {
      const topology = JSON.parse(JSON.stringify(saved.topology));
      const layers = (topology.model_config ?? topology).config.layers as {
        name: string;
        class_name: string;
      }[];
      (layers.find((l) => l.name === 'act_c') as { class_name: string }).class_name = 'FancyLayer';
      assert.throws(
        () => convertKerasModel(topology, saved.weights, { stages: ['cat'] }),
        /unsupported Keras layer type "FancyLayer" \(layer act_c\)/,
      );
    });

    it('names a missing weight', () => {
      const weights = new Map(saved.weights);
      weights.delete('conv_a/kernel');
      assert.throws(
        () => convertKerasModel(saved.topology, weights, { stages: ['relu_a'] }),
        /missing weight "conv_a\/kernel"/,
      );
      const noVariance = new Map(saved.weights);
      noVariance.delete('bn_sum/moving_variance');
      assert.throws(
        () => convertKerasModel(saved.topology, noVariance, { stages: ['cat'] }),
        /bn_sum\/moving_variance/,
      );
    });

    it('names a stage that does not exist', () => {
      assert.throws(
        () => convertKerasModel(saved.topology, saved.weights, { stages: ['relu_a', 'no_such_layer'] }),
        /stage "no_such_layer" does not exist/,
      );
    });

    it('refuses stages after the last usable layer and stages on trainable layers', () => {
      assert.throws(
        () =>
          convertKerasModel(saved.topology, saved.weights, { stages: ['cat'], lastUsableLayer: 'relu_a' }),
        /stage "cat" lies after the frozen layers .*relu_a/,
      );
      assert.throws(
        () => convertKerasModel(saved.topology, saved.weights, { stages: ['relu_a'], requireFrozen: true }),
        /layer conv_a, which is trainable/,
      );
    });

    it('refuses the fine-tuned parts of the nsfwjs models', () => {
      for (const [id, stage] of [
        ['mobilenet_v2-imagenet', 'block_11_add'],
        ['inception_v3-imagenet', 'mixed6'],
      ]) {
        const def = BACKBONES.find((b) => b.id === id);
        assert.ok(def);
        const artifacts = loadNsfwjsModel(def.nsfwjsModel);
        // The check runs before any weight is touched, so an empty weight map is enough.
        assert.throws(
          () =>
            convertKerasModel(artifacts.modelTopology, new Map(), {
              stages: [stage],
              lastUsableLayer: def.lastFrozenLayer,
              requireFrozen: true,
            }),
          new RegExp(`stage "${stage}" lies after the frozen layers`),
        );
      }
    });
  });
});
