/**
 * INT8 static quantisation (models/quantize): the arithmetic on a tiny hand-made conv model, the
 * calibration methods, what onnxruntime fuses, and MobileNetV2 at 64x64 staying close to float.
 */
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { ModelSpec } from '../../../models/spec';
import { backboneById } from '../../../models/backbones';
import { BuiltBackbone, buildBackbone } from '../../../models/backbone-build';
import { writeDerived } from '../../../models/derived';
import { GraphBuilder, intAttr, intsAttr } from '../../../models/onnx/builder';
import { decodeModel, encodeModel } from '../../../models/onnx/io';
import { ModelProto, TensorProto } from '../../../models/onnx/proto';
import { readFloatTensor } from '../../../models/onnx/tensors';
import { buildInt8 } from '../../../models/quantize/build';
import { CalibrationSet, folderSet, normalizeRgb, randnSet } from '../../../models/quantize/calibration-data';
import { calibrateRanges } from '../../../models/quantize/calibrate';
import { runStages, stageErrors } from '../../../models/quantize/compare';
import { optimizedOps } from '../../../models/quantize/fusion-check';
import { planQdq } from '../../../models/quantize/plan';
import { activationParams, rint } from '../../../models/quantize/qparams';
import { quantizeModel } from '../../../models/quantize/quantize';
import { buildFastInt8 } from '../../../models/quantize/fast-recipe';
import { Histogram, MinMax } from '../../../models/quantize/ranges';
import { QuantType, readIntTensor } from '../../../models/quantize/tensors';
import { resolveModel } from '../../../models/registry';
import { decodeImage, resizeRgb } from '../../../lib/image/decode';
import { mulberry32 } from '../../../lib/util/random';
import { testImagePaths, SHARED_DATA } from './helpers';

/** input (3 ch) -> 3x3 conv (4 ch, channel c weights ~10^(c-2)) -> ReLU -> depthwise 3x3 -> Clip(0,6) -> 1x1 conv. */
function tinyConvModel(): ModelProto {
  const rand = mulberry32(3);
  const b = new GraphBuilder('tiny');
  b.addInput('input', ['N', 3, 'H', 'W']);
  const w1 = new Float32Array(4 * 27).map((_, i) => (rand() - 0.5) * 10 ** (Math.floor(i / 27) - 2));
  b.addFloat('c1/W', [4, 3, 3, 3], w1);
  b.addFloat('c1/B', [4], Float32Array.of(0.1, -0.2, 0.3, 0.05));
  b.addNode('Conv', ['input', 'c1/W', 'c1/B'], ['c1'], [intsAttr('pads', [1, 1, 1, 1])]);
  b.addNode('Relu', ['c1'], ['c1_relu']);
  b.addFloat(
    'dw/W',
    [4, 1, 3, 3],
    new Float32Array(36).map(() => rand() - 0.3),
  );
  b.addFloat('dw/B', [4], new Float32Array(4));
  b.addNode(
    'Conv',
    ['c1_relu', 'dw/W', 'dw/B'],
    ['dw'],
    [intAttr('group', 4), intsAttr('pads', [1, 1, 1, 1])],
  );
  b.addFloat('zero', [], Float32Array.of(0));
  b.addFloat('six', [], Float32Array.of(6));
  b.addNode('Clip', ['dw', 'zero', 'six'], ['dw_relu']);
  b.addFloat(
    'pw/W',
    [3, 4, 1, 1],
    new Float32Array(12).map(() => rand() - 0.5),
  );
  b.addFloat('pw/B', [3], new Float32Array(3));
  b.addNode('Conv', ['dw_relu', 'pw/W', 'pw/B'], ['pw']);
  b.addOutput('dw_relu', ['N', 4, null, null]);
  b.addOutput('pw', ['N', 3, null, null]);
  return b.model({ producerName: 'test', producerVersion: '1', opset: 13, irVersion: 7 });
}

function tinySet(count: number, seed = 5): CalibrationSet {
  return randnSet(count, [8, 8], seed);
}

function init(model: ModelProto, name: string): TensorProto {
  const t = model.graph.initializer.find((i) => i.name === name);
  assert.ok(t, `initializer ${name}`);
  return t;
}

async function run(
  model: ModelProto,
  input: Float32Array,
  dims: number[],
): Promise<ort.InferenceSession.OnnxValueMapType> {
  const session = await ort.InferenceSession.create(encodeModel(model));
  try {
    return await session.run({ input: new ort.Tensor('float32', input, dims) });
  } finally {
    await session.release();
  }
}

describe('models: calibration images', () => {
  it('resizes a folder image whole, or crops a tile of it at full resolution (--calibration-view tile)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spi-calib-'));
    try {
      // R = x, G = y: a crop's first pixel says where it was cut, every other pixel must follow.
      const [w, h] = [200, 150];
      const rgb = Buffer.alloc(w * h * 3);
      for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) rgb.set([x, y, 7], 3 * (y * w + x));
      await sharp(rgb, { raw: { width: w, height: h, channels: 3 } })
        .png()
        .toFile(path.join(dir, 'a.png'));
      const spec: Pick<ModelSpec, 'inputSize' | 'normalize'> = {
        inputSize: [64, 64],
        normalize: { mean: [0, 0, 0], std: [1, 1, 1] },
      };
      const toByte = (v: number) => Math.round(v * 255);
      const tile = await folderSet(dir, 1, spec, 3, 'tile');
      const [r, g] = [tile.inputs[0].subarray(0, 64 * 64), tile.inputs[0].subarray(64 * 64, 2 * 64 * 64)];
      const [left, top] = [toByte(r[0]), toByte(g[0])];
      assert.ok(left <= w - 64 && top <= h - 64, `crop at ${left},${top}`);
      for (let y = 0; y < 64; y++)
        for (let x = 0; x < 64; x++) {
          assert.equal(toByte(r[y * 64 + x]), left + x);
          assert.equal(toByte(g[y * 64 + x]), top + y);
        }
      // Resized whole, the input spans (nearly) the image's full width.
      const whole = await folderSet(dir, 1, spec, 3);
      const wr = whole.inputs[0].subarray(0, 64 * 64);
      assert.ok(toByte(wr[63]) - toByte(wr[0]) > 180, `resized span ${toByte(wr[0])}..${toByte(wr[63])}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('models: INT8 quantisation arithmetic', () => {
  it('uint8 activation parameters contain zero exactly and round half to even', () => {
    assert.deepEqual(activationParams(-1, 3), { scale: Math.fround(4 / 255), zeroPoint: 64 });
    assert.equal(activationParams(0, 6).zeroPoint, 0);
    assert.equal(activationParams(2, 5).zeroPoint, 0, 'range widened to include 0');
    assert.deepEqual(activationParams(0, 0), { scale: 1, zeroPoint: 0 });
    assert.deepEqual([rint(2.5), rint(3.5), rint(-2.5), rint(-3.5), rint(1.2)], [2, 4, -2, -4, 1]);
  });

  it('percentile cuts outliers that min-max keeps', () => {
    const data = Float32Array.from({ length: 10_000 }, (_, i) => i % 1000);
    data[17] = 1e6;
    const mm = new MinMax();
    mm.add(data);
    const h = new Histogram(mm.min, mm.max, 4096);
    h.add(data);
    assert.deepEqual(mm.range(), { min: 0, max: 1e6 });
    const p = h.percentileRange(99.9);
    assert.equal(p.min, 0);
    assert.ok(p.max < 2000, `percentile max ${p.max}`);
  });
});

describe('models: INT8 QDQ on a tiny conv model', function () {
  this.timeout(20_000);
  const model = tinyConvModel();

  it('plans Q/DQ around every conv and folds ReLU/Clip into the quantisers', () => {
    const plan = planQdq(model.graph);
    assert.equal(plan.weighted.length, 3);
    assert.deepEqual(plan.activations, ['input', 'c1_relu', 'dw_relu', 'pw']);
    // Both activations fold: each reads a conv output nobody else reads (dw_relu stays an output).
    assert.deepEqual([...plan.absorbed.keys()], ['c1_relu', 'dw_relu']);
  });

  it('leaves --keep-float nodes in float and refuses names the graph lacks', async () => {
    const plan = planQdq(model.graph, { keepFloat: ['c1'] });
    assert.deepEqual(
      plan.weighted.map((w) => w.node.output[0]),
      ['dw', 'pw'],
    );
    // The float stem's input needs no quantiser; its output feeds the first integer kernel.
    assert.deepEqual(plan.activations, ['c1_relu', 'dw_relu', 'pw']);
    assert.throws(() => planQdq(model.graph, { keepFloat: ['nope'] }), /no node or tensor named nope/);
    const { model: q } = await quantizeModel(model, 'input', tinySet(8), {
      method: 'minmax',
      keepFloat: ['c1'],
    });
    const fused = await optimizedOps(encodeModel(q), 'all');
    assert.equal(fused.ops['com.microsoft.QLinearConv'], 2, JSON.stringify(fused.ops));
    assert.equal(fused.floatComputeOps, 1);
  });

  it('stores per-channel symmetric int8 weights (axis 0) and int32 biases', async () => {
    const { model: q, params } = await quantizeModel(model, 'input', tinySet(4), {
      method: 'minmax',
      reduceRange: 'none',
    });
    const w = readFloatTensor(init(model, 'c1/W'));
    const scales = readFloatTensor(init(q, 'c1/W_scale'));
    const values = readIntTensor(init(q, 'c1/W_quantized'));
    assert.equal(init(q, 'c1/W_quantized').dataType, QuantType.INT8);
    assert.deepEqual(Array.from(readIntTensor(init(q, 'c1/W_zero_point'))), [0, 0, 0, 0]);
    for (let c = 0; c < 4; c++) {
      const chan = w.subarray(c * 27, (c + 1) * 27);
      const maxAbs = Math.max(...Array.from(chan, Math.abs));
      assert.equal(scales[c], Math.fround(maxAbs / 127), `channel ${c} scale`);
      for (let i = 0; i < 27; i++) assert.equal(values[c * 27 + i], rint(chan[i] / scales[c]));
    }
    // Channel magnitudes differ by 10x each: one per-tensor scale could not serve them all.
    assert.ok(scales[3] / scales[0] > 100);
    const dq = q.graph.node.find((n) => n.output[0] === 'c1/W_dq');
    assert.equal(dq?.opType, 'DequantizeLinear');
    assert.equal(Number(dq?.attribute.find((a) => a.name === 'axis')?.i), 0);
    const xScale = params.get('input')?.scale as number;
    const bias = readIntTensor(init(q, 'c1/B_quantized'));
    assert.equal(init(q, 'c1/B_quantized').dataType, QuantType.INT32);
    [0.1, -0.2, 0.3, 0.05].forEach((b, c) =>
      assert.equal(bias[c], rint(b / Math.fround(xScale * scales[c]))),
    );
  });

  it('narrows GEMM-lowered conv weights to 7 bits by default, not depthwise ones', async () => {
    const { model: q } = await quantizeModel(model, 'input', tinySet(2), { method: 'minmax' });
    const max = (name: string) => Math.max(...Array.from(readIntTensor(init(q, name)), Math.abs));
    assert.equal(max('c1/W_quantized'), 63);
    assert.equal(max('pw/W_quantized'), 63);
    assert.equal(max('dw/W_quantized'), 127);
  });

  it('min-max ranges hold the data extremes; percentile ranges are narrower', async () => {
    const set = tinySet(6);
    const tensors = ['input', 'c1_relu', 'pw'];
    const mm = await calibrateRanges(model, 'input', tensors, set, { method: 'minmax' });
    const pc = await calibrateRanges(model, 'input', tensors, set, { method: 'percentile', percentile: 99 });
    let lo = Infinity;
    let hi = -Infinity;
    for (const x of set.inputs) for (const v of x) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
    assert.deepEqual(mm.get('input'), { min: lo, max: hi });
    for (const t of tensors) {
      const [a, b] = [mm.get(t), pc.get(t)] as { min: number; max: number }[];
      assert.ok(b.min >= a.min && b.max <= a.max, `${t}: percentile inside min-max`);
    }
    assert.ok((pc.get('input')?.max as number) < hi * 0.9, 'percentile cuts the input tail');
    assert.equal(mm.get('c1_relu')?.min, 0, 'ReLU output starts at 0');
  });

  it('keeps output names float, runs close to float and is fused into integer kernels', async () => {
    const { model: q } = await quantizeModel(model, 'input', tinySet(8), { method: 'minmax' });
    assert.deepEqual(
      q.graph.output.map((o) => o.name),
      ['dw_relu', 'pw'],
    );
    const x = tinySet(1, 99).inputs[0];
    const [a, b] = [await run(model, x, [1, 3, 8, 8]), await run(q, x, [1, 3, 8, 8])];
    for (const name of ['dw_relu', 'pw']) {
      assert.equal(b[name].type, 'float32');
      const fa = a[name].data as Float32Array;
      const fb = b[name].data as Float32Array;
      const scale = Math.max(...Array.from(fa, Math.abs));
      const maxDiff = Math.max(...Array.from(fa, (v, i) => Math.abs(v - fb[i])));
      assert.ok(maxDiff < 0.05 * scale, `${name}: max diff ${maxDiff} vs scale ${scale}`);
    }
    const fused = await optimizedOps(encodeModel(q), 'all');
    assert.equal(fused.ops['com.microsoft.QLinearConv'], 3, JSON.stringify(fused.ops));
    assert.equal(fused.floatComputeOps, 0);
  });
});

async function loadImage(file: string, size: number): Promise<Float32Array> {
  const rgb = await resizeRgb(await decodeImage(fs.readFileSync(file)), size, size);
  return normalizeRgb(rgb, { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
}

/** For each patch of `b`, the index of its nearest patch in `a` (both [C, P]). */
function nearest(a: Float32Array, b: Float32Array, channels: number): number[] {
  const patches = a.length / channels;
  return Array.from({ length: patches }, (_, j) => {
    let best = Infinity;
    let index = -1;
    for (let i = 0; i < patches; i++) {
      let d = 0;
      for (let c = 0; c < channels; c++) d += (a[c * patches + i] - b[c * patches + j]) ** 2;
      if (d < best) [best, index] = [d, i];
    }
    return index;
  });
}

describe('models: INT8 MobileNetV2 (64x64)', function () {
  this.timeout(60_000);
  const size = 64;
  let built: BuiltBackbone;
  let images: Float32Array[];

  before(async () => {
    built = await buildBackbone(backboneById('mobilenet_v2-imagenet'));
    const bottle = path.join(SHARED_DATA, 'mvtec_ad/bottle/train/good');
    images = await Promise.all(
      [path.join(bottle, '000.png'), path.join(bottle, '001.png'), ...testImagePaths()].map((f) =>
        loadImage(f, size),
      ),
    );
  });

  it('keeps stage tensors within a few percent of their scale and patch neighbours in place', async () => {
    const model = decodeModel(built.onnx);
    const { model: q } = await quantizeModel(model, 'input', randnSet(8, [size, size]), { method: 'minmax' });
    const tensors = built.spec.stages.map((s) => s.tensor);
    const ref = await runStages(built.onnx, 'input', images, [size, size], tensors);
    const got = await runStages(encodeModel(q), 'input', images, [size, size], tensors);
    for (const e of stageErrors(ref, got, tensors))
      assert.ok(e.relRms < 0.2, `${e.tensor}: rel RMS ${e.relRms}`);
    for (const t of tensors) {
      let se = 0;
      let n = 0;
      let scale = 0;
      ref.forEach((r, i) => {
        const [a, b] = [r.get(t) as Float32Array, got[i].get(t) as Float32Array];
        for (let j = 0; j < a.length; j++)
          [se, n, scale] = [se + (a[j] - b[j]) ** 2, n + 1, Math.max(scale, Math.abs(a[j]))];
      });
      assert.ok(Math.sqrt(se / n) < 0.05 * scale, `${t}: RMS error ${Math.sqrt(se / n)} vs scale ${scale}`);
    }
    const stage = 'block_6_expand_relu';
    const f = nearest(ref[0].get(stage) as Float32Array, ref[1].get(stage) as Float32Array, 192);
    const g = nearest(got[0].get(stage) as Float32Array, got[1].get(stage) as Float32Array, 192);
    const agree = f.filter((v, i) => v === g[i]).length / f.length;
    assert.ok(agree >= 0.8, `nearest-neighbour agreement ${agree}`);
  });

  it('fast recipe: early convs thinned to multiples of 16 and compensated, stem float, stages kept', async () => {
    const b = await buildFastInt8(built.spec, decodeModel(built.onnx), {
      id: 'mobilenet_v2-imagenet-fast-test',
      calibration: 'randn',
      method: 'minmax',
      count: 2,
    });
    const details = b.derived.card.details as {
      prune: { convs: string[]; biasCompensation: string };
      int8: { keptFloat: string[] };
    };
    assert.deepEqual(details.prune.convs, [
      'bn_Conv1 32->16',
      'block_1_expand_BN 96->48',
      'block_2_expand_BN 144->64',
      'block_3_expand_BN 144->64',
    ]);
    assert.match(details.prune.biasCompensation, /random-normal/);
    assert.deepEqual(details.int8.keptFloat, ['bn_Conv1']);
    assert.deepEqual(b.derived.card.transforms, ['prune', 'fast-recipe', 'int8']);
    assert.equal(b.fusion.floatComputeOps, 1, JSON.stringify(b.fusion.ops));
    // The thinned convs feed only expand -> depthwise -> project chains: every stage keeps its width.
    assert.deepEqual(b.derived.spec.stages, built.spec.stages);
    // 0.334 GFLOPs for the float graph to its last stage at 224 px.
    assert.ok(b.derived.card.cost.flops < 0.75 * 0.334e9, `FLOPs ${b.derived.card.cost.flops}`);
    await assert.rejects(
      buildFastInt8({ ...built.spec, id: 'resnet' }, decodeModel(built.onnx), {
        id: 'x',
        calibration: 'randn',
        method: 'minmax',
        count: 2,
      }),
      /no fast recipe for resnet/,
    );
  });

  it('writes a model folder with a new id, sha256, same stages and a card the registry loads', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spi-int8-'));
    try {
      const b = await buildInt8(built.spec, decodeModel(built.onnx), {
        id: 'mobilenet_v2-imagenet-int8-test',
        calibration: 'randn',
        method: 'percentile',
        count: 2,
      });
      writeDerived(path.join(dir, 'm'), b.derived);
      const { spec } = resolveModel(path.join(dir, 'm'));
      assert.equal(spec.id, 'mobilenet_v2-imagenet-int8-test');
      assert.match(spec.sha256 ?? '', /^[0-9a-f]{64}$/);
      assert.deepEqual(spec.stages, built.spec.stages);
      assert.equal(spec.inputName, built.spec.inputName);
      const card = JSON.parse(fs.readFileSync(path.join(dir, 'm', 'card.json'), 'utf8'));
      assert.equal(card.derivedFrom.id, 'mobilenet_v2-imagenet');
      assert.equal(card.details.int8.calibrationCount, 2);
      assert.equal(card.details.int8.calibrationMethod, 'percentile 99.99%');
      assert.equal(card.opCounts['onnxruntime all']['com.microsoft.QLinearConv'], 33);
      assert.ok(b.fusion.integerOps >= 39 && b.fusion.floatComputeOps === 0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
